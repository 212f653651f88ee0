"""Prometheus metrics on port 15692 at /metrics, in rabbitmq_prometheus's names and labels."""
