"""A queue's consumers that may have room, in the order they take turns (RabbitMQ's round-robin).

As in RabbitMQ's ``rabbit_queue_consumers``, the queue hands the next message to the consumer at
the head of the highest priority level and puts it back at the tail. A consumer found without room
when its turn comes leaves the ring; it comes back, at the tail, only when its window opens again
(an ack, or its channel able to take deliveries again). So a dispatch looks only at consumers that
can take a message, plus at most once at each one that filled up since it last did: its cost does
not grow with the number of full consumers.

A cancelled consumer's entry is not searched for: it is dropped when it reaches the head, or when
such entries outnumber the live ones (so a queue whose consumers come and go without messages does
not keep them all).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lapine.broker.ports import Subscriber

# Cancelled entries tolerated beyond the live ones before the ring is compacted.
_STALE_SLACK = 16


class ConsumerRing:
    __slots__ = ("_by_priority", "_entries", "_stale", "levels")

    def __init__(self) -> None:
        # One deque per consumer priority, highest first; dispatch walks them in this order.
        self.levels: list[deque[Subscriber]] = []
        self._by_priority: dict[int, deque[Subscriber]] = {}
        self._entries = 0  # entries in all levels, cancelled ones included
        self._stale = 0  # entries of cancelled consumers

    def __len__(self) -> int:
        return self._entries - self._stale

    def append(self, consumer: Subscriber) -> None:
        """The consumer's turn comes after everyone already waiting at its priority."""
        level = self._by_priority.get(consumer.priority)
        if level is None:
            level = self._by_priority[consumer.priority] = deque()
            self.levels = [self._by_priority[p] for p in sorted(self._by_priority, reverse=True)]
        level.append(consumer)
        consumer.in_ring = True
        self._entries += 1

    def left(self, consumer: Subscriber) -> None:
        """Dispatch took the consumer off the head of its level (it had no room)."""
        consumer.in_ring = False
        self._entries -= 1
        if consumer.cancelled:
            self._stale -= 1

    def cancelled(self, consumer: Subscriber) -> None:
        """The consumer is gone: its entry no longer counts, and is dropped when reached."""
        if not consumer.in_ring:
            return
        self._stale += 1
        if self._stale > self._entries - self._stale + _STALE_SLACK:
            self._compact()

    def _compact(self) -> None:
        for priority, level in list(self._by_priority.items()):
            live = [consumer for consumer in level if not consumer.cancelled]
            for consumer in level:
                if consumer.cancelled:
                    consumer.in_ring = False
            if live:
                level.clear()
                level.extend(live)
            else:
                del self._by_priority[priority]
        self.levels = [self._by_priority[p] for p in sorted(self._by_priority, reverse=True)]
        self._entries -= self._stale
        self._stale = 0
