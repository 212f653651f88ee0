"""A queue: its ready messages, its consumers, and the round-robin that hands one to the other.

Messages wait in ``ready`` in publish order (``seq``). A delivery that needs an ack leaves the
queue and is held by the channel that received it until acked (gone) or requeued (back here, in
its original position, flagged redelivered), as RabbitMQ's classic queues do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lapine.broker.message import Message
from lapine.broker.stats import MessageStats

if TYPE_CHECKING:
    from lapine.broker.connection import Connection
    from lapine.broker.consumer import Consumer
    from lapine.broker.scheduler import Timer
    from lapine.broker.vhost import VirtualHost


class QueuedMessage:
    """One message in one queue: the same Message may sit in many queues at once."""

    __slots__ = ("expires_at", "message", "redelivered", "seq")

    def __init__(self, message: Message, seq: int, redelivered: bool = False, expires_at: float = 0.0) -> None:
        self.message = message
        self.seq = seq
        self.redelivered = redelivered
        # Monotonic time after which the message is dead; 0 for never.
        self.expires_at = expires_at


class Queue:
    def __init__(
        self,
        vhost: VirtualHost,
        name: str,
        *,
        durable: bool = False,
        exclusive_owner: Connection | None = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        self.ready: deque[QueuedMessage] = deque()
        self.consumers: list[Consumer] = []
        self.exclusive_consumer: Consumer | None = None
        self._next_seq = 0
        self._round_robin = 0
        self.deleted = False
        # An auto-delete queue goes when its last consumer does, but only once it has had one.
        self.had_consumer = False
        self.unacked_count = 0
        self.stats = MessageStats()
        ttl = self.arguments.get("x-message-ttl")
        self.message_ttl: int | None = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None
        # Set once a message with a TTL arrives, so queues without TTLs never look at the clock.
        self._expiring = False
        self._expiry_timer: Timer | None = None
        self._expiry_due = 0.0

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} in vhost {self.vhost.name!r}>"

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def message_count(self) -> int:
        if self._expiring:
            self.expire()
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # --- messages in -------------------------------------------------------------------------

    def publish(self, message: Message) -> None:
        seq = self._next_seq
        self._next_seq = seq + 1
        ttl = message.ttl
        if self.message_ttl is not None and (ttl is None or self.message_ttl < ttl):
            ttl = self.message_ttl
        if ttl is None:
            self.ready.append(QueuedMessage(message, seq))
            if self.consumers:
                self.dispatch()
            return
        entry = QueuedMessage(message, seq, expires_at=self.vhost.scheduler.time() + ttl / 1000)
        self._expiring = True
        self.ready.append(entry)
        if self.consumers:
            self.dispatch()
        if ttl == 0 and self.ready and self.ready[-1] is entry:
            # TTL 0: delivered at once to a consumer with room, or never (RabbitMQ's rule).
            self.ready.pop()
            self.expired([entry])
        else:
            self.expire()

    # --- expiry ------------------------------------------------------------------------------

    def expire(self) -> None:
        """Drop the expired messages at the head, and set a timer for the next one due."""
        if not self._expiring:
            return
        ready = self.ready
        now = self.vhost.scheduler.time()
        dead = []
        while ready and 0 < ready[0].expires_at <= now:
            dead.append(ready.popleft())
        if dead:
            self.expired(dead)
        if ready and ready[0].expires_at:
            self._schedule_expiry(ready[0].expires_at)

    def _schedule_expiry(self, due: float) -> None:
        if self._expiry_timer is not None:
            if self._expiry_due <= due:
                return
            self._expiry_timer.cancel()
        self._expiry_due = due
        self._expiry_timer = self.vhost.scheduler.call_later(due - self.vhost.scheduler.time(), self._expiry_fired)

    def _expiry_fired(self) -> None:
        self._expiry_timer = None
        if not self.deleted:
            self.expire()

    def expired(self, entries: list[QueuedMessage]) -> None:
        """Messages whose TTL ran out; dead-lettering hooks in here."""

    def requeue(self, entries: Iterable[QueuedMessage]) -> None:
        """Put entries back where they were, by publish order, flagged redelivered."""
        back = sorted(entries, key=_by_seq)
        if not back:
            return
        for entry in back:
            entry.redelivered = True
            self.unacked_count -= 1
        ready = self.ready
        if not ready or back[-1].seq < ready[0].seq:
            ready.extendleft(reversed(back))
        else:
            merged = sorted([*back, *ready], key=_by_seq)
            ready.clear()
            ready.extend(merged)
        self.dispatch()

    # --- messages out ------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Hand ready messages to consumers with room, round-robin, until either runs out."""
        consumers = self.consumers
        ready = self.ready
        count = len(consumers)
        if not count or not ready:
            return
        if self._expiring:
            self.expire()
        turn = self._round_robin
        refused = 0
        while ready and refused < count:
            consumer = consumers[turn % count]
            turn += 1
            if consumer.has_room():
                entry = ready.popleft()
                if not consumer.no_ack:
                    self.unacked_count += 1
                consumer.deliver(entry, self)
                refused = 0
            else:
                refused += 1
        self._round_robin = turn % count

    def get(self) -> QueuedMessage | None:
        if self._expiring:
            self.expire()
        if not self.ready:
            return None
        return self.ready.popleft()

    def settled(self, count: int = 1) -> None:
        """Delivered messages were acked (or dropped): they are no longer the queue's."""
        self.unacked_count -= count

    def purge(self) -> int:
        count = len(self.ready)
        self.ready.clear()
        return count

    # --- consumers ---------------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        if self.auto_delete and not self.consumers and self.had_consumer and not self.deleted:
            self.vhost.delete_queue(self)


def _by_seq(entry: QueuedMessage) -> int:
    return entry.seq
