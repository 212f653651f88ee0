"""The broker model with no sockets: clients that speak frames to sans-IO connections on one broker
whose clock moves only when told to (the AMQP analogue of h11's ConnectionPair).

model = ModelBroker()
client = model.client()                      # handshake done, channel 1 open
client.declare_queue("q", **{"x-message-ttl": 100})
client.publish(1, b"hello", routing_key="q")
model.advance(0.1)                           # the clock: TTLs, x-expires, consumer timeouts
assert client.get("q") is None

Everything the broker writes is kept as bytes (``ModelClient.received``) and decoded into the
inbox: methods, and content-carrying methods as :class:`Content`. Nothing here imports asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import UnionType
from typing import Any, TypeVar

from lapine.amqp import spec
from lapine.amqp.frames import PROTOCOL_HEADER, FrameReader, encode_frame, method_frame
from lapine.broker.broker import Broker
from lapine.broker.connection import Connection
from lapine.broker.queue import Queue
from lapine.broker.scheduler import ManualScheduler
from lapine.config import Config

M = TypeVar("M", bound=spec.Method)

# Large enough for any frame the broker sends (frame_max is at most this).
_READER_FRAME_MAX = 1 << 20


@dataclass
class Content:
    """A content-carrying method as the client sees it: method, decoded properties, body."""

    method: Any  # spec.BasicDeliver, BasicGetOk or BasicReturn
    properties: spec.BasicProperties
    body: bytes

    def __repr__(self) -> str:
        return f"Content({self.method!r}, {self.body!r})"


@dataclass
class _Assembling:
    method: spec.Method
    properties: spec.BasicProperties | None = None
    size: int = 0
    body: bytes = b""


def publish_frames(
    channel: int,
    body: bytes,
    exchange: str = "",
    routing_key: str = "",
    properties: spec.BasicProperties | None = None,
    mandatory: bool = False,
) -> bytes:
    """basic.publish, its content header and (if the body is not empty) one body frame."""
    raw = (properties or spec.BasicProperties()).encode()
    return (
        method_frame(channel, spec.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory))
        + encode_frame(spec.FRAME_HEADER, channel, spec.encode_basic_header(len(body), raw))
        + (encode_frame(spec.FRAME_BODY, channel, body) if body else b"")
    )


def handshake_frames(user: str = "guest", password: str = "guest", vhost: str = "/", heartbeat: int = 0) -> bytes:
    """What a client sends to log in, none of it depending on the server's answers: the protocol
    header, start-ok (PLAIN), tune-ok with the broker's defaults, and connection.open."""
    config = Config()
    return (
        PROTOCOL_HEADER
        + method_frame(
            0,
            spec.ConnectionStartOk(
                client_properties={"capabilities": {"consumer_cancel_notify": True, "connection.blocked": True}},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}".encode(),
            ),
        )
        + method_frame(
            0,
            spec.ConnectionTuneOk(channel_max=config.channel_max, frame_max=config.frame_max, heartbeat=heartbeat),
        )
        + method_frame(0, spec.ConnectionOpen(virtual_host=vhost))
    )


class ModelClient:
    """One client end of a sans-IO :class:`Connection`: it sends bytes and frames, and reads what
    the broker writes as the server layer does, one take of the output per tick until all is out."""

    def __init__(self, broker: Broker, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.broker = broker
        self.connection = Connection(broker, peer, lambda: None)
        self.reader = FrameReader(_READER_FRAME_MAX)
        self.received = bytearray()  # every byte the broker wrote to us, in order
        self.inbox: list[tuple[int, Any]] = []  # (channel, method or Content or ("protocol-header", bytes))
        self._assembling: dict[int, _Assembling] = {}

    # --- sending -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.connection.data_received(data)
        self._collect()

    def method(self, channel: int, method: spec.Method) -> None:
        self.send(method_frame(channel, method))

    def call(self, channel: int, method: spec.Method, reply: type[M]) -> M:
        """Send a synchronous method and return its reply (AssertionError if none came)."""
        self.method(channel, method)
        got: M = self.expect(reply)
        return got

    def publish(
        self,
        channel: int,
        body: bytes,
        exchange: str = "",
        routing_key: str = "",
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        self.send(publish_frames(channel, body, exchange, routing_key, properties, mandatory))

    # --- receiving ---------------------------------------------------------------------------

    def _collect(self) -> None:
        data = b""
        while self.connection.output:
            data += self.connection.take_output()
            self.connection.output_written()
        if not data:
            return
        if not self.received and data.startswith(b"AMQP"):
            # A protocol header back: the broker's answer to one it does not speak.
            self.inbox.append((0, ("protocol-header", data[:8])))
            self.received += data[:8]
            data = data[8:]
        self.received += data
        for frame_type, channel, payload in self.reader.feed(data):
            self._frame(frame_type, channel, payload)

    def _frame(self, frame_type: int, channel: int, payload: Any) -> None:
        if frame_type == spec.FRAME_METHOD:
            method = spec.decode_method(payload)
            if method.HAS_CONTENT:
                self._assembling[channel] = _Assembling(method)
            else:
                self.inbox.append((channel, method))
        elif frame_type == spec.FRAME_HEADER:
            parts = self._assembling[channel]
            _class, parts.size, raw = spec.decode_content_header(payload)
            parts.properties = spec.BasicProperties.decode(raw)
            if parts.size == 0:
                self._content_done(channel)
        elif frame_type == spec.FRAME_BODY:
            parts = self._assembling[channel]
            parts.body += bytes(payload)
            if len(parts.body) >= parts.size:
                self._content_done(channel)

    def _content_done(self, channel: int) -> None:
        parts = self._assembling.pop(channel)
        assert parts.properties is not None
        self.inbox.append((channel, Content(parts.method, parts.properties, parts.body)))

    def take(self) -> list[tuple[int, Any]]:
        """Everything received since the last take (output may come from timers, too)."""
        self._collect()
        got, self.inbox = self.inbox, []
        return got

    def expect(self, kind: type | UnionType) -> Any:
        """The first received item of a type (a method class, or Content, or the method class of
        a Content), removed from the inbox."""
        self._collect()
        for index, (_channel, item) in enumerate(self.inbox):
            if isinstance(item, kind) or (isinstance(item, Content) and isinstance(item.method, kind)):
                del self.inbox[index]
                return item
        raise AssertionError(f"no {kind} in {self.inbox}")

    def received_of(self, kind: type | UnionType, channel: int | None = None) -> list[Any]:
        """Every received item of a type (on one channel, or any), removed from the inbox."""
        self._collect()
        taken = [
            item
            for ch, item in self.inbox
            if (channel is None or ch == channel)
            and (isinstance(item, kind) or (isinstance(item, Content) and isinstance(item.method, kind)))
        ]
        self.inbox = [entry for entry in self.inbox if not any(entry[1] is item for item in taken)]
        return taken

    def deliveries(self, channel: int | None = None) -> list[Content]:
        """The basic.deliver messages received (on one channel, or any), removed from the inbox."""
        return self.received_of(spec.BasicDeliver, channel)

    def confirms(self, channel: int = 1) -> list[tuple[str, int, bool]]:
        """Publisher confirms received on a channel, as ("ack" or "nack", delivery_tag, multiple)."""
        return [
            ("ack" if isinstance(item, spec.BasicAck) else "nack", item.delivery_tag, item.multiple)
            for item in self.received_of(spec.BasicAck | spec.BasicNack, channel)
        ]

    # --- conversations -----------------------------------------------------------------------

    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> None:
        self.send(PROTOCOL_HEADER)
        self.expect(spec.ConnectionStart)
        response = f"\0{user}\0{password}".encode()
        self.method(
            0,
            spec.ConnectionStartOk(
                client_properties={"capabilities": {"consumer_cancel_notify": True}},
                mechanism="PLAIN",
                response=response,
            ),
        )
        tune = self.expect(spec.ConnectionTune)
        self.method(0, spec.ConnectionTuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0))
        self.call(0, spec.ConnectionOpen(virtual_host=vhost), spec.ConnectionOpenOk)

    def open_channel(self, channel: int = 1) -> None:
        self.call(channel, spec.ChannelOpen(), spec.ChannelOpenOk)

    def declare_queue(self, name: str, channel: int = 1, durable: bool = False, **arguments: Any) -> str:
        """queue.declare with x-arguments (``**{"x-message-ttl": 100}``); the queue's name."""
        ok = self.call(
            channel,
            spec.QueueDeclare(queue=name, durable=durable, arguments=arguments or {}),
            spec.QueueDeclareOk,
        )
        return str(ok.queue)

    def declare_exchange(self, name: str, type: str = "direct", channel: int = 1, **arguments: Any) -> None:
        declare = spec.ExchangeDeclare(exchange=name, type=type, arguments=arguments or {})
        self.call(channel, declare, spec.ExchangeDeclareOk)

    def bind(self, queue: str, exchange: str, routing_key: str = "", channel: int = 1) -> None:
        self.call(channel, spec.QueueBind(queue=queue, exchange=exchange, routing_key=routing_key), spec.QueueBindOk)

    def qos(self, prefetch_count: int, channel: int = 1) -> None:
        self.call(channel, spec.BasicQos(prefetch_count=prefetch_count), spec.BasicQosOk)

    def consume(
        self, queue: str, tag: str, channel: int = 1, no_ack: bool = False, **arguments: Any
    ) -> None:
        ok = self.call(
            channel,
            spec.BasicConsume(queue=queue, consumer_tag=tag, no_ack=no_ack, arguments=arguments or {}),
            spec.BasicConsumeOk,
        )
        assert ok.consumer_tag == tag

    def get(self, queue: str, channel: int = 1, no_ack: bool = False) -> Content | None:
        """basic.get: the message, or None for basic.get-empty."""
        self.method(channel, spec.BasicGet(queue=queue, no_ack=no_ack))
        for index, (ch, item) in enumerate(self.inbox):
            got = isinstance(item, Content) and isinstance(item.method, spec.BasicGetOk)
            if ch == channel and (got or isinstance(item, spec.BasicGetEmpty)):
                del self.inbox[index]
                return item if got else None
        raise AssertionError(f"no answer to basic.get in {self.inbox}")

    def get_bodies(self, queue: str, channel: int = 1) -> list[bytes]:
        """Every message left in a queue, taken with basic.get and no_ack."""
        bodies = []
        while (got := self.get(queue, channel, no_ack=True)) is not None:
            bodies.append(got.body)
        return bodies

    def ack(self, delivery_tag: int, multiple: bool = False, channel: int = 1) -> None:
        self.method(channel, spec.BasicAck(delivery_tag=delivery_tag, multiple=multiple))

    def reject(self, delivery_tag: int, requeue: bool = False, channel: int = 1) -> None:
        self.method(channel, spec.BasicReject(delivery_tag=delivery_tag, requeue=requeue))

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = False, channel: int = 1) -> None:
        self.method(channel, spec.BasicNack(delivery_tag=delivery_tag, multiple=multiple, requeue=requeue))

    def channel_closed(self, channel: int = 1) -> spec.ChannelClose:
        """The channel.close the broker sent (answered with close-ok, so the channel can reopen)."""
        close: spec.ChannelClose = self.expect(spec.ChannelClose)
        self.method(channel, spec.ChannelCloseOk())
        return close

    def connection_closed(self) -> spec.ConnectionClose:
        """The connection.close the broker sent, answered with close-ok."""
        close: spec.ConnectionClose = self.expect(spec.ConnectionClose)
        self.method(0, spec.ConnectionCloseOk())
        return close

    # --- the loop ----------------------------------------------------------------------------

    def tick(self, trickle: bool = False) -> None:
        """What the server does when the event loop goes round (or, with ``trickle``, when the
        credit-flow retry timer fires): credit again, and frames held for lack of it go on."""
        self.connection.grant_credit(trickle)
        self.connection.release_held()
        self._collect()

    def disconnect(self) -> None:
        """The socket is gone (what the server layer calls when the peer goes away)."""
        self.connection.connection_lost()


class ModelBroker:
    """One broker on a manual clock, and as many model clients on it as a test wants."""

    def __init__(self, config: Config | None = None) -> None:
        self.clock = ManualScheduler()
        self.broker = Broker(config, scheduler=self.clock)
        self.clients: list[ModelClient] = []

    def client(
        self, channel: int | None = 1, user: str = "guest", password: str = "guest", vhost: str = "/"
    ) -> ModelClient:
        """A new client, logged in, with ``channel`` open (none if None)."""
        client = self.connect()
        client.handshake(user, password, vhost)
        if channel is not None:
            client.open_channel(channel)
        return client

    def connect(self) -> ModelClient:
        """A new client that has sent nothing yet."""
        client = ModelClient(self.broker, peer=("127.0.0.1", 40000 + len(self.clients)))
        self.clients.append(client)
        return client

    def advance(self, seconds: float) -> None:
        """Move the clock on: timers that fall due run, in order."""
        self.clock.advance(seconds)

    def tick(self, trickle: bool = False) -> None:
        """One turn of the event loop for every client."""
        for client in self.clients:
            client.tick(trickle)

    def queue(self, name: str, vhost: str = "/") -> Queue:
        return self.broker.vhosts[vhost].queues[name]

    def has_queue(self, name: str, vhost: str = "/") -> bool:
        return name in self.broker.vhosts[vhost].queues
