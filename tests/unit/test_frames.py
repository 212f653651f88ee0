"""Frame reading and writing (lapine.amqp.frames): splitting, limits, RabbitMQ's errors, hot paths."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapine.amqp import spec
from lapine.amqp.errors import AMQPError, FrameError
from lapine.amqp.frames import (
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    FrameReaderError,
    content_frames,
    decode_publish,
    encode_deliver_frames,
    encode_frame,
    method_frame,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Frame = tuple[int, int, bytes]


def _frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + end


def _read_all(data: bytes, frame_max: int = 131072) -> list[Frame]:
    return FrameReader(frame_max).feed(data)


def test_constants() -> None:
    assert PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
    assert HEARTBEAT_FRAME == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert _read_all(HEARTBEAT_FRAME) == [(8, 0, b"")]


def test_connection_tune_frame_by_hand() -> None:
    tune = spec.ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=60)
    raw = bytes.fromhex("01 0000 0000000c 000a 001e 07ff 00020000 003c ce")
    assert method_frame(0, tune) == raw
    assert encode_frame(1, 0, tune.encode()) == raw
    [(frame_type, channel, payload)] = _read_all(raw)
    assert (frame_type, channel) == (1, 0)
    assert spec.decode_method(payload) == tune


def _stream() -> tuple[bytes, list[Frame]]:
    properties = spec.BasicProperties(content_type="text/plain").encode()
    frames: list[Frame] = [
        (1, 0, spec.ConnectionTuneOk(2047, 131072, 60).encode()),
        (1, 1, spec.BasicPublish(exchange="", routing_key="q").encode()),
        (2, 1, spec.encode_content_header(60, 5, properties)),
        (3, 1, b"hello"),
        (8, 0, b""),
        (3, 65535, b"\xce" * 20),
    ]
    return b"".join(_frame(*frame) for frame in frames), frames


def test_split_at_every_boundary() -> None:
    data, expected = _stream()
    assert _read_all(data) == expected
    for cut in range(len(data) + 1):
        reader = FrameReader()
        assert reader.feed(data[:cut]) + reader.feed(data[cut:]) == expected, cut


def test_one_byte_at_a_time() -> None:
    data, expected = _stream()
    reader = FrameReader()
    frames: list[Frame] = []
    for i in range(len(data)):
        frames += reader.feed(data[i : i + 1])
    assert frames == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_random_chunking(cuts: list[int]) -> None:
    data, expected = _stream()
    points = sorted({min(cut, len(data)) for cut in cuts})
    reader = FrameReader()
    frames: list[Frame] = []
    previous = 0
    for point in [*points, len(data)]:
        frames += reader.feed(data[previous:point])
        previous = point
    assert frames == expected


def test_payloads_are_bytes_even_from_other_buffers() -> None:
    data, expected = _stream()
    frames = FrameReader().feed(bytearray(data))  # type: ignore[arg-type]
    assert frames == expected
    assert all(type(payload) is bytes for _, _, payload in frames)


def test_large_frame_in_small_pieces() -> None:
    body = bytes(range(256)) * 500
    data = _frame(3, 1, body)
    reader = FrameReader()
    frames: list[Frame] = []
    for i in range(0, len(data), 1000):
        frames += reader.feed(data[i : i + 1000])
    assert frames == [(3, 1, body)]


# --- limits and errors, as RabbitMQ 3.10.8 reports them ---------------------------------------


def test_oversized_frame() -> None:
    reader = FrameReader(131072)
    good = _frame(1, 1, b"\x00\x5a\x00\x0a")
    with pytest.raises(FrameReaderError) as info:
        # Refused from the header alone, as RabbitMQ does, before the payload arrives.
        reader.feed(good + struct.pack(">BHI", 3, 1, 200000) + b"\x00" * 10)
    error = info.value
    assert isinstance(info.value, FrameError)  # what a caller catching FrameError sees
    assert error.reply_code == 501
    assert error.reply_text == "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,200000,131064}"
    assert error.fatal
    assert error.frames == [(1, 1, b"\x00\x5a\x00\x0a")]
    # Out of sync for good: every later call fails the same way, with no frames.
    with pytest.raises(FrameReaderError) as again:
        reader.feed(good)
    assert again.value.text == error.text and again.value.frames == []


def test_frame_max_allowance() -> None:
    # RabbitMQ lets a payload of up to frame_max through (it allows 8 octets of client error).
    assert _read_all(_frame(3, 1, b"x" * 4096), frame_max=4096) == [(3, 1, b"x" * 4096)]
    with pytest.raises(FrameError) as info:
        _read_all(_frame(3, 1, b"x" * 4097), frame_max=4096)
    assert info.value.text == "type 3, all octets = <<>>: {frame_too_large,4097,4088}"
    # 0: no limit; and frame_max can be changed after tuning.
    assert _read_all(_frame(3, 1, b"x" * 200000), frame_max=0) == [(3, 1, b"x" * 200000)]
    reader = FrameReader(4096)
    reader.frame_max = 131072
    assert reader.feed(_frame(3, 1, b"x" * 100000)) == [(3, 1, b"x" * 100000)]


def test_bad_frame_end() -> None:
    reader = FrameReader()
    with pytest.raises(FrameReaderError) as info:
        reader.feed(_frame(1, 1, b"\x00\x5a\x00\x0a", end=b"\x00"))
    error = info.value
    assert (error.reply_code, error.fatal) == (501, True)
    assert error.reply_text == "FRAME_ERROR - type 1, all octets = <<0,90,0,10>>: {invalid_frame_end_marker,0}"
    with pytest.raises(FrameReaderError):
        reader.feed(HEARTBEAT_FRAME)


def test_bad_frame_end_arriving_late() -> None:
    reader = FrameReader()
    assert reader.feed(_frame(3, 1, b"hello", end=b"")) == []
    with pytest.raises(FrameError) as info:
        reader.feed(b"\x01")
    assert info.value.text == 'type 3, all octets = <<"hello">>: {invalid_frame_end_marker,1}'


def test_unknown_frame_type_is_not_fatal() -> None:
    reader = FrameReader()
    before = _frame(1, 1, b"\x00\x5a\x00\x0a")
    after = _frame(1, 0, b"\x00\x0a\x00\x33")
    with pytest.raises(FrameReaderError) as info:
        reader.feed(before + _frame(5, 1, b"abc") + after)
    error = info.value
    assert error.reply_text == 'FRAME_ERROR - type 5, all octets = <<"abc">>: unknown_frame'
    assert not error.fatal
    assert error.frames == [(1, 1, b"\x00\x5a\x00\x0a")]
    # What followed the bad frame is still there (RabbitMQ keeps reading, for close-ok).
    assert reader.feed(b"") == [(1, 0, b"\x00\x0a\x00\x33")]


def test_heartbeat_with_payload_is_an_unknown_frame() -> None:
    with pytest.raises(FrameError) as info:
        _read_all(_frame(8, 0, b"\x01"))
    assert info.value.text == "type 8, all octets = <<1>>: unknown_frame"


@FUZZ
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_fuzz_frame_reader(data: bytes, cut: int) -> None:
    for frame_max in (0, 4096, 16):
        reader = FrameReader(frame_max)
        try:
            frames = reader.feed(data[:cut]) + reader.feed(data[cut:]) + reader.feed(b"")
        except AMQPError:
            continue
        assert all(type(payload) is bytes for _, _, payload in frames)


@FUZZ
@given(st.data())
def test_fuzz_frame_reader_bit_flips(data: st.DataObject) -> None:
    raw = bytearray(_stream()[0])
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    reader = FrameReader()
    try:
        for frame_type, _, payload in reader.feed(bytes(raw)):
            if frame_type == 1:
                spec.decode_method(payload)
            elif frame_type == 2:
                spec.BasicProperties.decode(spec.decode_content_header(payload)[2])
    except AMQPError:
        pass


# --- writing content --------------------------------------------------------------------------


def _split(data: bytes) -> list[Frame]:
    return FrameReader(0).feed(data)


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 8176, 8177, 20000])
def test_content_frames_respect_frame_max(size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    method = spec.BasicGetOk(delivery_tag=1, exchange="ex", routing_key="rk", message_count=3)
    properties = spec.BasicProperties(delivery_mode=2).encode()
    data = content_frames(2, method, properties, body, 4096)
    frames = _split(data)
    assert frames[0] == (1, 2, method.encode())
    assert frames[1] == (2, 2, spec.encode_content_header(60, size, properties))
    bodies = frames[2:]
    assert all(frame_type == 3 and channel == 2 for frame_type, channel, _ in bodies)
    assert all(len(payload) <= 4096 - 8 for _, _, payload in bodies)
    assert all(len(payload) == 4088 for _, _, payload in bodies[:-1])
    assert b"".join(payload for _, _, payload in bodies) == body
    assert len(bodies) == -(-size // 4088)  # no body frame at all for an empty body
    # frame_max 0: one body frame whatever the size.
    assert len(_split(content_frames(2, method, properties, body, 0))) == (3 if size else 2)


@pytest.mark.parametrize("size", [0, 5, 131064, 131065, 300000])
@pytest.mark.parametrize("redelivered", [False, True])
def test_deliver_fast_path_matches_generic_encoding(size: int, redelivered: bool) -> None:
    body = bytes(i % 7 for i in range(size))
    properties = spec.BasicProperties(content_type="application/json", headers={"a": 1}).encode()
    header = spec.encode_content_header(60, size, properties)
    fast = encode_deliver_frames(3, b"amq.ctag-x", 2**40 + 5, redelivered, b"amq.topic", b"a.b.c", header, body, 131072)
    method = spec.BasicDeliver("amq.ctag-x", 2**40 + 5, redelivered, "amq.topic", "a.b.c")
    assert fast == content_frames(3, method, properties, body, 131072)
    assert encode_deliver_frames(3, b"t", 1, False, b"", b"", header, body, 0) == content_frames(
        3, spec.BasicDeliver("t", 1, False, "", ""), properties, body, 0
    )


def test_deliver_with_255_octet_names() -> None:
    name = b"n" * 255
    header = spec.encode_content_header(60, 1, b"\x00\x00")
    frames = _split(encode_deliver_frames(1, name, 1, False, name, name, header, b"x", 131072))
    assert spec.decode_method(frames[0][2]) == spec.BasicDeliver("n" * 255, 1, False, "n" * 255, "n" * 255)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=255).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
    st.binary(max_size=255).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
    st.booleans(),
    st.booleans(),
    st.integers(0, 0xFFFF),
)
def test_decode_publish_matches_generic_decoding(
    exchange: str, routing_key: str, mandatory: bool, immediate: bool, ticket: int
) -> None:
    payload = spec.BasicPublish(ticket, exchange, routing_key, mandatory, immediate).encode()
    assert decode_publish(payload) == (exchange, routing_key, mandatory, immediate)
    assert decode_publish(memoryview(payload)) == (exchange, routing_key, mandatory, immediate)


@FUZZ
@given(st.binary(max_size=40))
def test_decode_publish_errors_match_generic_decoding(arguments: bytes) -> None:
    payload = b"\x00\x3c\x00\x28" + arguments
    try:
        expected = spec.decode_method(payload)
    except FrameError as error:
        with pytest.raises(FrameError) as info:
            decode_publish(payload)
        assert (info.value.reply_code, info.value.text) == (error.reply_code, error.text)
        assert (info.value.class_id, info.value.method_id) == (60, 40)
    else:
        assert isinstance(expected, spec.BasicPublish)
        exchange, routing_key, mandatory, immediate = decode_publish(payload)
        assert (exchange, routing_key, mandatory, immediate) == (
            expected.exchange,
            expected.routing_key,
            expected.mandatory,
            expected.immediate,
        )
