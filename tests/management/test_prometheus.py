"""Prometheus on its own port: RabbitMQ's metric names, aggregated at /metrics, labelled per object."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable

import pika

from lapine.testing import BrokerThread
from tests.management.conftest import amqp_params

SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape(broker: BrokerThread, path: str = "/metrics") -> tuple[dict[str, float], str, str]:
    with urllib.request.urlopen(broker.prometheus_url + path, timeout=10) as response:
        text = response.read().decode()
        content_type = response.headers["Content-Type"]
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values, text, content_type


def test_metrics_in_rabbitmq_names(broker: BrokerThread, unique: Callable[[str], str]) -> None:
    connection = pika.BlockingConnection(amqp_params(broker.url))
    try:
        channel = connection.channel()
        queue = unique("prom")
        channel.queue_declare(queue)
        channel.confirm_delivery()
        for _ in range(5):
            channel.basic_publish("", queue, b"x")
        channel.basic_publish("amq.direct", "nowhere", b"lost")
        method, _props, _body = channel.basic_get(queue)
        channel.basic_ack(method.delivery_tag)
        channel.basic_get(queue)  # left unacked
        values, text, content_type = scrape(broker)
        assert content_type.startswith("text/plain; version=0.0.4")
        assert "# TYPE rabbitmq_queue_messages_ready gauge" in text
        assert "# HELP rabbitmq_connections Connections currently open" in text
        assert values["rabbitmq_connections"] >= 1
        assert values["rabbitmq_channels"] >= 1
        assert values["rabbitmq_queues"] >= 1
        assert values["rabbitmq_queue_messages_ready"] >= 3
        assert values["rabbitmq_queue_messages_unacked"] >= 1
        amqp = '{protocol="amqp091"}'
        classic = '{protocol="amqp091",queue_type="rabbit_classic_queue"}'
        assert values[f"rabbitmq_global_messages_received_total{amqp}"] >= 6
        assert values[f"rabbitmq_global_messages_confirmed_total{amqp}"] >= 6
        assert values[f"rabbitmq_global_messages_routed_total{amqp}"] >= 5
        assert values[f"rabbitmq_global_messages_unroutable_dropped_total{amqp}"] >= 1
        assert f"rabbitmq_global_messages_unroutable_returned_total{amqp}" in values
        assert values[f"rabbitmq_global_messages_delivered_total{classic}"] >= 2
        assert values[f"rabbitmq_global_messages_delivered_get_manual_ack_total{classic}"] >= 2
        assert values[f"rabbitmq_global_messages_acknowledged_total{classic}"] >= 1
        assert values["rabbitmq_process_resident_memory_bytes"] > 1_000_000
        assert "rabbitmq_build_info{" in text and "rabbitmq_identity_info{" in text
        per_object, _text, _type = scrape(broker, "/metrics/per-object")
        assert per_object[f'rabbitmq_queue_messages_ready{{vhost="/",queue="{queue}"}}'] == 3
        assert per_object[f'rabbitmq_queue_messages_unacked{{vhost="/",queue="{queue}"}}'] == 1
    finally:
        connection.close()
