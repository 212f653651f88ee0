"""A conversation fed to the broker in one read, in random pieces, or byte by byte gets the same
answers: how the bytes happen to arrive changes nothing (the property h11 checks of HTTP).

Confirms are the exception, and are compared apart, as the set of delivery tags acked or nacked
per channel: they are batched per read, so one multiple ack may stand for several single ones
(RabbitMQ batches them too), and the publishes of a read that also closes their channel are
never confirmed. RabbitMQ leaves them unconfirmed as well when the broker closes the channel (an
error), or when the client does and they went to a queue; it does confirm the unroutable ones
first, a difference with a test of its own (test_confirms_tx_model.py, an expected failure).
Channels closed either way are left out of the comparison of confirms.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapine.amqp import spec
from lapine.amqp.frames import PROTOCOL_HEADER, FrameReader
from lapine.testing.model import ModelBroker, handshake_frames
from tests.model.conversations import EXAMPLES, conversations

Frame = tuple[int, int, bytes]


def answers(pieces: list[bytes]) -> bytes:
    """Everything a fresh broker writes to a client that sends ``pieces``, one read each."""
    client = ModelBroker().connect()
    for piece in pieces:
        client.send(piece)
    return bytes(client.received)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds) if end > start]


class Answers:
    """The broker's answers with confirms taken out: the other frames in order, and per channel
    (numbered again each time it is opened) the delivery tags acked and nacked, each once."""

    def __init__(self, data: bytes) -> None:
        assert data.startswith(b"\x01\x00\x00"), data[:16]  # connection.start first, no header back
        self.frames: list[Frame] = []
        self.confirms: dict[tuple[int, int], dict[int, str]] = {}
        self.failed: set[tuple[int, int]] = set()  # closed by the broker
        self.closed: set[tuple[int, int]] = set()  # closed by the client
        self._opened: dict[int, int] = {}
        self._last: dict[tuple[int, int], int] = {}
        for frame_type, channel, payload in FrameReader(1 << 20).feed(data):
            self._frame(frame_type, channel, bytes(payload))

    def _frame(self, frame_type: int, channel: int, payload: bytes) -> None:
        method: Any = spec.decode_method(payload) if frame_type == spec.FRAME_METHOD else None
        life = (channel, self._opened.get(channel, 0))
        if isinstance(method, spec.BasicAck | spec.BasicNack):
            first = self._last.get(life, 0) + 1 if method.multiple else method.delivery_tag
            settled = self.confirms.setdefault(life, {})
            for tag in range(first, method.delivery_tag + 1):
                assert tag not in settled, f"tag {tag} confirmed twice on channel {channel}"
                settled[tag] = "ack" if isinstance(method, spec.BasicAck) else "nack"
            self._last[life] = max(self._last.get(life, 0), method.delivery_tag)
            return
        if isinstance(method, spec.ChannelOpenOk):
            self._opened[channel] = self._opened.get(channel, 0) + 1
        elif isinstance(method, spec.ChannelClose):
            self.failed.add(life)
        elif isinstance(method, spec.ChannelCloseOk):
            self.closed.add(life)
        elif isinstance(method, spec.ConnectionClose):
            self.failed.update((ch, n) for ch, n in self._opened.items())
        self.frames.append((frame_type, channel, payload))

    def good_confirms(self) -> dict[tuple[int, int], dict[int, str]]:
        ended = self.failed | self.closed
        return {life: tags for life, tags in self.confirms.items() if life not in ended and tags}


def assert_same_answers(whole: bytes, split: bytes) -> None:
    if whole == split:
        return
    expected, got = Answers(whole), Answers(split)
    assert got.frames == expected.frames
    assert got.failed == expected.failed
    assert got.good_confirms() == expected.good_confirms()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(conversation=conversations(), data=st.data())
def test_a_conversation_split_anywhere_gets_the_same_answers(conversation: bytes, data: st.DataObject) -> None:
    whole = answers([conversation])
    points = data.draw(st.lists(st.integers(1, len(conversation) - 1), max_size=20), label="cuts")
    assert_same_answers(whole, answers(cut(conversation, points)))


@settings(
    max_examples=max(1, EXAMPLES * 3 // 10),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(conversation=conversations())
def test_a_conversation_fed_byte_by_byte_gets_the_same_answers(conversation: bytes) -> None:
    whole = answers([conversation])
    assert_same_answers(whole, answers([conversation[i : i + 1] for i in range(len(conversation))]))


def test_the_login_alone_byte_by_byte_gets_the_same_answers_byte_for_byte() -> None:
    login = handshake_frames()
    whole = answers([login])
    assert whole == answers([login[i : i + 1] for i in range(len(login))])
    assert not whole.startswith(PROTOCOL_HEADER)
    reader = FrameReader(1 << 20)
    methods = [spec.decode_method(payload) for _type, _channel, payload in reader.feed(whole)]
    assert [type(m) for m in methods] == [spec.ConnectionStart, spec.ConnectionTune, spec.ConnectionOpenOk]
