"""The generated protocol classes (lapine.amqp.spec): names, defaults, byte layout, round trips, errors."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapine.amqp import spec
from lapine.amqp.codec import encode_table
from lapine.amqp.errors import AMQPError, FrameError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

METHOD_CLASSES = sorted(spec.METHODS.values(), key=lambda cls: cls.INDEX)


def test_constants() -> None:
    assert (spec.FRAME_METHOD, spec.FRAME_HEADER, spec.FRAME_BODY, spec.FRAME_HEARTBEAT) == (1, 2, 3, 8)
    assert (spec.FRAME_MIN_SIZE, spec.FRAME_END) == (4096, 206)
    assert (spec.REPLY_SUCCESS, spec.CONTENT_TOO_LARGE, spec.NO_ROUTE, spec.NOT_FOUND) == (200, 311, 312, 404)
    assert (spec.FRAME_ERROR, spec.SYNTAX_ERROR, spec.COMMAND_INVALID, spec.NOT_IMPLEMENTED) == (
        501,
        502,
        503,
        540,
    )
    assert spec.INTERNAL_ERROR == 541
    assert spec.NOT_FOUND in spec.SOFT_ERRORS and spec.FRAME_ERROR in spec.HARD_ERRORS


def test_method_table() -> None:
    assert len(spec.METHODS) == 66
    for index, cls in spec.METHODS.items():
        assert issubclass(cls, spec.Method)
        assert index == cls.INDEX == cls.CLASS_ID << 16 | cls.METHOD_ID
        assert len(cls.FIELDS) == len(cls.FIELD_TYPES) == len(cls.__slots__)
    names = {cls.NAME: cls.__name__ for cls in spec.METHODS.values()}
    assert names["basic.publish"] == "BasicPublish"
    assert names["basic.get-ok"] == "BasicGetOk"
    assert names["basic.recover-async"] == "BasicRecoverAsync"
    assert names["exchange.unbind-ok"] == "ExchangeUnbindOk"
    assert names["connection.update-secret-ok"] == "ConnectionUpdateSecretOk"
    for name in ["ConnectionStart", "ConnectionStartOk", "ChannelOpen", "ExchangeDeclare", "QueueDeclareOk",
                 "TxSelect", "ConfirmSelect", "BasicNack", "AccessRequest"]:  # fmt: skip
        assert isinstance(getattr(spec, name)(), spec.Method)
    with_content = {cls.NAME for cls in spec.METHODS.values() if cls.HAS_CONTENT}
    assert with_content == {"basic.publish", "basic.return", "basic.deliver", "basic.get-ok"}
    assert spec.BasicConsume.SYNCHRONOUS and not spec.BasicAck.SYNCHRONOUS and not spec.BasicPublish.SYNCHRONOUS


def test_field_names_and_defaults() -> None:
    assert spec.BasicQos().global_ is False
    assert spec.BasicQos(global_=True).FIELDS == ("prefetch_size", "prefetch_count", "global_")
    assert spec.BasicPublish.FIELDS == ("ticket", "exchange", "routing_key", "mandatory", "immediate")
    start = spec.ConnectionStart()
    assert (start.version_major, start.version_minor, start.mechanisms, start.locales) == (
        0,
        9,
        b"PLAIN",
        b"en_US",
    )
    assert start.server_properties == {}
    assert spec.ConnectionStartOk().response == b""
    assert spec.ConnectionStartOk(response="\x00guest\x00guest").response == b"\x00guest\x00guest"
    assert spec.ConnectionOpen().virtual_host == "/"
    assert spec.BasicReject(delivery_tag=1).requeue is True
    assert spec.BasicNack().requeue is True
    assert spec.AccessRequestOk().ticket == 1
    assert spec.ExchangeDeclare().type == "direct"
    assert spec.QueueDeclare().arguments == {}
    assert spec.ConnectionClose().reply_code == 0 and spec.ConnectionClose().reply_text == ""
    # Each object gets its own table, not a shared default.
    assert spec.QueueDeclare().arguments is not spec.QueueDeclare().arguments


def test_repr_and_eq() -> None:
    method = spec.BasicAck(delivery_tag=5, multiple=True)
    assert repr(method) == "BasicAck(delivery_tag=5, multiple=True)"
    assert method == spec.BasicAck(delivery_tag=5, multiple=True)
    assert method != spec.BasicAck(delivery_tag=5)
    assert method != spec.BasicNack(delivery_tag=5, multiple=True)
    assert spec.TxSelect() == spec.TxSelect()


# --- byte layout, written by hand from the spec -----------------------------------------------


def test_known_encodings() -> None:
    assert spec.ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=60).encode() == bytes.fromhex(
        "000a 001e 07ff 00020000 003c"
    )
    assert spec.BasicPublish(exchange="ex", routing_key="rk", mandatory=True).encode() == (
        b"\x00\x3c\x00\x28" + b"\x00\x00" + b"\x02ex" + b"\x02rk" + b"\x01"
    )
    assert spec.BasicPublish(immediate=True).encode() == b"\x00\x3c\x00\x28\x00\x00\x00\x00\x02"
    assert spec.BasicQos(prefetch_count=10, global_=True).encode() == bytes.fromhex("003c 000a 00000000 000a 01")
    assert spec.QueueDeclare(queue="q", durable=True, auto_delete=True, arguments={"a": 1}).encode() == (
        b"\x00\x32\x00\x0a\x00\x00\x01q" + bytes([0b01010]) + encode_table({"a": 1})
    )
    # Five bits share one octet, in argument order from the low bit.
    assert spec.ExchangeDeclare(exchange="e", passive=True, internal=True, nowait=True).encode() == (
        b"\x00\x28\x00\x0a\x00\x00\x01e\x06direct" + bytes([0b11001]) + b"\x00\x00\x00\x00"
    )
    assert spec.BasicDeliver("ct", 7, True, "ex", "rk").encode() == (
        b"\x00\x3c\x00\x3c\x02ct" + struct.pack(">Q", 7) + b"\x01\x02ex\x02rk"
    )
    assert spec.ConnectionStartOk(
        client_properties={}, mechanism="PLAIN", response=b"\x00u\x00p", locale="en_US"
    ).encode() == (b"\x00\x0a\x00\x0b\x00\x00\x00\x00\x05PLAIN\x00\x00\x00\x04\x00u\x00p\x05en_US")
    assert spec.ChannelCloseOk().encode() == b"\x00\x14\x00\x29"
    assert spec.ConnectionClose(320, "CONNECTION_FORCED - bye", 0, 0).encode() == (
        b"\x00\x0a\x00\x32\x01\x40\x17CONNECTION_FORCED - bye\x00\x00\x00\x00"
    )


def test_decode_known_bytes() -> None:
    method = spec.decode_method(bytes.fromhex("000a 001f 07ff 00020000 003c"))
    assert method == spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=60)
    # High bits beyond the arguments' own are ignored, as in RabbitMQ.
    assert spec.decode_method(b"\x00\x3c\x00\x50" + struct.pack(">Q", 3) + b"\xff") == spec.BasicAck(3, True)
    assert spec.BasicAck.decode(b"junk" + struct.pack(">Q", 3) + b"\x00", 4) == spec.BasicAck(3, False)


# --- round trips ------------------------------------------------------------------------------

# Shortstrs of methods with content are not checked for UTF-8 (RabbitMQ skips that for speed), so
# any octets survive; elsewhere they must be UTF-8 by RabbitMQ's rules.
any_shortstr = st.binary(max_size=255).map(lambda raw: raw.decode("utf-8", "surrogateescape"))
utf8_shortstr = st.text(alphabet=st.characters(codec="utf-8"), max_size=63)
small_tables = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.text(max_size=8), st.integers(-5, 5), st.booleans(), st.none(), st.lists(st.integers(0, 3))),
    max_size=4,
)


def _strategy(kind: str, content: bool) -> st.SearchStrategy[Any]:
    return {
        "octet": st.integers(0, 0xFF),
        "short": st.integers(0, 0xFFFF),
        "long": st.integers(0, 0xFFFFFFFF),
        "longlong": st.integers(0, 0xFFFFFFFFFFFFFFFF),
        "timestamp": st.integers(0, 0xFFFFFFFFFFFFFFFF),
        "bit": st.booleans(),
        "shortstr": any_shortstr if content else utf8_shortstr,
        "longstr": st.binary(max_size=300),
        "table": small_tables,
    }[kind]


@pytest.mark.parametrize("cls", METHOD_CLASSES, ids=lambda cls: cls.NAME)
@ROUND_TRIP
@given(data=st.data())
def test_every_method_round_trips(cls: type[spec.Method], data: st.DataObject) -> None:
    kwargs = {
        name: data.draw(_strategy(kind, cls.HAS_CONTENT), label=name)
        for name, kind in zip(cls.FIELDS, cls.FIELD_TYPES, strict=True)
    }
    method = cls(**kwargs)
    payload = method.encode()
    assert payload[:4] == struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID)
    decoded = spec.decode_method(payload)
    assert type(decoded) is cls
    assert decoded == method, (decoded, method)
    assert decoded.encode() == payload
    assert spec.decode_method(memoryview(payload)) == method


# --- malformed methods: RabbitMQ's codes and texts ---------------------------------------------


def _error(payload: bytes) -> FrameError:
    with pytest.raises(FrameError) as info:
        spec.decode_method(payload)
    return info.value


def test_unknown_method_and_class() -> None:
    error = _error(b"\x00\x3c\x03\xe7")
    assert (error.reply_code, error.reply_text) == (540, "NOT_IMPLEMENTED - unknown method id {60,999}")
    assert (error.class_id, error.method_id) == (60, 999)
    assert _error(b"\x00\x63\x00\x0a").text == "unknown method id {99,10}"


def test_method_payload_shorter_than_its_ids() -> None:
    error = _error(b"\x00\x3c")
    assert (error.reply_code, error.reply_text) == (
        501,
        "FRAME_ERROR - type 1, all octets = <<0,60>>: unknown_frame",
    )


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        # Both measured against RabbitMQ 3.10.8.
        (b"\x00\x32\x00\x0a\x00\x00\x05ab", "cannot decode <<0,0,5,97,98>>"),
        (
            b"\x00\x32\x00\x0a\x00\x00\x01q\x00\x00\x00\x00\x00\xff",
            "cannot decode <<0,0,1,113,0,0,0,0,0,255>>",
        ),
        (b"\x00\x14\x00\x29\x00", "cannot decode <<0>>"),  # trailing octet after channel.close-ok
        (b"\x00\x3c\x00\x28\x00\x00\x00", "cannot decode <<0,0,0>>"),  # basic.publish cut short
    ],
)
def test_arguments_that_do_not_parse(payload: bytes, text: str) -> None:
    error = _error(payload)
    assert (error.reply_code, error.text) == (501, text)
    assert (error.class_id, error.method_id) == struct.unpack(">HH", payload[:4])


def test_bad_table_in_arguments_is_cannot_decode() -> None:
    # RabbitMQ's reader crashes on this one (TCP reset); we answer as for other bad arguments.
    error = _error(b"\x00\x32\x00\x0a\x00\x00\x01q\x00\x00\x00\x00\x03\x01aZ")
    assert error.reply_code == 501
    assert error.text == "cannot decode <<0,0,1,113,0,0,0,0,3,1,97,90>>"


def test_shortstr_utf8_checks() -> None:
    error = _error(b"\x00\x32\x00\x0a\x00\x00\x02\xff\xfe\x00\x00\x00\x00\x00")
    assert (error.reply_code, error.reply_text) == (501, "FRAME_ERROR - Malformed UTF-8 in shortstr")
    # Layout errors come first, as RabbitMQ matches the binary before checking strings.
    assert _error(b"\x00\x32\x00\x0a\x00\x00\x02\xff\xfe\x00").text.startswith("cannot decode")
    # Methods with content skip the check; the octets survive a round trip.
    publish = b"\x00\x3c\x00\x28\x00\x00\x00\x02\xff\xfe\x00"
    method = spec.decode_method(publish)
    assert isinstance(method, spec.BasicPublish)
    assert method.encode() == publish


@FUZZ
@given(st.binary(max_size=64))
def test_fuzz_decode_method_random_bytes(raw: bytes) -> None:
    with contextlib.suppress(AMQPError):
        spec.decode_method(raw)
    cls = METHOD_CLASSES[raw[0] % len(METHOD_CLASSES)] if raw else spec.TxSelect
    with contextlib.suppress(AMQPError):
        spec.decode_method(struct.pack(">I", cls.INDEX) + raw)


@FUZZ
@given(st.sampled_from(METHOD_CLASSES), st.data())
def test_fuzz_decode_method_mutations(cls: type[spec.Method], data: st.DataObject) -> None:
    kwargs = {name: data.draw(_strategy(kind, True)) for name, kind in zip(cls.FIELDS, cls.FIELD_TYPES, strict=True)}
    payload = bytearray(cls(**kwargs).encode())
    cut = data.draw(st.integers(0, len(payload)))
    with contextlib.suppress(AMQPError):
        spec.decode_method(bytes(payload[:cut]))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(4, max(4, len(payload) - 1)))
        if i < len(payload):
            payload[i] ^= 1 << data.draw(st.integers(0, 7))
    with contextlib.suppress(AMQPError):
        spec.decode_method(bytes(payload))


# --- content properties and headers -----------------------------------------------------------

property_values = {
    "shortstr": any_shortstr,
    "table": small_tables,
    "octet": st.integers(0, 0xFF),
    "timestamp": st.integers(0, 0xFFFFFFFFFFFFFFFF),
}


@st.composite
def basic_properties(draw: st.DrawFn) -> spec.BasicProperties:
    kwargs: dict[str, Any] = {
        name: draw(st.one_of(st.none(), property_values[kind]))
        for name, kind in zip(spec.BasicProperties.FIELDS, spec.BasicProperties.FIELD_TYPES, strict=True)
    }
    return spec.BasicProperties(**kwargs)


@settings(max_examples=200, deadline=None)
@given(basic_properties())
def test_properties_round_trip(properties: spec.BasicProperties) -> None:
    raw = properties.encode()
    assert spec.BasicProperties.decode(raw) == properties
    header = spec.encode_content_header(60, 1234, raw)
    assert spec.BasicProperties.decode(header, 12) == properties
    assert spec.decode_content_header(header) == (60, 1234, raw)


def test_properties_known_bytes() -> None:
    assert spec.BasicProperties().encode() == b"\x00\x00"
    properties = spec.BasicProperties(content_type="text/plain", delivery_mode=2, timestamp=1600000000)
    raw = b"\x90\x40" + b"\x0atext/plain" + b"\x02" + struct.pack(">Q", 1600000000)
    assert properties.encode() == raw
    assert spec.BasicProperties.decode(raw) == properties
    assert repr(properties) == "BasicProperties(content_type='text/plain', delivery_mode=2, timestamp=1600000000)"
    assert spec.BasicProperties.FLAGS["cluster_id"] == 0x0004


def test_properties_continuation_flags() -> None:
    # Bit 0 says another flags word follows; basic has no 15th property, so it flags nothing.
    raw = b"\x80\x01" + b"\x00\x01" + b"\x00\x00" + b"\x04json"
    assert spec.BasicProperties.decode(raw) == spec.BasicProperties(content_type="json")
    # Bit 1 is unused by basic and ignored, as RabbitMQ does.
    assert spec.BasicProperties.decode(b"\x00\x02") == spec.BasicProperties()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x80",
        b"\x80\x00",  # content-type flagged, no value
        b"\x00\x00\x01",  # trailing octet
        b"\x00\x01",  # continuation word missing
        b"\x20\x00\x00\x00\x00\x03\x01aZ",  # bad headers table
        b"\x80\x00\x05ab",  # shortstr past the end
    ],
)
def test_malformed_properties(raw: bytes) -> None:
    # RabbitMQ 3.10.8 closes the connection with 541 INTERNAL_ERROR for all of these.
    with pytest.raises(FrameError) as info:
        spec.BasicProperties.decode(raw)
    assert info.value.reply_code == 541


@FUZZ
@given(st.binary(max_size=80))
def test_fuzz_properties(raw: bytes) -> None:
    with contextlib.suppress(AMQPError):
        spec.BasicProperties.decode(raw)


def test_content_header_helpers() -> None:
    payload = spec.encode_content_header(60, 5, b"\x00\x00")
    assert payload == b"\x00\x3c\x00\x00" + struct.pack(">Q", 5) + b"\x00\x00"
    class_id, body_size, raw = spec.decode_content_header(memoryview(payload))
    assert (class_id, body_size, raw) == (60, 5, b"\x00\x00")
    assert type(raw) is bytes
    weighted = b"\x00\x3c\x00\x01" + struct.pack(">Q", 5) + b"\x00\x00"
    assert spec.decode_content_header_full(weighted) == (60, 1, 5, b"\x00\x00")
    with pytest.raises(FrameError) as info:
        spec.decode_content_header(b"\x00\x3c\x00")
    assert info.value.reply_text == "FRAME_ERROR - type 2, all octets = <<0,60,0>>: unknown_frame"
