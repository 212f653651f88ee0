"""RPC: the classic callback-queue pattern and direct reply-to (``amq.rabbitmq.reply-to``).

Observed on RabbitMQ 3.10.8, and asserted here:

* The requester's ``reply_to`` is rewritten to ``amq.rabbitmq.reply-to.<opaque token>``; the
  reply, published by anyone to the default exchange with that routing key, is delivered with
  exchange "" and routing key = that name.
* The pseudo-queue belongs to one *channel*: publishing with reply_to=amq.rabbitmq.reply-to on a
  channel without a reply consumer (even another channel of the same connection, or after the
  consumer was cancelled) is 406 "PRECONDITION_FAILED - fast reply consumer does not exist".
  Consuming it with no_ack=false is 406 "PRECONDITION_FAILED - reply consumer cannot acknowledge";
  a second reply consumer on the channel is 406 "PRECONDITION_FAILED - reply consumer already set".
  basic.get on it is 404 "NOT_FOUND - no queue 'amq.rabbitmq.reply-to' in vhost '/'".
* A reply to an unknown or stale ``amq.rabbitmq.reply-to.*`` name is dropped silently (and
  confirmed); publishing to the bare name ``amq.rabbitmq.reply-to`` is just unroutable.
* Not asserted (3.10 quirks): a *mandatory* reply is delivered *and* returned with 312 NO_ROUTE,
  and every reply delivery carries delivery_tag 1; an active queue.declare of the pseudo-queue
  answers declare-ok with consumer_count=1.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aio_pika
import aio_pika.patterns
import pika
import pika.exceptions
import pytest

from tests.helpers.amqp import expect_channel_error, pump, unique, wait_until

pytestmark = pytest.mark.timeout(10)

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_NAME = re.compile(r"^amq\.rabbitmq\.reply-to\.\S+$")


class RpcServer:
    """An RPC server in a thread with its own BlockingConnection: replies body.upper()."""

    def __init__(self, params: pika.URLParameters, queue: str) -> None:
        self.params = params
        self.queue = queue
        self.seen_reply_to: list[str] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            conn = pika.BlockingConnection(self.params)
            ch = conn.channel()
            ch.queue_declare(self.queue, durable=True, auto_delete=True)
            ch.basic_qos(prefetch_count=1)

            def on_request(c: Any, method: Any, props: Any, body: bytes) -> None:
                self.seen_reply_to.append(props.reply_to)
                c.basic_publish(
                    "",
                    props.reply_to,
                    body.upper(),
                    pika.BasicProperties(correlation_id=props.correlation_id),
                )
                c.basic_ack(method.delivery_tag)

            ch.basic_consume(self.queue, on_request)
            self.ready.set()
            while not self.stop.is_set():
                conn.process_data_events(time_limit=0.05)
            conn.close()
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.ready.set()

    def __enter__(self) -> RpcServer:
        self.thread.start()
        assert self.ready.wait(5)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        assert self.error is None, self.error


@pytest.fixture
def rpc_server(params: Callable[..., pika.URLParameters]) -> Iterator[RpcServer]:
    with RpcServer(params(), unique("rpc")) as server:
        yield server


# -- classic RPC --------------------------------------------------------------------------------


def test_classic_rpc(connection: pika.BlockingConnection, rpc_server: RpcServer) -> None:
    ch = connection.channel()
    callback_queue = ch.queue_declare("", exclusive=True).method.queue
    responses: dict[str, bytes] = {}
    ch.basic_consume(
        callback_queue,
        lambda c, m, p, b: responses.__setitem__(p.correlation_id, b),
        auto_ack=True,
    )
    requests = {str(uuid.uuid4()): f"request {i}".encode() for i in range(5)}
    for corr, body in requests.items():
        ch.basic_publish("", rpc_server.queue, body, pika.BasicProperties(reply_to=callback_queue, correlation_id=corr))
    assert wait_until(connection, lambda: len(responses) == len(requests), timeout=4)
    assert responses == {corr: body.upper() for corr, body in requests.items()}
    assert set(rpc_server.seen_reply_to) == {callback_queue}


async def test_classic_rpc_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    server_ch = await aio_connection.channel()
    request_queue = await server_ch.declare_queue(unique("aio-rpc"), durable=True, auto_delete=True)

    async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            assert message.reply_to is not None
            await server_ch.default_exchange.publish(
                aio_pika.Message(message.body[::-1], correlation_id=message.correlation_id),
                routing_key=message.reply_to,
            )

    await request_queue.consume(serve)

    client_ch = await aio_connection.channel()
    callback = await client_ch.declare_queue(exclusive=True)
    loop = asyncio.get_running_loop()
    futures: dict[str, asyncio.Future[bytes]] = {}

    async def on_response(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert message.correlation_id is not None
        futures[message.correlation_id].set_result(message.body)

    await callback.consume(on_response, no_ack=True)
    for word in ("alpha", "beta", "gamma"):
        futures[word] = loop.create_future()
        await client_ch.default_exchange.publish(
            aio_pika.Message(word.encode(), correlation_id=word, reply_to=callback.name),
            routing_key=request_queue.name,
        )
    results = await asyncio.wait_for(asyncio.gather(*futures.values()), 4)
    assert results == [b"ahpla", b"ateb", b"ammag"]


async def test_aio_pika_rpc_pattern(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    channel = await aio_connection.channel()
    rpc = await aio_pika.patterns.RPC.create(channel, exclusive=True)  # not transient non-exclusive
    method_name = unique("multiply")

    async def multiply(*, x: int, y: int) -> int:
        return x * y

    await rpc.register(method_name, multiply, durable=True, auto_delete=True)
    assert await asyncio.wait_for(rpc.proxy.__getattr__(method_name)(x=6, y=7), 4) == 42
    await rpc.unregister(multiply)
    await rpc.close()


# -- direct reply-to ----------------------------------------------------------------------------


def test_direct_reply_to(connection: pika.BlockingConnection, rpc_server: RpcServer) -> None:
    ch = connection.channel()
    replies: list[tuple[Any, Any, bytes]] = []
    ch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append((m, p, b)), auto_ack=True)
    ch.basic_publish("", rpc_server.queue, b"ping", pika.BasicProperties(reply_to=REPLY_TO, correlation_id="corr-1"))
    assert wait_until(connection, lambda: len(replies) == 1, timeout=4)
    method, props, body = replies[0]
    assert body == b"PING"
    assert props.correlation_id == "corr-1"
    (reply_name,) = rpc_server.seen_reply_to
    assert REPLY_NAME.match(reply_name), reply_name
    assert method.exchange == ""
    assert method.routing_key == reply_name
    assert method.redelivered is False


def test_direct_reply_to_many_requests(connection: pika.BlockingConnection, rpc_server: RpcServer) -> None:
    ch = connection.channel()
    replies: dict[str, bytes] = {}
    ch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.__setitem__(p.correlation_id, b), auto_ack=True)
    for i in range(10):
        ch.basic_publish(
            "", rpc_server.queue, f"r{i}".encode(), pika.BasicProperties(reply_to=REPLY_TO, correlation_id=str(i))
        )
    assert wait_until(connection, lambda: len(replies) == 10, timeout=4)
    assert replies == {str(i): f"R{i}".encode() for i in range(10)}
    assert len(set(rpc_server.seen_reply_to)) == 1  # one name per channel


def test_direct_reply_to_requires_no_ack(channel: Any) -> None:
    with expect_channel_error(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"):
        channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)


def test_direct_reply_to_needs_a_consumer(channel: Any) -> None:
    channel.confirm_delivery()
    with expect_channel_error(406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        channel.basic_publish("amq.direct", unique("k"), b"x", pika.BasicProperties(reply_to=REPLY_TO))


def test_direct_reply_to_is_per_channel(connection: pika.BlockingConnection) -> None:
    consumer = connection.channel()
    consumer.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    other = connection.channel()
    other.confirm_delivery()
    with expect_channel_error(406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        other.basic_publish("amq.direct", unique("k"), b"x", pika.BasicProperties(reply_to=REPLY_TO))
    assert consumer.is_open


def test_direct_reply_to_second_consumer(channel: Any) -> None:
    channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    with expect_channel_error(406, "PRECONDITION_FAILED - reply consumer already set"):
        channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)


def test_direct_reply_to_after_cancel(channel: Any) -> None:
    tag = channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    channel.basic_cancel(tag)
    channel.confirm_delivery()
    with expect_channel_error(406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        channel.basic_publish("amq.direct", unique("k"), b"x", pika.BasicProperties(reply_to=REPLY_TO))


def test_direct_reply_to_get_is_404(channel: Any) -> None:
    with expect_channel_error(404, f"NOT_FOUND - no queue '{REPLY_TO}' in vhost '/'"):
        channel.basic_get(REPLY_TO)


def test_reply_to_unknown_name_is_dropped(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    ch.confirm_delivery()
    ch.basic_publish("", REPLY_TO + ".bogus-token", b"nobody")  # acked, no error
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", REPLY_TO, b"bare name", mandatory=True)
    assert ch.is_open


def test_reply_after_requester_left_is_dropped(
    connect: Callable[..., pika.BlockingConnection], rpc_server: RpcServer
) -> None:
    requester = connect()
    ch = requester.channel()
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    ch.basic_publish("", rpc_server.queue, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    pump(requester, 0.1)
    requester.close()
    responder = connect().channel()
    responder.confirm_delivery()
    deadline = time.monotonic() + 3
    while not rpc_server.seen_reply_to and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(rpc_server.seen_reply_to) == 1
    responder.basic_publish("", rpc_server.seen_reply_to[0], b"too late")
    assert responder.is_open


async def test_direct_reply_to_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    server_ch = await aio_connection.channel()
    request_queue = await server_ch.declare_queue(unique("aio-drt"), durable=True, auto_delete=True)
    seen: list[str] = []

    async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            assert message.reply_to is not None
            seen.append(message.reply_to)
            await server_ch.default_exchange.publish(
                aio_pika.Message(b"pong:" + message.body, correlation_id=message.correlation_id),
                routing_key=message.reply_to,
            )

    await request_queue.consume(serve)
    client_ch = await aio_connection.channel()
    reply_queue = await client_ch.get_queue(REPLY_TO, ensure=False)
    got: asyncio.Future[aio_pika.abc.AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if not got.done():
            got.set_result(message)

    await reply_queue.consume(on_reply, no_ack=True)
    await client_ch.default_exchange.publish(
        aio_pika.Message(b"ping", reply_to=REPLY_TO, correlation_id="aio-1"),
        routing_key=request_queue.name,
    )
    reply = await asyncio.wait_for(got, 4)
    assert reply.body == b"pong:ping"
    assert reply.correlation_id == "aio-1"
    assert REPLY_NAME.match(seen[0])
    assert reply.routing_key == seen[0]
