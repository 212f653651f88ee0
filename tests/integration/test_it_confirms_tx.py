"""Publisher confirms and transactions.

Observed on RabbitMQ 3.10.8, and asserted here:

* Confirm delivery tags count publishes on the channel from 1, and every publish is acked (an
  unroutable one too); ``multiple=true`` acks are used under load, so acks must be expanded to
  count them.
* A mandatory unroutable message gets its ``basic.return`` *before* its ``basic.ack``.
* Mode switches: 406 "PRECONDITION_FAILED - cannot switch from tx to confirm mode" and
  "... cannot switch from confirm to tx mode"; tx.commit/rollback on a plain channel is 406
  "PRECONDITION_FAILED - channel is not transactional". confirm.select and tx.select may be
  repeated.
* In a transaction, publishes, acks and rejects take effect on commit; rollback discards the
  publishes and the acks, and the messages whose ack was rolled back stay unacked (they are not
  requeued until the channel closes). A mandatory message's ``basic.return`` comes at commit.
* Publishing on another channel and reading on this one is not ordered: the publishing channels
  here use confirms so that a message is enqueued before it is looked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aio_pika
import pamqp.commands
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.helpers import pika_async
from tests.helpers.amqp import bodies, drain, expect_channel_error, pump, unique, wait_until
from tests.helpers.raw_amqp import RawAMQP

pytestmark = pytest.mark.timeout(10)


# -- confirms -----------------------------------------------------------------------------------


def test_confirmed_publishes(channel: Any) -> None:
    channel.confirm_delivery()
    q = channel.queue_declare("", exclusive=True).method.queue
    for i in range(20):
        channel.basic_publish("", q, str(i).encode())  # raises if nacked
    channel.basic_publish("amq.direct", unique("nowhere"), b"unroutable, still acked")
    assert len(bodies(channel, q)) == 20


def test_confirm_select_twice(channel: Any) -> None:
    channel.confirm_delivery()
    channel._impl.confirm_delivery(lambda frame: None)  # a second confirm.select is fine
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"x")


def test_confirm_raw_delivery_tags(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Confirm.Select())
    client.expect(pika.spec.Confirm.SelectOk)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    q = client.expect(pika.spec.Queue.DeclareOk).queue
    for _ in range(3):
        client.send_method(1, pika.spec.Basic.Publish(exchange="", routing_key=q))
        client.send_content(1, b"x")
    acked: set[int] = set()
    while len(acked) < 3:
        ack = client.expect(pika.spec.Basic.Ack)
        if ack.multiple:
            acked.update(range(1, ack.delivery_tag + 1))
        else:
            acked.add(ack.delivery_tag)
    assert acked == {1, 2, 3}
    client.close_connection()


def test_confirm_select_nowait(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Confirm.Select(nowait=True))
    client.send_method(1, pika.spec.Basic.Publish(exchange="amq.fanout", routing_key=""))
    client.send_content(1, b"x")
    ack = client.expect(pika.spec.Basic.Ack)  # no select-ok in between
    assert (ack.delivery_tag, ack.multiple) == (1, False)
    client.close_connection()


async def test_unroutable_mandatory_return_before_ack(params: Callable[..., pika.URLParameters]) -> None:
    events: list[tuple[str, Any]] = []
    async with pika_async.connection(params()) as conn:
        ch = await pika_async.open_channel(conn)
        ch.add_on_return_callback(lambda c, method, props, body: events.append(("return", body)))
        await pika_async.call(
            ch.confirm_delivery,
            ack_nack_callback=lambda frame: events.append(
                (type(frame.method).__name__, (frame.method.delivery_tag, frame.method.multiple))
            ),
        )
        ch.basic_publish("amq.direct", unique("nowhere"), b"bounced", mandatory=True)
        for _ in range(100):
            if any(kind == "Ack" for kind, _ in events):
                break
            await asyncio.sleep(0.02)
    assert events == [("return", b"bounced"), ("Ack", (1, False))]


async def test_multiple_acks_async_adapter(params: Callable[..., pika.URLParameters]) -> None:
    acked: set[int] = set()
    frames: list[tuple[int, bool]] = []
    nacks: list[Any] = []
    async with pika_async.connection(params()) as conn:
        ch = await pika_async.open_channel(conn)

        def on_confirm(frame: Any) -> None:
            method = frame.method
            if isinstance(method, pika.spec.Basic.Nack):
                nacks.append(method)
                return
            frames.append((method.delivery_tag, method.multiple))
            if method.multiple:
                acked.update(t for t in range(1, method.delivery_tag + 1))
            else:
                acked.add(method.delivery_tag)

        await pika_async.call(ch.confirm_delivery, ack_nack_callback=on_confirm)
        declare = await pika_async.call(ch.queue_declare, "", exclusive=True)
        q = declare.method.queue
        total = 500
        for i in range(total):
            ch.basic_publish("", q, str(i).encode())
        for _ in range(200):
            if len(acked) >= total:
                break
            await asyncio.sleep(0.02)
        purge = await pika_async.call(ch.queue_purge, q)
    assert nacks == []
    assert acked == set(range(1, total + 1))
    tags = [t for t, _ in frames]
    assert tags == sorted(tags)  # acks arrive in order
    assert purge.method.message_count == total


async def test_confirms_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel(publisher_confirms=True)
    q = await ch.declare_queue(exclusive=True)
    confirmations = await asyncio.gather(
        *(ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name) for i in range(50))
    )
    assert all(isinstance(c, pamqp.commands.Basic.Ack) for c in confirmations)
    declared = await ch.declare_queue(q.name, passive=True)
    assert declared.declaration_result.message_count == 50


async def test_mandatory_unroutable_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel(publisher_confirms=True, on_return_raises=True)
    with pytest.raises(aio_pika.exceptions.DeliveryError) as info:
        await ch.default_exchange.publish(aio_pika.Message(b"nowhere"), routing_key=unique("nowhere"), mandatory=True)
    frame = info.value.frame
    assert frame is not None
    assert (frame.reply_code, frame.reply_text) == (312, "NO_ROUTE")


# -- mode conflicts ------------------------------------------------------------------------------


def test_confirm_on_tx_channel(channel: Any) -> None:
    channel.tx_select()
    with expect_channel_error(406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"):
        channel.confirm_delivery()


def test_tx_on_confirm_channel(channel: Any) -> None:
    channel.confirm_delivery()
    with expect_channel_error(406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"):
        channel.tx_select()


@pytest.mark.parametrize("operation", ["commit", "rollback"])
def test_tx_without_select(channel: Any, operation: str) -> None:
    with expect_channel_error(406, "PRECONDITION_FAILED - channel is not transactional"):
        if operation == "commit":
            channel.tx_commit()
        else:
            channel.tx_rollback()


# -- transactions -------------------------------------------------------------------------------


def test_tx_publish_visible_only_after_commit(connection: pika.BlockingConnection) -> None:
    tx = connection.channel()
    observer = connection.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    tx.tx_select()
    tx.tx_select()  # again: fine
    tx.basic_publish("", q, b"1")
    tx.basic_publish("", q, b"2")
    assert observer.basic_get(q)[0] is None
    tx.tx_commit()
    assert bodies(observer, q) == [b"1", b"2"]


def test_tx_rollback_discards_publishes(connection: pika.BlockingConnection) -> None:
    tx = connection.channel()
    observer = connection.channel()
    q = observer.queue_declare("", exclusive=True).method.queue
    tx.tx_select()
    tx.basic_publish("", q, b"discarded")
    tx.tx_rollback()
    tx.tx_commit()  # nothing left to commit
    tx.basic_publish("", q, b"kept")
    tx.tx_commit()
    assert bodies(observer, q) == [b"kept"]


def test_tx_acks_applied_on_commit(connection: pika.BlockingConnection) -> None:
    publisher = connection.channel()
    publisher.confirm_delivery()
    q = publisher.queue_declare("", exclusive=True).method.queue
    for body in (b"a", b"b"):
        publisher.basic_publish("", q, body)
    tx = connection.channel()
    tx.tx_select()
    first = tx.basic_get(q)[0]
    second = tx.basic_get(q)[0]
    tx.basic_ack(first.delivery_tag)
    tx.basic_reject(second.delivery_tag, requeue=True)
    assert publisher.basic_get(q)[0] is None  # the reject has not happened yet
    tx.tx_commit()
    got = drain(publisher, q)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"b", True)]
    tx.close()
    assert publisher.basic_get(q)[0] is None  # "a" was acked for good


def test_tx_rollback_discards_acks(connection: pika.BlockingConnection) -> None:
    publisher = connection.channel()
    publisher.confirm_delivery()
    q = publisher.queue_declare("", exclusive=True).method.queue
    publisher.basic_publish("", q, b"a")
    tx = connection.channel()
    tx.tx_select()
    method = tx.basic_get(q)[0]
    tx.basic_ack(method.delivery_tag)
    tx.tx_rollback()
    assert publisher.basic_get(q)[0] is None  # still unacked, not requeued
    tx.basic_ack(method.delivery_tag)  # the tag is still valid
    tx.tx_rollback()
    tx.close()
    got = drain(publisher, q)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"a", True)]


def test_tx_mandatory_return_comes_at_commit(connection: pika.BlockingConnection) -> None:
    tx = connection.channel()
    returns: list[Any] = []
    tx.add_on_return_callback(lambda c, method, props, body: returns.append((method.reply_code, body)))
    tx.tx_select()
    tx.basic_publish("amq.direct", unique("nowhere"), b"r", mandatory=True)
    pump(connection, 0.2)
    assert returns == []
    tx.tx_commit()
    assert wait_until(connection, lambda: returns == [(312, b"r")])


async def test_tx_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel(publisher_confirms=False)
    observer = await aio_connection.channel()
    q = await observer.declare_queue(exclusive=True)
    tx = ch.transaction()
    await tx.select()
    await ch.default_exchange.publish(aio_pika.Message(b"in tx"), routing_key=q.name)
    assert await q.get(fail=False) is None
    await tx.commit()
    msg = await q.get(no_ack=True)
    assert msg is not None and msg.body == b"in tx"
    await ch.default_exchange.publish(aio_pika.Message(b"rolled back"), routing_key=q.name)
    await tx.rollback()
    assert await q.get(fail=False) is None
