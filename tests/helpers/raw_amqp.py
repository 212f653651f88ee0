"""A tiny AMQP 0-9-1 client on a bare socket, for tests that real clients cannot express.

pika refuses to send malformed frames, wrong protocol headers, AMQPLAIN logins, ``immediate=true``
publishes or methods on channels it has not opened; these tests need to. Framing is done here with
``struct``; method arguments are (de)serialised with ``pika.spec`` so that the bytes on the wire
are exactly what a real client would send.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pika.amqp_object
import pika.data
import pika.spec

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


class ConnectionClosedError(Exception):
    """The broker closed the TCP connection."""


@dataclass
class Frame:
    type: int
    channel: int
    payload: bytes

    def method(self) -> pika.amqp_object.Method:
        assert self.type == FRAME_METHOD, f"not a method frame: {self}"
        (method_id,) = struct.unpack_from(">I", self.payload, 0)
        method: pika.amqp_object.Method = pika.spec.methods[method_id]()
        method.decode(self.payload, 4)
        return method


def parse_url(url: str) -> tuple[str, int, str, str, str]:
    """``amqp://user:pass@host:port/vhost`` -> (host, port, user, password, vhost)."""
    parts = urllib.parse.urlsplit(url)
    vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return (
        parts.hostname or "localhost",
        parts.port or 5672,
        urllib.parse.unquote(parts.username or "guest"),
        urllib.parse.unquote(parts.password or "guest"),
        vhost,
    )


def amqplain_response(user: str, password: str) -> bytes:
    """An AMQPLAIN response: a field table *without* its length prefix (LOGIN and PASSWORD)."""
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, {"LOGIN": user, "PASSWORD": password})
    return b"".join(pieces)[4:]


class RawAMQP:
    """One socket to the broker, with helpers to speak (and mis-speak) AMQP 0-9-1."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.host, self.port, self.user, self.password, self.vhost = parse_url(url)
        self.timeout = timeout
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.frame_max = 131072

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> RawAMQP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- bytes ---------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, frame_type: int, channel: int, payload: bytes, frame_end: int = FRAME_END) -> None:
        self.send(struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([frame_end]))

    def send_method(self, channel: int, method: pika.amqp_object.Method) -> None:
        payload = struct.pack(">I", method.INDEX) + b"".join(method.encode())
        self.send_frame(FRAME_METHOD, channel, payload)

    def send_content(
        self,
        channel: int,
        body: bytes,
        properties: pika.spec.BasicProperties | None = None,
        class_id: int = 60,
    ) -> None:
        props = b"".join((properties or pika.spec.BasicProperties()).encode())
        self.send_frame(FRAME_HEADER, channel, struct.pack(">HHQ", class_id, 0, len(body)) + props)
        step = self.frame_max - 8
        for start in range(0, len(body), step):
            self.send_frame(FRAME_BODY, channel, body[start : start + step])

    def send_heartbeat(self) -> None:
        self.send_frame(FRAME_HEARTBEAT, 0, b"")

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the broker")
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise TimeoutError("no data from the broker")
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError as exc:
            raise ConnectionClosedError("connection reset") from exc
        if not chunk:
            raise ConnectionClosedError("connection closed by the broker")
        self._buf += chunk

    def recv_bytes(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._buf) < n:
            self._fill(deadline)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def recv_frame(self, timeout: float | None = None) -> Frame:
        header = self.recv_bytes(7, timeout)
        frame_type, channel, size = struct.unpack(">BHI", header)
        rest = self.recv_bytes(size + 1, timeout)
        assert rest[-1] == FRAME_END, f"bad frame end from the broker: {rest[-1]:#x}"
        return Frame(frame_type, channel, rest[:-1])

    def recv_method(self, timeout: float | None = None) -> tuple[int, pika.amqp_object.Method]:
        """The next method frame (heartbeats and content frames are skipped)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if frame.type == FRAME_METHOD:
                return frame.channel, frame.method()

    def expect(self, method_type: type[Any], timeout: float | None = None) -> Any:
        _channel, method = self.recv_method(timeout)
        assert isinstance(method, method_type), f"expected {method_type.__name__}, got {method!r}"
        return method

    def wait_closed(self, timeout: float = 5.0) -> bytes:
        """Read until the broker closes the socket; returns the bytes it sent before closing."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except ConnectionClosedError:
                data, self._buf = self._buf, b""
                return data

    def is_closed_by_broker(self, timeout: float = 5.0) -> bool:
        try:
            self.wait_closed(timeout)
        except TimeoutError:
            return False
        return True

    # -- the protocol ----------------------------------------------------------------------
    def start(self, header: bytes = PROTOCOL_HEADER) -> pika.spec.Connection.Start:
        self.send(header)
        start: pika.spec.Connection.Start = self.expect(pika.spec.Connection.Start)
        return start

    def login(
        self,
        mechanism: str = "PLAIN",
        response: bytes | None = None,
        client_properties: dict[str, Any] | None = None,
    ) -> pika.spec.Connection.Tune:
        if response is None:
            if mechanism == "AMQPLAIN":
                response = amqplain_response(self.user, self.password)
            else:
                response = b"\x00" + self.user.encode() + b"\x00" + self.password.encode()
        props = client_properties if client_properties is not None else {"product": "raw_amqp"}
        start_ok = pika.spec.Connection.StartOk(
            client_properties=props,
            mechanism=mechanism,
            response=response,  # type: ignore[arg-type]  # pika encodes bytes as they are
        )
        self.send_method(0, start_ok)
        tune: pika.spec.Connection.Tune = self.expect(pika.spec.Connection.Tune)
        return tune

    def tune_and_open(
        self,
        tune: pika.spec.Connection.Tune,
        heartbeat: int | None = None,
        frame_max: int | None = None,
        channel_max: int | None = None,
    ) -> None:
        self.frame_max = frame_max if frame_max is not None else tune.frame_max
        self.send_method(
            0,
            pika.spec.Connection.TuneOk(
                channel_max=channel_max if channel_max is not None else tune.channel_max,
                frame_max=self.frame_max,
                heartbeat=heartbeat if heartbeat is not None else 0,
            ),
        )
        self.send_method(0, pika.spec.Connection.Open(virtual_host=self.vhost))
        self.expect(pika.spec.Connection.OpenOk)

    def handshake(self, heartbeat: int = 0, mechanism: str = "PLAIN") -> pika.spec.Connection.Tune:
        """Protocol header, start/start-ok, tune/tune-ok, open/open-ok."""
        self.start()
        tune = self.login(mechanism=mechanism)
        self.tune_and_open(tune, heartbeat=heartbeat)
        return tune

    def open_channel(self, channel: int = 1) -> None:
        self.send_method(channel, pika.spec.Channel.Open())
        self.expect(pika.spec.Channel.OpenOk)

    def expect_connection_close(self, timeout: float | None = None) -> pika.spec.Connection.Close:
        """Wait for connection.close (skipping anything else), answer close-ok."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            channel, method = self.recv_method(max(0.0, deadline - time.monotonic()))
            if isinstance(method, pika.spec.Connection.Close):
                assert channel == 0
                with contextlib.suppress(OSError):
                    self.send_method(0, pika.spec.Connection.CloseOk())
                return method

    def close_connection(self) -> None:
        self.send_method(0, pika.spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        self.expect(pika.spec.Connection.CloseOk)
        self.close()
