"""Drive a sans-IO Connection with no sockets: a fake client that speaks frames to it.

broker = Broker(scheduler=ManualScheduler())
client = Client(broker)
client.handshake()
client.call(1, spec.ChannelOpen())
"""

from __future__ import annotations

from typing import Any

from lapine.amqp import spec
from lapine.amqp.frames import PROTOCOL_HEADER, FrameReader, encode_frame, method_frame
from lapine.broker.broker import Broker
from lapine.broker.connection import Connection


class Client:
    def __init__(self, broker: Broker, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.broker = broker
        self.connection = Connection(broker, peer, lambda: None)
        self.reader = FrameReader(1 << 20)
        self.inbox: list[tuple[int, Any]] = []  # (channel, method or ("content", props, body))

    # --- sending -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.connection.data_received(data)
        self._collect()

    def method(self, channel: int, method: spec.Method) -> None:
        self.send(method_frame(channel, method))

    def publish(
        self,
        channel: int,
        body: bytes,
        exchange: str = "",
        routing_key: str = "",
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        raw = (properties or spec.BasicProperties()).encode()
        self.send(
            method_frame(channel, spec.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory))
            + encode_frame(spec.FRAME_HEADER, channel, spec.encode_content_header(60, len(body), raw))
            + (encode_frame(spec.FRAME_BODY, channel, body) if body else b"")
        )

    # --- receiving ---------------------------------------------------------------------------

    def _collect(self) -> None:
        data = b""
        while self.connection.output:  # as the server does, one write per tick until all is out
            data += self.connection.take_output()
            self.connection.output_written()
        if not data:
            return
        if data.startswith(b"AMQP"):
            self.inbox.append((0, ("protocol-header", data[:8])))
            data = data[8:]
        pending: dict[int, list[Any]] = {}
        for frame_type, channel, payload in self.reader.feed(data):
            if frame_type == spec.FRAME_METHOD:
                method = spec.decode_method(payload)
                if method.HAS_CONTENT:
                    pending[channel] = [method, None, b"", 0]
                else:
                    self.inbox.append((channel, method))
            elif frame_type == spec.FRAME_HEADER:
                _class, size, raw = spec.decode_content_header(payload)
                pending[channel][1] = spec.BasicProperties.decode(raw)
                pending[channel][3] = size
                if size == 0:
                    self._deliver(channel, pending.pop(channel))
            elif frame_type == spec.FRAME_BODY:
                pending[channel][2] += bytes(payload)
                if len(pending[channel][2]) >= pending[channel][3]:
                    self._deliver(channel, pending.pop(channel))

    def _deliver(self, channel: int, parts: list[Any]) -> None:
        method, properties, body, _size = parts
        self.inbox.append((channel, Content(method, properties, body)))

    def take(self) -> list[tuple[int, Any]]:
        self._collect()  # output may come from timers as well as from what we sent
        got, self.inbox = self.inbox, []
        return got

    def expect(self, kind: type) -> Any:
        """The first received item of a type (a method class or Content), removed from the inbox."""
        self._collect()
        for index, (_channel, item) in enumerate(self.inbox):
            if isinstance(item, kind) or (isinstance(item, Content) and isinstance(item.method, kind)):
                del self.inbox[index]
                return item
        raise AssertionError(f"no {kind.__name__} in {self.inbox}")

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
        self.method(0, spec.ConnectionOpen(virtual_host=vhost))
        self.expect(spec.ConnectionOpenOk)

    def open_channel(self, channel: int = 1) -> None:
        self.method(channel, spec.ChannelOpen())
        self.expect(spec.ChannelOpenOk)


class Content:
    """A content-carrying method as the client sees it: method, decoded properties, body."""

    def __init__(self, method: spec.Method, properties: spec.BasicProperties, body: bytes) -> None:
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self) -> str:
        return f"Content({self.method!r}, {self.body!r})"
