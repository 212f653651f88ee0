"""The basic class: publish, return, consume, cancel, get, ack/nack/reject, recover, qos, properties.

Observed on RabbitMQ 3.10.8, and asserted here:

* ``immediate=true`` is a *connection* error: 540 "NOT_IMPLEMENTED - immediate=true" (class 60,
  method 40), as is ``basic.qos`` with prefetch_size != 0: 540 "NOT_IMPLEMENTED -
  prefetch_size!=0 (10)", and ``basic.recover`` with requeue=false: 540 "NOT_IMPLEMENTED -
  requeue=false".
* A duplicate consumer tag on one channel is a *connection* error too: 530 "NOT_ALLOWED - attempt
  to reuse consumer tag 't'". pika refuses it client side, so it is tested on a raw socket.
* Server-generated consumer tags are ``amq.ctag-`` + 22 URL-safe base64 characters.
* An exclusive consumer blocks other consumers, and an existing consumer blocks an exclusive one,
  both with 403 "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use".
* Acking an unknown tag, a tag twice, or a tag delivered in no-ack mode is 406
  "PRECONDITION_FAILED - unknown delivery tag N"; ``ack(0, multiple=True)`` acks everything
  outstanding (and ``nack(0, multiple=True)`` rejects everything), but ``ack(0)`` alone is 406
  "unknown delivery tag 0". ``basic.cancel`` of an unknown tag is answered with cancel-ok.
* Requeued messages go back to their *original position* in the queue, whatever order they were
  rejected in, and come back with redelivered=true.
* Prefetch: ``basic.qos(global=false)`` applies to each consumer created *after* it (existing
  consumers keep their limit); basic.get and no-ack consumers ignore prefetch.
* Global QoS: ``global=true`` is a limit shared by all consumers of the channel (a new value
  applies at once). RabbitMQ 4.3 denies this deprecated feature by default; Lapine permits it, as
  RabbitMQ does up to 4.2.
* Per-message TTL ``expiration``: "0" expires at once when no consumer is waiting; an invalid
  value is 406 "PRECONDITION_FAILED - invalid expiration 'abc': no_integer" or
  "... invalid expiration '-1': {value_negative,-1}" (Erlang terms in the text).
* ``basic.return`` carries 312 "NO_ROUTE", the exchange and routing key published to, and the
  message's properties and body unchanged.
* pika's ``process_data_events(time_limit=...)`` returns as soon as it dispatched something, so
  "nothing more arrives" is checked by pumping for a fixed time (tests.helpers.amqp.pump).
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import re
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import aiormq.exceptions
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.helpers.amqp import (
    bodies,
    consumer_count,
    drain,
    exists_queue,
    expect_channel_error,
    expect_connection_error,
    pump,
    reply_not_found_exchange,
    reply_not_found_queue,
    unique,
    wait_until,
)
from tests.helpers.raw_amqp import RawAMQP, parse_url

pytestmark = pytest.mark.timeout(10)

SERVER_TAG = re.compile(r"^amq\.ctag-[A-Za-z0-9_-]{22}$")

Delivery = tuple[bytes, bool, int]


def consume_into(channel: Any, queue: str, sink: list[Any], auto_ack: bool = False, **kwargs: Any) -> str:
    """basic.consume whose callback appends (body, redelivered, delivery_tag) to sink."""

    def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
        sink.append((body, method.redelivered, method.delivery_tag))

    tag: str = channel.basic_consume(queue, on_message, auto_ack=auto_ack, **kwargs)
    return tag


def publish_all(channel: Any, queue: str, count: int) -> None:
    for i in range(count):
        channel.basic_publish("", queue, str(i).encode())


# -- publish ------------------------------------------------------------------------------------


def test_mandatory_unroutable_raises_with_confirms(channel: Any) -> None:
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        channel.basic_publish("amq.direct", unique("nowhere"), b"lost", mandatory=True)
    (returned,) = info.value.messages
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.body == b"lost"
    assert channel.is_open


def test_mandatory_return_callback(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    returns: list[tuple[Any, Any, bytes]] = []
    ch.add_on_return_callback(lambda c, method, props, body: returns.append((method, props, body)))
    key = unique("nowhere")
    props = pika.BasicProperties(headers={"h": 1}, content_type="text/plain", message_id="m1")
    ch.basic_publish("amq.direct", key, b"returned", props, mandatory=True)
    ch.basic_publish("amq.direct", key, b"silently dropped")
    ch.basic_publish("", key, b"returned too", mandatory=True)
    assert wait_until(connection, lambda: len(returns) >= 2)
    pump(connection, 0.1)
    assert len(returns) == 2
    first, second = returns
    assert (first[0].reply_code, first[0].reply_text, first[0].exchange, first[0].routing_key) == (
        312,
        "NO_ROUTE",
        "amq.direct",
        key,
    )
    assert (first[1].headers, first[1].content_type, first[1].message_id) == ({"h": 1}, "text/plain", "m1")
    assert first[2] == b"returned"
    assert (second[0].exchange, second[0].routing_key, second[2]) == ("", key, b"returned too")


def test_mandatory_routable_is_not_returned(channel: Any) -> None:
    channel.confirm_delivery()
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"fine", mandatory=True)
    assert bodies(channel, q) == [b"fine"]


def test_publish_to_missing_exchange_closes_channel(connection: pika.BlockingConnection) -> None:
    healthy = connection.channel()
    q = healthy.queue_declare("", exclusive=True).method.queue
    ch = connection.channel()
    x = unique("missing")
    with expect_channel_error(404, reply_not_found_exchange(x)):
        ch.basic_publish(x, "k", b"x")
        ch.queue_declare(q, passive=True)  # the error is asynchronous: make a round trip
    assert connection.is_open
    healthy.basic_publish("", q, b"still fine")
    assert bodies(healthy, q) == [b"still fine"]


def test_publish_immediate_is_not_implemented(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Basic.Publish(exchange="amq.direct", routing_key="k", immediate=True))
    client.send_content(1, b"now or never")
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (540, "NOT_IMPLEMENTED - immediate=true")
    assert (close.class_id, close.method_id) == (60, 40)


def test_publish_to_consumer_on_other_connection(connect: Callable[..., pika.BlockingConnection]) -> None:
    consumer_conn = connect()
    consumer = consumer_conn.channel()
    q = consumer.queue_declare(unique("shared"), durable=True, auto_delete=True).method.queue
    got: list[Delivery] = []
    consume_into(consumer, q, got, auto_ack=True)
    publisher = connect().channel()
    for i in range(3):
        publisher.basic_publish("", q, f"m{i}".encode())
    assert wait_until(consumer_conn, lambda: len(got) == 3)
    assert [b for b, _, _ in got] == [b"m0", b"m1", b"m2"]


@pytest.mark.parametrize(
    ("expiration", "text"),
    [
        ("abc", "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"),
        ("-1", "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}"),
    ],
)
def test_invalid_expiration(channel: Any, expiration: str, text: str) -> None:
    channel.confirm_delivery()
    q = channel.queue_declare("", exclusive=True).method.queue
    with expect_channel_error(406, text):
        channel.basic_publish("", q, b"x", pika.BasicProperties(expiration=expiration))


def test_per_message_ttl(channel: Any) -> None:
    channel.confirm_delivery()
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"expires now", pika.BasicProperties(expiration="0"))
    channel.basic_publish("", q, b"expires soon", pika.BasicProperties(expiration="50"))
    channel.basic_publish("", q, b"stays", pika.BasicProperties(expiration="60000"))
    time.sleep(0.2)
    got = drain(channel, q)
    assert [b for _, _, b in got] == [b"stays"]
    assert got[0][1].expiration == "60000"


# -- properties ---------------------------------------------------------------------------------


def test_all_properties_arrive_unchanged(channel: Any, amqp_url: str) -> None:
    user = parse_url(amqp_url)[2]
    q = channel.queue_declare("", exclusive=True).method.queue
    headers: dict[str, Any] = {
        "str": "s",
        "unicode": "ünïcødé ✓",
        "int": 1,
        "big": 2**40,
        "neg": -5,
        "true": True,
        "false": False,
        "none": None,
        "bytes": b"\x00\xff\x01",
        "decimal": decimal.Decimal("3.14"),
        "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "nested": {"a": [1, "two", {"b": None, "c": [True, b"x"]}], "empty": {}},
        "array": [1, 2, [3, [4]], []],
    }
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-1",
        reply_to="reply-queue",
        expiration="60000",
        message_id="msg-1",
        timestamp=1700000000,
        type="my.type",
        user_id=user,
        app_id="lapine-tests",
    )
    channel.basic_publish("", q, b'{"k": 1}', props)
    (_method, got, body) = drain(channel, q)[0]
    assert body == b'{"k": 1}'
    for name in (
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
    ):
        assert getattr(got, name) == getattr(props, name), name
    assert got.headers == headers
    assert got.cluster_id is None


def test_no_properties_arrive_as_none(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"bare")
    (_, props, _) = drain(channel, q)[0]
    assert props.headers is None
    assert props.content_type is None
    assert props.delivery_mode is None


def test_user_id_must_match_login(channel: Any, amqp_url: str) -> None:
    user = parse_url(amqp_url)[2]
    channel.confirm_delivery()
    text = f"PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was '{user}'"
    with expect_channel_error(406, text):
        channel.basic_publish("amq.direct", "k", b"x", pika.BasicProperties(user_id="mallory"))


async def test_properties_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(exclusive=True)
    stamp = datetime.datetime(2023, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    message = aio_pika.Message(
        b"payload",
        headers={"nested": {"list": [1, "a", None]}, "flag": True, "n": -3},
        content_type="text/plain",
        content_encoding="identity",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=3,
        correlation_id="c-9",
        reply_to="r-9",
        expiration=60,
        message_id="id-9",
        timestamp=stamp,
        type="t-9",
        app_id="aio",
    )
    await ch.default_exchange.publish(message, routing_key=q.name)
    got = await q.get(timeout=5)
    assert got is not None
    await got.ack()
    assert got.body == b"payload"
    assert got.headers == {"nested": {"list": [1, "a", None]}, "flag": True, "n": -3}
    assert (got.content_type, got.content_encoding) == ("text/plain", "identity")
    assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (got.priority, got.correlation_id, got.reply_to) == (3, "c-9", "r-9")
    assert (got.message_id, got.type, got.app_id) == ("id-9", "t-9", "aio")
    assert got.timestamp == stamp
    assert got.expiration is not None
    assert got.redelivered is False
    assert got.routing_key == q.name


# -- consume / cancel ---------------------------------------------------------------------------


def test_server_generated_consumer_tag(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    q = client.expect(pika.spec.Queue.DeclareOk).queue
    tags = set()
    for _ in range(2):
        client.send_method(1, pika.spec.Basic.Consume(queue=q, consumer_tag=""))
        ok = client.expect(pika.spec.Basic.ConsumeOk)
        assert SERVER_TAG.match(ok.consumer_tag), ok.consumer_tag
        tags.add(ok.consumer_tag)
    assert len(tags) == 2
    client.close_connection()


def test_duplicate_consumer_tag_is_a_connection_error(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    q = client.expect(pika.spec.Queue.DeclareOk).queue
    client.send_method(1, pika.spec.Basic.Consume(queue=q, consumer_tag="tag-1"))
    client.expect(pika.spec.Basic.ConsumeOk)
    client.send_method(1, pika.spec.Basic.Consume(queue=q, consumer_tag="tag-1"))
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (
        530,
        "NOT_ALLOWED - attempt to reuse consumer tag 'tag-1'",
    )
    assert (close.class_id, close.method_id) == (60, 20)


def test_same_consumer_tag_on_two_channels(connection: pika.BlockingConnection) -> None:
    ch1, ch2 = connection.channel(), connection.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    assert ch1.basic_consume(q, lambda *a: None, consumer_tag="same") == "same"
    assert ch2.basic_consume(q, lambda *a: None, consumer_tag="same") == "same"
    assert consumer_count(ch1, q) == 2


def test_exclusive_consumer_blocks_others(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = unique("q")
    ch.queue_declare(q, exclusive=True)
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    with expect_channel_error(403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"):
        connection.channel().basic_consume(q, lambda *a: None)
    assert ch.is_open


def test_existing_consumer_blocks_exclusive_consumer(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = unique("q")
    ch.queue_declare(q, exclusive=True)
    ch.basic_consume(q, lambda *a: None)
    with expect_channel_error(403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"):
        connection.channel().basic_consume(q, lambda *a: None, exclusive=True)


def test_consume_missing_queue(channel: Any) -> None:
    q = unique("missing")
    with expect_channel_error(404, reply_not_found_queue(q)):
        channel.basic_consume(q, lambda *a: None)


def test_no_ack_consume(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = unique("q")
    ch.queue_declare(q, exclusive=True)
    got: list[Delivery] = []
    consume_into(ch, q, got, auto_ack=True)
    publish_all(ch, q, 5)
    assert wait_until(connection, lambda: len(got) == 5)
    assert [b for b, _, _ in got] == [b"0", b"1", b"2", b"3", b"4"]
    assert [t for _, _, t in got] == [1, 2, 3, 4, 5]
    ch.close()  # nothing to requeue: no-ack deliveries are settled
    other = connection.channel()
    assert other.basic_get(q)[0] is None


def test_cancel_stops_deliveries(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    got: list[Delivery] = []
    tag = consume_into(ch, q, got)
    ch.basic_publish("", q, b"before")
    assert wait_until(connection, lambda: len(got) == 1)
    ch.basic_cancel(tag)
    ch.basic_publish("", q, b"after")
    pump(connection, 0.1)
    assert [b for b, _, _ in got] == [b"before"]
    # the unacked message from the cancelled consumer is still ours to ack
    ch.basic_ack(got[0][2])
    assert bodies(ch, q) == [b"after"]


def test_cancel_unknown_tag_is_ok(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Basic.Cancel(consumer_tag="never-seen"))
    ok = client.expect(pika.spec.Basic.CancelOk)
    assert ok.consumer_tag == "never-seen"
    client.close_connection()


def test_queue_deletion_cancels_consumer(connect: Callable[..., pika.BlockingConnection]) -> None:
    consumer_conn = connect()
    ch = consumer_conn.channel()
    q = unique("doomed")
    ch.queue_declare(q, durable=True)
    cancels: list[Any] = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame))
    tag = ch.basic_consume(q, lambda *a: None)
    connect().channel().queue_delete(q)
    assert wait_until(consumer_conn, lambda: len(cancels) == 1)
    method = cancels[0].method
    assert isinstance(method, pika.spec.Basic.Cancel)
    assert method.consumer_tag == tag
    assert ch.is_open
    assert not exists_queue(consumer_conn, q)
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q2, lambda *a: None)


async def test_consume_ack_nack_reject_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    await ch.set_qos(prefetch_count=10)
    q = await ch.declare_queue(exclusive=True)
    for body in (b"ack", b"nack", b"reject", b"requeue"):
        await ch.default_exchange.publish(aio_pika.Message(body), routing_key=q.name)
    seen: list[tuple[bytes, bool]] = []
    async with q.iterator() as it:
        async for message in it:
            seen.append((message.body, message.redelivered))
            if message.body == b"ack":
                await message.ack()
            elif message.body == b"nack":
                await message.nack(requeue=False)
            elif message.body == b"reject":
                await message.reject(requeue=False)
            elif not message.redelivered:
                await message.reject(requeue=True)
            else:
                await message.ack()
                break
    assert seen == [
        (b"ack", False),
        (b"nack", False),
        (b"reject", False),
        (b"requeue", False),
        (b"requeue", True),
    ]
    assert await q.get(fail=False) is None


# -- basic.get ----------------------------------------------------------------------------------


def test_get_empty_and_get_ok(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    assert channel.basic_get(q) == (None, None, None)
    publish_all(channel, q, 3)
    method, _, body = channel.basic_get(q)
    assert isinstance(method, pika.spec.Basic.GetOk)
    assert (body, method.message_count, method.redelivered) == (b"0", 2, False)
    assert (method.exchange, method.routing_key, method.delivery_tag) == ("", q, 1)
    method, _, body = channel.basic_get(q, auto_ack=True)
    assert (body, method.message_count, method.delivery_tag) == (b"1", 1, 2)


def test_get_empty_raw(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    q = client.expect(pika.spec.Queue.DeclareOk).queue
    client.send_method(1, pika.spec.Basic.Get(queue=q))
    empty = client.expect(pika.spec.Basic.GetEmpty)
    assert empty.cluster_id == ""
    client.close_connection()


def test_get_missing_queue(channel: Any) -> None:
    q = unique("missing")
    with expect_channel_error(404, reply_not_found_queue(q)):
        channel.basic_get(q)


def test_delivery_tags_count_per_channel(connection: pika.BlockingConnection) -> None:
    ch1, ch2 = connection.channel(), connection.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    publish_all(ch1, q, 6)
    assert ch1.basic_get(q, auto_ack=True)[0].delivery_tag == 1
    assert ch1.basic_get(q)[0].delivery_tag == 2
    assert ch2.basic_get(q)[0].delivery_tag == 1
    got: list[Delivery] = []
    consume_into(ch1, q, got)
    assert wait_until(connection, lambda: len(got) == 3)
    assert [t for _, _, t in got] == [3, 4, 5]


# -- ack / nack / reject ------------------------------------------------------------------------


def test_ack_multiple(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_all(ch, q, 5)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(5)]
    ch.basic_ack(tags[2], multiple=True)  # 1..3
    ch.basic_ack(tags[4])  # 5; 4 stays unacked
    ch.close()
    assert [(b, m.redelivered) for m, _, b in drain(connection.channel(), q)] == [(b"3", True)]


@pytest.mark.parametrize("method", ["ack", "nack"])
def test_tag_zero_multiple_settles_everything(connection: pika.BlockingConnection, method: str) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_all(ch, q, 3)
    for _ in range(3):
        ch.basic_get(q)
    if method == "ack":
        ch.basic_ack(0, multiple=True)
        expected: list[bytes] = []
    else:
        ch.basic_nack(0, multiple=True, requeue=True)
        expected = [b"0", b"1", b"2"]
    assert bodies(ch, q) == expected
    ch.close()
    assert bodies(connection.channel(), q) == []


def test_ack_tag_zero_alone_is_unknown(channel: Any) -> None:
    with expect_channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 0"):
        channel.basic_ack(0)
        channel.queue_declare("", exclusive=True)


def test_reject_and_nack_without_requeue_drop(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    publish_all(channel, q, 4)
    m = [channel.basic_get(q)[0] for _ in range(4)]
    channel.basic_reject(m[0].delivery_tag, requeue=False)
    channel.basic_nack(m[2].delivery_tag, multiple=True, requeue=False)  # 2 and 3
    channel.basic_nack(m[3].delivery_tag, requeue=True)
    got = drain(channel, q)
    assert [(b, meth.redelivered) for meth, _, b in got] == [(b"3", True)]


def test_nack_multiple_requeue_order(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    publish_all(channel, q, 6)
    tags = [channel.basic_get(q)[0].delivery_tag for _ in range(6)]
    channel.basic_nack(tags[3], multiple=True, requeue=True)  # 0..3 back, 4 and 5 stay unacked
    got = drain(channel, q)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"0", True), (b"1", True), (b"2", True), (b"3", True)]
    assert [m.delivery_tag for m, _, _ in got] == [7, 8, 9, 10]


def test_reject_in_reverse_order_restores_original_order(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    publish_all(channel, q, 5)
    got = [channel.basic_get(q)[0] for _ in range(4)]  # "4" stays ready
    for method in reversed(got):
        channel.basic_reject(method.delivery_tag, requeue=True)
    again = drain(channel, q)
    assert [(b, m.redelivered) for m, _, b in again] == [
        (b"0", True),
        (b"1", True),
        (b"2", True),
        (b"3", True),
        (b"4", False),
    ]


def test_channel_close_requeues_unacked_in_order(connection: pika.BlockingConnection) -> None:
    publisher = connection.channel()
    publisher.confirm_delivery()
    q = publisher.queue_declare("", exclusive=True).method.queue
    publish_all(publisher, q, 6)
    consumer = connection.channel()
    got = [consumer.basic_get(q) for _ in range(4)]
    consumer.basic_ack(got[1][0].delivery_tag)
    consumer.close()
    again = drain(publisher, q)
    assert [(b, m.redelivered) for m, _, b in again] == [
        (b"0", True),
        (b"2", True),
        (b"3", True),
        (b"4", False),
        (b"5", False),
    ]


def test_connection_close_requeues_unacked(connect: Callable[..., pika.BlockingConnection]) -> None:
    observer = connect()
    ch = observer.channel()
    q = unique("q")
    ch.queue_declare(q, durable=True)
    try:
        publish_all(ch, q, 4)
        consumer_conn = connect()
        consumer = consumer_conn.channel()
        consumer.basic_qos(prefetch_count=3)
        got: list[Delivery] = []
        consume_into(consumer, q, got)
        assert wait_until(consumer_conn, lambda: len(got) == 3)
        consumer_conn.close()
        again = drain(ch, q)
        assert [(b, m.redelivered) for m, _, b in again] == [
            (b"0", True),
            (b"1", True),
            (b"2", True),
            (b"3", False),
        ]
    finally:
        ch.queue_delete(q)


def test_requeued_messages_go_to_other_consumer(connect: Callable[..., pika.BlockingConnection]) -> None:
    first_conn, second_conn = connect(), connect()
    q = unique("q")
    setup = first_conn.channel()
    setup.queue_declare(q, durable=True, auto_delete=True)
    first = first_conn.channel()
    got1: list[Delivery] = []
    consume_into(first, q, got1)
    publish_all(setup, q, 3)
    assert wait_until(first_conn, lambda: len(got1) == 3)
    second = second_conn.channel()
    got2: list[Delivery] = []
    consume_into(second, q, got2, auto_ack=True)
    pump(second_conn, 0.1)
    assert got2 == []
    first.close()  # the three unacked messages go to the remaining consumer
    assert wait_until(second_conn, lambda: len(got2) == 3)
    assert [(b, r) for b, r, _ in got2] == [(b"0", True), (b"1", True), (b"2", True)]


@pytest.mark.parametrize("kind", ["ack", "reject", "nack", "nack_multiple"])
def test_unknown_delivery_tag(channel: Any, kind: str) -> None:
    with expect_channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 42"):
        if kind == "ack":
            channel.basic_ack(42)
        elif kind == "reject":
            channel.basic_reject(42)
        elif kind == "nack":
            channel.basic_nack(42)
        else:
            channel.basic_nack(42, multiple=True)
        channel.queue_declare("", exclusive=True)


def test_double_ack(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"x")
    method = channel.basic_get(q)[0]
    channel.basic_ack(method.delivery_tag)
    with expect_channel_error(406, f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}"):
        channel.basic_ack(method.delivery_tag)
        channel.queue_declare(q, passive=True)


def test_ack_of_no_ack_delivery(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"x")
    method = channel.basic_get(q, auto_ack=True)[0]
    with expect_channel_error(406, f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}"):
        channel.basic_ack(method.delivery_tag)
        channel.queue_declare(q, passive=True)


def test_delivery_tags_do_not_survive_the_channel(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    tag = ch.basic_get(q)[0].delivery_tag
    ch.close()
    other = connection.channel()
    with expect_channel_error(406, f"PRECONDITION_FAILED - unknown delivery tag {tag}"):
        other.basic_ack(tag)
        other.queue_declare(q, passive=True)


# -- recover ------------------------------------------------------------------------------------


def test_recover_requeue(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    publish_all(ch, q, 4)
    for _ in range(3):
        ch.basic_get(q)
    ch.basic_recover(requeue=True)
    got = drain(ch, q)
    assert [(b, m.redelivered) for m, _, b in got] == [
        (b"0", True),
        (b"1", True),
        (b"2", True),
        (b"3", False),
    ]


def test_recover_redelivers_to_consumer(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    got: list[Delivery] = []
    consume_into(ch, q, got)
    publish_all(ch, q, 2)
    assert wait_until(connection, lambda: len(got) == 2)
    ch.basic_recover(requeue=True)
    assert wait_until(connection, lambda: len(got) == 4)
    assert got == [(b"0", False, 1), (b"1", False, 2), (b"0", True, 3), (b"1", True, 4)]


def test_recover_without_requeue_is_not_implemented(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    with expect_connection_error(540, "NOT_IMPLEMENTED - requeue=false"):
        ch.basic_recover(requeue=False)


# -- qos ----------------------------------------------------------------------------------------


def _counts_after(connection: pika.BlockingConnection, got: dict[str, list[Delivery]]) -> dict[str, int]:
    pump(connection, 0.3)
    return {k: len(v) for k, v in got.items()}


def test_prefetch_per_consumer(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_qos(prefetch_count=2)
    got: dict[str, list[Delivery]] = {"a": [], "b": []}
    consume_into(ch, q, got["a"])
    consume_into(ch, q, got["b"])
    publish_all(ch, q, 20)
    assert _counts_after(connection, got) == {"a": 2, "b": 2}


def test_prefetch_applies_to_new_consumers_only(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    got: dict[str, list[Delivery]] = {"a": [], "b": []}
    ch.basic_qos(prefetch_count=1)
    consume_into(ch, q, got["a"])
    ch.basic_qos(prefetch_count=5)
    consume_into(ch, q, got["b"])
    publish_all(ch, q, 20)
    assert _counts_after(connection, got) == {"a": 1, "b": 5}


def test_global_qos_is_shared_by_the_channels_consumers(connection: pika.BlockingConnection) -> None:
    """basic.qos(global=true) is one limit shared by every consumer of the channel, as RabbitMQ
    permits it by default up to 4.2 (4.3 denies the deprecated feature by default; Lapine keeps it,
    as a RabbitMQ with deprecated_features.permit.global_qos = true)."""
    ch = connection.channel()
    q1 = ch.queue_declare("", exclusive=True).method.queue
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_qos(prefetch_count=3, global_qos=True)
    got: dict[str, list[Delivery]] = {"a": [], "b": []}
    consume_into(ch, q1, got["a"])
    consume_into(ch, q2, got["b"])
    publish_all(ch, q1, 10)
    publish_all(ch, q2, 10)
    counts = _counts_after(connection, got)
    assert counts["a"] + counts["b"] == 3


def test_prefetch_ignored_for_no_ack_and_zero(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q1 = ch.queue_declare("", exclusive=True).method.queue
    q2 = ch.queue_declare("", exclusive=True).method.queue
    got: dict[str, list[Delivery]] = {"no_ack": [], "unlimited": []}
    ch.basic_qos(prefetch_count=2)
    consume_into(ch, q1, got["no_ack"], auto_ack=True)
    ch.basic_qos(prefetch_count=0)
    consume_into(ch, q2, got["unlimited"])
    publish_all(ch, q1, 15)
    publish_all(ch, q2, 15)
    assert wait_until(connection, lambda: len(got["no_ack"]) == 15 and len(got["unlimited"]) == 15)


def test_acks_release_prefetch_slots(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_qos(prefetch_count=2)
    got: list[Delivery] = []
    consume_into(ch, q, got)
    publish_all(ch, q, 6)
    pump(connection, 0.2)
    assert [b for b, _, _ in got] == [b"0", b"1"]
    ch.basic_ack(1)
    assert wait_until(connection, lambda: len(got) == 3)
    pump(connection, 0.1)
    assert len(got) == 3
    ch.basic_ack(3, multiple=True)
    assert wait_until(connection, lambda: len(got) == 5)
    pump(connection, 0.1)
    assert [b for b, _, _ in got] == [b"0", b"1", b"2", b"3", b"4"]
    ch.basic_reject(5, requeue=True)  # frees a slot, and "4" comes back first
    assert wait_until(connection, lambda: len(got) == 6)
    assert got[5][:2] == (b"4", True)


def test_basic_get_ignores_prefetch(connection: pika.BlockingConnection) -> None:
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    busy = channel.queue_declare("", exclusive=True).method.queue
    got: list[Delivery] = []
    consume_into(channel, busy, got)
    channel.basic_publish("", busy, b"held")
    assert wait_until(connection, lambda: len(got) == 1)  # the consumer's one slot is taken
    q = channel.queue_declare("", exclusive=True).method.queue
    publish_all(channel, q, 3)
    assert [channel.basic_get(q)[2] for _ in range(3)] == [b"0", b"1", b"2"]


def test_prefetch_size_not_implemented(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    with expect_connection_error(540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)"):
        ch.basic_qos(prefetch_size=10)


def test_round_robin_between_consumers(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    order: list[tuple[str, bytes]] = []

    def make(name: str) -> Callable[..., None]:
        def cb(c: Any, method: Any, props: Any, body: bytes) -> None:
            order.append((name, body))
            c.basic_ack(method.delivery_tag)

        return cb

    ch.basic_consume(q, make("a"))
    ch.basic_consume(q, make("b"))
    publish_all(ch, q, 10)
    assert wait_until(connection, lambda: len(order) == 10)
    assert [b for _, b in order] == [str(i).encode() for i in range(10)]
    names = [n for n, _ in order]
    assert names[0::2] == [names[0]] * 5
    assert names[1::2] == [names[1]] * 5
    assert names[0] != names[1]


def test_prefetch_one_gives_fair_dispatch(connect: Callable[..., pika.BlockingConnection]) -> None:
    """A busy consumer (not acking) with prefetch 1 gets no more: the idle one gets the rest."""
    busy_conn, idle_conn = connect(), connect()
    q = unique("work")
    busy = busy_conn.channel()
    busy.queue_declare(q, durable=True, auto_delete=True)
    busy.basic_qos(prefetch_count=1)
    busy_got: list[Delivery] = []
    consume_into(busy, q, busy_got)
    idle = idle_conn.channel()
    idle.basic_qos(prefetch_count=1)
    idle_got: list[Delivery] = []
    idle.basic_consume(
        q,
        lambda c, m, p, b: (idle_got.append((b, m.redelivered, m.delivery_tag)), c.basic_ack(m.delivery_tag)),
    )
    publisher = connect().channel()
    publish_all(publisher, q, 6)
    assert wait_until(idle_conn, lambda: len(idle_got) >= 5)
    pump(busy_conn, 0.1)
    assert len(busy_got) == 1
    assert len(idle_got) == 5


async def test_qos_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    await ch.set_qos(prefetch_count=2)
    q = await ch.declare_queue(exclusive=True)
    for i in range(5):
        await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
    received: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(message)

    await q.consume(on_message)
    await asyncio.sleep(0.3)
    assert [m.body for m in received] == [b"0", b"1"]
    await received[0].ack()
    await asyncio.sleep(0.2)
    assert [m.body for m in received] == [b"0", b"1", b"2"]


async def test_prefetch_size_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    with pytest.raises(aiormq.exceptions.ConnectionNotImplemented) as info:
        await ch.set_qos(prefetch_size=10)
    assert info.value.args == ("NOT_IMPLEMENTED - prefetch_size!=0 (10)",)
