"""pika's callback-style adapters: SelectConnection and AsyncioConnection, end to end.

Nothing here surprised: these tests check that event-driven clients see the same broker as the
blocking one (channel close callbacks with the broker's code and text, consumer cancel
notifications, acks releasing prefetch, close handshakes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pika
import pika.channel
import pika.exceptions
import pika.spec
import pytest

from tests.helpers import pika_async
from tests.helpers.amqp import reply_not_found_exchange, reply_not_found_queue, unique

pytestmark = pytest.mark.timeout(10)


# -- SelectConnection -----------------------------------------------------------------------------


class SelectFlow:
    """Drive a SelectConnection through: open, channel, declare, publish x3, consume, ack, close."""

    def __init__(self, params: pika.URLParameters) -> None:
        self.events: list[str] = []
        self.received: list[bytes] = []
        self.error: str | None = None
        self.queue = ""
        self.channel: pika.channel.Channel | None = None
        self.conn = pika.SelectConnection(
            params,
            on_open_callback=self.on_open,
            on_open_error_callback=lambda c, err: self.fail(f"open error {err!r}"),
            on_close_callback=self.on_closed,
        )

    def fail(self, why: str) -> None:
        self.error = why
        self.conn.ioloop.stop()

    def on_open(self, conn: Any) -> None:
        self.events.append("connection.open")
        conn.channel(on_open_callback=self.on_channel)

    def on_channel(self, ch: pika.channel.Channel) -> None:
        self.events.append("channel.open")
        self.channel = ch
        ch.basic_qos(
            prefetch_count=1, callback=lambda f: ch.queue_declare("", exclusive=True, callback=self.on_declared)
        )

    def on_declared(self, frame: Any) -> None:
        assert self.channel is not None
        self.events.append("queue.declare-ok")
        self.queue = frame.method.queue
        for i in range(3):
            self.channel.basic_publish("", self.queue, f"m{i}".encode())
        self.channel.basic_consume(self.queue, self.on_message)

    def on_message(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.received.append(body)
        ch.basic_ack(method.delivery_tag)  # prefetch 1: the next one comes only after this ack
        if len(self.received) == 3:
            self.conn.close()

    def on_closed(self, conn: Any, reason: BaseException) -> None:
        self.events.append(f"closed:{type(reason).__name__}")
        conn.ioloop.stop()

    def run(self, timeout: float = 5.0) -> None:
        self.conn.ioloop.call_later(timeout, lambda: self.fail("timeout"))
        self.conn.ioloop.start()


def test_select_connection_flow(params: Callable[..., pika.URLParameters]) -> None:
    flow = SelectFlow(params())
    flow.run()
    assert flow.error is None, flow.error
    assert flow.received == [b"m0", b"m1", b"m2"]
    assert flow.events == ["connection.open", "channel.open", "queue.declare-ok", "closed:ConnectionClosedByClient"]


def test_select_connection_channel_error(params: Callable[..., pika.URLParameters]) -> None:
    reasons: list[BaseException] = []
    missing = unique("missing")

    def on_open(conn: Any) -> None:
        def on_channel(ch: pika.channel.Channel) -> None:
            ch.add_on_close_callback(lambda c, reason: (reasons.append(reason), conn.close()))
            ch.exchange_declare(missing, passive=True)

        conn.channel(on_open_callback=on_channel)

    conn = pika.SelectConnection(params(), on_open_callback=on_open, on_close_callback=lambda c, r: c.ioloop.stop())
    conn.ioloop.call_later(5, conn.ioloop.stop)
    conn.ioloop.start()
    assert len(reasons) == 1
    reason = reasons[0]
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (404, reply_not_found_exchange(missing))


# -- AsyncioConnection ----------------------------------------------------------------------------


async def test_asyncio_connection_publish_consume(params: Callable[..., pika.URLParameters]) -> None:
    async with pika_async.connection(params()) as conn:
        assert conn.params.frame_max == 131072
        ch = await pika_async.open_channel(conn)
        q = (await pika_async.call(ch.queue_declare, "", exclusive=True)).method.queue
        received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        ch.basic_consume(q, lambda c, m, p, b: received.put_nowait((b, p)), auto_ack=True)
        ch.basic_publish("", q, b"hello", pika.BasicProperties(content_type="text/plain", headers={"n": 1}))
        body, props = await asyncio.wait_for(received.get(), 4)
        assert body == b"hello"
        assert (props.content_type, props.headers) == ("text/plain", {"n": 1})


async def test_asyncio_connection_channel_close_reason(params: Callable[..., pika.URLParameters]) -> None:
    async with pika_async.connection(params()) as conn:
        ch = await pika_async.open_channel(conn)
        closed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        ch.add_on_close_callback(lambda c, reason: closed.done() or closed.set_result(reason))
        missing = unique("missing")
        ch.queue_declare(missing, passive=True)
        reason = await asyncio.wait_for(closed, 4)
        assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
        assert (reason.reply_code, reason.reply_text) == (404, reply_not_found_queue(missing))
        other = await pika_async.open_channel(conn)  # the connection lives on
        await pika_async.call(other.queue_declare, "", exclusive=True)


async def test_asyncio_connection_consumer_cancel_notification(params: Callable[..., pika.URLParameters]) -> None:
    async with pika_async.connection(params()) as conn:
        ch = await pika_async.open_channel(conn)
        q = unique("cancelled")
        await pika_async.call(ch.queue_declare, q, durable=True)
        cancelled: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ch.add_on_cancel_callback(lambda frame: cancelled.done() or cancelled.set_result(frame.method))
        tag = ch.basic_consume(q, lambda *a: None)
        other = await pika_async.open_channel(conn)
        await pika_async.call(other.queue_delete, q)
        method = await asyncio.wait_for(cancelled, 4)
        assert isinstance(method, pika.spec.Basic.Cancel)
        assert method.consumer_tag == tag
        assert ch.is_open


async def test_asyncio_connection_connection_error(params: Callable[..., pika.URLParameters]) -> None:
    conn = await pika_async.open_connection(params())
    closed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    conn.add_on_close_callback(lambda c, reason: closed.done() or closed.set_result(reason))
    ch = await pika_async.open_channel(conn)
    ch.basic_qos(prefetch_size=1)
    reason = await asyncio.wait_for(closed, 4)
    assert isinstance(reason, pika.exceptions.ConnectionClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)")


async def test_asyncio_connection_wrong_password(
    url_with: Callable[..., str], params: Callable[..., pika.URLParameters]
) -> None:
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        await pika_async.open_connection(params(url_with(password="wrong")))
