"""The headers a stream reads and writes on a message's raw content header.

Every message a stream delivers carries its offset in the ``x-stream-offset`` header (a long, as
RabbitMQ sends it). The offset is known when the message is appended, so the header is spliced
into the raw properties once then, and every delivery sends those bytes unchanged.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from lapine.amqp.spec import BasicProperties

if TYPE_CHECKING:
    from lapine.broker.message import Message

OFFSET_HEADER = "x-stream-offset"
FILTER_VALUE_HEADER = "x-stream-filter-value"
_OFFSET_FIELD = b"\x0f" + OFFSET_HEADER.encode() + b"l"
_HEADERS_FLAG = 0x2000
_SHORTSTR_FLAGS = (0x8000, 0x4000)  # content-type and content-encoding come before headers
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")


def with_offset(header_payload: bytes, offset: int) -> bytes:
    """The content header with ``x-stream-offset: offset`` added to its headers table."""
    flags = (header_payload[12] << 8) | header_payload[13]
    field = _OFFSET_FIELD + _I64.pack(offset)
    pos = 14
    for flag in _SHORTSTR_FLAGS:
        if flags & flag:
            pos += 1 + header_payload[pos]
    if not flags & _HEADERS_FLAG:
        flags |= _HEADERS_FLAG
        return (
            header_payload[:12]
            + bytes(((flags >> 8) & 0xFF, flags & 0xFF))
            + header_payload[14:pos]
            + _U32.pack(len(field))
            + field
            + header_payload[pos:]
        )
    size = _U32.unpack_from(header_payload, pos)[0]
    end = pos + 4 + size
    if OFFSET_HEADER.encode() in header_payload[pos:end]:
        # The publisher set one itself: the stream's offset replaces it.
        properties = BasicProperties.decode(header_payload, 12)
        properties.headers = {**(properties.headers or {}), OFFSET_HEADER: offset}
        encoded = properties.encode()
        return with_long_offset(header_payload[:12] + encoded, offset)
    return (
        header_payload[:pos]
        + _U32.pack(size + len(field))
        + header_payload[pos + 4 : end]
        + field
        + header_payload[end:]
    )


def with_long_offset(header_payload: bytes, offset: int) -> bytes:
    """Re-encoded properties write a small offset as a signed int: make it a long, as RabbitMQ's."""
    short = b"\x0f" + OFFSET_HEADER.encode() + b"I" + struct.pack(">i", offset) if offset < 2**31 else None
    if short is None or short not in header_payload:
        return header_payload
    flags = (header_payload[12] << 8) | header_payload[13]
    pos = 14
    for flag in _SHORTSTR_FLAGS:
        if flags & flag:
            pos += 1 + header_payload[pos]
    size = _U32.unpack_from(header_payload, pos)[0]
    table = header_payload[pos + 4 : pos + 4 + size].replace(short, _OFFSET_FIELD + _I64.pack(offset))
    return header_payload[:pos] + _U32.pack(len(table)) + table + header_payload[pos + 4 + size :]


def filter_value(message: Message) -> bytes | None:
    """The message's x-stream-filter-value (a string), if it has one (properties decoded only then)."""
    if FILTER_VALUE_HEADER.encode() not in message.header_payload:
        return None
    value = (message.properties.headers or {}).get(FILTER_VALUE_HEADER)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return value
    return None
