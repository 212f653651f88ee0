"""AMQP field values and tables, as RabbitMQ reads and writes them; and the texts it gives for bad input.

Field type letters are RabbitMQ's (rabbit_binary_parser.erl), not the 0-9-1 spec's list, which
disagrees with every broker in use: ``t`` bool, ``b``/``B`` signed/unsigned 8, ``s``/``u``
signed/unsigned 16, ``I``/``i`` signed/unsigned 32, ``l`` (and ``L``, read the same way) signed 64,
``f``/``d`` float/double, ``D`` decimal, ``S`` longstr, ``A`` array, ``T`` timestamp, ``F`` table,
``V`` void, ``x`` byte array.

Decoding never lets a Python error escape: truncated data, a length running past its container,
an unknown type letter or nesting deeper than :data:`MAX_TABLE_DEPTH` raise
:class:`~lapine.amqp.errors.FrameError` (501 FRAME_ERROR). Callers decoding method arguments turn
that into RabbitMQ's ``cannot decode <<...>>`` text (see :func:`cannot_decode`).
"""

from __future__ import annotations

import calendar
import datetime
import re
import struct
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from lapine.amqp.constants import FRAME_ERROR, REPLY_NAMES
from lapine.amqp.errors import FrameError

__all__ = [
    "MAX_TABLE_DEPTH",
    "LongStr",
    "Timestamp",
    "cannot_decode",
    "decode_array",
    "decode_shortstr_strict",
    "decode_table",
    "decode_value",
    "encode_array",
    "encode_longstr",
    "encode_shortstr",
    "encode_table",
    "encode_value",
    "erlang_binary",
    "frame_description",
    "frame_error_text",
    "rabbit_reply_text",
]


# RabbitMQ parses nested tables by plain recursion with no limit. Python's recursion limit is
# ~1000 frames and each level costs two, so a limit is needed; 128 levels is far beyond anything a
# client sends (x-death and federation headers nest 3 deep) and keeps the stack well clear.
MAX_TABLE_DEPTH = 128


class LongStr(bytes):
    """A longstr ('S') whose bytes are not valid UTF-8: kept as bytes, written back as 'S'."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"LongStr({bytes(self)!r})"


class Timestamp(int):
    """A timestamp ('T'), seconds since the epoch: an int that is written back as 'T'."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Timestamp({int(self)})"


_U8 = struct.Struct(">B")
_I8 = struct.Struct(">b")
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_DECIMAL = struct.Struct(">Bi")

_u32_from = _U32.unpack_from
_i32_from = _I32.unpack_from
_i64_from = _I64.unpack_from

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class _Malformed(Exception):
    """Internal: the reason a table could not be read; turned into FrameError at the boundary."""


# --- decoding ---------------------------------------------------------------------------------


def decode_table(buf: bytes | memoryview, offset: int) -> tuple[dict[str, Any], int]:
    """Read a field table (long size prefix, then entries) at ``offset``; return it and the next offset."""
    try:
        (size,) = _u32_from(buf, offset)
        start = offset + 4
        end = start + size
        if end > len(buf):
            raise _Malformed(f"table of {size} octets runs past the end of its buffer")
        return _table_body(buf, start, end, 0), end
    except _Malformed as exc:
        raise FrameError(FRAME_ERROR, str(exc)) from None
    except (struct.error, IndexError):
        raise FrameError(FRAME_ERROR, "truncated table") from None


def decode_array(buf: bytes | memoryview, offset: int) -> tuple[list[Any], int]:
    """Read a field array (long size prefix, then values) at ``offset``; return it and the next offset."""
    try:
        (size,) = _u32_from(buf, offset)
        start = offset + 4
        end = start + size
        if end > len(buf):
            raise _Malformed(f"array of {size} octets runs past the end of its buffer")
        return _array_body(buf, start, end, 0), end
    except _Malformed as exc:
        raise FrameError(FRAME_ERROR, str(exc)) from None
    except (struct.error, IndexError):
        raise FrameError(FRAME_ERROR, "truncated array") from None


def decode_value(buf: bytes | memoryview, offset: int) -> tuple[Any, int]:
    """Read one field value (type letter, then data) at ``offset``; return it and the next offset."""
    try:
        value, end = _value(buf, offset, len(buf), 0)
    except _Malformed as exc:
        raise FrameError(FRAME_ERROR, str(exc)) from None
    except (struct.error, IndexError):
        raise FrameError(FRAME_ERROR, "truncated field value") from None
    if end > len(buf):
        raise FrameError(FRAME_ERROR, "truncated field value")
    return value, end


def _table_body(buf: bytes | memoryview, pos: int, end: int, depth: int) -> dict[str, Any]:
    if depth >= MAX_TABLE_DEPTH:
        raise _Malformed(f"tables nested deeper than {MAX_TABLE_DEPTH} levels")
    table: dict[str, Any] = {}
    while pos < end:
        n = buf[pos]
        pos += 1
        key = str(buf[pos : pos + n], "utf-8", "surrogateescape")
        pos += n
        table[key], pos = _value(buf, pos, end, depth)
        # Each value checks only the whole buffer; its own container's end is checked here.
        if pos > end:
            raise _Malformed("table entry runs past the end of the table")
    return table


def _array_body(buf: bytes | memoryview, pos: int, end: int, depth: int) -> list[Any]:
    if depth >= MAX_TABLE_DEPTH:
        raise _Malformed(f"tables nested deeper than {MAX_TABLE_DEPTH} levels")
    items: list[Any] = []
    append = items.append
    while pos < end:
        value, pos = _value(buf, pos, end, depth)
        if pos > end:
            raise _Malformed("array value runs past the end of the array")
        append(value)
    return items


def _value(buf: bytes | memoryview, pos: int, end: int, depth: int) -> tuple[Any, int]:
    # Ordered by how often each type appears in real tables (client properties, arguments, headers).
    kind = buf[pos]
    pos += 1
    if kind == 83:  # 'S'
        (n,) = _u32_from(buf, pos)
        pos += 4
        stop = pos + n
        if stop > end:
            raise _Malformed("longstr runs past the end of its table")
        raw = buf[pos:stop]
        try:
            return str(raw, "utf-8"), stop
        except UnicodeDecodeError:
            return LongStr(raw), stop
    if kind == 116:  # 't'
        return buf[pos] != 0, pos + 1
    if kind == 73:  # 'I'
        return _i32_from(buf, pos)[0], pos + 4
    if kind == 70:  # 'F'
        (n,) = _u32_from(buf, pos)
        pos += 4
        stop = pos + n
        if stop > end:
            raise _Malformed("nested table runs past the end of its table")
        return _table_body(buf, pos, stop, depth + 1), stop
    if kind == 108 or kind == 76:  # 'l', 'L': RabbitMQ reads both as signed 64
        return _i64_from(buf, pos)[0], pos + 8
    if kind == 65:  # 'A'
        (n,) = _u32_from(buf, pos)
        pos += 4
        stop = pos + n
        if stop > end:
            raise _Malformed("array runs past the end of its table")
        return _array_body(buf, pos, stop, depth + 1), stop
    if kind == 84:  # 'T'
        return Timestamp(_U64.unpack_from(buf, pos)[0]), pos + 8
    if kind == 86:  # 'V'
        return None, pos
    if kind == 120:  # 'x'
        (n,) = _u32_from(buf, pos)
        pos += 4
        stop = pos + n
        if stop > end:
            raise _Malformed("byte array runs past the end of its table")
        return bytes(buf[pos:stop]), stop
    if kind == 100:  # 'd'
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if kind == 102:  # 'f'
        return _F32.unpack_from(buf, pos)[0], pos + 4
    if kind == 105:  # 'i'
        return _u32_from(buf, pos)[0], pos + 4
    if kind == 98:  # 'b'
        return _I8.unpack_from(buf, pos)[0], pos + 1
    if kind == 66:  # 'B'
        return buf[pos], pos + 1
    if kind == 115:  # 's'
        return _I16.unpack_from(buf, pos)[0], pos + 2
    if kind == 117:  # 'u'
        return _U16.unpack_from(buf, pos)[0], pos + 2
    if kind == 68:  # 'D'
        scale, unscaled = _DECIMAL.unpack_from(buf, pos)
        return Decimal(unscaled).scaleb(-scale), pos + 5
    raise _Malformed(f"unknown field type {chr(kind)!r}")


# --- encoding ---------------------------------------------------------------------------------


def encode_table(table: Mapping[str, Any] | None) -> bytes:
    """A field table with its long size prefix; ``None`` gives the empty table."""
    if not table:
        return b"\x00\x00\x00\x00"
    parts: list[bytes] = []
    _encode_table_into(table, parts, 0)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def encode_array(items: list[Any] | tuple[Any, ...]) -> bytes:
    """A field array with its long size prefix."""
    parts: list[bytes] = []
    append = parts.append
    for item in items:
        _encode_value_into(item, parts, append, 0)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def encode_value(value: Any) -> bytes:
    """One field value: type letter, then data. Raises TypeError for a type with no AMQP form."""
    parts: list[bytes] = []
    _encode_value_into(value, parts, parts.append, 0)
    return b"".join(parts)


def _encode_table_into(table: Mapping[str, Any], parts: list[bytes], depth: int) -> None:
    if depth >= MAX_TABLE_DEPTH:
        raise ValueError(f"tables nested deeper than {MAX_TABLE_DEPTH} levels")
    append = parts.append
    for key, value in table.items():
        append(encode_shortstr(key))
        _encode_value_into(value, parts, append, depth)


def _encode_value_into(value: Any, parts: list[bytes], append: Any, depth: int) -> None:
    # bool before int, Timestamp before int and LongStr before bytes: each is a subclass.
    kind = type(value)
    if kind is str:
        raw = value.encode("utf-8", "surrogateescape")
        append(b"S" + _U32.pack(len(raw)))
        append(raw)
    elif kind is bool:
        append(b"t\x01" if value else b"t\x00")
    elif kind is int:
        append(_encode_int(value))
    elif isinstance(value, Mapping):
        sub: list[bytes] = []
        _encode_table_into(value, sub, depth + 1)
        body = b"".join(sub)
        append(b"F" + _U32.pack(len(body)))
        append(body)
    elif isinstance(value, list | tuple):
        if depth + 1 >= MAX_TABLE_DEPTH:
            raise ValueError(f"tables nested deeper than {MAX_TABLE_DEPTH} levels")
        sub = []
        sub_append = sub.append
        for item in value:
            _encode_value_into(item, sub, sub_append, depth + 1)
        body = b"".join(sub)
        append(b"A" + _U32.pack(len(body)))
        append(body)
    elif value is None:
        append(b"V")
    elif isinstance(value, Timestamp):
        append(b"T" + _U64.pack(value))
    elif isinstance(value, bool):
        append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, int):
        append(_encode_int(int(value)))
    elif isinstance(value, float):
        append(b"d" + _F64.pack(value))
    elif isinstance(value, LongStr):
        append(b"S" + _U32.pack(len(value)))
        append(bytes(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        append(b"x" + _U32.pack(len(raw)))
        append(raw)
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        append(b"S" + _U32.pack(len(raw)))
        append(raw)
    elif isinstance(value, Decimal):
        append(_encode_decimal(value))
    elif isinstance(value, datetime.datetime):
        # Naive datetimes are taken as UTC, as pika and aio-pika do.
        append(b"T" + _U64.pack(calendar.timegm(value.utctimetuple())))
    else:
        raise TypeError(f"no AMQP field type for {kind.__name__} value {value!r}")


def _encode_int(value: int) -> bytes:
    if _I32_MIN <= value <= _I32_MAX:
        return b"I" + _I32.pack(value)
    if _I64_MIN <= value <= _I64_MAX:
        return b"l" + _I64.pack(value)
    raise ValueError(f"integer {value} does not fit a signed 64-bit field")


def _encode_decimal(value: Decimal) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"decimal {value} has no AMQP form")
    unscaled = int("".join(map(str, digits)) or "0")
    if sign:
        unscaled = -unscaled
    if exponent > 0:
        unscaled *= 10**exponent
        scale = 0
    else:
        scale = -exponent
    if scale > 255 or not _I32_MIN <= unscaled <= _I32_MAX:
        raise ValueError(f"decimal {value} does not fit an AMQP decimal (octet scale, signed 32-bit value)")
    return b"D" + _DECIMAL.pack(scale, unscaled)


# --- short and long strings (method arguments and properties) --------------------------------


def encode_shortstr(value: str) -> bytes:
    """A shortstr: length octet, then the bytes; lone surrogates from surrogateescape round-trip."""
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) > 255:
        raise ValueError(f"shortstr of {len(raw)} octets is longer than 255: {value[:40]!r}...")
    return _U8.pack(len(raw)) + raw


def encode_longstr(value: bytes | str) -> bytes:
    """A longstr: long length, then the bytes; str is written as UTF-8."""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    return _U32.pack(len(raw)) + raw


# xmerl_ucs:from_utf8/1, which RabbitMQ uses to check shortstrs in methods without content,
# rejects overlong forms and stray bytes but accepts encoded surrogates and code points up to
# 0x1FFFFF, which Python's strict codec refuses; this pattern is its exact acceptance set.
_XMERL_UTF8 = re.compile(
    rb"(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xef][\x80-\xbf]{2}"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf7][\x80-\xbf]{3})*"
)


def decode_shortstr_strict(raw: bytes | memoryview) -> str:
    """A shortstr from a method without content, validated as RabbitMQ does (assert_utf8)."""
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        if _XMERL_UTF8.fullmatch(bytes(raw)) is None:
            raise FrameError(FRAME_ERROR, "Malformed UTF-8 in shortstr") from None
        return str(raw, "utf-8", "surrogateescape")


# --- error texts as RabbitMQ writes them ------------------------------------------------------

# RabbitMQ formats these with Erlang's io_lib (~w, ~tp). The helpers below reproduce the forms
# measured against RabbitMQ 3.10.8, including the pretty-printer's line breaks at column 80, so
# that a client sees the same reply text from either broker.

_LINE_LENGTH = 80
# io_lib's printable latin-1 set: what ~tp prints as a "string" rather than as numbers.
_PRINTABLE = frozenset([8, 9, 10, 11, 12, 13, 27, *range(32, 127), *range(160, 256)])
_ESCAPES = {
    8: b"\\b",
    9: b"\\t",
    10: b"\\n",
    11: b"\\v",
    12: b"\\f",
    13: b"\\r",
    27: b"\\e",
    34: b'\\"',
    92: b"\\\\",
}


def erlang_binary(data: bytes | memoryview, column: int = 0, pretty: bool = True) -> str:
    """``data`` as Erlang prints a binary: ``~tp`` when ``pretty`` (at ``column``), else ``~w``."""
    raw = bytes(data)
    if not raw:
        return "<<>>"
    if not pretty:
        return "<<" + ",".join(map(str, raw)) + ">>"
    if _PRINTABLE.issuperset(raw):
        quoted = b"".join(_ESCAPES.get(byte, bytes((byte,))) for byte in raw)
        # The bytes go into the reply text as they are; str can only carry them as UTF-8.
        try:
            text = quoted.decode("utf-8")
        except UnicodeDecodeError:
            text = quoted.decode("latin-1")
        return f'<<"{text}">>'
    flat = "<<" + ",".join(map(str, raw)) + ">>"
    if column + len(flat) < _LINE_LENGTH - 1:
        return flat
    # Too long for the line: the numbers are filled up to column 79, continuing under the first.
    indent = column + 2
    lines: list[str] = []
    line = "<<"
    col = indent
    last = len(raw) - 1
    for i, byte in enumerate(raw):
        item = f"{byte}>>" if i == last else f"{byte},"
        if col + len(item) > _LINE_LENGTH - 1 and col > indent:
            lines.append(line)
            line = " " * indent
            col = indent
        line += item
        col += len(item)
    lines.append(line)
    return "\n".join(lines)


def _erlang_tuple(items: list[str], column: int) -> str:
    flat = "{" + ",".join(items) + "}"
    if column + len(flat) < _LINE_LENGTH - 1:
        return flat
    return "{" + (",\n" + " " * (column + 1)).join(items) + "}"


def frame_description(frame_type: int, payload: bytes | memoryview) -> str:
    """RabbitMQ's ``type ~tp, ~ts octets = ~tp`` text for a frame (at most its first 16 octets)."""
    snippet = bytes(payload[:16])
    prefix = f"type {frame_type}, {'all' if len(payload) <= 16 else 'first 16'} octets = "
    return prefix + erlang_binary(snippet, len(prefix))


def frame_error_text(frame_type: int, payload: bytes | memoryview, reason: str | list[str]) -> str:
    """RabbitMQ's frame_error text: the frame description, then the reason term.

    ``reason`` is an atom (``"unknown_frame"``) or a tuple given as its printed items
    (``["invalid_frame_end_marker", "0"]``).
    """
    text = frame_description(frame_type, payload) + ": "
    if isinstance(reason, str):
        return text + reason
    column = len(text) - text.rfind("\n") - 1
    return text + _erlang_tuple(reason, column)


def rabbit_reply_text(reply_code: int, text: str) -> str:
    """``text`` shortened so that errors.AMQPError.reply_text comes out as RabbitMQ's.

    RabbitMQ cuts a reply text longer than 255 octets to 252 and appends "..."
    (rabbit_binary_generator:amqp_exception_explanation); reply_text alone would cut at 255.
    """
    name = REPLY_NAMES.get(reply_code, "INTERNAL_ERROR")
    full = f"{name} - {text}".encode()
    if len(full) <= 255:
        return text
    kept = full[:252].decode("utf-8", "ignore") + "..."
    return kept[len(name) + 3 :]


def cannot_decode(arguments: bytes | memoryview, class_id: int, method_id: int) -> FrameError:
    """RabbitMQ's error for method arguments that do not parse: 501, ``cannot decode <<...>>``."""
    text = "cannot decode " + erlang_binary(arguments, pretty=False)
    return FrameError(FRAME_ERROR, rabbit_reply_text(FRAME_ERROR, text), class_id, method_id)
