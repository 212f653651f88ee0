"""Durability barriers over several writers (the store, stream logs), completed in order.

A publisher confirm waits until everything it covers is on disk: the store's rows and the
appends to each stream log it reached. Each writer completes its own barriers in order, but two
writers do not keep each other's, so a barrier here completes only once all its parts have and
every barrier before it has: confirms never overtake one another.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

Barrier = Callable[[Callable[[], None]], None]  # a writer's: run the callback once durable


class OrderedBarriers:
    def __init__(self) -> None:
        self._waiting: deque[list[object]] = deque()  # [parts left, callback]

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def submit(self, parts: Sequence[Barrier], callback: Callable[[], None]) -> None:
        entry: list[object] = [len(parts), callback]
        self._waiting.append(entry)
        for part in parts:
            part(lambda: self._part_done(entry))

    def _part_done(self, entry: list[object]) -> None:
        entry[0] = int(entry[0]) - 1  # type: ignore[call-overload]
        waiting = self._waiting
        while waiting and waiting[0][0] == 0:
            callback = waiting.popleft()[1]
            callback()  # type: ignore[operator]

    def clear(self) -> None:
        """A writer failed: the barriers waiting will never complete (their confirms are nacked
        instead), and must not hold back the ones that come after it recovers."""
        self._waiting.clear()
