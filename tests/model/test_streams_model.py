"""Streams in the model, on a manual clock: offsets by time and interval, retention by age on its
timer with no publishes, retention by size, credit, filters and many cursors. Without a store a
stream's log lives in memory (the same log code, on in-memory segment files)."""

from __future__ import annotations

from typing import Any

import pytest

from lapine.amqp import spec
from lapine.amqp.codec import Timestamp
from lapine.broker.stream_queue import RETENTION_INTERVAL, StreamQueue
from lapine.testing.model import Content, ModelBroker, ModelClient


def declare_stream(client: ModelClient, name: str = "s", **arguments: Any) -> StreamQueue:
    client.call(
        1,
        spec.QueueDeclare(queue=name, durable=True, arguments={"x-queue-type": "stream", **arguments}),
        spec.QueueDeclareOk,
    )
    queue = client.broker.vhosts["/"].queues[name]
    assert isinstance(queue, StreamQueue)
    return queue


def publish(client: ModelClient, bodies: list[bytes], name: str = "s", **headers: Any) -> None:
    for body in bodies:
        client.publish(1, body, routing_key=name, properties=spec.BasicProperties(headers=headers or None))


def offsets_of(deliveries: list[Content]) -> list[int]:
    return [d.properties.headers["x-stream-offset"] for d in deliveries]


def consume(client: ModelClient, prefetch: int = 100, name: str = "s", tag: str = "c", **arguments: Any) -> None:
    client.qos(prefetch)
    client.consume(name, tag, **arguments)


def test_the_log_keeps_what_was_published_and_counts_it(client: ModelClient) -> None:
    queue = declare_stream(client)
    publish(client, [b"a", b"b", b"c"])
    assert queue.message_count == 3
    assert queue.segments == 1
    consume(client, **{"x-stream-offset": "first"})
    got = client.deliveries()
    assert [d.body for d in got] == [b"a", b"b", b"c"]
    assert offsets_of(got) == [0, 1, 2]
    assert queue.message_count == 3  # acks or not, a stream keeps its messages


def test_an_interval_offset_counts_back_from_the_broker_s_clock(model: ModelBroker, client: ModelClient) -> None:
    declare_stream(client)
    publish(client, [b"old"])
    model.advance(3600)
    publish(client, [b"recent"])
    model.advance(60)
    consume(client, **{"x-stream-offset": "30m"})
    assert [d.body for d in client.deliveries()] == [b"recent"]


def test_a_timestamp_offset_is_in_seconds(model: ModelBroker, client: ModelClient) -> None:
    declare_stream(client)
    publish(client, [b"before"])
    model.advance(10)
    cut = int(model.broker.scheduler.wall_time())
    model.advance(1)
    publish(client, [b"after"])
    consume(client, **{"x-stream-offset": Timestamp(cut)})
    assert [d.body for d in client.deliveries()] == [b"after"]


def test_max_age_drops_old_segments_on_its_timer_without_new_publishes(model: ModelBroker, client: ModelClient) -> None:
    queue = declare_stream(client, **{"x-max-age": "1m", "x-stream-max-segment-size-bytes": 200})
    for _ in range(5):
        publish(client, [b"x" * 100])
        model.advance(1)
    assert queue.segments > 1
    model.advance(60 + RETENTION_INTERVAL)
    # The newest segment always stays, whatever its age.
    assert queue.segments == 1
    assert queue.message_count == 1
    consume(client, **{"x-stream-offset": "first"})
    assert offsets_of(client.deliveries()) == [4]


def test_max_length_bytes_keeps_the_newest_whole_segments(client: ModelClient) -> None:
    queue = declare_stream(client, **{"x-max-length-bytes": 1000, "x-stream-max-segment-size-bytes": 300})
    publish(client, [b"%03d" % i + b"x" * 97 for i in range(40)])
    assert queue.message_bytes <= 1000
    consume(client, **{"x-stream-offset": "first"})
    kept = offsets_of(client.deliveries())
    assert kept[0] > 0 and kept == list(range(kept[0], 40))


def test_a_policy_s_max_age_wins_over_the_argument(model: ModelBroker, client: ModelClient) -> None:
    from lapine.broker.policies import Policy

    queue = declare_stream(client, **{"x-max-age": "1D"})
    model.broker.vhosts["/"].set_policy(Policy("/", "short", "^s$", {"max-age": "1s"}, 0, "queues"))
    assert queue.retention.max_age_ms == 1000


def test_the_prefetch_is_credit_that_acks_return(client: ModelClient) -> None:
    declare_stream(client)
    publish(client, [b"%d" % i for i in range(5)])
    consume(client, prefetch=2, **{"x-stream-offset": "first"})
    got = client.deliveries()
    assert offsets_of(got) == [0, 1]
    client.ack(2, multiple=True)
    got += client.deliveries()
    assert offsets_of(got) == [0, 1, 2, 3]
    client.nack(3, requeue=True)
    client.reject(4, requeue=True)
    got += client.deliveries()
    assert offsets_of(got) == [0, 1, 2, 3, 4]
    assert not any(d.method.redelivered for d in got)


def test_a_closed_channel_gives_its_unacked_messages_back_to_no_one(model: ModelBroker, client: ModelClient) -> None:
    queue = declare_stream(client)
    publish(client, [b"a", b"b"])
    consume(client, prefetch=1, **{"x-stream-offset": "first"})
    client.disconnect()
    assert queue.unacked_count == 0
    assert queue.message_count == 2


def test_consumers_each_have_their_own_cursor(model: ModelBroker) -> None:
    publisher = model.client()
    declare_stream(publisher)
    publish(publisher, [b"%d" % i for i in range(6)])
    first, late = model.client(), model.client()
    consume(first, **{"x-stream-offset": "first"})
    consume(late, **{"x-stream-offset": 4})
    publish(publisher, [b"6"])
    assert offsets_of(first.deliveries()) == list(range(7))
    assert offsets_of(late.deliveries()) == [4, 5, 6]


def test_filters_and_match_unfiltered(client: ModelClient) -> None:
    declare_stream(client)
    publish(client, [b"r"], **{"x-stream-filter-value": "red"})
    publish(client, [b"b"], **{"x-stream-filter-value": "blue"})
    publish(client, [b"n"])
    consume(client, tag="red", **{"x-stream-offset": "first", "x-stream-filter": "red"})
    consume(
        client,
        tag="blue",
        **{"x-stream-offset": "first", "x-stream-filter": ["blue"], "x-stream-match-unfiltered": True},
    )
    by_tag: dict[str, list[bytes]] = {}
    for delivery in client.deliveries():
        by_tag.setdefault(delivery.method.consumer_tag, []).append(delivery.body)
    assert by_tag == {"red": [b"r"], "blue": [b"b", b"n"]}


def test_a_header_the_publisher_set_is_replaced_by_the_offset(client: ModelClient) -> None:
    declare_stream(client)
    publish(client, [b"a"], **{"x-stream-offset": "mine", "k": "v"})
    consume(client, **{"x-stream-offset": "first"})
    (delivery,) = client.deliveries()
    assert delivery.properties.headers == {"x-stream-offset": 0, "k": "v"}
    assert b"x-stream-offsetl" in delivery_header_bytes(client)


def delivery_header_bytes(client: ModelClient) -> bytes:
    return bytes(client.received)


@pytest.mark.parametrize(
    ("arguments", "code", "text"),
    [
        ({}, 406, "PRECONDITION_FAILED - consumer prefetch count is not set for stream queue 's' in vhost '/'"),
    ],
)
def test_consume_without_qos_is_refused(client: ModelClient, arguments: dict[str, Any], code: int, text: str) -> None:
    declare_stream(client)
    client.method(1, spec.BasicConsume(queue="s", consumer_tag="c", arguments=arguments))
    close = client.channel_closed()
    assert (close.reply_code, close.reply_text) == (code, text)


def test_if_unused_and_if_empty_do_not_keep_a_stream(client: ModelClient) -> None:
    declare_stream(client)
    publish(client, [b"a"])
    client.call(1, spec.QueueDelete(queue="s", if_empty=True), spec.QueueDeleteOk)
    assert "s" not in client.broker.vhosts["/"].queues


def test_a_consumer_behind_the_recent_messages_reads_the_log_in_batches(
    monkeypatch: pytest.MonkeyPatch, client: ModelClient
) -> None:
    import lapine.broker.stream_queue as stream_queue

    monkeypatch.setattr(stream_queue, "TAIL_MESSAGES", 50)
    monkeypatch.setattr(stream_queue, "READ_BATCH", 20)
    monkeypatch.setattr(stream_queue, "READ_AHEAD", 10)
    declare_stream(client)
    publish(client, [b"%d" % i for i in range(300)])
    consume(client, prefetch=7, **{"x-stream-offset": "first"})
    got = client.deliveries()
    while len(got) < 300:
        client.ack(int(got[-1].method.delivery_tag), multiple=True)
        more = client.deliveries()
        assert more, f"stalled at {len(got)}"
        got += more
    assert offsets_of(got) == list(range(300))
    assert [d.body for d in got] == [b"%d" % i for i in range(300)]
