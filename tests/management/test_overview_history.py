"""/api/overview's churn_rates and its history parameters, in RabbitMQ 3.10's shapes.

Recorded from RabbitMQ 3.10.8: ``churn_rates`` counts connection/channel created and closed and
queue declared/created/deleted, each with ``_details``. With ``msg_rates_age=A&msg_rates_incr=I``
every message_stats detail also has ``samples`` (A // I + 1 of them, newest first, timestamps in ms
on multiples of I), ``avg_rate`` and ``avg``; ``lengths_age``/``lengths_incr`` do the same for
queue_totals and churn_rates. A parameter that is missing or not a number means no history.
(3.10 drops churn_rates altogether when only lengths_* is given; Lapine keeps it.)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from lapine.testing import BrokerThread
from tests.management.client import Http
from tests.management.conftest import amqp_params

CHURN = (
    "channel_closed",
    "channel_created",
    "connection_closed",
    "connection_created",
    "queue_created",
    "queue_declared",
    "queue_deleted",
)


@pytest.fixture(scope="module")
def fast_broker() -> Iterator[BrokerThread]:
    with BrokerThread(management_sample_interval=0.2) as broker:
        yield broker


def overview(broker: BrokerThread, query: str = "") -> dict[str, Any]:
    reply = Http(broker.management_url).get("/api/overview" + query)
    assert reply.status == 200
    body: dict[str, Any] = reply.json
    return body


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "the sampler never caught up"
        time.sleep(0.1)


def test_churn_rates_count_connections_channels_and_queues(fast_broker: BrokerThread) -> None:
    before = overview(fast_broker)["churn_rates"]
    assert list(before) == [key for name in CHURN for key in (name, f"{name}_details")]
    assert before["channel_created_details"] == {"rate": before["channel_created_details"]["rate"]}
    connection = pika.BlockingConnection(amqp_params(fast_broker.url))
    channel = connection.channel()
    channel.queue_declare("churned")
    channel.queue_declare("churned")
    channel.queue_declare("churned", passive=True)  # passive: not a declaration RabbitMQ counts
    channel.queue_delete("churned")
    channel.close()
    connection.close()
    wait_for(lambda: overview(fast_broker)["churn_rates"]["connection_closed"] > before["connection_closed"])
    after = overview(fast_broker)["churn_rates"]
    assert {name: after[name] - before[name] for name in CHURN} == {
        "channel_closed": 1,
        "channel_created": 1,
        "connection_closed": 1,
        "connection_created": 1,
        "queue_created": 1,
        "queue_declared": 2,
        "queue_deleted": 1,
    }


def test_history_samples_avg_rate_and_avg(fast_broker: BrokerThread) -> None:
    connection = pika.BlockingConnection(amqp_params(fast_broker.url))
    channel = connection.channel()
    channel.queue_declare("history")
    for _ in range(3):
        channel.basic_publish("", "history", b"m")
    query = "?lengths_age=4&lengths_incr=1&msg_rates_age=6&msg_rates_incr=2"
    wait_for(lambda: overview(fast_broker, query)["queue_totals"]["messages_details"]["samples"][0]["sample"] == 3)
    asked_ms = time.time() * 1000
    data = overview(fast_broker, query)
    answered_ms = time.time() * 1000
    messages = data["queue_totals"]["messages_details"]
    assert list(messages) == ["rate", "samples", "avg_rate", "avg"]
    stamps = [sample["timestamp"] for sample in messages["samples"]]
    assert len(stamps) == 5
    assert stamps[0] % 1000 == 0 and asked_ms - 1000 < stamps[0] <= answered_ms
    assert [a - b for a, b in itertools.pairwise(stamps)] == [1000] * 4
    values = [sample["sample"] for sample in messages["samples"]]
    assert messages["avg"] == round(sum(values) / 5, 1)
    assert messages["avg_rate"] == round((values[0] - values[-1]) / 4, 1)
    publish = data["message_stats"]["publish_details"]
    assert len(publish["samples"]) == 4
    assert publish["samples"][0]["timestamp"] % 2000 == 0
    assert set(data["churn_rates"]["queue_declared_details"]) == {"rate", "samples", "avg_rate", "avg"}
    assert len(data["churn_rates"]["queue_declared_details"]["samples"]) == 5
    channel.queue_delete("history")
    connection.close()


@pytest.mark.parametrize(
    "query", ["", "?lengths_age=60", "?lengths_age=abc&lengths_incr=5", "?lengths_age=60&lengths_incr=0"]
)
def test_no_history_without_a_whole_range(fast_broker: BrokerThread, query: str) -> None:
    data = overview(fast_broker, query)
    assert data["queue_totals"]["messages_details"] == {"rate": data["queue_totals"]["messages_details"]["rate"]}


def test_message_rates_history_leaves_lengths_alone(fast_broker: BrokerThread) -> None:
    data = overview(fast_broker, "?msg_rates_age=10&msg_rates_incr=5")
    assert len(data["message_stats"]["ack_details"]["samples"]) == 3
    assert "samples" not in data["queue_totals"]["messages_details"]
    assert "samples" not in data["churn_rates"]["channel_closed_details"]
