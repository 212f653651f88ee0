"""Typical aio-pika applications, end to end: work queues, pub/sub, routing, and failure paths.

Observed on RabbitMQ 3.10.8: nothing beyond what the other files note. aio-pika maps channel close
codes to exception classes (404 ChannelNotFoundEntity, 405 ChannelLockedResource, 406
ChannelPreconditionFailed, 403 ChannelAccessRefused) carrying only the reply text, so the text is
what these tests compare.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aio_pika
import aiormq.exceptions
import pytest

from tests.helpers.amqp import reply_not_found_exchange, unique

pytestmark = pytest.mark.timeout(10)

Message = aio_pika.abc.AbstractIncomingMessage


async def _ignore(message: Message) -> None:
    """A consumer callback that does nothing (the message stays unacked)."""


async def _collect(queue: aio_pika.abc.AbstractQueue, count: int, timeout: float = 4.0) -> list[Message]:
    got: list[Message] = []
    done = asyncio.Event()

    async def on_message(message: Message) -> None:
        got.append(message)
        if len(got) >= count:
            done.set()

    tag = await queue.consume(on_message)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await queue.cancel(tag)
    return got


async def test_work_queue_two_workers(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    setup = await aio_connection.channel()
    name = unique("work")
    await setup.declare_queue(name, durable=True, auto_delete=True)
    results: dict[str, list[bytes]] = {"w1": [], "w2": []}
    done = asyncio.Event()

    async def worker(label: str) -> None:
        ch = await aio_connection.channel()
        await ch.set_qos(prefetch_count=1)
        q = await ch.get_queue(name)

        async def handle(message: Message) -> None:
            async with message.process():
                results[label].append(message.body)
                await asyncio.sleep(0.01)
                if sum(len(v) for v in results.values()) == 20:
                    done.set()

        await q.consume(handle)

    await worker("w1")
    await worker("w2")
    for i in range(20):
        await setup.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=name)
    await asyncio.wait_for(done.wait(), 5)
    assert sorted(int(b) for b in results["w1"] + results["w2"]) == list(range(20))
    assert results["w1"] and results["w2"]
    assert abs(len(results["w1"]) - len(results["w2"])) <= 2


async def test_pubsub_fanout(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    logs = await ch.declare_exchange(unique("logs"), aio_pika.ExchangeType.FANOUT, auto_delete=True)
    subscribers = [await ch.declare_queue(exclusive=True) for _ in range(3)]
    for q in subscribers:
        await q.bind(logs)
    for i in range(3):
        await logs.publish(aio_pika.Message(f"line {i}".encode()), routing_key="")
    for q in subscribers:
        got = await _collect(q, 3)
        assert [m.body for m in got] == [b"line 0", b"line 1", b"line 2"]
        for m in got:
            await m.ack()
    await logs.delete()


async def test_routing_direct_and_headers(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    direct = await ch.declare_exchange(unique("direct"), aio_pika.ExchangeType.DIRECT, auto_delete=True)
    headers = await ch.declare_exchange(unique("headers"), aio_pika.ExchangeType.HEADERS, auto_delete=True)
    errors = await ch.declare_queue(exclusive=True)
    pdf = await ch.declare_queue(exclusive=True)
    await errors.bind(direct, "error")
    await pdf.bind(headers, arguments={"x-match": "all", "format": "pdf", "type": "report"})
    await direct.publish(aio_pika.Message(b"disk full"), routing_key="error")
    await direct.publish(aio_pika.Message(b"all good"), routing_key="info")
    await headers.publish(aio_pika.Message(b"r1", headers={"format": "pdf", "type": "report"}), routing_key="")
    await headers.publish(aio_pika.Message(b"r2", headers={"format": "pdf"}), routing_key="")
    e = await errors.get(no_ack=True)
    p = await pdf.get(no_ack=True)
    assert e is not None and e.body == b"disk full"
    assert p is not None and p.body == b"r1"
    assert await errors.get(fail=False) is None
    assert await pdf.get(fail=False) is None
    await errors.unbind(direct, "error")
    await pdf.unbind(headers, arguments={"x-match": "all", "format": "pdf", "type": "report"})


async def test_process_requeues_on_exception(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(exclusive=True)
    await ch.default_exchange.publish(aio_pika.Message(b"flaky"), routing_key=q.name)
    attempts: list[bool] = []
    done = asyncio.Event()

    async def handle(message: Message) -> None:
        attempts.append(message.redelivered)
        if len(attempts) == 1:
            async with message.process(requeue=True, ignore_processed=True):
                raise RuntimeError("first attempt fails")
        await message.ack()
        done.set()

    async def safe(message: Message) -> None:
        with contextlib.suppress(RuntimeError):
            await handle(message)

    await q.consume(safe)
    await asyncio.wait_for(done.wait(), 4)
    assert attempts == [False, True]


async def test_unacked_requeued_when_channel_closes(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    keeper = await aio_connection.channel()
    q = await keeper.declare_queue(exclusive=True)
    for i in range(3):
        await keeper.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
    consumer = await aio_connection.channel()
    cq = await consumer.get_queue(q.name)
    got = [await cq.get(no_ack=False) for _ in range(3)]
    assert [m.body for m in got if m is not None] == [b"0", b"1", b"2"]
    await consumer.close()
    again = [await q.get(no_ack=True) for _ in range(3)]
    assert [(m.body, m.redelivered) for m in again if m is not None] == [(b"0", True), (b"1", True), (b"2", True)]


async def test_unacked_requeued_when_connection_closes(amqp_url: str) -> None:
    keeper = await aio_pika.connect(amqp_url, timeout=5)
    worker = await aio_pika.connect(amqp_url, timeout=5)
    try:
        kch = await keeper.channel()
        q = await kch.declare_queue(unique("aio-requeue"), durable=True)
        for i in range(2):
            await kch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
        wq = await (await worker.channel()).get_queue(q.name)
        first = await wq.get(no_ack=False)
        assert first is not None and first.body == b"0"
        await worker.close()
        again = [await q.get(no_ack=True) for _ in range(2)]
        assert [(m.body, m.redelivered) for m in again if m is not None] == [(b"0", True), (b"1", False)]
        await q.delete()
    finally:
        await keeper.close()
        await worker.close()


async def test_queue_iterator(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(exclusive=True)
    for i in range(5):
        await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
    seen: list[bytes] = []
    async with q.iterator() as it:
        async for message in it:
            async with message.process():
                seen.append(message.body)
            if len(seen) == 5:
                break
    assert seen == [b"0", b"1", b"2", b"3", b"4"]


async def test_get_empty_raises_queue_empty(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(exclusive=True)
    with pytest.raises(aio_pika.exceptions.QueueEmpty):
        await q.get(timeout=2)


async def test_publish_to_missing_exchange_closes_channel(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel(publisher_confirms=True)
    missing = unique("missing")
    exchange = await ch.get_exchange(missing, ensure=False)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
        await exchange.publish(aio_pika.Message(b"x"), routing_key="k")
    assert info.value.args == (reply_not_found_exchange(missing),)
    assert not aio_connection.is_closed
    fresh = await aio_connection.channel()
    await fresh.declare_queue(exclusive=True)


async def test_exclusive_consumer(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(unique("aio-ex"), exclusive=True)
    await q.consume(_ignore, exclusive=True)
    other = await aio_connection.channel()
    oq = await other.get_queue(q.name)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as info:
        await oq.consume(_ignore)
    assert info.value.args == (f"ACCESS_REFUSED - queue '{q.name}' in vhost '/' in exclusive use",)


async def test_consumer_cancelled_by_queue_delete(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(unique("aio-del"), durable=True)
    await q.consume(_ignore)
    other = await aio_connection.channel()
    await other.queue_delete(q.name)
    await asyncio.sleep(0.1)
    assert not ch.is_closed  # the consumer's channel survives the basic.cancel
    q2 = await ch.declare_queue(exclusive=True)
    await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=q2.name)
    msg = await q2.get(no_ack=True)
    assert msg is not None and msg.body == b"x"


async def test_many_messages_roundtrip(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel(publisher_confirms=True)
    q = await ch.declare_queue(exclusive=True)
    count = 1000
    await asyncio.gather(
        *(ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name) for i in range(count))
    )
    got = await _collect(q, count, timeout=4)
    assert [int(m.body) for m in got] == list(range(count))
    await got[-1].ack(multiple=True)
    assert await q.get(fail=False) is None


async def test_connection_errors(amqp_url: str, url_with: Callable[..., str]) -> None:
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(url_with(password="definitely-wrong"), timeout=5)
    conn = await aio_pika.connect(amqp_url, timeout=5)
    try:
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ConnectionNotImplemented) as info:
            await ch.set_qos(prefetch_size=5)
        assert info.value.args == ("NOT_IMPLEMENTED - prefetch_size!=0 (5)",)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
