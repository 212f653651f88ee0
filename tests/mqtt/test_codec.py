"""The MQTT codec: round trips at every protocol level, and a fuzzed decoder that only ever
returns packets or raises the codec's own errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lapine.mqtt import packets as p
from lapine.mqtt.codec import PacketReader, encode
from lapine.mqtt.errors import MalformedPacket, PacketTooLarge, ProtocolError, UnsupportedProtocolVersion

LEVELS = (p.MQTT_3_1, p.MQTT_3_1_1, p.MQTT_5)
CODEC_ERRORS = (MalformedPacket, PacketTooLarge, UnsupportedProtocolVersion)

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
user_properties = st.lists(st.tuples(text, text), max_size=3)


def connected(level: int) -> PacketReader:
    reader = PacketReader()
    assert reader.feed(encode(p.Connect(level, "client"), level)) == [p.Connect(level, "client")]
    return reader


@st.composite
def publishes(draw: st.DrawFn, v5: bool) -> p.Publish:
    qos = draw(st.integers(0, 2))
    properties: dict = {}
    if v5:
        if draw(st.booleans()):
            properties["message_expiry_interval"] = draw(st.integers(0, 2**32 - 1))
        if draw(st.booleans()):
            properties["content_type"] = draw(text)
        if draw(st.booleans()):
            properties["correlation_data"] = draw(st.binary(max_size=20))
        pairs = draw(user_properties)
        if pairs:
            properties["user_property"] = pairs
    return p.Publish(
        draw(text.filter(bool)),
        draw(st.binary(max_size=200)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(st.integers(1, 65535)) if qos else None,
        properties,
    )


@pytest.mark.parametrize("level", LEVELS)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_publish_round_trips(level: int, data: st.DataObject) -> None:
    packet = data.draw(publishes(level == p.MQTT_5))
    reader = connected(level)
    raw = encode(packet, level)
    # Fed byte by byte, a packet comes out whole and once.
    found = []
    for index in range(len(raw)):
        found += reader.feed(raw[index : index + 1])
    assert found == [packet]


@pytest.mark.parametrize("level", LEVELS)
def test_connect_with_will_and_credentials_round_trips(level: int) -> None:
    will_properties = {"will_delay_interval": 5, "user_property": [("a", "b")]} if level == p.MQTT_5 else {}
    properties = {"session_expiry_interval": 60, "receive_maximum": 5} if level == p.MQTT_5 else {}
    packet = p.Connect(
        level, "id", False, 30, "vhost:user", b"secret", p.Will("t/1", b"gone", 1, True, will_properties), properties
    )
    assert PacketReader().feed(encode(packet, level)) == [packet]


def test_subscribe_options_and_other_client_packets_round_trip() -> None:
    reader = connected(p.MQTT_5)
    packets = [
        p.Subscribe(
            7, [p.Subscription("a/#", 1, True, True, 2), p.Subscription("b/+", 0)], {"subscription_identifier": [9]}
        ),
        p.Unsubscribe(8, ["a/#", "b/+"]),
        p.PubAck(3, p.SUCCESS),
        p.PubAck(4, p.QUOTA_EXCEEDED, {"reason_string": "full"}),
        p.PingReq(),
        p.Disconnect(p.DISCONNECT_WITH_WILL, {"session_expiry_interval": 10}),
    ]
    assert reader.feed(b"".join(encode(packet, p.MQTT_5) for packet in packets)) == packets


def test_a_packet_before_connect_is_malformed() -> None:
    with pytest.raises(MalformedPacket):
        PacketReader().feed(encode(p.PingReq(), p.MQTT_3_1_1))


def test_oversized_packets_are_refused_from_their_header() -> None:
    reader = PacketReader(max_connect_size=100, max_size=1000)
    with pytest.raises(PacketTooLarge) as too_large:
        reader.feed(b"\x10\xe9\x07")  # CONNECT of 1001 bytes: refused before its body arrives
    assert too_large.value.connect
    reader = PacketReader(max_connect_size=100, max_size=1000)
    reader.feed(encode(p.Connect(p.MQTT_3_1_1, "c"), p.MQTT_3_1_1))
    with pytest.raises(PacketTooLarge):
        reader.feed(b"\x30\xe9\x07")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH with QoS 3
        b"\x82\x05\x00\x01\x00\x00\x03",  # SUBSCRIBE with QoS 3 options
        b"\x80\x04\x00\x01\x00\x00",  # SUBSCRIBE without its fixed flags 0b0010
        b"\x30\xff\xff\xff\xff\x01",  # remaining length of five bytes
        b"\x30\x04\x00\x02\xc3\x28",  # topic that is not UTF-8
        b"\x00\x00",  # reserved packet type 0
    ],
)
def test_malformed_packets_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedPacket):
        connected(p.MQTT_3_1_1).feed(raw)


def test_second_connect_is_a_protocol_error() -> None:
    reader = connected(p.MQTT_3_1_1)
    with pytest.raises(ProtocolError):
        reader.feed(encode(p.Connect(p.MQTT_3_1_1, "again"), p.MQTT_3_1_1))


def test_unknown_protocol_level_is_reported_as_such() -> None:
    raw = bytearray(encode(p.Connect(p.MQTT_3_1_1, "c"), p.MQTT_3_1_1))
    raw[8] = 9  # the protocol level byte
    with pytest.raises(UnsupportedProtocolVersion):
        PacketReader().feed(bytes(raw))


@pytest.mark.parametrize("level", LEVELS)
@given(garbage=st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzzed_bytes_after_connect_give_packets_or_codec_errors(level: int, garbage: bytes) -> None:
    reader = connected(level)
    try:
        packets = reader.feed(garbage)
    except CODEC_ERRORS:
        return
    assert all(isinstance(packet, p.Packet) for packet in packets)


@given(garbage=st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzzed_connect_bodies_give_a_connect_or_codec_errors(garbage: bytes) -> None:
    raw = b"\x10" + _varint(len(garbage) + 10) + b"\x00\x04MQTT\x05\xc6\x00\x3c" + garbage
    try:
        packets = PacketReader().feed(raw)
    except CODEC_ERRORS:
        return
    assert all(isinstance(packet, p.Connect) for packet in packets)


@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_mutated_valid_packets_give_packets_or_codec_errors(data: st.DataObject) -> None:
    packet = data.draw(publishes(True))
    raw = bytearray(encode(packet, p.MQTT_5))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(CODEC_ERRORS):
        connected(p.MQTT_5).feed(bytes(raw))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
