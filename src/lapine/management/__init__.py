"""The management side: RabbitMQ's HTTP API and web UI on port 15672, and Prometheus on 15692.

The HTTP servers run on the broker's event loop, so handlers read and change the model directly
and synchronously; definition changes go through lapine.broker.definitions.
"""
