"""The ready messages of a queue, in delivery order: plain FIFO, or by priority then FIFO.

Both keep publish order (``seq``) within a priority, so a requeued message goes back where it
was. FifoReady is a deque with the method names both share, so the common case costs nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lapine.broker.queue import QueuedMessage


def _by_seq(entry: QueuedMessage) -> int:
    return entry.seq


def _merge_in(target: deque[QueuedMessage], back: list[QueuedMessage]) -> None:
    """Put seq-sorted entries back into a seq-sorted deque."""
    if not target or back[-1].seq < target[0].seq:
        target.extendleft(reversed(back))
        return
    merged = sorted([*back, *target], key=_by_seq)
    target.clear()
    target.extend(merged)


class FifoReady(deque["QueuedMessage"]):
    push = deque.append
    pop_head = deque.popleft
    pop_tail = deque.pop

    def head(self) -> QueuedMessage | None:
        return self[0] if self else None

    def tail(self) -> QueuedMessage | None:
        return self[-1] if self else None

    def put_back(self, entries: list[QueuedMessage]) -> None:
        _merge_in(self, entries)


class PriorityReady:
    """One FIFO per priority level; the highest non-empty level is the head."""

    def __init__(self, max_priority: int) -> None:
        self.max_priority = max_priority
        self.levels: list[deque[QueuedMessage]] = [deque() for _ in range(max_priority + 1)]
        self._count = 0

    def priority_of(self, entry: QueuedMessage) -> int:
        priority = entry.message.properties.priority or 0
        return min(priority, self.max_priority)

    def push(self, entry: QueuedMessage) -> None:
        self.levels[self.priority_of(entry)].append(entry)
        self._count += 1

    def _top(self) -> deque[QueuedMessage] | None:
        for level in reversed(self.levels):
            if level:
                return level
        return None

    def head(self) -> QueuedMessage | None:
        top = self._top()
        return top[0] if top else None

    def tail(self) -> QueuedMessage | None:
        for level in self.levels:
            if level:
                return level[-1]
        return None

    def pop_head(self) -> QueuedMessage:
        top = self._top()
        if top is None:
            raise IndexError("pop from an empty queue")
        self._count -= 1
        return top.popleft()

    def pop_tail(self) -> QueuedMessage:
        for level in self.levels:
            if level:
                self._count -= 1
                return level.pop()
        raise IndexError("pop from an empty queue")

    def put_back(self, entries: list[QueuedMessage]) -> None:
        by_level: dict[int, list[QueuedMessage]] = {}
        for entry in entries:
            by_level.setdefault(self.priority_of(entry), []).append(entry)
        for level, group in by_level.items():
            _merge_in(self.levels[level], group)
        self._count += len(entries)

    def clear(self) -> None:
        for level in self.levels:
            level.clear()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[QueuedMessage]:
        for level in reversed(self.levels):
            yield from level


# A quorum queue's message priorities (rabbit_fifo_pq): 0 to 31, 4 for a message without one.
QUORUM_MAX_PRIORITY = 31
QUORUM_DEFAULT_PRIORITY = 4
_PRIORITY_FLAG_HIGH = 0x08  # basic properties flag 0x0800, in the high byte


def quorum_priority(entry: QueuedMessage) -> int:
    """The message's priority property, clamped to 0..31; 4 without one (read only when set)."""
    header = entry.message.header_payload
    if len(header) <= 12 or not header[12] & _PRIORITY_FLAG_HIGH:
        return QUORUM_DEFAULT_PRIORITY
    priority = entry.message.properties.priority
    if priority is None:
        return QUORUM_DEFAULT_PRIORITY
    return max(0, min(priority, QUORUM_MAX_PRIORITY))


class ReturnsFirstReady:
    """A quorum queue's ready messages (rabbit_fifo): messages handed back by consumers wait in
    ``returns``, in the order they came back, and go out before any other; then the others by
    priority, highest first (strictly, as RabbitMQ 4.3), FIFO within one. Messages without a
    priority (4) are ``messages``; the other levels exist only while they hold something."""

    def __init__(self) -> None:
        self.returns: deque[QueuedMessage] = deque()
        self.messages: deque[QueuedMessage] = deque()
        self.others: dict[int, deque[QueuedMessage]] = {}

    def _levels(self) -> list[deque[QueuedMessage]]:
        """Every level in delivery order (returns first)."""
        others = self.others
        higher = [others[p] for p in sorted(others, reverse=True) if p > QUORUM_DEFAULT_PRIORITY]
        lower = [others[p] for p in sorted(others, reverse=True) if p < QUORUM_DEFAULT_PRIORITY]
        return [self.returns, *higher, self.messages, *lower]

    def _drop_empty(self) -> None:
        for priority in [p for p, level in self.others.items() if not level]:
            del self.others[priority]

    def push(self, entry: QueuedMessage) -> None:
        priority = quorum_priority(entry)
        if priority == QUORUM_DEFAULT_PRIORITY:
            self.messages.append(entry)
        else:
            self.others.setdefault(priority, deque()).append(entry)

    def push_default(self, entry: QueuedMessage) -> None:
        """At the tail of the default priority, whatever the message's own (a re-enqueue)."""
        self.messages.append(entry)

    def head(self) -> QueuedMessage | None:
        if self.returns:
            return self.returns[0]
        if not self.others:
            return self.messages[0] if self.messages else None
        for level in self._levels():
            if level:
                return level[0]
        return None

    def tail(self) -> QueuedMessage | None:
        for level in reversed(self._levels()):
            if level:
                return level[-1]
        return None

    def pop_head(self) -> QueuedMessage:
        if self.returns:
            return self.returns.popleft()
        if not self.others:
            return self.messages.popleft()
        for level in self._levels():
            if level:
                entry = level.popleft()
                self._drop_empty()
                return entry
        raise IndexError("pop from an empty queue")

    def pop_tail(self) -> QueuedMessage:
        for level in reversed(self._levels()):
            if level:
                entry = level.pop()
                self._drop_empty()
                return entry
        raise IndexError("pop from an empty queue")

    def put_back(self, entries: list[QueuedMessage]) -> None:
        self.returns.extend(entries)

    def clear(self) -> None:
        self.returns.clear()
        self.messages.clear()
        self.others.clear()

    def __len__(self) -> int:
        return len(self.returns) + len(self.messages) + sum(map(len, self.others.values()))

    def __bool__(self) -> bool:
        return bool(self.returns) or bool(self.messages) or bool(self.others)

    def __iter__(self) -> Iterator[QueuedMessage]:
        for level in self._levels():
            yield from level


Ready = FifoReady | PriorityReady | ReturnsFirstReady


def make_ready(max_priority: int | None) -> FifoReady | PriorityReady:
    return PriorityReady(max_priority) if max_priority else FifoReady()


def sorted_by_seq(entries: Iterable[QueuedMessage]) -> list[QueuedMessage]:
    return sorted(entries, key=_by_seq)
