"""The interfaces between the parts of the model: what a queue needs from the rest, and no more.

A queue hands messages to *subscribers* (consumers on a channel, or anything else that takes
deliveries), asks its *host* (the vhost) for the clock, for dead-letter routing and to be removed,
and keeps what must outlive memory in its *message storage*, which the persistence seam makes.
Each side may be replaced: the model tests use a manual clock, a queue without a store keeps its
messages in memory only, and a queue type that lives elsewhere only has to speak these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

if TYPE_CHECKING:
    from lapine.broker.message import Message
    from lapine.broker.queue import Queue, QueuedMessage
    from lapine.broker.scheduler import Scheduler
    from lapine.store.base import StoredMessage
    from lapine.store.stream import StreamLog


SubscriberT = TypeVar("SubscriberT", contravariant=True)


class DeliverySink(Protocol[SubscriberT]):
    """Where a subscriber's deliveries go (a Consumer's channel), which numbers and sends them."""

    def deliver(self, subscriber: SubscriberT, entry: QueuedMessage, queue: Queue) -> None:
        """Take the message for ``subscriber`` (the queue has already counted it as handed out)."""


class Subscriber(Protocol):
    """What a queue hands messages to (broker/consumer.py's Consumer)."""

    tag: str
    no_ack: bool
    exclusive: bool
    priority: int
    # Where it waits for its turn: see broker/consumer.py.
    in_ring: bool
    parked: bool
    cancelled: bool
    unacked: int

    def has_room(self) -> bool:
        """It can take one more delivery now."""

    def window_full(self) -> bool:
        """Its own prefetch is used up: only its own acks bring it back."""

    @property
    def channel(self) -> DeliverySink[Self]:
        """Where its deliveries go. The queue calls ``channel.deliver(subscriber, ...)`` itself: a
        delivery then costs one call, not a second through the subscriber (the hottest path)."""

    def wait_for_room(self) -> None:
        """It had room of its own but its channel cannot take deliveries now: it waits there."""

    def cancel(self) -> None:
        """Gone from the queue: it is never handed a message again."""

    def queue_deleted(self) -> None:
        """Its queue was deleted under it: it is cancelled, and its client told if it can hear it."""


class QueueHost(Protocol):
    """What a queue needs from the vhost it lives in (broker/vhost.py's VirtualHost)."""

    name: str
    scheduler: Scheduler
    # Messages dead-lettered, by (queue type module, reason, strategy), as RabbitMQ counts them.
    dead_lettered: Counter[tuple[str, str, str]]

    def dead_letter(self, queue: Queue, entries: list[QueuedMessage], reason: str) -> None:
        """Messages died in ``queue``: republish them to its dead-letter exchange, if any."""

    def dead_letter_at_least_once(self, queue: Queue, entry: QueuedMessage, reason: str, settled: set[str]) -> bool:
        """One attempt to hand a dead message to every target queue; True once all have it."""

    def queue_unused(self, queue: Queue) -> None:
        """An auto-delete queue lost its last consumer, or x-expires ran out: remove it."""


class MessageStorage(Protocol):
    """One queue's messages on disk, by the queue's own sequence numbers (seq).

    ``failed`` is the store's error while it cannot write (paging in waits until it recovers);
    ``pages`` says whether a backlog past the window may be kept on disk only.
    """

    @property
    def failed(self) -> BaseException | None: ...

    @property
    def pages(self) -> bool: ...

    def enqueue(self, seq: int, message: Message, expires_ms: int | None, *, persistent: bool) -> None:
        """Write a message; ``expires_ms`` is the wall-clock time of its TTL's end."""

    def ack(self, seqs: Iterable[int]) -> None:
        """The messages left the queue for good."""

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """Handed out with an ack expected: after a crash they come back flagged redelivered."""

    def purge(self) -> None:
        """Every message of the queue is gone."""

    def read(self, after_seq: int, limit: int) -> list[StoredMessage]:
        """The next ``limit`` messages after ``after_seq``, read now (blocking)."""

    def read_async(self, after_seq: int, limit: int, callback: Callable[[list[StoredMessage]], None]) -> None:
        """The same, answered later through ``callback`` on the model's thread."""

    def open_log(self, *, max_segment_bytes: int, filter_size: int) -> StreamLog:
        """A stream's log (broker/stream_queue.py): on disk with a store, else in memory."""

    def drop_log(self, log: StreamLog) -> None:
        """The stream was deleted: its log and its files go."""


class MemoryOnly:
    """The storage of a queue in a broker without a store: nothing is written, nothing pages."""

    failed: BaseException | None = None
    pages = False

    def enqueue(self, seq: int, message: Message, expires_ms: int | None, *, persistent: bool) -> None:
        pass

    def ack(self, seqs: Iterable[int]) -> None:
        pass

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        pass

    def purge(self) -> None:
        pass

    def read(self, after_seq: int, limit: int) -> list[StoredMessage]:
        return []

    def read_async(self, after_seq: int, limit: int, callback: Callable[[list[StoredMessage]], None]) -> None:
        callback([])

    def open_log(self, *, max_segment_bytes: int, filter_size: int) -> StreamLog:
        from lapine.store.stream import InlineWorker, MemorySegmentFiles, StreamLog

        return StreamLog(
            MemorySegmentFiles(), InlineWorker(), max_segment_bytes=max_segment_bytes, filter_size=filter_size
        )

    def drop_log(self, log: StreamLog) -> None:
        log.destroy()


MEMORY_ONLY = MemoryOnly()
