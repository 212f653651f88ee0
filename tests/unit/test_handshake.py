"""The AMQP handshake's transition table: every allowed and every refused transition."""

from __future__ import annotations

import pytest

from lapine.amqp import spec
from lapine.amqp.errors import ConnectionError
from lapine.broker import handshake
from lapine.broker.handshake import State

# Every method of the connection class, as a client could send it on channel 0, and one of
# another class that has no business there.
CONNECTION_METHODS: list[spec.Method] = [
    spec.ConnectionStart(),
    spec.ConnectionStartOk(mechanism="PLAIN", response=b"\x00guest\x00guest", locale="en_US"),
    spec.ConnectionSecure(),
    spec.ConnectionSecureOk(),
    spec.ConnectionTune(),
    spec.ConnectionTuneOk(),
    spec.ConnectionOpen(virtual_host="/"),
    spec.ConnectionOpenOk(),
    spec.ConnectionClose(),
    spec.ConnectionCloseOk(),
    spec.ConnectionBlocked(reason="low on memory"),
    spec.ConnectionUnblocked(),
    spec.ConnectionUpdateSecret(),
    spec.ConnectionUpdateSecretOk(),
    spec.ChannelOpen(),
    spec.BasicPublish(),
]

CLOSE = {spec.ConnectionClose: State.CLOSED, spec.ConnectionCloseOk: State.CLOSED}
# Written out apart from the module's table, so that a change to it shows here.
ALLOWED: dict[State, dict[type[spec.Method], State]] = {
    State.AWAIT_HEADER: {},
    State.AWAIT_START_OK: {spec.ConnectionStartOk: State.AWAIT_TUNE_OK, **CLOSE},
    State.AWAIT_TUNE_OK: {spec.ConnectionTuneOk: State.AWAIT_OPEN, **CLOSE},
    State.AWAIT_OPEN: {spec.ConnectionOpen: State.OPEN, **CLOSE},
    State.OPEN: {
        spec.ConnectionUpdateSecret: State.OPEN,
        spec.ConnectionBlocked: State.OPEN,
        spec.ConnectionUnblocked: State.OPEN,
        **CLOSE,
    },
    State.CLOSING: {},
    State.CLOSED: {},
}
RABBIT_NAMES = {
    State.AWAIT_HEADER: "starting",
    State.AWAIT_START_OK: "starting",
    State.AWAIT_TUNE_OK: "tuning",
    State.AWAIT_OPEN: "opening",
    State.OPEN: "running",
    State.CLOSING: "closing",
    State.CLOSED: "closed",
}
ALL = [(state, method) for state in State for method in CONNECTION_METHODS]


def _id(case: tuple[State, spec.Method]) -> str:
    return f"{case[0].name}-{case[1].NAME}"


@pytest.mark.parametrize("case", [c for c in ALL if type(c[1]) in ALLOWED[c[0]]], ids=_id)
def test_an_allowed_method_leads_to_its_next_state(case: tuple[State, spec.Method]) -> None:
    state, method = case
    assert handshake.next_state(state, method) is ALLOWED[state][type(method)]


@pytest.mark.parametrize("case", [c for c in ALL if type(c[1]) not in ALLOWED[c[0]]], ids=_id)
def test_any_other_method_is_rabbitmqs_connection_error(case: tuple[State, spec.Method]) -> None:
    state, method = case
    with pytest.raises(ConnectionError) as raised:
        handshake.next_state(state, method)
    error = raised.value
    assert error.reply_code == 504
    assert error.reply_text == f"CHANNEL_ERROR - unexpected method in connection state {RABBIT_NAMES[state]}"
    assert (error.class_id, error.method_id) == (method.CLASS_ID, method.METHOD_ID)


def test_the_table_covers_every_state() -> None:
    assert set(handshake.TRANSITIONS) == set(State)


def test_the_protocol_header_starts_the_handshake_and_only_it() -> None:
    assert handshake.header_received(State.AWAIT_HEADER) is State.AWAIT_START_OK
    for state in State:
        if state is not State.AWAIT_HEADER:
            with pytest.raises(AssertionError):
                handshake.header_received(state)


def test_the_handshake_in_order_ends_open() -> None:
    state = handshake.header_received(State.AWAIT_HEADER)
    for method in (CONNECTION_METHODS[1], spec.ConnectionTuneOk(), spec.ConnectionOpen(virtual_host="/")):
        state = handshake.next_state(state, method)
    assert state is State.OPEN


@pytest.mark.parametrize("state", [s for s in State if s is not State.OPEN])
def test_a_channel_method_before_the_connection_is_open_is_refused(state: State) -> None:
    with pytest.raises(ConnectionError) as raised:
        handshake.check_channel_method(state, spec.QueueDeclare(queue="q"))
    error = raised.value
    assert error.reply_code == 504
    assert error.reply_text == "CHANNEL_ERROR - expected 'connection.open', got 'queue.declare'"
    assert (error.class_id, error.method_id) == (50, 10)


def test_a_channel_method_on_an_open_connection_goes_on() -> None:
    handshake.check_channel_method(State.OPEN, spec.QueueDeclare(queue="q"))
