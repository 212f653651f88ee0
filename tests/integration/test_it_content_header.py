"""A content header whose property list does not parse is refused at publish, as RabbitMQ does.

The broker forwards the header's bytes unchanged, so one it let through would reach every
consumer of the queue and kill the ones whose client decodes it (pika does). RabbitMQ 3.10 decodes
the properties of every publish and closes the publisher's connection with 541 when they do not
parse; MALFORMED are cases it refuses and ACCEPTED cases it takes (run with AMQP_URL against
RabbitMQ 3.10 to check). A lone continuation flag is where Lapine is stricter, on purpose.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pika
import pika.spec
import pytest

from tests.helpers.amqp import Names
from tests.helpers.raw_amqp import FRAME_BODY, FRAME_HEADER, RawAMQP

INTERNAL_ERROR = 541


def _flags(flags: int, fields: bytes = b"") -> bytes:
    return struct.pack(">H", flags) + fields


def _headers(entries: bytes, size: int | None = None) -> bytes:
    """A headers property (flag 0x2000) whose table holds ``entries`` and claims ``size`` octets."""
    return _flags(0x2000, struct.pack(">I", len(entries) if size is None else size) + entries)


MALFORMED = {
    "content-type promised, absent": _flags(0x8000),
    "content-type longer than the header": _flags(0x8000, b"\x05ab"),
    "delivery-mode promised, absent": _flags(0x1000),
    "timestamp cut short": _flags(0x0040, b"\x00\x00\x00"),
    "octets after the last property": _flags(0x1000, b"\x02junk"),
    "continuation flag and a second flag word": _flags(0x0001, b"\x00\x00"),
    "table size past the header": _headers(b"\x01aSxx", size=20),
    "longstr past its table": _headers(b"\x01aS\x00\x00\x00\x09"),
    "unknown field type": _headers(b"\x01aZ\x00"),
    "nested table cut short": _headers(b"\x01aF\x00\x00\x00\x09\x01b"),
    "unknown type in an array": _headers(b"\x01aA\x00\x00\x00\x01Z"),
    "decimal cut short": _headers(b"\x01aD\x00\x00"),
    "NaN double": _headers(b"\x01ad" + struct.pack(">d", float("nan"))),
    "infinite float": _headers(b"\x01af" + struct.pack(">f", float("-inf"))),
}

# Accepted by RabbitMQ 3.10: a reserved flag bit, and shortstrs that are not UTF-8.
ACCEPTED = {
    "reserved flag bit": _flags(0x0002),
    "content-type not UTF-8": _flags(0x8000, b"\x02\xff\xfe"),
    "header key not UTF-8": _headers(b"\x02\xff\xfeV"),
}


def _publish_raw(client: RawAMQP, queue: str, properties: bytes, body: bytes = b"bad") -> None:
    client.send_method(1, pika.spec.Basic.Publish(exchange="", routing_key=queue))
    client.send_frame(FRAME_HEADER, 1, struct.pack(">HHQ", 60, 0, len(body)) + properties)
    client.send_frame(FRAME_BODY, 1, body)


def _consume_one(connection: pika.BlockingConnection, queue: str) -> list[bytes]:
    """What a pika consumer on ``queue`` receives within a few seconds (at most one message)."""
    channel = connection.channel()
    received: list[bytes] = []

    def on_message(ch: object, method: pika.spec.Basic.Deliver, props: pika.spec.BasicProperties, body: bytes) -> None:
        received.append(body)
        channel.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_message)
    for _ in range(50):
        if received:
            break
        connection.process_data_events(time_limit=0.1)
    channel.close()
    return received


@pytest.mark.parametrize("properties", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_properties_close_the_publisher_and_are_not_enqueued(
    properties: bytes,
    raw: Callable[..., RawAMQP],
    connect: Callable[..., pika.BlockingConnection],
    names: Names,
) -> None:
    queue = names.queue("bad-props")
    consumer = connect()
    consumer.channel().queue_declare(queue)
    client = raw()
    client.handshake()
    client.open_channel(1)
    _publish_raw(client, queue, properties)
    close = client.expect_connection_close()
    assert close.reply_code == INTERNAL_ERROR
    assert close.reply_text.startswith("INTERNAL_ERROR")
    # The same queue's pika consumer gets the next good message and nothing else.
    publisher = connect().channel()
    publisher.basic_publish("", queue, b"good", pika.BasicProperties(content_type="text/plain"))
    assert _consume_one(consumer, queue) == [b"good"]
    assert publisher.queue_declare(queue, passive=True).method.message_count == 0


@pytest.mark.parametrize("properties", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_properties_rabbitmq_accepts_are_delivered_to_pika(
    properties: bytes,
    raw: Callable[..., RawAMQP],
    connect: Callable[..., pika.BlockingConnection],
    names: Names,
) -> None:
    queue = names.queue("odd-props")
    consumer = connect()
    consumer.channel().queue_declare(queue)
    client = raw()
    client.handshake()
    client.open_channel(1)
    _publish_raw(client, queue, properties, b"odd")
    client.send_method(1, pika.spec.Queue.Declare(queue=queue, passive=True))
    client.expect(pika.spec.Queue.DeclareOk)
    assert _consume_one(consumer, queue) == [b"odd"]


def test_a_continuation_flag_is_refused(raw: Callable[..., RawAMQP], names: Names, against_rabbitmq: bool) -> None:
    """RabbitMQ ignores bit 0x0001 and reads no second flag word; pika reads one, and fails on
    the bare flags RabbitMQ forwards. No client sets it (basic has 14 properties): refused."""
    if against_rabbitmq:
        pytest.skip("RabbitMQ accepts a lone continuation bit, which pika consumers cannot decode")
    queue = names.queue("bad-props")
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue=queue))
    client.expect(pika.spec.Queue.DeclareOk)
    _publish_raw(client, queue, _flags(0x0001))
    assert client.expect_connection_close().reply_code == INTERNAL_ERROR
