"""One gate on reading a client connection, with every reason it is shut.

Several things stop Lapine reading a connection, and each pauses and resumes for itself; reading
goes on only once no reason is left (the idea of uvicorn's flow_control.py, with a set of reasons
instead of one flag). Two gates of this kind stand in front of each connection:

* the connection's own (broker/connection.py, mqtt/connection.py): the frames it has read wait
  while it is out of credit (``FLOW``), while the client leaves too much of our output unread
  (``UNREAD``), or while an answer waits for the store (``ANSWER``);
* the socket's (server/fair_protocol.py): the socket is not read while this tick's share is used
  up (``TICK``), a resource alarm blocks publishers (``ALARM``), the store's write backlog is too
  long (``STORE``), a failed login is answered late (``LOGIN``), or frames already read wait
  behind the connection's gate (``HELD``). Its callbacks pause and resume the transport.

The server side consults the connection's reasons to know what will open it again: the next
tick's credit, the flow-retry timer, the client reading (resume_writing), or the store's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class Pause(Enum):
    # The connection's reasons: frames already read wait.
    FLOW = "flow"  # out of credit: the queues it publishes to are behind (broker/flow.py)
    UNREAD = "unread"  # the client does not read what we send (broker/output_buffer.py)
    ANSWER = "answer"  # an answer waits for the store, and later ones keep their order
    # The socket's reasons: it is not read.
    TICK = "tick"  # this tick's read share is used up
    ALARM = "alarm"  # a memory or disk alarm blocks publishers
    STORE = "store"  # the store's write backlog is too long
    LOGIN = "login"  # a failed login's answer is being held back
    HELD = "held"  # frames already read wait behind the connection's gate


def _nothing() -> None:
    pass


class ReadGate:
    __slots__ = ("_on_open", "_on_shut", "reasons")

    def __init__(self, on_shut: Callable[[], None] = _nothing, on_open: Callable[[], None] = _nothing) -> None:
        self._on_shut = on_shut  # the first reason came
        self._on_open = on_open  # the last reason went
        # Read it as a whole where speed counts: the set is never replaced, only changed.
        self.reasons: set[Pause] = set()

    @property
    def shut(self) -> bool:
        return bool(self.reasons)

    def pause(self, reason: Pause) -> None:
        if not self.reasons:
            self._on_shut()
        self.reasons.add(reason)

    def resume(self, reason: Pause) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons:
            self._on_open()

    def pause_while(self, reason: Pause, condition: bool) -> None:
        """Pause for ``reason`` if ``condition`` holds, resume for it if not."""
        if condition:
            self.pause(reason)
        else:
            self.resume(reason)
