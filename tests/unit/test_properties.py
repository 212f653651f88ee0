"""The property-list check at publish (lapine.amqp.properties): whatever it accepts, decoders read.

The raw-socket tests (tests/integration/test_it_content_header.py) pin what RabbitMQ refuses and
accepts; these say that nothing the check lets through can fail our full decoder or pika's, and
that nothing a real encoder writes is refused.
"""

from __future__ import annotations

import decimal
import struct

import pika.spec
from hypothesis import given, settings
from hypothesis import strategies as st

from lapine.amqp import spec
from lapine.amqp.codec import MAX_TABLE_DEPTH
from lapine.amqp.properties import malformed_properties, properties_are_valid

_PREFIX = struct.pack(">HHQ", 60, 0, 5)  # class, weight, body size: what precedes the flags
# pika turns table timestamps into datetimes and fails past year 9999; RabbitMQ forwards any.
_PIKA_MAX_TIMESTAMP = 253402300799


def _header(properties: bytes) -> bytes:
    return _PREFIX + properties


def _decodes(header: bytes) -> None:
    spec.BasicProperties.decode(header, 12)
    pika.spec.BasicProperties().decode(header[12:])


# --- building blocks, each either well-formed or damaged ---------------------------------------

# NaN and the infinities: RabbitMQ (Erlang has no such floats) and pika refuse them.
_special_floats = st.sampled_from([float("nan"), float("inf"), float("-inf")])
_scalars = st.one_of(
    st.builds(lambda v: b"t" + bytes([v]), st.integers(0, 255)),
    st.builds(lambda v: b"b" + struct.pack(">b", v), st.integers(-128, 127)),
    st.builds(lambda v: b"B" + bytes([v]), st.integers(0, 255)),
    st.builds(lambda v: b"s" + struct.pack(">h", v), st.integers(-(2**15), 2**15 - 1)),
    st.builds(lambda v: b"u" + struct.pack(">H", v), st.integers(0, 2**16 - 1)),
    st.builds(lambda v: b"I" + struct.pack(">i", v), st.integers(-(2**31), 2**31 - 1)),
    st.builds(lambda v: b"i" + struct.pack(">I", v), st.integers(0, 2**32 - 1)),
    st.builds(lambda v: b"l" + struct.pack(">q", v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: b"L" + struct.pack(">q", v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: b"T" + struct.pack(">Q", v), st.integers(0, _PIKA_MAX_TIMESTAMP)),
    st.builds(lambda v: b"d" + struct.pack(">d", v), st.floats() | _special_floats),
    st.builds(lambda v: b"f" + struct.pack(">f", v), st.floats(width=32) | _special_floats),
    st.builds(lambda v: b"d" + v, st.binary(min_size=8, max_size=8)),
    st.builds(lambda s, v: b"D" + struct.pack(">Bi", s, v), st.integers(0, 255), st.integers(-(2**31), 2**31 - 1)),
    st.builds(lambda v: b"S" + struct.pack(">I", len(v)) + v, st.binary(max_size=20)),
    st.builds(lambda v: b"x" + struct.pack(">I", len(v)) + v, st.binary(max_size=20)),
    st.just(b"V"),
    # Any other letter: not T, whose value pika must read as a datetime (bounded above).
    st.builds(
        lambda letter, v: bytes([letter]) + v, st.integers(0, 255).filter(lambda b: b != 0x54), st.binary(max_size=9)
    ),
)


def _damaged(block: bytes, cut: int, extra: bytes, mode: int) -> bytes:
    """The block as it is (most often), cut short, or with octets added."""
    if mode == 1:
        return block[: max(0, len(block) - 1 - cut)]
    if mode == 2:
        return block + extra
    return block


_modes = st.sampled_from([0] * 12 + [1, 2])


def _sized(body: bytes, delta: int) -> bytes:
    """``body`` behind its long size, which is sometimes off by ``delta``."""
    return struct.pack(">I", max(0, len(body) + delta)) + body


_deltas = st.sampled_from([0] * 12 + [-1, 1, 7])


def _containers(values: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    key = st.binary(max_size=6).map(lambda k: bytes([len(k)]) + k)
    table = st.builds(
        lambda entries, delta: b"F" + _sized(b"".join(k + v for k, v in entries), delta),
        st.lists(st.tuples(key, values), max_size=4),
        _deltas,
    )
    array = st.builds(lambda items, delta: b"A" + _sized(b"".join(items), delta), st.lists(values, max_size=4), _deltas)
    return st.one_of(table, array)


_values = st.recursive(_scalars, _containers, max_leaves=12)
_value_blocks = st.builds(_damaged, _values, st.integers(0, 3), st.binary(max_size=3), _modes)


@st.composite
def _property_lists(draw: st.DrawFn) -> bytes:
    flags = draw(st.integers(0, 0xFFFF))
    if draw(st.booleans()):
        flags &= ~0x0001  # a continuation bit is always refused: keep most lists without one
    if draw(st.booleans()):
        flags |= 0x2000  # the headers table is where most of the damage can be
    parts = [struct.pack(">H", flags)]
    for bit in range(15, 1, -1):
        if not flags & (1 << bit):
            continue
        if bit == 13:  # headers
            entries = draw(st.lists(st.tuples(st.binary(max_size=6), _value_blocks), max_size=5))
            body = b"".join(bytes([len(k)]) + k + v for k, v in entries)
            parts.append(_sized(body, draw(_deltas)))
        elif bit in (12, 11):  # delivery-mode, priority
            parts.append(bytes([draw(st.integers(0, 255))]))
        elif bit == 6:  # timestamp
            parts.append(struct.pack(">Q", draw(st.integers(0, 2**64 - 1))))
        else:
            text = draw(st.binary(max_size=12))
            parts.append(bytes([len(text)]) + text)
    whole = b"".join(parts)
    return _damaged(whole, draw(st.integers(0, 4)), draw(st.binary(max_size=3)), draw(_modes))


@settings(max_examples=1000, deadline=None)
@given(_property_lists())
def test_whatever_the_check_accepts_both_decoders_read(properties: bytes) -> None:
    header = _header(properties)
    if properties_are_valid(header):
        _decodes(header)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_arbitrary_octets_accepted_only_when_they_decode(properties: bytes) -> None:
    header = _header(properties)
    if properties_are_valid(header):
        _decodes(header)


_texts = st.text(max_size=20).filter(lambda t: len(t.encode()) <= 255)
_header_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20),
        st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=10),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_texts, inner, max_size=3)),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    st.builds(
        spec.BasicProperties,
        content_type=st.none() | _texts,
        headers=st.none() | st.dictionaries(_texts, _header_values, max_size=4),
        delivery_mode=st.none() | st.integers(0, 255),
        priority=st.none() | st.integers(0, 255),
        correlation_id=st.none() | _texts,
        timestamp=st.none() | st.integers(0, 2**64 - 1),
        user_id=st.none() | _texts,
        cluster_id=st.none() | _texts,
    )
)
def test_every_encoded_property_list_is_accepted(properties: spec.BasicProperties) -> None:
    assert properties_are_valid(spec.encode_content_header(60, 5, properties.encode()))


def test_pika_encoded_properties_are_accepted() -> None:
    properties = pika.spec.BasicProperties(
        content_type="application/json",
        headers={"a": 1, "b": [1, "x", {"c": None}], "d": decimal.Decimal("1.5"), "e": b"raw"},
        delivery_mode=2,
        expiration="60000",
        timestamp=1_700_000_000,
        app_id="app",
    )
    assert properties_are_valid(_header(b"".join(properties.encode())))


def test_a_header_without_room_for_flags_is_refused() -> None:
    assert not properties_are_valid(_PREFIX)
    assert not properties_are_valid(_PREFIX + b"\x00")
    assert properties_are_valid(_PREFIX + b"\x00\x00")


def test_nesting_deeper_than_the_decoder_reads_is_refused() -> None:
    def nested(depth: int) -> bytes:
        table = b""
        for _ in range(depth):
            entry = b"\x01aF" + struct.pack(">I", len(table)) + table
            table = entry
        return struct.pack(">H", 0x2000) + struct.pack(">I", len(table)) + table

    assert properties_are_valid(_header(nested(MAX_TABLE_DEPTH - 1)))
    spec.BasicProperties.decode(_header(nested(MAX_TABLE_DEPTH - 1)), 12)
    assert not properties_are_valid(_header(nested(MAX_TABLE_DEPTH)))


def test_any_table_timestamp_is_accepted_as_rabbitmq_does() -> None:
    entry = b"\x01aT" + struct.pack(">Q", 2**64 - 1)
    assert properties_are_valid(_header(struct.pack(">HI", 0x2000, len(entry)) + entry))


def test_the_refusal_is_rabbitmqs_541_with_the_bytes() -> None:
    error = malformed_properties(_header(b"\x80\x00"))
    assert (error.reply_code, error.reply_text) == (541, "INTERNAL_ERROR - cannot decode content properties <<128,0>>")
