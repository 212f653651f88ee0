"""A queue: its ready messages, its consumers, and the dispatch that hands one to the other.

Messages wait in ``ready`` in delivery order. A delivery that needs an ack leaves the queue and
is held by the channel that received it until acked (gone) or requeued (back here, in its
original position, flagged redelivered), as RabbitMQ's classic queues do. The queue also applies
RabbitMQ's extensions: TTLs, length limits with their overflow modes, priorities, dead-lettering,
single active consumer, consumer priorities and x-expires.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lapine.amqp.constants import PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError
from lapine.broker.consumer_ring import ConsumerRing
from lapine.broker.message import Message
from lapine.broker.policies import Policy, effective
from lapine.broker.ports import MEMORY_ONLY, MessageStorage
from lapine.broker.ready import Ready, make_ready, sorted_by_seq
from lapine.broker.stats import MessageStats

if TYPE_CHECKING:
    from lapine.broker.ports import QueueHost, Subscriber
    from lapine.broker.scheduler import Timer
    from lapine.store.base import StoredMessage




class QueuedMessage:
    """One message in one queue: the same Message may sit in many queues at once."""

    __slots__ = ("expires_at", "message", "redelivered", "seq", "stored")

    def __init__(self, message: Message, seq: int, redelivered: bool = False, expires_at: float = 0.0) -> None:
        self.message = message
        self.seq = seq
        self.redelivered = redelivered
        # Monotonic time after which the message is dead; 0 for never.
        self.expires_at = expires_at
        # In the store: it must be acked there when it leaves the queue for good.
        self.stored = False


def _int_setting(settings: dict[str, Any], key: str) -> int | None:
    value = settings.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_setting(settings: dict[str, Any], key: str) -> str | None:
    value = settings.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else None


class Queue:
    # Its queue type's x-queue-type name (broker/queue_types).
    type_name = "classic"
    # What it holds each message in (a queue type may keep more per message).
    entry_class: type[QueuedMessage] = QueuedMessage
    # Written to the store as they arrive: a durable queue's persistent messages, or every one.
    writes_every_message = False

    def __init__(
        self,
        vhost: QueueHost,
        name: str,
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        # Its owning connection is known to the vhost only (VirtualHost.owner_of).
        self.exclusive = exclusive
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        self.consumers: list[Subscriber] = []
        self.exclusive_consumer: Subscriber | None = None
        self._next_seq = 0
        # The consumers that may have room, in turn order (single active consumer: unused).
        self._ring = ConsumerRing()
        self.deleted = False
        # An auto-delete queue goes when its last consumer does, but only once it has had one.
        self.had_consumer = False
        self.unacked_count = 0
        self.ready_bytes = 0
        self.stats = MessageStats()
        self.policy: Policy | None = None
        # Set once a message with a TTL arrives, so queues without TTLs never look at the clock.
        self._expiring = False
        self._expiry_timer: Timer | None = None
        self._expiry_due = 0.0
        self._unused_timer: Timer | None = None
        max_priority = _int_setting(self.arguments, "x-max-priority")
        self.max_priority = max_priority or 0
        self.ready: Ready = self._make_ready(max_priority)
        self.single_active_consumer = self.arguments.get("x-single-active-consumer") is True
        # Where messages are written (broker/ports.py): persistent ones of a durable queue, and past
        # ``window`` ready messages the backlog, which then lives on disk only (``paged`` of them,
        # after everything in memory). Memory only until the persistence seam attaches a store's.
        self.storage: MessageStorage = MEMORY_ONLY
        self.window = 0
        self.paged = 0
        self.paged_bytes = 0
        self._loaded_upto = -1  # the highest seq that has been in memory
        self._paging_in = False
        self._generation = 0  # bumped by purge and delete: a page read before them is dropped
        self._page_waiters: list[Callable[[], None]] = []  # basic.gets waiting for a page read
        self.apply_settings()

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} in vhost {self.vhost.name!r}>"

    def _make_ready(self, max_priority: int | None) -> Ready:
        return make_ready(max_priority)

    def apply_settings(self, policy: Policy | None = None) -> None:
        """(Re)read the settings that arguments and the policy give, arguments first."""
        self.policy = policy
        settings = effective(self.arguments, policy, "queue")
        self.settings = settings
        self.message_ttl = _int_setting(settings, "x-message-ttl")
        self.expires = _int_setting(settings, "x-expires")
        self.max_length = _int_setting(settings, "x-max-length")
        self.max_length_bytes = _int_setting(settings, "x-max-length-bytes")
        self.overflow = self._overflow_mode(settings, policy)
        self.dead_letter_exchange = _str_setting(settings, "x-dead-letter-exchange")
        self.dead_letter_routing_key = _str_setting(settings, "x-dead-letter-routing-key")
        self.consumer_timeout = _int_setting(settings, "x-consumer-timeout")
        self._limited = self.max_length is not None or self.max_length_bytes is not None
        self.touch()
        if not self.deleted:
            self._enforce_limits()

    def _overflow_mode(self, settings: dict[str, Any], policy: Policy | None) -> str:
        """x-overflow, or the policy's overflow when the queue has none (arguments win)."""
        return _str_setting(settings, "x-overflow") or "drop-head"

    @property
    def message_count(self) -> int:
        if self._expiring:
            self.expire()
        return len(self.ready) + self.paged

    @property
    def message_bytes(self) -> int:
        return self.ready_bytes + self.paged_bytes

    # --- the store ---------------------------------------------------------------------------

    def attach_storage(self, storage: MessageStorage, window: int) -> None:
        self.storage = storage
        # A priority queue keeps its backlog in memory: a page from disk would not be in order.
        self.window = 0 if self.max_priority or not storage.pages else window

    def recover_backlog(self, count: int, size: int, first_seq: int | None, last_seq: int | None) -> None:
        """At start: ``count`` messages wait on disk; they page in as the queue drains."""
        self.paged, self.paged_bytes = count, size
        if first_seq is not None:
            self._loaded_upto = first_seq - 1
        if last_seq is not None:
            self._next_seq = last_seq + 1
        self._page_in_now()

    def _page_in_now(self) -> None:
        """Read the next page at once (blocking): the queue must not look empty while messages
        wait on disk. A read already on its way is then dropped when it lands."""
        self._generation += 1
        self._paging_in = False
        self._paged_in(self._generation, self.storage.read(self._loaded_upto, self._page_size))

    def _write(self, message: Message, seq: int, ttl: int | None, persistent: bool) -> None:
        # A failing store still takes it, to write with the retry that succeeds; meanwhile the
        # channel nacks what waited for the disk.
        expires = int(self.vhost.scheduler.wall_time() * 1000) + ttl if ttl is not None else None
        self.storage.enqueue(seq, message, expires, persistent=persistent)

    def _forget(self, entries: list[QueuedMessage]) -> None:
        """Entries left the queue for good: remove the stored ones from disk."""
        if self.storage is MEMORY_ONLY:
            return
        seqs = [entry.seq for entry in entries if entry.stored]
        if seqs:
            self.storage.ack(seqs)

    def store_recovered(self) -> None:
        """The store writes again: a page read it dropped when it failed is read anew."""
        self._generation += 1
        self._paging_in = False
        if self.paged:
            self._maybe_page_in()

    def _page_in(self) -> None:
        if self._paging_in or not self.paged or self.deleted or self.storage.failed:
            return
        self._paging_in = True
        generation = self._generation
        self.storage.read_async(self._loaded_upto, self._page_size, lambda page: self._paged_in(generation, page))

    @property
    def _page_size(self) -> int:
        return max(self.window // 2, 1)

    def _paged_in(self, generation: int, page: list[StoredMessage]) -> None:
        self._take_page(generation, page)
        if self._page_waiters:
            waiters, self._page_waiters = self._page_waiters, []
            for then in waiters:
                then()

    def wait_for_page(self, then: Callable[[], None]) -> bool:
        """basic.get finds nothing in memory while messages wait on disk: True, and ``then`` runs
        once a page read lands, instead of the get reading the disk on the event loop."""
        if self._expiring:
            self.expire()
        if self.ready or not self.paged or self.deleted or self.storage.failed is not None:
            return False
        self._page_waiters.append(then)
        self._page_in()
        return True

    def _take_page(self, generation: int, page: list[StoredMessage]) -> None:
        if generation != self._generation or self.deleted:
            return  # read before a purge, a delete or a blocking read: its page is stale
        self._paging_in = False
        if not page:
            # The disk holds less than counted (purged meanwhile): trust the disk.
            self.paged = self.paged_bytes = 0
            return
        scheduler = self.vhost.scheduler
        wall = scheduler.wall_time() * 1000
        now = scheduler.time()
        for stored in page:
            message = Message(
                stored.exchange.decode("utf-8", "surrogateescape"),
                stored.routing_key.decode("utf-8", "surrogateescape"),
                stored.header,
                stored.body,
            )
            entry = self.entry_class(message, stored.seq, stored.delivered)
            if stored.expires is not None:
                entry.expires_at = max(now + (stored.expires - wall) / 1000, 1e-9)
                self._expiring = True
            entry.stored = True
            self.ready.push(entry)
            size = len(stored.body)
            self.ready_bytes += size
            self.paged_bytes -= size
        self.paged = max(self.paged - len(page), 0)
        self.paged_bytes = max(self.paged_bytes, 0) if self.paged else 0
        self._loaded_upto = page[-1].seq
        self.dispatch()
        self._maybe_page_in()

    def _maybe_page_in(self) -> None:
        # Deliveries awaiting their ack count too: a consumer with no prefetch limit would
        # otherwise pull the whole backlog off the disk into memory. Its acks page in the rest.
        if self.paged and len(self.ready) <= self.window // 2 and self.unacked_count < self.window:
            self._page_in()

    def _handed_out(self, entry: QueuedMessage, no_ack: bool) -> None:
        """A message went to a client: gone for good if no ack is expected, else awaited."""
        if no_ack:
            if entry.stored:
                self._forget([entry])
        else:
            self.unacked_count += 1
            if entry.stored and not entry.redelivered:
                # After a crash it must come back flagged redelivered.
                self.storage.mark_delivered([entry.seq])

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # --- messages in -------------------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        """Enqueue a message; False when the queue refuses it (overflow reject-publish)."""
        if self._limited and self.overflow != "drop-head" and self._refuses(message):
            return False
        seq = self._next_seq
        self._next_seq = seq + 1
        ttl = message.ttl
        if self.message_ttl is not None and (ttl is None or self.message_ttl < ttl):
            ttl = self.message_ttl
        stored = False
        if self.durable and (message.persistent or self.writes_every_message):
            self._write(message, seq, ttl, persistent=True)
            message.durably_written = True
            stored = True
        if self.window and (self.paged or len(self.ready) >= self.window):
            # Past the window the message lives on disk only, until the queue drains to it;
            # its confirm then waits for the store, even for a transient one.
            if not stored:
                self._write(message, seq, ttl, persistent=False)
                message.durably_written = True
            self.paged += 1
            self.paged_bytes += len(message.body)
            if self._limited:
                self._enforce_limits()
            return True
        if ttl is None:
            entry = self.entry_class(message, seq)
        else:
            entry = self.entry_class(message, seq, expires_at=self.vhost.scheduler.time() + ttl / 1000)
            self._expiring = True
        entry.stored = stored
        self._loaded_upto = seq
        if self._expiring:
            # What expired goes before the new message joins, which may then be handed out at
            # once even with a TTL of 0 (RabbitMQ's rule), before expiry looks at it.
            self.expire()
        self.ready.push(entry)
        self.ready_bytes += len(message.body)
        if self._limited:
            self._enforce_limits()
        if self.consumers:
            self._hand_out()
        if ttl is not None:
            if ttl == 0 and self.ready.tail() is entry:
                # TTL 0: delivered at once to a consumer with room, or never (RabbitMQ's rule).
                self._take_tail()
                self.expired([entry])
            else:
                self.expire()
        return True

    def requeue(self, entries: list[QueuedMessage], *, delivery_failed: bool = False) -> None:
        """Put entries back where they were, by publish order, flagged redelivered.

        ``delivery_failed``: they come back because their consumer's channel went away, not
        because the client asked (a queue type may count those)."""
        back = sorted_by_seq(entries)
        if not back:
            return
        for entry in back:
            entry.redelivered = True
            self.ready_bytes += len(entry.message.body)
        self.unacked_count -= len(back)
        self.ready.put_back(back)
        if self._limited:
            self._enforce_limits()
        self.dispatch()
        if self.paged:
            self._maybe_page_in()

    # --- limits ------------------------------------------------------------------------------

    def _refuses(self, message: Message) -> bool:
        """overflow reject-publish(-dlx): a full queue refuses what would take it over its limit."""
        if not self._is_full(message):
            return False
        if self.overflow == "reject-publish-dlx":
            self.vhost.dead_letter(self, [QueuedMessage(message, -1)], "maxlen")
        return True

    def _is_full(self, incoming: Message) -> bool:
        if self.max_length is not None and len(self.ready) + self.paged >= self.max_length:
            return True
        size = len(incoming.body)
        return self.max_length_bytes is not None and self.message_bytes + size > self.max_length_bytes

    def _over_limit(self) -> bool:
        if self.max_length is not None and len(self.ready) + self.paged > self.max_length:
            return True
        return self.max_length_bytes is not None and self.message_bytes > self.max_length_bytes

    def _enforce_limits(self) -> None:
        """drop-head: the oldest ready messages make room, dead-lettered with reason maxlen."""
        if not self._limited:
            return
        dropped = []
        while self.ready and self._over_limit():
            dropped.append(self._take_head())
        if dropped:
            self.expired(dropped, reason="maxlen")

    def _take_head(self) -> QueuedMessage:
        entry = self.ready.pop_head()
        self.ready_bytes -= len(entry.message.body)
        return entry

    def _take_tail(self) -> QueuedMessage:
        entry = self.ready.pop_tail()
        self.ready_bytes -= len(entry.message.body)
        return entry

    # --- expiry ------------------------------------------------------------------------------

    def expire(self) -> None:
        """Drop the expired messages at the head, and set a timer for the next one due."""
        if not self._expiring:
            return
        ready = self.ready
        now = self.vhost.scheduler.time()
        dead = []
        head = ready.head()
        while head is not None and 0 < head.expires_at <= now:
            dead.append(self._take_head())
            head = ready.head()
        if dead:
            self.expired(dead)
        if head is not None and head.expires_at:
            self._schedule_expiry(head.expires_at)

    def _schedule_expiry(self, due: float) -> None:
        scheduler = self.vhost.scheduler
        if self._expiry_timer is not None:
            if self._expiry_due <= due:
                return
            self._expiry_timer.cancel()
        self._expiry_due = due
        self._expiry_timer = scheduler.call_later(due - scheduler.time(), self._expiry_fired)

    def _expiry_fired(self) -> None:
        self._expiry_timer = None
        if not self.deleted:
            self.expire()

    def expired(self, entries: list[QueuedMessage], reason: str = "expired") -> None:
        """Messages that died in the queue (TTL or overflow): dead-lettered when configured."""
        self.vhost.dead_letter(self, entries, reason)
        self._forget(entries)

    def touch(self) -> None:
        """The queue was used: restart its x-expires countdown."""
        if self._unused_timer is not None:
            self._unused_timer.cancel()
            self._unused_timer = None
        if self.expires is not None and not self.consumers and not self.deleted:
            self._unused_timer = self.vhost.scheduler.call_later(self.expires / 1000, self._unused_expired)

    def _unused_expired(self) -> None:
        self._unused_timer = None
        if not self.deleted and not self.consumers:
            self.vhost.queue_unused(self)

    # --- messages out ------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Hand ready messages to consumers with room until either runs out: the head of the
        highest priority level of the ring gets the next one and goes to the tail (RabbitMQ's
        round-robin); one found without room leaves the ring until its window opens."""
        if self._expiring:
            self.expire()
        self._hand_out()

    def _hand_out(self) -> None:
        """Dispatch without looking at expiry first (the caller did)."""
        ready = self.ready
        if not ready or not self.consumers:
            return
        if self.single_active_consumer:
            self._dispatch_single()
        else:
            ring = self._ring
            pop_head = ready.pop_head
            for level in ring.levels:
                while ready and level:
                    consumer = level[0]
                    if not consumer.has_room():
                        level.popleft()
                        ring.left(consumer)
                        self._without_room(consumer)
                        continue
                    entry = pop_head()
                    self.ready_bytes -= len(entry.message.body)
                    if consumer.no_ack:
                        if entry.stored:
                            self._forget([entry])
                    else:
                        self._handed_out(entry, False)
                        consumer.unacked += 1
                    if len(level) > 1:
                        level.rotate(-1)
                    consumer.channel.deliver(consumer, entry, self)
                if not ready:
                    break
        if self.paged:
            self._maybe_page_in()

    def _dispatch_single(self) -> None:
        """Single active consumer: only the active one gets any."""
        consumer = self._single_active()
        if consumer is None:
            return
        while self.ready:
            if not consumer.has_room():
                self._without_room(consumer)
                return
            entry = self._take_head()
            self._handed_out(entry, consumer.no_ack)
            if not consumer.no_ack:
                consumer.unacked += 1
            consumer.channel.deliver(consumer, entry, self)

    @staticmethod
    def _without_room(consumer: Subscriber) -> None:
        """A consumer's turn came and it had no room. A full window reopens with the consumer's
        own acks; otherwise its channel cannot take deliveries, and keeps it until it can."""
        if not consumer.cancelled and not consumer.parked and not consumer.window_full():
            consumer.wait_for_room()

    def take_back(self, consumer: Subscriber) -> bool:
        """The consumer may have room again: it waits at the tail of the ring. True when the queue
        should dispatch for it."""
        if consumer.cancelled or self.deleted:
            return False
        if self.single_active_consumer:
            # Its ack may also hand the queue over to another consumer (a queue type's rule).
            return self._single_active() is not None
        if not consumer.in_ring:
            self._ring.append(consumer)
        return True

    def get(self, no_ack: bool) -> QueuedMessage | None:
        """basic.get: the head message; with no_ack it is gone, else it awaits settle/requeue.

        Only what is in memory: while the head is on disk, wait_for_page brings it in first."""
        self.touch()
        if self._expiring:
            self.expire()
        if not self.ready:
            return None
        entry = self._take_head()
        self._handed_out(entry, no_ack)
        if self.paged:
            self._maybe_page_in()
        return entry

    def dispatch_opened(self) -> None:
        """Consumers of this queue got room again (acks, a drained socket): hand out what waits."""
        if self.ready:
            self.dispatch()

    def settled(self, entries: list[QueuedMessage]) -> None:
        """Delivered messages were acked: they are no longer the queue's."""
        self.unacked_count -= len(entries)
        self._forget(entries)
        if self.paged:
            self._maybe_page_in()

    def rejected(self, entries: list[QueuedMessage]) -> None:
        """Rejected or nacked without requeue: gone, or dead-lettered with reason rejected."""
        self.unacked_count -= len(entries)
        self.vhost.dead_letter(self, entries, "rejected")
        self._forget(entries)
        if self.paged:
            self._maybe_page_in()

    def _stores_only_ready(self) -> bool:
        """Does the store hold nothing of this queue but ready messages? (then a purge empties it)"""
        return not self.unacked_count

    def purge(self) -> int:
        count = len(self.ready) + self.paged
        if self._stores_only_ready():
            self.storage.purge()
        else:
            # Unacked deliveries stay on disk (a requeue brings them back): drop the ready
            # ones, in memory and paged out (every seq past what memory has held).
            self._forget(list(self.ready))
            if self.paged:
                self.storage.ack(range(self._loaded_upto + 1, self._next_seq))
        self.ready.clear()
        self.ready_bytes = 0
        self.paged = self.paged_bytes = 0
        self._generation += 1
        self._paging_in = False
        return count

    # --- what a queue type may refuse ------------------------------------------------------

    def check_consume(self, *, no_ack: bool, prefetch: int, prefetch_global: int, arguments: Mapping[str, Any]) -> None:
        """A basic.consume on this queue, with its channel's qos: a classic queue takes any."""

    def check_get(self) -> None:
        """basic.get (and the management API's get) on this queue: a classic queue allows it."""

    def check_purge(self) -> None:
        """queue.purge (and the management API's purge): a classic queue allows it."""

    def type_info(self, node: str) -> dict[str, Any]:
        """What the management API shows of this queue beyond the fields every queue has."""
        return {}

    def check_delete(self, *, if_unused: bool, if_empty: bool) -> None:
        """queue.delete with its conditions (406 when one does not hold)."""
        if if_unused and self.consumers:
            raise ChannelError(PRECONDITION_FAILED, f"queue '{self.name}' in vhost '{self.vhost.name}' in use")
        if if_empty and self.message_count:
            raise ChannelError(PRECONDITION_FAILED, f"queue '{self.name}' in vhost '{self.vhost.name}' not empty")

    # --- consumers ---------------------------------------------------------------------------

    def add_consumer(self, consumer: Subscriber) -> None:
        consumers = self.consumers
        # Stable by priority, highest first: equal priorities keep their arrival order.
        index = len(consumers)
        while index and consumers[index - 1].priority < consumer.priority:
            index -= 1
        consumers.insert(index, consumer)
        if not self.single_active_consumer:
            self._ring.append(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        self.touch()
        self.dispatch()

    def remove_consumer(self, consumer: Subscriber) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        consumer.cancel()
        self._ring.cancelled(consumer)
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        if self.auto_delete and not self.consumers and self.had_consumer and not self.deleted:
            self.vhost.queue_unused(self)
            return
        self.touch()
        if self.single_active_consumer and self.consumers:
            self.dispatch()

    @property
    def active_consumer(self) -> Subscriber | None:
        """With single active consumer, the one that gets the messages."""
        if not self.single_active_consumer or not self.consumers:
            return None
        return self.consumers[0]

    def _single_active(self) -> Subscriber | None:
        """With single active consumer (and consumers), who gets messages now: the first by
        priority, then arrival. None when nobody may, for now (a queue type's rule)."""
        return self.consumers[0]
