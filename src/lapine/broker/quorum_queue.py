"""A quorum queue on one node: RabbitMQ 4.x's rabbit_fifo semantics over the classic queue's
machinery (ready messages, consumers, dispatch, paging).

What differs from a classic queue, as rabbit_fifo has it:

- Every message is written to the store as it arrives, transient ones too (RabbitMQ's Raft log),
  so its confirm waits for the disk and it survives a restart or a crash.
- A message handed back by a consumer goes to the head of the queue, behind those handed back
  before it, not to its old place (to the tail when the queue has no delivery limit and the
  client asked for it: rabbit_fifo's path for that case). Each return counts in
  ``acquired_count`` (the ``x-acquired-count`` header); a return because the consumer's channel
  went away is a failed delivery and also counts in ``delivery_count`` (``x-delivery-count``).
  A message whose delivery count passes ``x-delivery-limit`` (20 unless set; negative for none)
  is dead-lettered with reason ``delivery_limit``, or dropped without a dead-letter exchange.
- ``x-overflow reject-publish`` takes the message that crosses the limit, then refuses publishes
  until the queue is back at 80% of it; ``reject-publish-dlx`` is not a quorum mode and means
  drop-head, as in RabbitMQ (which logs a warning). A policy's overflow wins over the argument.
- ``x-dead-letter-strategy at-least-once`` (with reject-publish): a dead message leaves the queue
  only once every target queue has taken it (its copy written before the source lets it go);
  until then it is held here, counted against the length limit, and retried.
- Messages go out by their priority property, strictly, highest first (0 to 31; 4 without one),
  as RabbitMQ 4.3's: among the messages in memory (a backlog paged out to disk comes in by publish
  order, each to its level).
- Single active consumer takes consumer priorities into account: a consumer of higher priority
  takes over once the active one has acknowledged what it holds.
- Global QoS, queue.delete if-unused / if-empty and basic.get with single active consumer are
  refused with RabbitMQ's codes and texts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lapine.amqp import spec
from lapine.amqp.constants import NOT_IMPLEMENTED, RESOURCE_LOCKED
from lapine.amqp.errors import ChannelError, ConnectionError
from lapine.amqp.spec import BasicProperties, encode_basic_header
from lapine.broker.message import Message
from lapine.broker.queue import Queue, QueuedMessage
from lapine.broker.ready import ReturnsFirstReady

if TYPE_CHECKING:
    from lapine.broker.policies import Policy
    from lapine.broker.ports import QueueHost, Subscriber
    from lapine.broker.ready import Ready
    from lapine.broker.scheduler import Timer

log = logging.getLogger("lapine.quorum")

# The module RabbitMQ names quorum queues by (in texts and in Prometheus labels).
MODULE = "rabbit_quorum_queue"
DEFAULT_DELIVERY_LIMIT = 20
# reject-publish: publishers may go on once the queue is back at this share of its limit.
SOFT_LIMIT = 0.8
# How often dead letters that found no (willing) target are tried again: RabbitMQ's
# dead_letter_worker_publisher_confirm_timeout.
DEAD_LETTER_RETRY_SECONDS = 180.0


class QuorumEntry(QueuedMessage):
    """A message in a quorum queue, with rabbit_fifo's counts of how often it came back."""

    __slots__ = ("acquired_count", "delivery_count")

    def __init__(self, message: Message, seq: int, redelivered: bool = False, expires_at: float = 0.0) -> None:
        super().__init__(message, seq, redelivered, expires_at)
        self.acquired_count = 0
        self.delivery_count = 0


class PendingDeadLetter:
    """A dead message of an at-least-once queue that not every target queue has taken yet."""

    __slots__ = ("entry", "reason", "settled")

    def __init__(self, entry: QueuedMessage, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        self.settled: set[str] = set()


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def resolve_delivery_limit(argument: int | None, policy: int | None) -> int | None:
    """rabbit_quorum_queue:get_delivery_limit: the lower of argument and policy (the higher if
    either is negative), 20 when neither is set; None (no limit) when the result is negative."""
    if argument is None and policy is None:
        return DEFAULT_DELIVERY_LIMIT
    if argument is None or policy is None:
        limit = argument if argument is not None else policy
    elif argument < 0 or policy < 0:
        limit = max(argument, policy)
    else:
        limit = min(argument, policy)
    assert limit is not None
    return None if limit < 0 else limit


def with_counts(message: Message, acquired: int, delivered: int) -> Message:
    """The message as a consumer gets it after coming back: rabbit_fifo's counts as headers."""
    properties = BasicProperties.decode(message.header_payload, 12)
    headers = dict(properties.headers or {})
    headers["x-acquired-count"] = acquired
    if delivered:
        headers["x-delivery-count"] = delivered
    properties.headers = headers
    header_payload = encode_basic_header(len(message.body), properties.encode())
    copy = Message(message.exchange, message.routing_key, header_payload, message.body)
    copy.cc = message.cc
    return copy


class QuorumQueue(Queue):
    type_name = "quorum"
    entry_class = QuorumEntry
    writes_every_message = True  # the Raft log has every message, transient ones too

    def __init__(
        self,
        vhost: QueueHost,
        name: str,
        *,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        # Set before the base class reads the settings for the first time.
        self.delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT
        self.at_least_once = False
        self.rejecting = False
        self.dead_letters: list[PendingDeadLetter] = []
        self._retry_timer: Timer | None = None
        self._active: Subscriber | None = None
        super().__init__(
            vhost, name, durable=durable, exclusive=exclusive, auto_delete=auto_delete, arguments=arguments
        )

    def _make_ready(self, max_priority: int | None) -> Ready:
        return ReturnsFirstReady()

    def apply_settings(self, policy: Policy | None = None) -> None:
        definition = policy.definition if policy is not None else {}
        self.delivery_limit = resolve_delivery_limit(
            _integer(self.arguments.get("x-delivery-limit")), _integer(definition.get("delivery-limit"))
        )
        super().apply_settings(policy)
        strategy = _text(self.arguments.get("x-dead-letter-strategy")) or _text(definition.get("dead-letter-strategy"))
        self.at_least_once = False
        if strategy == "at-least-once" and self.dead_letter_exchange is not None:
            if self.overflow == "reject-publish":
                self.at_least_once = True
            else:
                log.warning(
                    "Falling back to dead-letter-strategy at-most-once for %r because configured "
                    "dead-letter-strategy at-least-once is incompatible with effective overflow strategy "
                    "drop-head. To enable dead-letter-strategy at-least-once, set overflow strategy to "
                    "reject-publish.",
                    self,
                )
        if not self.at_least_once and self.dead_letters:
            # No longer held for a target: they go the at-most-once way now.
            pending, self.dead_letters = self.dead_letters, []
            for item in pending:
                self._die_at_most_once([item.entry], item.reason)

    def _overflow_mode(self, settings: dict[str, Any], policy: Policy | None) -> str:
        # rabbit_quorum_queue: the policy's overflow wins over the argument; reject-publish-dlx
        # is not a quorum mode and means the default, drop-head (RabbitMQ logs a warning).
        chosen = _text(policy.definition.get("overflow")) if policy is not None else None
        mode = chosen or _text(settings.get("x-overflow")) or "drop-head"
        if mode == "reject-publish-dlx":
            log.warning("Invalid overflow strategy 'reject-publish-dlx' for quorum queue: %r", self)
            return "drop-head"
        return mode

    # --- messages in -------------------------------------------------------------------------

    def _refuses(self, message: Message) -> bool:
        if self.overflow != "reject-publish":
            return False
        if self.rejecting and self._below_soft_limit():
            self.rejecting = False
        return self.rejecting

    def _held(self) -> tuple[int, int]:
        """Messages and bytes that count against the limits: ready ones and held dead letters."""
        count = len(self.ready) + self.paged + len(self.dead_letters)
        size = self.message_bytes + sum(len(item.entry.message.body) for item in self.dead_letters)
        return count, size

    def _below_soft_limit(self) -> bool:
        count, size = self._held()
        if self.max_length is not None and count > int(self.max_length * SOFT_LIMIT):
            return False
        return self.max_length_bytes is None or size <= int(self.max_length_bytes * SOFT_LIMIT)

    def _enforce_limits(self) -> None:
        if self.overflow != "reject-publish" or not self._limited:
            self.rejecting = False
            super()._enforce_limits()
            return
        count, size = self._held()
        over_length = self.max_length is not None and count > self.max_length
        if over_length or (self.max_length_bytes is not None and size > self.max_length_bytes):
            self.rejecting = True

    # --- messages back -----------------------------------------------------------------------

    def requeue(self, entries: list[QueuedMessage], *, delivery_failed: bool = False) -> None:
        """Returned messages go to the head, after earlier returns, in the order they came back."""
        if not entries:
            return
        self.unacked_count -= len(entries)
        limit = self.delivery_limit
        back: list[QueuedMessage] = []
        dead: list[QueuedMessage] = []
        for entry in entries:
            assert isinstance(entry, QuorumEntry)
            entry.acquired_count += 1
            if delivery_failed:
                entry.delivery_count += 1
            # The counts go with it, also where it is dead-lettered to.
            entry.message = with_counts(entry.message, entry.acquired_count, entry.delivery_count)
            if limit is not None and entry.delivery_count > limit:
                dead.append(entry)
                continue
            entry.redelivered = True
            self.ready_bytes += len(entry.message.body)
            back.append(entry)
        ready = self.ready
        assert isinstance(ready, ReturnsFirstReady)
        if limit is None and not delivery_failed:
            # Without a delivery limit rabbit_fifo re-enqueues what a client hands back, behind
            # everything ready (its aux path); what a channel left behind still goes first.
            for entry in back:
                ready.push_default(entry)
        else:
            ready.put_back(back)
        if dead:
            self._die(dead, "delivery_limit")
        if self._limited:
            self._enforce_limits()
        self.dispatch()
        if self.paged:
            self._maybe_page_in()

    def rejected(self, entries: list[QueuedMessage]) -> None:
        self.unacked_count -= len(entries)
        self._die(entries, "rejected")

    def expired(self, entries: list[QueuedMessage], reason: str = "expired") -> None:
        self._die(entries, reason)

    # --- single active consumer --------------------------------------------------------------

    def _single_active(self) -> Subscriber | None:
        """rabbit_fifo's rule: the active consumer keeps the queue until a consumer of higher
        priority comes; it then gets nothing more (quiescing) and hands over once it has no
        unacknowledged message left."""
        best = self.consumers[0]
        active = self._active
        if active is None or active.cancelled:
            self._active = best
            return best
        if best is not active and best.priority > active.priority:
            if active.unacked:
                return None
            self._active = best
            return best
        return active

    @property
    def active_consumer(self) -> Subscriber | None:
        if not self.single_active_consumer or not self.consumers:
            return None
        if self._active is None or self._active.cancelled:
            return self.consumers[0]
        return self._active

    # --- dead-lettering ----------------------------------------------------------------------

    def _die(self, entries: list[QueuedMessage], reason: str) -> None:
        if not self.at_least_once:
            self._die_at_most_once(entries, reason)
            return
        self.vhost.dead_lettered[(MODULE, reason, "at_least_once")] += len(entries)
        for entry in entries:
            item = PendingDeadLetter(entry, reason)
            if self.vhost.dead_letter_at_least_once(self, entry, reason, item.settled):
                self._forget([entry])
            else:
                self.dead_letters.append(item)
        if self.dead_letters:
            self._retry_later()

    def _die_at_most_once(self, entries: list[QueuedMessage], reason: str) -> None:
        self.vhost.dead_letter(self, entries, reason)
        self._forget(entries)

    def _retry_later(self) -> None:
        if self._retry_timer is None and not self.deleted:
            self._retry_timer = self.vhost.scheduler.call_later(DEAD_LETTER_RETRY_SECONDS, self._retry_dead_letters)

    def _retry_dead_letters(self) -> None:
        """Held dead letters try their targets again (those that took them are not asked twice)."""
        self._retry_timer = None
        if self.deleted:
            return
        pending, self.dead_letters = self.dead_letters, []
        for item in pending:
            if self.vhost.dead_letter_at_least_once(self, item.entry, item.reason, item.settled):
                self._forget([item.entry])
            else:
                self.dead_letters.append(item)
        if self.dead_letters:
            self._retry_later()

    def _stores_only_ready(self) -> bool:
        return not self.unacked_count and not self.dead_letters

    def purge(self) -> int:
        # Held dead letters are not ready messages: a purge leaves them, as rabbit_fifo's does.
        count = super().purge()
        if self.deleted:
            self._forget([item.entry for item in self.dead_letters])
            self.dead_letters = []
            if self._retry_timer is not None:
                self._retry_timer.cancel()
                self._retry_timer = None
        return count

    # --- what a quorum queue refuses ---------------------------------------------------------

    @property
    def _resource(self) -> str:
        return f"queue '{self.name}' in vhost '{self.vhost.name}'"

    def check_consume(
        self, *, no_ack: bool, prefetch: int, prefetch_global: int, arguments: Mapping[str, Any]
    ) -> None:
        if prefetch_global:
            text = f"{self._resource} does not support global qos"
            raise ConnectionError(NOT_IMPLEMENTED, text, *spec.BasicConsume.IDS)

    def check_get(self) -> None:
        if self.single_active_consumer:
            raise ChannelError(
                RESOURCE_LOCKED,
                f"cannot obtain access to locked {self._resource}. basic.get operations are not supported "
                "by quorum queues with single active consumer",
            )

    def check_delete(self, *, if_unused: bool, if_empty: bool) -> None:
        for flag, name in ((if_unused, "if-unused"), (if_empty, "if-empty")):
            if flag:
                raise ConnectionError(
                    NOT_IMPLEMENTED,
                    f"cannot delete {self._resource}. queue.delete operations with {name} flag set are not "
                    "supported by quorum queues",
                    *spec.QueueDelete.IDS,
                )

    def type_info(self, node: str) -> dict[str, Any]:
        """As rabbit_quorum_queue's info on one node: it leads, and is the only member, online."""
        dlx_bytes = sum(len(item.entry.message.body) for item in self.dead_letters)
        return {
            "leader": node,
            "members": [node],
            "online": [node],
            "delivery_limit": self.delivery_limit if self.delivery_limit is not None else -1,
            "messages_dlx": len(self.dead_letters),
            "message_bytes_dlx": dlx_bytes,
            "single_active_consumer_ctag": self.active_consumer.tag if self.active_consumer else None,
        }
