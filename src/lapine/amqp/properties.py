"""The check a content header's property list gets at publish, before anything is enqueued.

The broker keeps the content header as the bytes it arrived in and hands them on unchanged, so a
header whose flags promise fields that are not there (or a headers table that does not parse)
would reach every consumer, and kill the clients that decode it. RabbitMQ decodes the properties
of every publish and closes the connection when they do not parse; :func:`properties_are_valid`
accepts and refuses what RabbitMQ 3.10's decoder does (measured with raw-socket probes), but only
walks the bytes: no value is built.

What RabbitMQ refuses: a field the flags promise that is missing or runs past the end, bytes left
over after the last field, a table or array entry that does not fit its container, an unknown
field type letter, and NaN or infinite floats (Erlang has no such floats). What it lets through,
and so do we: the reserved flag bit 0x0002, malformed UTF-8 in shortstrs and table keys, any
64-bit timestamp. One difference, on purpose: RabbitMQ ignores the continuation bit 0x0001 and
reads no second flag word, where pika (and our full decoder) read one, so the same bytes mean
different properties to the broker and to its consumers (a lone 0x0001 kills a pika consumer);
no client sets it, since the basic class has only 14 properties, and it is refused here.
"""

from __future__ import annotations

import struct

from lapine.amqp.codec import MAX_TABLE_DEPTH, erlang_binary, rabbit_reply_text
from lapine.amqp.constants import INTERNAL_ERROR
from lapine.amqp.errors import FrameError

__all__ = ["malformed_properties", "properties_are_valid"]


# The basic class's 14 properties by flag bit, as walk steps: the octets of a fixed-size field,
# or _SHORTSTR (length octet, then that many), or _TABLE.
_SHORTSTR, _TABLE = 0, -1
_PROPERTY_STEPS = (
    (0x8000, _SHORTSTR),  # content-type
    (0x4000, _SHORTSTR),  # content-encoding
    (0x2000, _TABLE),  # headers
    (0x1000, 1),  # delivery-mode
    (0x0800, 1),  # priority
    (0x0400, _SHORTSTR),  # correlation-id
    (0x0200, _SHORTSTR),  # reply-to
    (0x0100, _SHORTSTR),  # expiration
    (0x0080, _SHORTSTR),  # message-id
    (0x0040, 8),  # timestamp
    (0x0020, _SHORTSTR),  # type
    (0x0010, _SHORTSTR),  # user-id
    (0x0008, _SHORTSTR),  # app-id
    (0x0004, _SHORTSTR),  # cluster-id
)
_CONTINUATION = 0x0001
_PROPERTIES_AT = 14  # after class id, weight, body size (12 octets) and the flags

# The steps for one flag word, worked out once per distinct word: adjacent fixed-size fields
# merge into one step. At most 2**15 words exist (bit 0 clear), so the cache is bounded.
_plans: dict[int, tuple[int, ...]] = {}

# What a field value's type letter says about its size (RabbitMQ's letters, see codec.py): the
# octets of a fixed-size value, or one of the negative codes below.
_LONG, _NESTED_TABLE, _ARRAY, _DOUBLE, _FLOAT, _UNKNOWN = -1, -2, -3, -4, -5, -6
_VALUE_SIZE = [_UNKNOWN] * 256
for _letters, _size in ((b"tbB", 1), (b"su", 2), (b"Ii", 4), (b"lLT", 8), (b"D", 5), (b"V", 0), (b"Sx", _LONG)):
    for _letter in _letters:
        _VALUE_SIZE[_letter] = _size
_VALUE_SIZE[ord("F")], _VALUE_SIZE[ord("A")] = _NESTED_TABLE, _ARRAY
_VALUE_SIZE[ord("d")], _VALUE_SIZE[ord("f")] = _DOUBLE, _FLOAT
_SIZE_OF = tuple(_VALUE_SIZE)
_u32_from = struct.Struct(">I").unpack_from


class _Malformed(Exception):
    """Internal: the walk found a value that does not parse."""


def properties_are_valid(header_payload: bytes) -> bool:
    """Would RabbitMQ decode this content-header payload's property list (flags onward)?"""
    end = len(header_payload)
    try:
        flags = header_payload[12] << 8 | header_payload[13]
    except IndexError:
        return False
    if flags & _CONTINUATION:
        return False
    plan = _plans.get(flags)
    if plan is None:
        plan = _plans[flags] = _plan(flags)
    pos = _PROPERTIES_AT
    try:
        for step in plan:
            if step > 0:
                pos += step
            elif step == _SHORTSTR:
                pos += 1 + header_payload[pos]
            else:
                pos = _table_end(header_payload, pos, end, 0)
    except (IndexError, struct.error, _Malformed):
        return False
    return pos == end


def _plan(flags: int) -> tuple[int, ...]:
    steps: list[int] = []
    for bit, step in _PROPERTY_STEPS:
        if flags & bit:
            if step > 0 and steps and steps[-1] > 0:
                steps[-1] += step
            else:
                steps.append(step)
    return tuple(steps)


def _sized_end(buf: bytes, pos: int, limit: int) -> int:
    """The end of the long-size-prefixed value at ``pos``, which must end by ``limit``."""
    stop = pos + 4 + _u32_from(buf, pos)[0]
    if pos + 4 > limit or stop > limit:
        raise _Malformed
    return stop


# The walks below only ever move forward, so a value running past its container is caught once,
# when the walk of the container does not end exactly at its end.


def _table_end(buf: bytes, pos: int, limit: int, depth: int) -> int:
    """The end of the field table at ``pos``; keys are any octets, as RabbitMQ takes them."""
    stop = _sized_end(buf, pos, limit)
    pos += 4
    size_of = _SIZE_OF
    # The value step is written out here and in _array_end, not called: it runs once per field.
    while pos < stop:
        pos += 1 + buf[pos]
        if pos >= stop:
            raise _Malformed
        size = size_of[buf[pos]]
        pos += 1
        if size >= 0:
            pos += size
        elif size == _LONG:
            pos += 4 + _u32_from(buf, pos)[0]
        else:
            pos = _other_end(buf, pos, size, stop, depth)
    if pos != stop:
        raise _Malformed
    return stop


def _array_end(buf: bytes, pos: int, limit: int, depth: int) -> int:
    stop = _sized_end(buf, pos, limit)
    pos += 4
    size_of = _SIZE_OF
    while pos < stop:
        size = size_of[buf[pos]]
        pos += 1
        if size >= 0:
            pos += size
        elif size == _LONG:
            pos += 4 + _u32_from(buf, pos)[0]
        else:
            pos = _other_end(buf, pos, size, stop, depth)
    if pos != stop:
        raise _Malformed
    return stop


def _other_end(buf: bytes, pos: int, size: int, stop: int, depth: int) -> int:
    """The end of a nested table, an array or a float at ``pos`` (after the type letter)."""
    if size in (_NESTED_TABLE, _ARRAY):
        if depth + 1 >= MAX_TABLE_DEPTH:
            raise _Malformed
        walk = _table_end if size == _NESTED_TABLE else _array_end
        return walk(buf, pos, stop, depth + 1)
    # All exponent bits set: NaN or an infinity, which Erlang's decoder does not match.
    if size == _DOUBLE:
        if buf[pos] & 0x7F == 0x7F and buf[pos + 1] & 0xF0 == 0xF0:
            raise _Malformed
        return pos + 8
    if size == _FLOAT:
        if buf[pos] & 0x7F == 0x7F and buf[pos + 1] & 0x80:
            raise _Malformed
        return pos + 4
    raise _Malformed


def malformed_properties(header_payload: bytes) -> FrameError:
    """RabbitMQ's answer to a property list it cannot decode: 541, and the connection closes.

    RabbitMQ's own text is the bare code name; ours adds the bytes, as the lazy decoder's does.
    """
    text = "cannot decode content properties " + erlang_binary(header_payload[12:], pretty=False)
    return FrameError(INTERNAL_ERROR, rabbit_reply_text(INTERNAL_ERROR, text))
