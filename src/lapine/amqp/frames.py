"""Frames: splitting the byte stream into frames, and writing frames, including the per-message hot paths.

A frame is ``type (octet) | channel (short) | size (long) | payload | 0xCE``. :class:`FrameReader`
turns received bytes into ``(type, channel, payload)`` tuples and checks what RabbitMQ's reader
checks (rabbit_reader.erl, handle_input/3 and handle_frame/4), with the same reply codes and
texts. The encoders build whole frames as one bytes object, ready for the transport.

The hot path is hand-written here rather than generated: :func:`decode_publish` reads a
basic.publish without building a method object, and :func:`encode_deliver_frames` writes
basic.deliver, the content header exactly as the publisher sent it, and the body, in one join.
"""

from __future__ import annotations

import struct

from lapine.amqp import spec
from lapine.amqp.codec import cannot_decode, frame_error_text
from lapine.amqp.constants import FRAME_ERROR
from lapine.amqp.errors import FrameError
from lapine.amqp.spec import Method

__all__ = [
    "HEARTBEAT_FRAME",
    "PROTOCOL_HEADER",
    "FrameReader",
    "FrameReaderError",
    "content_frames",
    "decode_publish",
    "encode_deliver_frames",
    "encode_frame",
    "method_frame",
]

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_FRAME_END = 206
_END = b"\xce"
# Frame types RabbitMQ's command assembler recognises; anything else is "unknown_frame".
_FRAME_TYPES = frozenset({1, 2, 3, 8})

_FRAME_HEADER = struct.Struct(">BHI")
_CONTENT_HEADER = struct.Struct(">HHQ")
# Frame end of the previous frame fused with the header of the next: one pack instead of two parts.
_END_AND_HEADER = struct.Struct(">BBHI")
# basic.deliver frame header and payload up to the consumer tag's length octet.
_DELIVER_HEAD = struct.Struct(">BHIHHB")
_DELIVER_CLASS, _DELIVER_METHOD = spec.BasicDeliver.IDS  # its class and method, in that head
_DELIVER_TAG = struct.Struct(">QBB")  # delivery tag, redelivered, exchange length
_SHORT_LENGTH = tuple(bytes((n,)) for n in range(256))
# Bound once: attribute lookups are a measurable share of a ~500 ns encode.
_deliver_head = _DELIVER_HEAD.pack
_deliver_tag = _DELIVER_TAG.pack
_end_and_header = _END_AND_HEADER.pack


class FrameReaderError(FrameError):
    """A FrameError from :meth:`FrameReader.feed`, with the frames that preceded the bad one.

    ``frames`` are the complete frames read from the same ``feed()`` call before the error:
    RabbitMQ acts on those before it closes the connection. ``fatal`` says the stream is out of
    sync (bad frame end, oversized frame): the reader raises again on every later call. When not
    fatal (a well-delimited frame of an unknown type) the bad frame is dropped and reading can go
    on, as RabbitMQ does while it waits for connection.close-ok.
    """

    def __init__(
        self,
        reply_code: int,
        text: str,
        frames: list[tuple[int, int, bytes]],
        fatal: bool,
    ) -> None:
        super().__init__(reply_code, text)
        self.frames = frames
        self.fatal = fatal


class FrameReader:
    """Buffers partial input and returns complete frames.

    ``frame_max`` is the largest payload accepted (0: no limit). Like RabbitMQ, a frame is refused
    as soon as its header announces more than that, before the payload arrives; and like
    RabbitMQ, a payload of up to ``frame_max`` octets is let through (the frame itself is then 8
    octets over), because many clients get the limit wrong by the frame overhead.
    """

    __slots__ = ("_fatal", "_need", "_pending", "frame_max")

    def __init__(self, frame_max: int = 131072) -> None:
        self.frame_max = frame_max
        self._pending = bytearray()
        # Octets the pending data must reach before parsing can make progress; a large frame
        # arriving in many small reads is then only appended to, not re-scanned each time.
        self._need = 0
        self._fatal: tuple[int, str] | None = None

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Add received bytes; return every frame now complete, as (type, channel, payload)."""
        if self._fatal is not None:
            raise FrameReaderError(*self._fatal, [], True)
        if self._pending:
            pending = self._pending
            pending += data
            if len(pending) < self._need:
                return []
            data = bytes(pending)
            pending.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        frames: list[tuple[int, int, bytes]] = []
        append = frames.append
        unpack = _FRAME_HEADER.unpack_from
        frame_max = self.frame_max
        total = len(data)
        pos = 0
        need = 7
        while total - pos >= 7:
            frame_type, channel, size = unpack(data, pos)
            if frame_max and size > frame_max:
                reason = ["frame_too_large", str(size), str(frame_max - 8)]
                self._fatal = (FRAME_ERROR, frame_error_text(frame_type, b"", reason))
                raise FrameReaderError(*self._fatal, frames, True)
            end = pos + 7 + size
            if end >= total:
                need = size + 8
                break
            payload = data[pos + 7 : end]
            if data[end] != _FRAME_END:
                reason = ["invalid_frame_end_marker", str(data[end])]
                self._fatal = (FRAME_ERROR, frame_error_text(frame_type, payload, reason))
                raise FrameReaderError(*self._fatal, frames, True)
            pos = end + 1
            if frame_type not in _FRAME_TYPES or (frame_type == 8 and size):
                self._keep(data, pos, 0)
                text = frame_error_text(frame_type, payload, "unknown_frame")
                raise FrameReaderError(FRAME_ERROR, text, frames, False)
            append((frame_type, channel, payload))
        if pos < total:
            self._keep(data, pos, need)
        return frames

    def _keep(self, data: bytes, pos: int, need: int) -> None:
        self._pending += memoryview(data)[pos:]
        self._need = need


# --- encoding ---------------------------------------------------------------------------------


def encode_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """One frame around ``payload``."""
    return b"".join((_FRAME_HEADER.pack(frame_type, channel, len(payload)), payload, _END))


def method_frame(channel: int, method: Method) -> bytes:
    """The method frame of ``method`` on ``channel``."""
    payload = method.encode()
    return b"".join((_FRAME_HEADER.pack(1, channel, len(payload)), payload, _END))


def content_frames(
    channel: int,
    method: Method,
    raw_properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """Method frame, content header of the method's class (``raw_properties``: flags onward), body
    frames, joined.

    Body frames carry at most ``frame_max - 8`` octets each (``frame_max`` 0: no limit); an
    empty body has no body frame.
    """
    payload = method.encode()
    parts: list[bytes | memoryview] = [
        _FRAME_HEADER.pack(1, channel, len(payload)),
        payload,
        _END_AND_HEADER.pack(_FRAME_END, 2, channel, 12 + len(raw_properties)),
        _CONTENT_HEADER.pack(method.CLASS_ID, 0, len(body)),
        raw_properties,
    ]
    _body_frames(parts, channel, body, frame_max)
    return b"".join(parts)


def _body_frames(parts: list[bytes | memoryview], channel: int, body: bytes, frame_max: int) -> None:
    """Append body frames to ``parts``, which ends just before a frame end octet."""
    size = len(body)
    if not size:
        parts.append(_END)
        return
    chunk = frame_max - 8 if frame_max else size
    if chunk < 1:
        raise ValueError(f"frame_max {frame_max} leaves no room for a body")
    if size <= chunk:
        parts.append(_END_AND_HEADER.pack(_FRAME_END, 3, channel, size))
        parts.append(body)
        parts.append(_END)
        return
    view = memoryview(body)
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        parts.append(_END_AND_HEADER.pack(_FRAME_END, 3, channel, len(piece)))
        parts.append(piece)
    parts.append(_END)


def encode_deliver_frames(
    channel: int,
    consumer_tag: bytes,
    delivery_tag: int,
    redelivered: bool,
    exchange: bytes,
    routing_key: bytes,
    raw_header_payload: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """basic.deliver + the content header payload as received on publish + body frames, joined.

    ``consumer_tag``, ``exchange`` and ``routing_key`` are the shortstrs' bytes (at most 255
    each, unchecked: they came off the wire as shortstrs or were made by the broker).
    """
    lct = len(consumer_tag)
    lex = len(exchange)
    lrk = len(routing_key)
    size = len(body)
    if size and (size <= frame_max - 8 or not frame_max):
        return b"".join((
            _deliver_head(1, channel, 16 + lct + lex + lrk, _DELIVER_CLASS, _DELIVER_METHOD, lct), consumer_tag,
            _deliver_tag(delivery_tag, redelivered, lex), exchange, _SHORT_LENGTH[lrk], routing_key,
            _end_and_header(_FRAME_END, 2, channel, len(raw_header_payload)), raw_header_payload,
            _end_and_header(_FRAME_END, 3, channel, size), body, _END,
        ))  # fmt: skip
    parts: list[bytes | memoryview] = [
        _deliver_head(1, channel, 16 + lct + lex + lrk, _DELIVER_CLASS, _DELIVER_METHOD, lct), consumer_tag,
        _deliver_tag(delivery_tag, redelivered, lex), exchange, _SHORT_LENGTH[lrk], routing_key,
        _end_and_header(_FRAME_END, 2, channel, len(raw_header_payload)), raw_header_payload,
    ]  # fmt: skip
    _body_frames(parts, channel, body, frame_max)
    return b"".join(parts)


def decode_publish(payload: memoryview | bytes) -> tuple[str, str, bool, bool]:
    """(exchange, routing key, mandatory, immediate) of a basic.publish method-frame payload.

    ``payload`` starts with the class and method ids, which the caller has already matched.
    Malformed arguments raise RabbitMQ's 501 ``cannot decode`` error; as in RabbitMQ the names
    are not checked for UTF-8 on this path (undecodable bytes survive as surrogate escapes).
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    try:
        ex_end = 7 + payload[6]
        rk_end = ex_end + 1 + payload[ex_end]
        bits = payload[rk_end]
    except IndexError:
        raise cannot_decode(payload[4:], *spec.BasicPublish.IDS) from None
    if rk_end + 1 != len(payload):
        raise cannot_decode(payload[4:], *spec.BasicPublish.IDS)
    try:
        # The strict codec with default arguments is the fastest call; names are nearly always UTF-8.
        exchange = payload[7:ex_end].decode()
        routing_key = payload[ex_end + 1 : rk_end].decode()
    except UnicodeDecodeError:
        exchange = payload[7:ex_end].decode("utf-8", "surrogateescape")
        routing_key = payload[ex_end + 1 : rk_end].decode("utf-8", "surrogateescape")
    return exchange, routing_key, (bits & 1) != 0, (bits & 2) != 0
