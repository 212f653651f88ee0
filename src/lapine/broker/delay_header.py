"""The ``x-delay`` header of a message, read and rewritten as rabbitmq_delayed_message_exchange does.

The plugin (rabbit_delayed_message_utils) takes the header's typed value: an integer type (long,
unsigned byte, short, unsigned short, int, unsigned int) as it is, a float or double truncated, a
string or byte array converted with binary_to_integer (a string that is not an integer crashes
the publishing channel, which RabbitMQ reports as 541 INTERNAL_ERROR). Any other type (signed
byte, bool, timestamp, decimal, table, array, void) means no delay. A message is held only when
the delay is in (0, 2**32 - 1]; otherwise it is routed at once.

When a held message is released the header becomes ``-delay`` as a long (RabbitMQ 4.x sets it as
an annotation, which the 0-9-1 rendering writes as a long and sorts the headers table by key), so
the message is not delayed again by a delayed exchange further on and its consumers can tell.
"""

from __future__ import annotations

import math
import re
import struct

from lapine.amqp.codec import decode_value
from lapine.amqp.constants import INTERNAL_ERROR
from lapine.amqp.errors import ConnectionError

# Erlang's largest timer, the plugin's upper bound on a delay (ms).
MAX_DELAY = 4294967295

_KEY = b"x-delay"
_HEADERS_FLAG = 0x2000
_SHORTSTR_FLAGS = (0x8000, 0x4000)  # content-type, content-encoding come before headers
_INTEGER_TYPES = frozenset(b"lLBsuIi")
_FLOAT_TYPES = frozenset(b"df")
_STRING_TYPES = frozenset(b"Sx")
# binary_to_integer: an optional sign, then decimal digits only.
_ERLANG_INTEGER = re.compile(rb"[+-]?[0-9]+\Z")
_I64 = struct.Struct(">q")


class ChannelCrash(ConnectionError):
    """What RabbitMQ answers when a channel process crashes: 541 and the bare name, no detail."""

    @property
    def reply_text(self) -> str:
        return "INTERNAL_ERROR"


def _headers_span(header: bytes) -> tuple[int, int] | None:
    """Where the headers table (its 4-byte size included) sits in a content-header payload."""
    if len(header) < 14:
        return None
    flags = (header[12] << 8) | header[13]
    if not flags & _HEADERS_FLAG:
        return None
    pos = 14
    for flag in _SHORTSTR_FLAGS:
        if flags & flag:
            pos += 1 + header[pos]
    size = int.from_bytes(header[pos : pos + 4], "big")
    return pos, pos + 4 + size


def _entries(header: bytes, span: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    """The headers table as (key, raw typed value) pairs, in their order."""
    start, end = span
    pos = start + 4
    entries = []
    while pos < end:
        length = header[pos]
        key = header[pos + 1 : pos + 1 + length]
        value_start = pos + 1 + length
        _value, pos = decode_value(header, value_start)
        entries.append((key, header[value_start:pos]))
    return entries


Parsed = tuple[tuple[int, int], list[tuple[bytes, bytes]]]  # the headers' span, and their entries


def parse(header: bytes) -> tuple[int | None, Parsed | None]:
    """The message's delay in ms as the plugin reads it (None when it has none it can use), and
    its headers as parsed, for ``released_header``."""
    if len(header) < 14 or not header[12] & 0x20 or _KEY not in header:
        return None, None
    span = _headers_span(header)
    if span is None:
        return None, None
    entries = _entries(header, span)
    for key, raw in entries:
        if key == _KEY:
            return _typed_delay(raw), (span, entries)
    return None, None


def _typed_delay(raw: bytes) -> int | None:
    kind = raw[0]
    value, _end = decode_value(raw, 0)
    if kind in _INTEGER_TYPES:
        return int(value)
    if kind in _FLOAT_TYPES:
        if math.isnan(value) or math.isinf(value):
            raise ChannelCrash(INTERNAL_ERROR, "x-delay is not a finite number")
        return math.trunc(value)
    if kind in _STRING_TYPES:
        text = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
        if _ERLANG_INTEGER.match(text) is None:
            raise ChannelCrash(INTERNAL_ERROR, "x-delay is not an integer")
        return int(text)
    return None


def is_held(delay: int | None) -> bool:
    return delay is not None and 0 < delay <= MAX_DELAY


def released_header(header: bytes, delay: int, parsed: Parsed) -> bytes:
    """The content header a released message carries: x-delay set to -delay (a long), and the
    headers table sorted by key with duplicates dropped, as RabbitMQ 4.x renders it."""
    span, found = parsed
    entries: dict[bytes, bytes] = {_KEY: b"l" + _I64.pack(-delay)}
    for key, raw in found:
        entries.setdefault(key, raw)
    table = b"".join(bytes([len(key)]) + key + raw for key, raw in sorted(entries.items()))
    start, end = span
    return header[:start] + len(table).to_bytes(4, "big") + table + header[end:]
