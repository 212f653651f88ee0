"""MQTT 5 properties: the identifier table and their encoding (a length-prefixed list of id, value)."""

from __future__ import annotations

import struct
from typing import Any

from lapine.mqtt.errors import MalformedPacket

BYTE, U16, U32, VARINT, STRING, BINARY, PAIR = range(7)

# id -> (name, type), from the MQTT 5.0 spec, section 2.2.2.2.
PROPERTIES: dict[int, tuple[str, int]] = {
    0x01: ("payload_format_indicator", BYTE),
    0x02: ("message_expiry_interval", U32),
    0x03: ("content_type", STRING),
    0x08: ("response_topic", STRING),
    0x09: ("correlation_data", BINARY),
    0x0B: ("subscription_identifier", VARINT),
    0x11: ("session_expiry_interval", U32),
    0x12: ("assigned_client_identifier", STRING),
    0x13: ("server_keep_alive", U16),
    0x15: ("authentication_method", STRING),
    0x16: ("authentication_data", BINARY),
    0x17: ("request_problem_information", BYTE),
    0x18: ("will_delay_interval", U32),
    0x19: ("request_response_information", BYTE),
    0x1A: ("response_information", STRING),
    0x1C: ("server_reference", STRING),
    0x1F: ("reason_string", STRING),
    0x21: ("receive_maximum", U16),
    0x22: ("topic_alias_maximum", U16),
    0x23: ("topic_alias", U16),
    0x24: ("maximum_qos", BYTE),
    0x25: ("retain_available", BYTE),
    0x26: ("user_property", PAIR),
    0x27: ("maximum_packet_size", U32),
    0x28: ("wildcard_subscription_available", BYTE),
    0x29: ("subscription_identifier_available", BYTE),
    0x2A: ("shared_subscription_available", BYTE),
}
IDS = {name: (ident, kind) for ident, (name, kind) in PROPERTIES.items()}
# The two properties that may appear more than once; they decode to lists.
REPEATABLE = frozenset({"user_property", "subscription_identifier"})


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A variable byte integer (at most four bytes) at ``pos``: (value, position after it)."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= len(buf):
            raise MalformedPacket("truncated variable byte integer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise MalformedPacket("malformed variable byte integer")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_string(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = decode_binary(buf, pos)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("invalid UTF-8 string") from None
    if "\x00" in text:
        raise MalformedPacket("UTF-8 string contains U+0000")
    return text, pos


def decode_binary(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(buf):
        raise MalformedPacket("truncated length")
    size = (buf[pos] << 8) | buf[pos + 1]
    end = pos + 2 + size
    if end > len(buf):
        raise MalformedPacket("truncated string")
    return bytes(buf[pos + 2 : end]), end


def encode_string(text: str) -> bytes:
    return encode_binary(text.encode("utf-8"))


def encode_binary(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def decode_properties(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """The property list at ``pos`` (its varint length first): (properties, position after)."""
    length, pos = decode_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise MalformedPacket("truncated properties")
    found: dict[str, Any] = {}
    while pos < end:
        ident, pos = decode_varint(buf, pos)
        entry = PROPERTIES.get(ident)
        if entry is None:
            raise MalformedPacket(f"unknown property identifier {ident:#x}")
        name, kind = entry
        value, pos = _decode_value(buf, pos, kind)
        if pos > end:
            raise MalformedPacket("property runs past the property length")
        if name in REPEATABLE:
            found.setdefault(name, []).append(value)
        elif name in found:
            raise MalformedPacket(f"property {name} appears twice")
        else:
            found[name] = value
    return found, end


def _decode_value(buf: bytes, pos: int, kind: int) -> tuple[Any, int]:
    if kind == BYTE:
        if pos >= len(buf):
            raise MalformedPacket("truncated property")
        return buf[pos], pos + 1
    if kind == U16:
        if pos + 2 > len(buf):
            raise MalformedPacket("truncated property")
        return struct.unpack_from(">H", buf, pos)[0], pos + 2
    if kind == U32:
        if pos + 4 > len(buf):
            raise MalformedPacket("truncated property")
        return struct.unpack_from(">I", buf, pos)[0], pos + 4
    if kind == VARINT:
        return decode_varint(buf, pos)
    if kind == STRING:
        return decode_string(buf, pos)
    if kind == BINARY:
        return decode_binary(buf, pos)
    key, pos = decode_string(buf, pos)
    value, pos = decode_string(buf, pos)
    return (key, value), pos


def encode_properties(properties: dict[str, Any]) -> bytes:
    """The property list with its varint length; names not in the table are an error."""
    out = bytearray()
    for name, value in properties.items():
        ident, kind = IDS[name]
        values = value if name in REPEATABLE else [value]
        for one in values:
            out += encode_varint(ident)
            out += _encode_value(one, kind)
    return encode_varint(len(out)) + bytes(out)


def _encode_value(value: Any, kind: int) -> bytes:
    if kind == BYTE:
        return bytes([value])
    if kind == U16:
        return struct.pack(">H", value)
    if kind == U32:
        return struct.pack(">I", value)
    if kind == VARINT:
        return encode_varint(value)
    if kind == STRING:
        return encode_string(value)
    if kind == BINARY:
        return encode_binary(value)
    return encode_string(value[0]) + encode_string(value[1])
