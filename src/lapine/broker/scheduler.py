"""Timers for the sans-IO model: the broker asks for callbacks, the server layer provides them.

Under asyncio the scheduler is the event loop; tests without a loop use ManualScheduler and move
its clock by hand. The model reads the wall clock (for x-death times, stored TTL deadlines and
connection times) only through ``wall_time``, so a manual clock moves it too.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...

    def time(self) -> float:
        """Monotonic seconds: for timers and TTLs."""

    def wall_time(self) -> float:
        """Seconds since the epoch: for what is stored or shown to clients."""


class ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualScheduler:
    """A clock that moves only when told to: ``advance(seconds)`` runs the timers that fall due."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self._wall_offset = time.time() - self.now
        self._timers: list[tuple[float, int, ManualTimer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def wall_time(self) -> float:
        return self.now + self._wall_offset

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(self.now + max(delay, 0.0), callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _order, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = target
