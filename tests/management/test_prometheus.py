"""Prometheus on its own port: RabbitMQ's metric names, aggregated at /metrics, labelled per object."""

from __future__ import annotations

import contextlib
import re
import urllib.request
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions

from lapine.testing import BrokerThread
from tests.management.client import Http
from tests.management.conftest import amqp_params, url_for

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


def _counters(broker: BrokerThread) -> dict[str, float]:
    """The counters now: the broker must not reuse a scrape (prometheus_cache_ttl=0)."""
    values, _text, _type = scrape(broker)
    return {
        key: value
        for key, value in values.items()
        if key.startswith(("rabbitmq_global_", "rabbitmq_message_size_bytes"))
        or key.endswith(("_opened_total", "_closed_total", "_declared_total", "_created_total", "_deleted_total"))
    }


def _scenario(url: str) -> None:
    """Publishes, gets, consumes, redeliveries, confirms and a transaction, on two channels."""
    connection = pika.BlockingConnection(amqp_params(url))
    channel = connection.channel()
    channel.exchange_declare("scn-fan", "fanout")
    for queue in ("scn-a", "scn-b"):
        channel.queue_declare(queue)
        channel.queue_bind(queue, "scn-fan")
    channel.queue_declare("scn-a")  # declared again: declared, not created
    channel.confirm_delivery()
    for size in (10, 500, 2_000_000):
        channel.basic_publish("scn-fan", "", b"x" * size)
    with contextlib.suppress(pika.exceptions.UnroutableError):
        channel.basic_publish("amq.direct", "nowhere", b"r", mandatory=True)
    channel.basic_publish("amq.direct", "nowhere", b"d")
    tx = connection.channel()
    tx.tx_select()
    tx.basic_publish("", "scn-a", b"t")
    tx.tx_commit()
    tx.close()
    method, _props, _body = channel.basic_get("scn-a")
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, _props, _body = channel.basic_get("scn-a")
    channel.basic_ack(method.delivery_tag)
    for _ in range(3):
        channel.basic_get("scn-a", auto_ack=True)
    received: list[int] = []

    def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        received.append(method.delivery_tag)
        ch.basic_ack(method.delivery_tag)
        if len(received) == 3:
            ch.stop_consuming()

    channel.basic_consume("scn-b", on_message)
    channel.start_consuming()
    for queue in ("scn-a", "scn-b"):
        channel.queue_delete(queue)
    channel.exchange_delete("scn-fan")
    connection.close()


# The change of each counter over _scenario on RabbitMQ 3.10.8 (its stream series and its quorum
# series other than dead-lettering, all zero, left out), then the message size histogram of
# RabbitMQ 4.x, which 3.10 does not have, and the quorum delivery-limit series of 4.x.
AMQP = '{protocol="amqp091"}'
CLASSIC = '{protocol="amqp091",queue_type="rabbit_classic_queue"}'
SCENARIO_ON_RABBITMQ = {
    "rabbitmq_channels_closed_total": 2,
    "rabbitmq_channels_opened_total": 2,
    "rabbitmq_connections_closed_total": 1,
    "rabbitmq_connections_opened_total": 1,
    f"rabbitmq_global_messages_acknowledged_total{CLASSIC}": 4,
    f"rabbitmq_global_messages_confirmed_total{AMQP}": 5,
    f"rabbitmq_global_messages_delivered_consume_auto_ack_total{CLASSIC}": 0,
    f"rabbitmq_global_messages_delivered_consume_manual_ack_total{CLASSIC}": 3,
    f"rabbitmq_global_messages_delivered_get_auto_ack_total{CLASSIC}": 3,
    f"rabbitmq_global_messages_delivered_get_manual_ack_total{CLASSIC}": 2,
    f"rabbitmq_global_messages_delivered_total{CLASSIC}": 8,
    f"rabbitmq_global_messages_get_empty_total{CLASSIC}": 0,
    f"rabbitmq_global_messages_received_confirm_total{AMQP}": 6,
    f"rabbitmq_global_messages_received_total{AMQP}": 6,
    f"rabbitmq_global_messages_redelivered_total{CLASSIC}": 1,
    f"rabbitmq_global_messages_routed_total{AMQP}": 7,
    f"rabbitmq_global_messages_unroutable_dropped_total{AMQP}": 1,
    f"rabbitmq_global_messages_unroutable_returned_total{AMQP}": 1,
    # RabbitMQ 3.10's gauge is broken (it went to -127 here); current RabbitMQ counts open
    # channels that have published, as Lapine does: none once the connection is closed.
    f"rabbitmq_global_publishers{AMQP}": 0,
    f"rabbitmq_global_consumers{AMQP}": 0,
    **{
        f'rabbitmq_global_messages_dead_lettered_{reason}_total{{queue_type="rabbit_classic_queue",'
        f'dead_letter_strategy="{strategy}"}}': 0
        for reason in ("expired", "maxlen", "rejected")
        for strategy in ("at_most_once", "disabled")
    },
    **{
        f'rabbitmq_global_messages_dead_lettered_{reason}_total{{queue_type="rabbit_quorum_queue",'
        f'dead_letter_strategy="{strategy}"}}': 0
        for strategy, reasons in (
            ("at_least_once", ("confirmed", "expired", "rejected", "delivery_limit")),
            ("at_most_once", ("expired", "maxlen", "rejected", "delivery_limit")),
            ("disabled", ("expired", "maxlen", "rejected", "delivery_limit")),
        )
        for reason in reasons
    },
    "rabbitmq_queues_created_total": 2,
    "rabbitmq_queues_declared_total": 3,
    "rabbitmq_queues_deleted_total": 2,
    **{
        f'rabbitmq_message_size_bytes_bucket{{protocol="amqp091",le="{le}"}}': count
        for le, count in [
            ("100.0", 4),
            ("1000.0", 5),
            ("10000.0", 5),
            ("100000.0", 5),
            ("1e+06", 5),
            ("1e+07", 6),
            ("5e+07", 6),
            ("1e+08", 6),
            ("+Inf", 6),
        ]
    },
    f"rabbitmq_message_size_bytes_sum{AMQP}": 10 + 500 + 2_000_000 + 3,
    f"rabbitmq_message_size_bytes_count{AMQP}": 6,
}


def test_global_counters_count_what_rabbitmq_counts() -> None:
    with BrokerThread(prometheus_cache_ttl=0) as broker:
        before = _counters(broker)
        _scenario(broker.url)
        after = _counters(broker)
    assert {key: after[key] - before.get(key, 0) for key in after} == SCENARIO_ON_RABBITMQ


def test_global_counters_keep_what_a_deleted_vhost_counted() -> None:
    with BrokerThread(prometheus_cache_ttl=0) as broker:
        http = Http(broker.management_url)
        http.put("/api/vhosts/doomed", {})
        http.put("/api/permissions/doomed/guest", {"configure": ".*", "write": ".*", "read": ".*"})
        connection = pika.BlockingConnection(amqp_params(url_for(broker.url, "guest", "guest", "doomed")))
        channel = connection.channel()
        channel.queue_declare("q")
        for _ in range(4):
            channel.basic_publish("", "q", b"m")
        channel.basic_get("q", auto_ack=True)
        connection.close()
        before = _counters(broker)
        http.delete("/api/vhosts/doomed")
        after = _counters(broker)
    assert before[f"rabbitmq_global_messages_received_total{AMQP}"] == 4
    assert before[f"rabbitmq_global_messages_routed_total{AMQP}"] == 4
    changed = {key: after[key] - before[key] for key in after if after[key] != before[key]}
    assert changed == {"rabbitmq_queues_deleted_total": 1}


def test_dead_lettered_counters_count_what_rabbitmq_counts() -> None:
    """Each way a message dies, with a dead-letter exchange (at_most_once) and without (disabled);
    the figures are RabbitMQ 3.10.8's for the same steps."""
    dlx = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl-target"}
    with BrokerThread(prometheus_cache_ttl=0) as broker:
        connection = pika.BlockingConnection(amqp_params(broker.url))
        channel = connection.channel()
        channel.queue_declare("dl-target")
        channel.queue_declare("dl-reject", arguments=dlx)
        channel.queue_declare("dl-maxlen", arguments={"x-max-length": 1})
        channel.queue_declare("dl-ttl", arguments={"x-message-ttl": 0, **dlx})
        channel.queue_declare("dl-ttl-none", arguments={"x-message-ttl": 0})
        channel.queue_declare("dl-missing", arguments={"x-dead-letter-exchange": "no-such-exchange"})
        for queue, count in (("dl-reject", 2), ("dl-maxlen", 3), ("dl-ttl", 2), ("dl-ttl-none", 1), ("dl-missing", 1)):
            for _ in range(count):
                channel.basic_publish("", queue, b"m")
        method, _props, _body = channel.basic_get("dl-reject")
        channel.basic_reject(method.delivery_tag, requeue=False)
        method, _props, _body = channel.basic_get("dl-missing")
        channel.basic_nack(method.delivery_tag, requeue=False)
        assert channel.queue_declare("dl-target", passive=True).method.message_count == 3
        counted = {
            key: value for key, value in _counters(broker).items() if "dead_lettered" in key and "classic" in key
        }
        connection.close()
    labels = 'queue_type="rabbit_classic_queue",dead_letter_strategy'
    assert counted == {
        f'rabbitmq_global_messages_dead_lettered_expired_total{{{labels}="at_most_once"}}': 2,
        f'rabbitmq_global_messages_dead_lettered_expired_total{{{labels}="disabled"}}': 1,
        f'rabbitmq_global_messages_dead_lettered_maxlen_total{{{labels}="at_most_once"}}': 0,
        f'rabbitmq_global_messages_dead_lettered_maxlen_total{{{labels}="disabled"}}': 2,
        f'rabbitmq_global_messages_dead_lettered_rejected_total{{{labels}="at_most_once"}}': 1,
        f'rabbitmq_global_messages_dead_lettered_rejected_total{{{labels}="disabled"}}': 1,
    }


def test_quorum_dead_lettering_is_counted_under_its_queue_type() -> None:
    with BrokerThread(prometheus_cache_ttl=0) as broker:
        connection = pika.BlockingConnection(amqp_params(broker.url))
        channel = connection.channel()
        channel.queue_declare("qq-dead", durable=True)
        quorum = {"x-queue-type": "quorum"}
        channel.queue_declare("qq-limit", durable=True, arguments={**quorum, "x-delivery-limit": 0})
        at_least_once = {
            **quorum,
            "x-overflow": "reject-publish",
            "x-dead-letter-strategy": "at-least-once",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "qq-dead",
        }
        channel.queue_declare("qq-alo", durable=True, arguments=at_least_once)
        channel.confirm_delivery()
        channel.basic_publish("", "qq-limit", b"m")
        channel.basic_publish("", "qq-alo", b"m")
        taker = connection.channel()
        taker.basic_get("qq-limit")
        taker.close()  # a failed delivery past a limit of 0, and no dead-letter exchange
        method, _props, _body = channel.basic_get("qq-alo")
        channel.basic_reject(method.delivery_tag, requeue=False)
        assert channel.queue_declare("qq-dead", passive=True).method.message_count == 1
        counted = {key: value for key, value in _counters(broker).items() if "dead_lettered" in key and value}
        connection.close()
    labels = 'queue_type="rabbit_quorum_queue",dead_letter_strategy'
    assert counted == {
        f'rabbitmq_global_messages_dead_lettered_delivery_limit_total{{{labels}="disabled"}}': 1,
        f'rabbitmq_global_messages_dead_lettered_rejected_total{{{labels}="at_least_once"}}': 1,
        f'rabbitmq_global_messages_dead_lettered_confirmed_total{{{labels}="at_least_once"}}': 1,
    }


def test_queue_bytes_and_paging_figures() -> None:
    """RabbitMQ's rabbitmq_queue_messages_*_bytes, *_ram and *_paged_out, per queue and summed."""
    with BrokerThread(queue_window=4, prometheus_cache_ttl=0) as broker:
        connection = pika.BlockingConnection(amqp_params(broker.url))
        channel = connection.channel()
        channel.queue_declare("sized")
        for _ in range(10):
            channel.basic_publish("", "sized", b"b" * 50)
        method, _props, _body = channel.basic_get("sized")
        assert method is not None
        per_object, _text, _type = scrape(broker, "/metrics/per-object")
        aggregated, _text, _type = scrape(broker)
        connection.close()
    labels = '{vhost="/",queue="sized"}'
    figures = {
        name: per_object[f"rabbitmq_queue_{name}{labels}"]
        for name in (
            "messages",
            "messages_ready",
            "messages_unacked",
            "messages_bytes",
            "messages_ready_bytes",
            "messages_unacked_bytes",
            "messages_unacked_ram",
        )
    }
    assert figures == {
        "messages": 10,
        "messages_ready": 9,
        "messages_unacked": 1,
        "messages_bytes": 500,
        "messages_ready_bytes": 450,
        "messages_unacked_bytes": 50,
        "messages_unacked_ram": 1,
    }
    paged = per_object[f"rabbitmq_queue_messages_paged_out{labels}"]
    assert paged >= 10 - 1 - 4
    assert per_object[f"rabbitmq_queue_messages_paged_out_bytes{labels}"] == paged * 50
    assert per_object[f"rabbitmq_queue_messages_ram{labels}"] == 10 - paged
    assert per_object[f"rabbitmq_queue_messages_ready_ram{labels}"] == 9 - paged
    assert per_object[f"rabbitmq_queue_messages_ram_bytes{labels}"] == (10 - paged) * 50
    assert aggregated["rabbitmq_queue_messages_paged_out"] == paged
    assert aggregated["rabbitmq_queue_messages_bytes"] == 500


def _identity(broker: BrokerThread) -> dict[str, str]:
    _values, text, _type = scrape(broker)
    line = next(line for line in text.splitlines() if line.startswith("rabbitmq_identity_info{"))
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', line))


def test_identity_keeps_its_permanent_id_across_renames_and_restarts(tmp_path: Any) -> None:
    settings = {"data_dir": str(tmp_path / "data"), "prometheus_cache_ttl": 0}
    with BrokerThread(**settings) as broker:
        first = _identity(broker)
        http = Http(broker.management_url)
        stored = {p["name"]: p["value"] for p in http.get("/api/definitions").json["global_parameters"]}
        assert http.put("/api/cluster-name", {"name": "renamed"}).status == 204
        renamed = _identity(broker)
    with BrokerThread(**settings) as broker:
        restarted = _identity(broker)
    assert re.fullmatch(r"rabbitmq-cluster-id-[A-Za-z0-9_-]{22}", first["rabbitmq_cluster_permanent_id"])
    assert stored["internal_cluster_id"] == first["rabbitmq_cluster_permanent_id"]
    assert renamed == {**first, "rabbitmq_cluster": "renamed"}
    assert restarted["rabbitmq_cluster_permanent_id"] == first["rabbitmq_cluster_permanent_id"]
    assert restarted["rabbitmq_node"] == first["rabbitmq_node"] == first["rabbitmq_cluster"]
