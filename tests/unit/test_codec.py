"""Field tables and values (lapine.amqp.codec): round trips, RabbitMQ's type letters, malformed input."""

from __future__ import annotations

import contextlib
import datetime
import math
import struct
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapine.amqp import codec
from lapine.amqp.codec import (
    MAX_TABLE_DEPTH,
    LongStr,
    Timestamp,
    decode_array,
    decode_shortstr_strict,
    decode_table,
    decode_value,
    encode_array,
    encode_table,
    encode_value,
    erlang_binary,
    frame_error_text,
)
from lapine.amqp.errors import AMQPError, FrameError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# Values that decode back to an equal value of the same Python type.
scalars = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.booleans(),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=20),
    st.binary(min_size=1, max_size=20).filter(_not_utf8).map(LongStr),
    st.builds(
        lambda value, scale: Decimal(value).scaleb(-scale),
        st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
        st.integers(min_value=0, max_value=255),
    ),
    st.integers(min_value=0, max_value=(1 << 64) - 1).map(Timestamp),
    st.none(),
)
keys = st.text(alphabet=st.characters(codec="utf-8"), max_size=10).filter(lambda key: len(key.encode()) <= 255)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)
tables = st.dictionaries(keys, values, max_size=6)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (so LongStr stays LongStr, 1 is not True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    return bool(a == b)


@ROUND_TRIP
@given(tables)
def test_table_round_trip(table: dict[str, Any]) -> None:
    raw = encode_table(table)
    decoded, end = decode_table(raw, 0)
    assert end == len(raw)
    assert _same(decoded, table)
    assert encode_table(decoded) == raw


@ROUND_TRIP
@given(st.lists(values, max_size=6))
def test_array_round_trip(items: list[Any]) -> None:
    raw = encode_array(items)
    decoded, end = decode_array(raw, 0)
    assert end == len(raw)
    assert _same(decoded, items)


@ROUND_TRIP
@given(values)
def test_value_round_trip_at_an_offset(value: Any) -> None:
    raw = b"junk" + encode_value(value)
    decoded, end = decode_value(raw, 4)
    assert end == len(raw)
    assert _same(decoded, value)


def test_known_table_bytes() -> None:
    assert encode_table(None) == b"\x00\x00\x00\x00"
    assert encode_table({}) == b"\x00\x00\x00\x00"
    assert encode_table({"a": 1}) == b"\x00\x00\x00\x07\x01aI\x00\x00\x00\x01"
    assert encode_table({"x-match": "all", "ok": True}) == (
        b"\x00\x00\x00\x15" + b"\x07x-matchS\x00\x00\x00\x03all" + b"\x02okt\x01"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"t\x00", False),
        (b"t\x01", True),
        (b"t\x07", True),  # RabbitMQ: any non-zero octet is true
        (b"b\xff", -1),
        (b"B\xff", 255),
        (b"s\xff\xfe", -2),
        (b"u\xff\xfe", 65534),
        (b"I\xff\xff\xff\xff", -1),
        (b"i\xff\xff\xff\xff", 4294967295),
        (b"l\xff\xff\xff\xff\xff\xff\xff\xfe", -2),
        (b"L\xff\xff\xff\xff\xff\xff\xff\xfe", -2),  # RabbitMQ reads 'L' as signed too
        (b"f" + struct.pack(">f", 1.5), 1.5),
        (b"d" + struct.pack(">d", -2.25), -2.25),
        (b"D\x02\x00\x00\x04\xd2", Decimal("12.34")),
        (b"D\x00\xff\xff\xff\xff", Decimal(-1)),
        (b"S\x00\x00\x00\x03abc", "abc"),
        (b"S\x00\x00\x00\x02\xc3\xa9", "\u00e9"),
        (b"S\x00\x00\x00\x02\xff\xfe", LongStr(b"\xff\xfe")),
        (b"x\x00\x00\x00\x02\x00\x01", b"\x00\x01"),
        (b"T\x00\x00\x00\x00\x5f\x5e\x10\x00", Timestamp(1600000000)),
        (b"V", None),
        (b"A\x00\x00\x00\x07I\x00\x00\x00\x01V\x56", [1, None, None]),
        (b"F\x00\x00\x00\x04\x01kt\x01", {"k": True}),
    ],
)
def test_decode_every_type_letter(raw: bytes, expected: Any) -> None:
    value, end = decode_value(raw, 0)
    assert end == len(raw)
    assert _same(value, expected)


@pytest.mark.parametrize(
    ("value", "letter"),
    [
        (True, b"t"),
        (0, b"I"),
        ((1 << 31) - 1, b"I"),
        (-(1 << 31), b"I"),
        (1 << 31, b"l"),
        (-(1 << 31) - 1, b"l"),
        ((1 << 63) - 1, b"l"),
        (1.0, b"d"),
        ("s", b"S"),
        (LongStr(b"\xff"), b"S"),
        (b"raw", b"x"),
        (bytearray(b"raw"), b"x"),
        (Decimal("1.5"), b"D"),
        (Timestamp(5), b"T"),
        (datetime.datetime(2020, 9, 13, 12, 26, 40, tzinfo=datetime.UTC), b"T"),
        ({"a": 1}, b"F"),
        ([1], b"A"),
        ((1, 2), b"A"),
        (None, b"V"),
    ],
)
def test_encode_python_types(value: Any, letter: bytes) -> None:
    assert encode_value(value)[:1] == letter


def test_encoded_values() -> None:
    assert encode_value(Decimal("1.5")) == b"D\x01\x00\x00\x00\x0f"
    assert encode_value(Decimal("-12.34")) == b"D\x02" + struct.pack(">i", -1234)
    assert encode_value(Decimal("1E+3")) == b"D\x00" + struct.pack(">i", 1000)
    # Naive datetimes are UTC, as in pika.
    naive = datetime.datetime(2020, 9, 13, 12, 26, 40)
    assert encode_value(naive) == b"T" + struct.pack(">Q", 1600000000)
    assert encode_value(Timestamp(1600000000)) == b"T" + struct.pack(">Q", 1600000000)


@pytest.mark.parametrize("value", [{1, 2}, object(), 1j, frozenset()])
def test_unsupported_python_type_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        encode_value(value)
    with pytest.raises(TypeError):
        encode_table({"k": value})


@pytest.mark.parametrize(
    "value",
    [1 << 63, -(1 << 63) - 1, Decimal("NaN"), Decimal("Infinity"), Decimal(1 << 40), Decimal("1E-300")],
)
def test_values_out_of_range_are_value_errors(value: Any) -> None:
    with pytest.raises(ValueError):
        encode_value(value)


def test_key_longer_than_255_octets() -> None:
    with pytest.raises(ValueError):
        encode_table({"k" * 256: 1})
    assert decode_table(encode_table({"k" * 255: 1}), 0)[0] == {"k" * 255: 1}


def test_keys_that_are_not_utf8_round_trip() -> None:
    raw = b"\x00\x00\x00\x04\x02\xff\xfeV"
    table, _ = decode_table(raw, 0)
    assert encode_table(table) == raw


def _nested(depth: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for _ in range(depth - 1):
        table = {"n": table}
    return table


def test_nesting_limit() -> None:
    deepest = encode_table(_nested(MAX_TABLE_DEPTH))
    assert decode_table(deepest, 0)[0] == _nested(MAX_TABLE_DEPTH)
    with pytest.raises(ValueError):
        encode_table(_nested(MAX_TABLE_DEPTH + 1))
    # Build one level too deep by hand: a table holding the deepest legal one.
    too_deep = struct.pack(">I", len(deepest) + 3) + b"\x01nF" + deepest
    with pytest.raises(FrameError) as info:
        decode_table(too_deep, 0)
    assert info.value.reply_code == 501
    # Arrays count as levels too, and a stack of them must not overflow Python's recursion.
    arrays = b"V"
    for _ in range(5000):
        arrays = b"A" + struct.pack(">I", len(arrays)) + arrays
    with pytest.raises(FrameError):
        decode_value(arrays, 0)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x00",
        b"\x00\x00\x00\x05\x01a",  # size runs past the buffer
        b"\x00\x00\x00\x03\x01aS",  # value truncated by the table size
        b"\x00\x00\x00\x03\x01aZ",  # unknown type letter
        b"\x00\x00\x00\x07\x01aS\x00\x00\x00",
        b"\x00\x00\x00\x08\x01aS\x00\x00\x00\x09",  # longstr length past the table
        b"\x00\x00\x00\x04\x05abcd",  # key past the table
        b"\x00\x00\x00\x06\x01aI\x00\x00",  # 'I' needs 4 octets, table has 2
        b"\x00\x00\x00\x07\x01aA\x00\x00\x00\x09",  # array past the table
        b"\x00\x00\x00\x07\x01aF\x00\x00\x00\x09",  # nested table past the table
        b"\x00\x00\x00\x0a\x01aA\x00\x00\x00\x01Z",  # unknown letter in an array
    ],
)
def test_malformed_tables_raise_frame_error(raw: bytes) -> None:
    with pytest.raises(FrameError) as info:
        decode_table(raw, 0)
    assert info.value.reply_code == 501


def test_a_value_may_not_borrow_octets_beyond_its_table() -> None:
    # The outer buffer has enough octets for the 'I', but the table's size ends before them.
    raw = b"\x00\x00\x00\x04\x01aI\x00" + b"\x00\x00\x00\x01"
    with pytest.raises(FrameError):
        decode_table(raw, 0)


def _assert_only_amqp_errors(func: Any, *args: Any) -> None:
    with contextlib.suppress(AMQPError):
        func(*args)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_decode_table_random_bytes(raw: bytes) -> None:
    _assert_only_amqp_errors(decode_table, raw, 0)
    _assert_only_amqp_errors(decode_array, raw, 0)
    _assert_only_amqp_errors(decode_value, raw, 0)
    _assert_only_amqp_errors(decode_table, b"\x00\x00\x00" + bytes([len(raw) & 0xFF]) + raw, 0)


@FUZZ
@given(tables, st.data())
def test_fuzz_decode_table_mutations(table: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(encode_table(table))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    _assert_only_amqp_errors(decode_table, bytes(raw[:cut]), 0)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    _assert_only_amqp_errors(decode_table, bytes(raw), 0)
    _assert_only_amqp_errors(decode_table, memoryview(bytes(raw)), 0)


def test_memoryview_input() -> None:
    raw = encode_table({"a": "b", "c": [1, b"x"]})
    assert decode_table(memoryview(raw), 0)[0] == {"a": "b", "c": [1, b"x"]}


# --- shortstr checking, as RabbitMQ's assert_utf8 (xmerl_ucs:from_utf8) -----------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"plain",
        "\u00e9\u4e2d\U0001f600".encode(),
        b"q\xed\xa0\x80",
        b"q\xf4\x90\x80\x80",
        b"q\x00",
        b"\xef\xbf\xbe",
    ],
)
def test_shortstrs_rabbitmq_accepts(raw: bytes) -> None:
    # Encoded surrogates and code points past U+10FFFF pass RabbitMQ's check (measured on 3.10.8).
    text = decode_shortstr_strict(raw)
    assert text.encode("utf-8", "surrogateescape") == raw


@pytest.mark.parametrize("raw", [b"q\xc0\x80", b"\xff\xfe", b"\x80", b"\xe0\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xc3"])
def test_shortstrs_rabbitmq_refuses(raw: bytes) -> None:
    with pytest.raises(FrameError) as info:
        decode_shortstr_strict(raw)
    assert (info.value.reply_code, info.value.text) == (501, "Malformed UTF-8 in shortstr")


def test_shortstr_and_longstr_encoding() -> None:
    assert codec.encode_shortstr("ab") == b"\x02ab"
    assert codec.encode_shortstr("\udcff") == b"\x01\xff"
    with pytest.raises(ValueError):
        codec.encode_shortstr("x" * 256)
    assert codec.encode_longstr(b"ab") == b"\x00\x00\x00\x02ab"
    assert codec.encode_longstr("\u00e9") == b"\x00\x00\x00\x02\xc3\xa9"


# --- RabbitMQ's error texts -------------------------------------------------------------------

# Each text below is what RabbitMQ 3.10.8 put in connection.close for a body frame (type 3)
# carrying these octets and ending in 0x00 instead of 0xCE.
MEASURED_BAD_FRAME_END = [
    (
        bytes(range(128, 145)),
        "type 3, first 16 octets = <<128,129,130,131,132,133,134,135,136,137,138,139,\n"
        "                            140,141,142,143>>: {invalid_frame_end_marker,0}",
    ),
    (
        bytes([0x90]) * 16,
        "type 3, all octets = <<144,144,144,144,144,144,144,144,144,144,144,144,144,144,\n"
        "                       144,144>>: {invalid_frame_end_marker,0}",
    ),
    (
        bytes([0x90]) * 13,
        "type 3, all octets = <<144,144,144,144,144,144,144,144,144,144,144,144,144>>: "
        "{invalid_frame_end_marker,\n" + " " * 79 + "0}",
    ),
    (
        bytes([0x90]) * 7,
        "type 3, all octets = <<144,144,144,144,144,144,144>>: {invalid_frame_end_marker,\n" + " " * 55 + "0}",
    ),
    (bytes([0x90]) * 4, "type 3, all octets = <<144,144,144,144>>: {invalid_frame_end_marker,0}"),
    (
        b"\n" * 6 + b"a" * 10,
        'type 3, all octets = <<"\\n\\n\\n\\n\\n\\naaaaaaaaaa">>: {invalid_frame_end_marker,\n' + " " * 52 + "0}",
    ),
    (
        b"\n" * 4 + b"a" * 12,
        'type 3, all octets = <<"\\n\\n\\n\\naaaaaaaaaaaa">>: {invalid_frame_end_marker,0}',
    ),
    (
        bytes([1]) * 16,
        "type 3, all octets = <<1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1>>: {invalid_frame_end_marker,\n" + " " * 59 + "0}",
    ),
    (
        b'hello "world"\n\\ more text here',
        'type 3, first 16 octets = <<"hello \\"world\\"\\n\\\\ ">>: {invalid_frame_end_marker,\n' + " " * 55 + "0}",
    ),
    ("h\u00e9llo".encode(), 'type 3, all octets = <<"h\u00e9llo">>: {invalid_frame_end_marker,0}'),
    ("\u00c9".encode(), "type 3, all octets = <<195,137>>: {invalid_frame_end_marker,0}"),
    ("\u4e2d".encode(), 'type 3, all octets = <<"\u4e2d">>: {invalid_frame_end_marker,0}'),
    (b"a\tb\x1bc\x7f", "type 3, all octets = <<97,9,98,27,99,127>>: {invalid_frame_end_marker,0}"),
    (b"", "type 3, all octets = <<>>: {invalid_frame_end_marker,0}"),
]


@pytest.mark.parametrize(("payload", "text"), MEASURED_BAD_FRAME_END)
def test_frame_error_text_matches_rabbitmq(payload: bytes, text: str) -> None:
    assert frame_error_text(3, payload, ["invalid_frame_end_marker", "0"]) == text


def test_other_rabbitmq_texts() -> None:
    assert frame_error_text(3, b"", ["frame_too_large", "200000", "131064"]) == (
        "type 3, all octets = <<>>: {frame_too_large,200000,131064}"
    )
    assert frame_error_text(5, b"abc", "unknown_frame") == 'type 5, all octets = <<"abc">>: unknown_frame'
    assert frame_error_text(1, b"\x00\x3c", "unknown_frame") == "type 1, all octets = <<0,60>>: unknown_frame"
    assert erlang_binary(b"\x00ab", pretty=False) == "<<0,97,98>>"
    assert codec.frame_description(8, b"") == "type 8, all octets = <<>>"


def test_cannot_decode_is_cut_like_rabbitmq() -> None:
    # RabbitMQ 3.10.8: a 255-octet reply text ending in "..." for long argument dumps.
    error = codec.cannot_decode(b"\x00\x00\x01q\x00\x00\x00\x00\x00" + bytes(range(200)), 50, 10)
    assert (error.reply_code, error.class_id, error.method_id) == (501, 50, 10)
    reply = error.reply_text.encode()
    assert len(reply) == 255
    assert reply.startswith(b"FRAME_ERROR - cannot decode <<0,0,1,113,0,0,0,0,0,0,1,2,3,")
    assert reply.endswith(b",68,69,70...")
