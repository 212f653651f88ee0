"""Streams in the management API: their type and fields, and RabbitMQ's refusals of get and purge.

Runs against a Lapine started here, or against RabbitMQ with MANAGEMENT_URL and AMQP_URL set:

    MANAGEMENT_URL=http://localhost:15673 AMQP_URL=amqp://guest:guest@localhost:5673/%2F \\
        python -m pytest tests/management/test_streams.py
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pika
import pytest

from tests.management.client import Http, q
from tests.management.conftest import eventually


@pytest.fixture
def stream(api: Http, connect: Callable[..., pika.BlockingConnection], unique: Callable[[str], str]) -> Iterator[str]:
    name = unique("stream")
    assert api.put(f"/api/queues/%2F/{q(name)}", {"durable": True, "arguments": {"x-queue-type": "stream"}}).status in (
        201,
        204,
    )
    channel = connect().channel()
    channel.confirm_delivery()
    for i in range(3):
        channel.basic_publish("", name, b"m%d" % i)
    yield name
    api.delete(f"/api/queues/%2F/{q(name)}")


def test_a_stream_shows_its_type_members_and_messages(api: Http, stream: str) -> None:
    def shown() -> dict[str, object] | None:
        info = api.get(f"/api/queues/%2F/{q(stream)}").json
        return info if info.get("messages") == 3 else None

    info = eventually(shown)
    assert info is not None
    assert (info["type"], info["durable"], info["state"]) == ("stream", True, "running")
    assert (info["messages_ready"], info["messages_unacknowledged"]) == (3, 0)
    assert info["members"] == info["online"] == [info["node"]]
    assert info["readers"] == {info["node"]: 0}
    assert info["arguments"] == {"x-queue-type": "stream"}
    if not os.environ.get("MANAGEMENT_URL"):  # RabbitMQ 4.x's stream info keys (3.10 has none of them)
        assert info["segments"] == 1
        assert info["committed_offset"] == 2
        assert info["leader"] == info["node"]
        assert isinstance(info["first_timestamp"], int)


def test_a_stream_is_listed_with_its_type(api: Http, stream: str) -> None:
    rows = api.get("/api/queues/%2F?columns=name,type").json
    assert {"name": stream, "type": "stream"} in rows


def test_purging_a_stream_is_refused(api: Http, stream: str) -> None:
    reply = api.delete(f"/api/queues/%2F/{q(stream)}/contents")
    assert (reply.status, reply.json["error"]) == (400, "bad_request")
    assert reply.json["reason"] == f"queue.purge not supported by stream queues queue '{stream}' in vhost '/'"


@pytest.mark.parametrize("ackmode", ["ack_requeue_true", "reject_requeue_true", "ack_requeue_false"])
def test_getting_from_a_stream_is_refused(api: Http, stream: str, ackmode: str) -> None:
    if ackmode != "ack_requeue_true" and os.environ.get("MANAGEMENT_URL"):
        pytest.skip("RabbitMQ 3.10 answers some ackmodes with a 500 here; Lapine answers them all as this one")
    reply = api.post(f"/api/queues/%2F/{q(stream)}/get", {"count": 1, "ackmode": ackmode, "encoding": "auto"})
    assert (reply.status, reply.json["error"]) == (400, "bad_request")
    assert reply.json["reason"] == f"540 basic.get not supported by stream queues queue '{stream}' in vhost '/'"
