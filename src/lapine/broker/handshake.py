"""The AMQP connection's states and its handshake as a transition table (as h11's ``_state.py``).

In each state, the table says which connection-class method (channel 0) may come and which state
follows it. Anything else is RabbitMQ's connection error: 504 "unexpected method in connection
state <name>", naming the state as rabbit_reader.erl does. The table's next state is the one a
method leads to when it succeeds; a method that fails (a refused login, a vhost that is not
there) closes the connection instead, and the connection's own closing states win.

    header -> start-ok -> tune-ok -> open -> running (update-secret, blocked, unblocked)

connection.close and close-ok may come in any state once the header is in. Once connection.close
is sent (CLOSING), the connection waits for close-ok and drops everything else, which is not a
matter of this table.
"""

from __future__ import annotations

from enum import Enum

from lapine.amqp import spec
from lapine.amqp.constants import CHANNEL_ERROR
from lapine.amqp.errors import ConnectionError


class State(Enum):
    AWAIT_HEADER = "awaiting protocol header"
    AWAIT_START_OK = "awaiting connection.start-ok"
    AWAIT_TUNE_OK = "awaiting connection.tune-ok"
    AWAIT_OPEN = "awaiting connection.open"
    OPEN = "open"
    CLOSING = "closing"  # connection.close sent, waiting for close-ok
    CLOSED = "closed"


class ProtocolHeader:
    """The event of the client's protocol header (b"AMQP\\x00\\x00\\x09\\x01"), before any frame."""


Event = type[spec.Method] | type[ProtocolHeader]

# What the client may close with in any state of the handshake and after.
_CLOSE: dict[Event, State] = {spec.ConnectionClose: State.CLOSED, spec.ConnectionCloseOk: State.CLOSED}

TRANSITIONS: dict[State, dict[Event, State]] = {
    State.AWAIT_HEADER: {ProtocolHeader: State.AWAIT_START_OK},
    State.AWAIT_START_OK: {spec.ConnectionStartOk: State.AWAIT_TUNE_OK, **_CLOSE},
    State.AWAIT_TUNE_OK: {spec.ConnectionTuneOk: State.AWAIT_OPEN, **_CLOSE},
    State.AWAIT_OPEN: {spec.ConnectionOpen: State.OPEN, **_CLOSE},
    State.OPEN: {
        spec.ConnectionUpdateSecret: State.OPEN,
        spec.ConnectionBlocked: State.OPEN,
        spec.ConnectionUnblocked: State.OPEN,
        **_CLOSE,
    },
    State.CLOSING: {},
    State.CLOSED: {},
}

# How RabbitMQ names the connection's states in its error texts.
RABBIT_STATE_NAMES = {
    State.AWAIT_HEADER: "starting",
    State.AWAIT_START_OK: "starting",
    State.AWAIT_TUNE_OK: "tuning",
    State.AWAIT_OPEN: "opening",
    State.OPEN: "running",
    State.CLOSING: "closing",
    State.CLOSED: "closed",
}


def next_state(state: State, method: spec.Method) -> State:
    """The state ``method`` (on channel 0) leads to from ``state``; a ConnectionError if it may
    not come now."""
    target = TRANSITIONS[state].get(type(method))
    if target is None:
        raise ConnectionError(
            CHANNEL_ERROR,
            f"unexpected method in connection state {RABBIT_STATE_NAMES[state]}",
            method.CLASS_ID,
            method.METHOD_ID,
        )
    return target


def header_received(state: State) -> State:
    """The state after the protocol header (only the first thing a client sends is one)."""
    target = TRANSITIONS[state].get(ProtocolHeader)
    assert target is not None, f"a protocol header in state {state}"
    return target


def check_channel_method(state: State, method: spec.Method) -> None:
    """A method on a channel other than 0 needs the connection open (RabbitMQ's text)."""
    if state is not State.OPEN:
        raise ConnectionError(
            CHANNEL_ERROR,
            f"expected 'connection.open', got '{method.NAME}'",
            method.CLASS_ID,
            method.METHOD_ID,
        )
