"""Streams (x-queue-type stream) over AMQP 0-9-1, as RabbitMQ 4.x serves them.

Every consumer reads at its own offset and must use basic.qos and manual acks; an ack only
returns credit. Where RabbitMQ 3.10 differs from 4.x (filters), the test says rabbitmq_differs.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from tests.helpers.amqp import Names, expect_channel_error, expect_connection_error, pump, wait_until

Delivery = tuple[Any, Any, bytes]


def declare_stream(channel: BlockingChannel, names: Names, **arguments: Any) -> str:
    q = names.queue("stream")
    channel.queue_declare(q, durable=True, arguments={"x-queue-type": "stream", **arguments})
    return q


def publish(channel: BlockingChannel, q: str, bodies: list[bytes], headers: dict[str, Any] | None = None) -> None:
    """Publish with confirms: the messages are in the stream once this returns."""
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish("", q, body, pika.BasicProperties(headers=headers))


def consume(
    connection: pika.BlockingConnection,
    q: str,
    count: int,
    *,
    prefetch: int = 100,
    arguments: dict[str, Any] | None = None,
    settle: Callable[[BlockingChannel, int], None] | None = None,
    timeout: float = 5.0,
) -> list[Delivery]:
    """Consume from the stream until ``count`` deliveries came (acking each), then cancel."""
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    got: list[Delivery] = []

    def on_message(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        got.append((method, properties, body))
        (settle or (lambda c, tag: c.basic_ack(tag)))(ch, method.delivery_tag)

    tag = channel.basic_consume(q, on_message, arguments=arguments or {"x-stream-offset": "first"})
    wait_until(connection, lambda: len(got) >= count, timeout=timeout)
    channel.basic_cancel(tag)
    channel.close()
    return got


def offsets(deliveries: list[Delivery]) -> list[int]:
    return [properties.headers["x-stream-offset"] for _m, properties, _b in deliveries]


def where(q: str) -> str:
    return f"queue '{q}' in vhost '/'"


# --- declare ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        ({"durable": False}, "non-durable"),
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
    ],
)
def test_a_stream_is_durable_never_exclusive_or_auto_delete(
    connection: pika.BlockingConnection, names: Names, flags: dict[str, bool], refused: str
) -> None:
    q = names.queue("stream")
    with expect_channel_error(406, f"PRECONDITION_FAILED - invalid property '{refused}' for {where(q)}"):
        connection.channel().queue_declare(q, arguments={"x-queue-type": "stream"}, **flags)


def test_redeclaring_with_other_retention_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    channel = connection.channel()
    q = declare_stream(channel, names, **{"x-max-age": "1h"})
    channel.queue_declare(q, durable=True, arguments={"x-queue-type": "stream", "x-max-age": "1h"})
    with expect_channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-age' for {where(q)}: received '2h' but current is '1h'",
    ):
        channel.queue_declare(q, durable=True, arguments={"x-queue-type": "stream", "x-max-age": "2h"})


def test_a_segment_size_over_the_maximum_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    q = names.queue("stream")
    arguments = {"x-queue-type": "stream", "x-stream-max-segment-size-bytes": 3_000_000_001}
    with expect_channel_error(406, "PRECONDITION_FAILED - Exceeded max value for x-stream-max-segment-size-bytes"):
        connection.channel().queue_declare(q, durable=True, arguments=arguments)


@pytest.mark.rabbitmq_differs
def test_a_filter_size_outside_16_to_255_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    q = names.queue("stream")
    arguments = {"x-queue-type": "stream", "x-stream-filter-size-bytes": 8}
    with expect_channel_error(406, "PRECONDITION_FAILED - Invalid value for x-stream-filter-size-bytes"):
        connection.channel().queue_declare(q, durable=True, arguments=arguments)


# --- reading ----------------------------------------------------------------------------------


def test_consumers_read_from_first_with_each_message_s_offset(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"m0", b"m1", b"m2"], headers={"app": "x"})
    got = consume(connection, q, 3)
    assert [body for _m, _p, body in got] == [b"m0", b"m1", b"m2"]
    assert offsets(got) == [0, 1, 2]
    method, properties, _body = got[1]
    assert (method.exchange, method.routing_key, method.redelivered) == ("", q, False)
    assert properties.headers["app"] == "x"


def test_the_offset_header_is_added_to_a_message_without_headers(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    channel.confirm_delivery()
    channel.basic_publish("", q, b"plain", pika.BasicProperties(content_type="text/plain", delivery_mode=2))
    ((_method, properties, body),) = consume(connection, q, 1)
    assert (body, properties.content_type, properties.delivery_mode) == (b"plain", "text/plain", 2)
    assert properties.headers == {"x-stream-offset": 0}


def test_a_stream_keeps_its_messages_for_every_consumer(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"%d" % i for i in range(20)])
    first = consume(connection, q, 20)
    second = consume(connection, q, 20)
    assert offsets(first) == offsets(second) == list(range(20))


@pytest.mark.parametrize(
    ("offset", "expected"),
    [("first", [0, 1, 2, 3, 4]), (3, [3, 4]), (0, [0, 1, 2, 3, 4]), (99, [])],
)
def test_x_stream_offset_first_or_a_number(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names, offset: Any, expected: list[int]
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"%d" % i for i in range(5)])
    got = consume(connection, q, len(expected) or 1, arguments={"x-stream-offset": offset}, timeout=1.0)
    assert offsets(got) == expected


def test_next_reads_only_what_is_published_after_the_consumer_came(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"old"])
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=10)
    got: list[bytes] = []
    consumer.basic_consume(q, lambda ch, m, p, b: (got.append(b), ch.basic_ack(m.delivery_tag)))
    pump(connection, 0.3)
    publish(channel, q, [b"new"])
    assert wait_until(connection, lambda: got == [b"new"])


def test_last_starts_at_the_last_chunk(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"a", b"b"])
    publish(channel, q, [b"c"])
    got = consume(connection, q, 1, arguments={"x-stream-offset": "last"})
    # "last" is the newest chunk: it holds the newest message (and may hold older ones).
    assert got and got[-1][2] == b"c"


def test_a_timestamp_or_an_interval_reads_from_that_time(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"%d" % i for i in range(3)])
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    assert offsets(consume(connection, q, 3, arguments={"x-stream-offset": past})) == [0, 1, 2]
    assert offsets(consume(connection, q, 3, arguments={"x-stream-offset": "30m"})) == [0, 1, 2]
    assert consume(connection, q, 1, arguments={"x-stream-offset": future}, timeout=0.5) == []


@pytest.mark.rabbitmq_differs
def test_an_interval_that_is_not_one_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    channel = connection.channel()
    q = declare_stream(channel, names)
    channel.basic_qos(prefetch_count=10)
    with expect_channel_error(406, f"PRECONDITION_FAILED - failed consuming from stream {where(q)}: invalid_max_age"):
        channel.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": "soon"})


# --- credit -----------------------------------------------------------------------------------


def test_acks_return_credit_and_nothing_is_removed(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"%d" % i for i in range(10)])
    got = consume(connection, q, 10, prefetch=3)
    assert offsets(got) == list(range(10))
    assert offsets(consume(connection, q, 10, prefetch=3)) == list(range(10))


def test_unacked_deliveries_hold_back_the_rest(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"%d" % i for i in range(10)])
    got = consume(connection, q, 10, prefetch=4, settle=lambda ch, tag: None, timeout=0.5)
    assert offsets(got) == [0, 1, 2, 3]


@pytest.mark.rabbitmq_differs
@pytest.mark.parametrize("settle", ["nack", "reject"])
def test_nack_and_reject_return_credit_and_redeliver_nothing(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names, settle: str
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"%d" % i for i in range(6)])

    def refuse(ch: BlockingChannel, tag: int) -> None:
        if settle == "nack":
            ch.basic_nack(tag, requeue=True)
        else:
            ch.basic_reject(tag, requeue=True)

    got = consume(connection, q, 6, prefetch=2, settle=refuse)
    assert offsets(got) == list(range(6))
    assert not any(method.redelivered for method, _p, _b in got)


def test_many_consumers_each_read_at_their_own_offset(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"%d" % i for i in range(30)])
    received: dict[int, list[int]] = {}
    consumers = []
    for start in (0, 10, 25):
        ch = connection.channel()
        ch.basic_qos(prefetch_count=5)
        received[start] = []
        ch.basic_consume(
            q,
            lambda c, m, p, b, start=start: (
                received[start].append(p.headers["x-stream-offset"]),
                c.basic_ack(m.delivery_tag),
            ),
            arguments={"x-stream-offset": start},
        )
        consumers.append(ch)
    assert wait_until(connection, lambda: all(len(got) >= 30 - start for start, got in received.items()))
    pump(connection, 0.2)
    assert received == {0: list(range(30)), 10: list(range(10, 30)), 25: list(range(25, 30))}


# --- what a stream refuses ----------------------------------------------------------------------


@pytest.mark.rabbitmq_differs
def test_a_consumer_needs_a_prefetch(connection: pika.BlockingConnection, names: Names) -> None:
    channel = connection.channel()
    q = declare_stream(channel, names)
    with expect_channel_error(406, f"PRECONDITION_FAILED - consumer prefetch count is not set for stream {where(q)}"):
        channel.basic_consume(q, lambda *a: None)


@pytest.mark.rabbitmq_differs
def test_automatic_acknowledgement_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    channel = connection.channel()
    q = declare_stream(channel, names)
    channel.basic_qos(prefetch_count=10)
    with expect_connection_error(
        540, f"NOT_IMPLEMENTED - automatic acknowledgement not supported by stream {where(q)}"
    ):
        channel.basic_consume(q, lambda *a: None, auto_ack=True)


@pytest.mark.rabbitmq_differs
def test_global_qos_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    channel = connection.channel()
    q = declare_stream(channel, names)
    channel.basic_qos(prefetch_count=10)
    channel.basic_qos(prefetch_count=10, global_qos=True)
    with expect_connection_error(540, f"NOT_IMPLEMENTED - {where(q)} does not support global qos"):
        channel.basic_consume(q, lambda *a: None)


def test_basic_get_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    channel = connection.channel()
    q = declare_stream(channel, names)
    with expect_connection_error(540, f"NOT_IMPLEMENTED - basic.get not supported by stream queues {where(q)}"):
        channel.basic_get(q)


def test_purge_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    channel = connection.channel()
    q = declare_stream(channel, names)
    with expect_connection_error(540, f"NOT_IMPLEMENTED - queue.purge not supported by stream queues {where(q)}"):
        channel.queue_purge(q)


def test_deleting_a_stream_cancels_its_consumers(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"x"])
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=1)
    cancelled: list[Any] = []
    consumer.add_on_cancel_callback(cancelled.append)
    consumer.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": "first"})
    pump(connection, 0.2)
    channel.queue_delete(q)
    assert wait_until(connection, lambda: bool(cancelled))


# --- retention ------------------------------------------------------------------------------------


def test_max_length_bytes_drops_whole_old_segments(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names, **{"x-max-length-bytes": 20_000, "x-stream-max-segment-size-bytes": 5_000})
    for batch in range(10):
        publish(channel, q, [b"%04d" % (batch * 30 + i) + b"x" * 996 for i in range(30)])
    got = consume(connection, q, 300, timeout=3.0)
    kept = [int(body[:4]) for _m, _p, body in got]
    # The oldest segments went; what is left is the newest messages, in order, up to the last.
    assert kept and kept[0] > 0
    assert kept == list(range(kept[0], 300))
    assert offsets(got) == sorted(offsets(got))


# --- filters (RabbitMQ 3.13 and later) -------------------------------------------------------------


@pytest.mark.rabbitmq_differs
def test_a_filter_gets_the_messages_with_its_values(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    q = declare_stream(channel, names)
    publish(channel, q, [b"r1", b"r2"], headers={"x-stream-filter-value": "red"})
    publish(channel, q, [b"b1"], headers={"x-stream-filter-value": "blue"})
    publish(channel, q, [b"plain"])
    publish(channel, q, [b"r3"], headers={"x-stream-filter-value": "red"})
    red = consume(connection, q, 3, arguments={"x-stream-offset": "first", "x-stream-filter": "red"})
    # RabbitMQ filters by chunk and asks clients to check the value too: they see only red ones.
    assert [b for _m, p, b in red if p.headers.get("x-stream-filter-value") == "red"] == [b"r1", b"r2", b"r3"]
    both = consume(
        connection,
        q,
        3,
        arguments={"x-stream-offset": "first", "x-stream-filter": ["blue"], "x-stream-match-unfiltered": True},
    )
    assert [b for _m, p, b in both if p.headers.get("x-stream-filter-value") in ("blue", None)] == [b"b1", b"plain"]


# --- aio-pika ---------------------------------------------------------------------------------


async def test_aio_pika_reads_a_stream_from_an_offset(aio_connection: Any, names: Names) -> None:
    import asyncio

    import aio_pika

    channel = await aio_connection.channel()  # publisher confirms on by default
    q = names.queue("stream")
    queue = await channel.declare_queue(q, durable=True, arguments={"x-queue-type": "stream"})
    for i in range(5):
        await channel.default_exchange.publish(aio_pika.Message(b"a%d" % i), routing_key=q)
    reader = await aio_connection.channel()
    await reader.set_qos(prefetch_count=2)
    stream = await reader.get_queue(q, ensure=False)
    got: list[tuple[int, bytes]] = []
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.append((message.headers["x-stream-offset"], message.body))
        await message.ack()
        if len(got) == 3:
            done.set()

    await stream.consume(on_message, arguments={"x-stream-offset": 2})
    await asyncio.wait_for(done.wait(), 5)
    assert got == [(2, b"a2"), (3, b"a3"), (4, b"a4")]
    assert queue.name == q
