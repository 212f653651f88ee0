"""Message counters and their rates: message_stats with *_details, sampled every interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika

from lapine.testing import BrokerThread
from tests.management.client import Http, q
from tests.management.conftest import amqp_params, eventually


def publish_and_consume(broker: BrokerThread, queue: str, count: int) -> pika.BlockingConnection:
    connection = pika.BlockingConnection(amqp_params(broker.url))
    channel = connection.channel()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    for index in range(count):
        channel.basic_publish("", queue, b"m%d" % index)
    for _ in range(count // 2):
        method, _props, _body = channel.basic_get(queue)
        channel.basic_ack(method.delivery_tag)
    return connection


def rate_of(item: dict[str, Any], name: str) -> float:
    return float(item.get("message_stats", {}).get(f"{name}_details", {}).get("rate", 0.0))


def test_counters_and_rates_move_then_settle(broker: BrokerThread, http: Http, unique: Callable[[str], str]) -> None:
    queue = unique("rates")
    connection = publish_and_consume(broker, queue, 40)
    try:
        path = f"/api/queues/%2F/{q(queue)}"
        stats = http.get(path).json["message_stats"]
        assert (stats["publish"], stats["get"], stats["ack"], stats["deliver_get"]) == (40, 20, 20, 20)
        assert eventually(lambda: rate_of(http.get(path).json, "publish") > 0, timeout=3)
        overview = http.get("/api/overview").json
        totals = overview["message_stats"]
        assert totals["publish"] >= 40 and totals["confirm"] >= 40 and totals["ack"] >= 20
        assert overview["queue_totals"]["messages_ready"] >= 20
        vhost = next(v for v in http.get("/api/vhosts").json if v["name"] == "/")
        assert vhost["message_stats"]["publish"] >= 40
        channel = http.get("/api/channels").json[0]
        assert channel["message_stats"]["publish"] == 40 and channel["message_stats"]["confirm"] == 40
        exchange = http.get("/api/exchanges/%2F/amq.default").json
        assert exchange["message_stats"]["publish_in"] >= 40
        # With no more traffic, two samples later the rate is back to zero.
        time.sleep(1.2)
        assert rate_of(http.get(path).json, "publish") == 0.0
    finally:
        connection.close()


def test_http_publish_counts_like_a_channel(broker: BrokerThread, http: Http, unique: Callable[[str], str]) -> None:
    queue = unique("httppub")
    http.put(f"/api/queues/%2F/{q(queue)}", {"durable": False})
    before = http.get("/api/vhosts/%2F").json.get("message_stats", {}).get("publish", 0)
    message = {"routing_key": queue, "payload": "x", "payload_encoding": "string", "properties": {"delivery_mode": 2}}
    for _ in range(3):
        assert http.post("/api/exchanges/%2F/amq.default/publish", message).json == {"routed": True}
    assert http.get(f"/api/queues/%2F/{q(queue)}").json["message_stats"]["publish"] == 3
    assert http.get("/api/vhosts/%2F").json["message_stats"]["publish"] == before + 3
    got = http.post(f"/api/queues/%2F/{q(queue)}/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert got.json[0]["properties"] == {"delivery_mode": 2}


def test_overview_totals_follow_the_model(broker: BrokerThread, http: Http, unique: Callable[[str], str]) -> None:
    connection = pika.BlockingConnection(amqp_params(broker.url))
    try:
        channel = connection.channel()
        queue = unique("tot")
        channel.queue_declare(queue)
        channel.basic_consume(queue, lambda *args: None)
        totals = http.get("/api/overview").json["object_totals"]
        assert totals["connections"] >= 1 and totals["channels"] >= 1 and totals["consumers"] >= 1
        assert totals["exchanges"] >= 6 and totals["queues"] >= 1
    finally:
        connection.close()
