"""One gate on reading a socket, with every reason it is shut.

Several things stop Lapine reading a connection: its share of this loop tick is used up (read
fairness), it is out of credit (credit flow), a resource alarm blocks it, the store is behind, a
failed login is being answered late, or the client does not read what we send. Each pauses and
resumes for itself; the socket is read again only once no reason is left (the idea of uvicorn's
flow_control.py, with a set of reasons instead of one flag).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class Pause(Enum):
    TICK = "tick"  # this tick's read share is used up
    FLOW = "flow"  # out of credit: the queues it publishes to are behind
    ALARM = "alarm"  # a memory or disk alarm blocks publishers
    STORE = "store"  # the store's write backlog is too long
    LOGIN = "login"  # a failed login's answer is being held back
    HELD = "held"  # frames already read wait: out of credit, or the client does not read us


class ReadGate:
    def __init__(self, pause_reading: Callable[[], None], resume_reading: Callable[[], None]) -> None:
        self._pause_reading = pause_reading
        self._resume_reading = resume_reading
        self.reasons: set[Pause] = set()

    @property
    def shut(self) -> bool:
        return bool(self.reasons)

    def pause(self, reason: Pause) -> None:
        if not self.reasons:
            self._pause_reading()
        self.reasons.add(reason)

    def resume(self, reason: Pause) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons:
            self._resume_reading()
