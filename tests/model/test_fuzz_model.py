"""The fuzz attacks of tests/hardening (fuzz_frames.py), with no sockets: bad bytes from several
model connections, their writes interleaved, while another client's confirmed traffic goes on
over the same broker. Each bad connection must get the right reply code (the hand-made attacks)
or a plausible one (the random ones), or be dropped, and never leave the broker waiting for
nothing; the good client must lose nothing; nothing may log a traceback.

The socket version (tests/hardening/test_fuzz.py) adds what only sockets show: memory given back,
a broker that keeps answering new connections; this one runs in a fraction of the time and, with
no threads, replays exactly when hypothesis shrinks a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapine.amqp import spec
from lapine.amqp.frames import PROTOCOL_HEADER
from lapine.broker.connection import State
from lapine.testing.model import ModelBroker, ModelClient
from tests.hardening.fuzz_frames import HEADER, OPEN, Attack, attacks, hand_made
from tests.model.conversations import EXAMPLES

# Reply codes a connection.close may carry for bad input; 541 only for content properties that
# cannot be decoded (where RabbitMQ's channel process crashes and says INTERNAL_ERROR too).
PLAUSIBLE = {403, 501, 502, 503, 504, 505, 530, 540}
# Zeros complete any frame the broker may be waiting for (none is over frame_max), then are frames
# of type 0, which it must refuse: an answer to them proves it was not stuck.
POKE = bytes(140_000)
GOOD_QUEUE = "good-q"

# What RabbitMQ answers to each hand-made attack: (where, reply code, the reply text's start), where
# "connection" is connection.close, "channel" channel.close on channel 1, "dropped" a socket closed
# with no close method (a protocol header back, or a failed login without authentication_failure_close),
# and "poked" an answer only once the POKE completes the frame the broker was right to wait for.
EXPECTED: dict[str, tuple[str, int, str]] = {
    "bad frame end": ("connection", 501, "FRAME_ERROR - type 1, all octets = <<0,60,0,10,"),
    "size larger than payload": ("poked", 501, "FRAME_ERROR - type 1, first 16 octets = "),
    "size smaller than payload": ("connection", 501, "FRAME_ERROR - type 1, all octets = <<0,60,0>>: "),
    "oversized frame header": ("connection", 501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,"),
    "oversized frame, all of it": ("connection", 501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,"),
    "truncated table": ("connection", 501, "FRAME_ERROR - cannot decode "),
    "unknown field type": ("connection", 501, "FRAME_ERROR - cannot decode "),
    "unknown class": ("connection", 540, "NOT_IMPLEMENTED - unknown method id {99,99}"),
    "unknown method": ("connection", 540, "NOT_IMPLEMENTED - unknown method id {60,999}"),
    "empty method frame": ("connection", 501, "FRAME_ERROR - type 1, all octets = <<>>: unknown_frame"),
    "header before publish": ("connection", 505, "UNEXPECTED_FRAME - expected method frame"),
    "body before header": ("connection", 505, "UNEXPECTED_FRAME - expected content header for class 60"),
    "method instead of body": ("connection", 505, "UNEXPECTED_FRAME - expected content body"),
    "body larger than declared": ("connection", 501, "FRAME_ERROR - "),
    "content header of class 50": ("connection", 505, "UNEXPECTED_FRAME - expected content header for class 60"),
    "enormous body size": ("channel", 406, "PRECONDITION_FAILED - message size 9223372036854775808 is larger"),
    "garbled properties": ("connection", 541, "INTERNAL_ERROR - cannot decode content properties"),
    "deep headers to a headers exchange": ("connection", 541, "INTERNAL_ERROR - cannot decode content properties"),
    "deep declare arguments": ("connection", 501, "FRAME_ERROR - cannot decode "),
    "method on a closed channel": ("connection", 504, "CHANNEL_ERROR - expected 'channel.open'"),
    "method on a channel never opened": ("connection", 504, "CHANNEL_ERROR - expected 'channel.open'"),
    "content on a channel never opened": ("connection", 505, "UNEXPECTED_FRAME - expected method frame"),
    "second channel.open": ("connection", 504, "CHANNEL_ERROR - second 'channel.open' seen"),
    "channel method on channel 0": ("connection", 504, "CHANNEL_ERROR - unexpected method in connection state"),
    "connection method on channel 1": ("connection", 503, "COMMAND_INVALID - "),
    "heartbeat on channel 1": ("connection", 505, "UNEXPECTED_FRAME - type 8"),
    "heartbeat with payload": ("connection", 501, "FRAME_ERROR - type 8"),
    "unknown frame type": ("connection", 501, "FRAME_ERROR - type 9"),
    "channel.flow off": ("connection", 540, "NOT_IMPLEMENTED - active=false"),
    "immediate publish": ("connection", 540, "NOT_IMPLEMENTED - immediate=true"),
    "second connection.open": ("connection", 504, "CHANNEL_ERROR - unexpected method in connection state running"),
    "many channels": ("connection", 530, "NOT_ALLOWED - number of channels opened (2047) has reached"),
    "byte-by-byte bad frame": ("connection", 501, "FRAME_ERROR - type 1, all octets = "),
    "wrong protocol header": ("dropped", 0, ""),
    "HTTP request": ("dropped", 0, ""),
    "TLS client hello": ("dropped", 0, ""),
    "garbage before the header": ("dropped", 0, ""),
    "frames before the header": ("dropped", 0, ""),
    "tune-ok before start-ok": ("connection", 504, "CHANNEL_ERROR - unexpected method in connection state starting"),
    "start-ok with a garbled table": ("connection", 501, "FRAME_ERROR - cannot decode "),
    "start-ok with bad credentials shape": ("dropped", 0, ""),
    "start-ok, unknown mechanism": ("connection", 403, "ACCESS_REFUSED - unsupported authentication mechanism"),
    "open before login": ("connection", 504, "CHANNEL_ERROR - unexpected method in connection state starting"),
    "content before login": ("connection", 505, "UNEXPECTED_FRAME - expected method frame"),
}


@dataclass
class Outcome:
    where: str = ""  # "connection", "channel", "dropped", with "poked" when only the poke got it
    code: int = 0
    text: str = ""


class GoodTraffic:
    """A publisher with confirms and a consumer with manual acks on one queue, through the storm."""

    def __init__(self, model: ModelBroker) -> None:
        self.publisher = model.client()
        self.publisher.declare_queue(GOOD_QUEUE)
        self.publisher.call(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
        self.consumer = model.client()
        self.consumer.qos(20)
        self.consumer.consume(GOOD_QUEUE, "good")
        self.sent: list[bytes] = []
        self.acked: set[int] = set()
        self.received: list[bytes] = []
        self._last_confirm = 0

    def step(self, count: int = 3) -> None:
        for _ in range(count):
            body = str(len(self.sent)).encode()
            self.sent.append(body)
            self.publisher.publish(1, body, routing_key=GOOD_QUEUE)
        self._settle()

    def _settle(self) -> None:
        for kind, tag, multiple in self.publisher.confirms():
            assert kind == "ack", f"good publish {tag} nacked"
            self.acked.update(range(self._last_confirm + 1 if multiple else tag, tag + 1))
            self._last_confirm = max(self._last_confirm, tag)
        deliveries = self.consumer.deliveries()
        self.received += [delivery.body for delivery in deliveries]
        if deliveries:
            self.consumer.ack(deliveries[-1].method.delivery_tag, multiple=True)
            self._settle()

    def verify(self) -> None:
        self._settle()
        for client in (self.publisher, self.consumer):
            assert client.received_of(spec.ChannelClose) == []
            assert client.received_of(spec.ConnectionClose) == []
        assert self.acked == set(range(1, len(self.sent) + 1)), "a good publish was not confirmed"
        assert self.received == self.sent, "good messages lost, duplicated or out of order"


class Tracebacks(logging.Handler):
    """Every log record with a traceback: the sign of a crash in the model."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
    assert not handler.records, [handler.format(record) for record in handler.records[:3]]


def start(model: ModelBroker, attack: Attack) -> ModelClient:
    if attack.prelude == OPEN:
        return model.client()
    client = model.connect()
    if attack.prelude == HEADER:
        client.send(PROTOCOL_HEADER)
        client.expect(spec.ConnectionStart)
    return client


def answer(client: ModelClient) -> Outcome | None:
    """What the broker said to a bad client so far, if it said it was done with it."""
    items = client.take()
    for _channel, item in items:
        if isinstance(item, spec.ConnectionClose):
            client.method(0, spec.ConnectionCloseOk())
            # Still closing if the close-ok was not read (after a frame error nothing more is, and
            # the rest of a partial frame swallows it): the server layer closes the socket after a
            # grace period then, as RabbitMQ does.
            assert client.connection.state in (State.CLOSING, State.CLOSED)
            return Outcome("connection", item.reply_code, item.reply_text)
    for channel, item in items:
        if isinstance(item, spec.ChannelClose) and channel == 1:
            return Outcome("channel", item.reply_code, item.reply_text)
    if client.connection.finished:
        return Outcome("dropped")
    return None


def storm(model: ModelBroker, traffic: GoodTraffic, batch: list[Attack]) -> list[Outcome]:
    """Every attack at once: their writes taken in turn, the good traffic going on in between."""
    clients = [start(model, attack) for attack in batch]
    writes = [attack.writes() for attack in batch]
    for turn in range(max(len(pieces) for pieces in writes)):
        for client, pieces in zip(clients, writes, strict=True):
            if turn < len(pieces):
                client.send(pieces[turn])
        traffic.step()
    outcomes = []
    for client in clients:
        outcome = answer(client)
        if outcome is None or outcome.where == "channel":
            client.send(POKE)
            poked = answer(client)
            assert poked is not None and poked.where != "channel", "no answer after the poke: stuck"
            if outcome is None:
                outcome = poked if poked.where == "dropped" else Outcome("poked", poked.code, poked.text)
        client.disconnect()
        assert client.connection not in model.broker.connections
        outcomes.append(outcome)
    traffic.step()
    return outcomes


def plausible(outcome: Outcome) -> bool:
    if outcome.where == "dropped":
        return True
    if outcome.where == "channel":
        return 400 <= outcome.code < 500
    return outcome.code in PLAUSIBLE or (outcome.code == 541 and "cannot decode content properties" in outcome.text)


@pytest.mark.parametrize("attack", hand_made(), ids=lambda attack: attack.name)
def test_a_hand_made_attack_gets_rabbitmqs_answer_and_harms_nobody(attack: Attack, tracebacks: Tracebacks) -> None:
    model = ModelBroker()
    traffic = GoodTraffic(model)
    (outcome,) = storm(model, traffic, [attack])
    where, code, text = EXPECTED[attack.name]
    assert (outcome.where, outcome.code) == (where, code), outcome
    assert outcome.text.startswith(text), outcome.text
    traffic.verify()


def test_every_hand_made_attack_has_an_expected_answer() -> None:
    assert {attack.name for attack in hand_made()} == set(EXPECTED)


@settings(
    max_examples=max(1, EXAMPLES * 6 // 10), deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(batch=st.lists(attacks(), min_size=1, max_size=4))
def test_random_attacks_at_once_get_plausible_answers_and_harm_nobody(batch: list[Attack]) -> None:
    handler = Tracebacks()
    logging.getLogger().addHandler(handler)
    try:
        model = ModelBroker()
        traffic = GoodTraffic(model)
        for outcome, attack in zip(storm(model, traffic, batch), batch, strict=True):
            assert plausible(outcome), (attack.name, outcome, attack.data[:80])
        traffic.verify()
        model.client()  # a newcomer still gets in
        assert model.broker.connections == {traffic.publisher.connection, traffic.consumer.connection} | {
            client.connection for client in model.clients[-1:]
        }
    finally:
        logging.getLogger().removeHandler(handler)
    assert not handler.records, [handler.format(record) for record in handler.records[:3]]
