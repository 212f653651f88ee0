"""The delayed-message exchange in the HTTP API: its type in /api/overview, declared over HTTP with
the plugin's checks, and ``messages_delayed`` on the exchange (the plugin's exchange info item).
Lapine only: the reference RabbitMQ has no rabbitmq_delayed_message_exchange plugin."""

from __future__ import annotations

import time
from collections.abc import Callable

import pika

from lapine.testing import BrokerThread
from tests.management.client import Http
from tests.management.conftest import amqp_params


def test_the_type_is_listed(http: Http) -> None:
    types = http.get("/api/overview").json["exchange_types"]
    assert {"name": "x-delayed-message", "description": "Delayed Message Exchange.", "enabled": True} in types


def test_declared_over_http_with_the_plugins_checks(http: Http, unique: Callable[[str], str]) -> None:
    name = unique("delayed")
    refused = http.put(f"/api/exchanges/%2F/{name}", {"type": "x-delayed-message"})
    assert refused.status == 400
    assert refused.json["reason"] == "Invalid argument, 'x-delayed-type' must be an existing exchange type"
    declare = {"type": "x-delayed-message", "arguments": {"x-delayed-type": "topic"}}
    made = http.put(f"/api/exchanges/%2F/{name}", declare)
    assert made.status == 201
    info = http.get(f"/api/exchanges/%2F/{name}").json
    assert (info["type"], info["arguments"], info["messages_delayed"]) == (
        "x-delayed-message",
        {"x-delayed-type": "topic"},
        0,
    )
    assert "messages_delayed" not in http.get("/api/exchanges/%2F/amq.topic").json
    http.call("DELETE", f"/api/exchanges/%2F/{name}")


def test_messages_delayed_counts_what_waits(broker: BrokerThread, http: Http, unique: Callable[[str], str]) -> None:
    name, queue = unique("delayed"), unique("q")
    connection = pika.BlockingConnection(amqp_params(broker.url))
    channel = connection.channel()
    channel.exchange_declare(name, "x-delayed-message", arguments={"x-delayed-type": "direct"})
    channel.queue_declare(queue)
    channel.queue_bind(queue, name, "k")
    channel.confirm_delivery()
    for delay in (300, 300, 30_000):
        channel.basic_publish(name, "k", b"m", pika.BasicProperties(headers={"x-delay": delay}))
    assert http.get(f"/api/exchanges/%2F/{name}").json["messages_delayed"] == 3
    listed = {x["name"]: x for x in http.get("/api/exchanges/%2F").json}
    assert listed[name]["messages_delayed"] == 3
    deadline = time.monotonic() + 10
    while http.get(f"/api/exchanges/%2F/{name}").json["messages_delayed"] != 1:
        assert time.monotonic() < deadline, "the two due messages were not released"
        time.sleep(0.05)
    assert http.get(f"/api/queues/%2F/{queue}").json["messages"] == 2
    channel.exchange_delete(name)
    channel.queue_delete(queue)
    connection.close()
