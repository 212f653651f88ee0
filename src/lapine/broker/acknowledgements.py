"""A channel's part that keeps its unacknowledged deliveries: acks, rejects, nacks, recover,
the consumer timeout, and the prefetch windows they open again.

An ack frees its consumer's window; only the queues of consumers whose window opened dispatch
again (no other consumer can take more than before). A consumer with room whose channel cannot
deliver (socket full, global prefetch used up) is parked on the channel until it can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from lapine.amqp import spec
from lapine.amqp.constants import NOT_IMPLEMENTED, PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError, ConnectionError

if TYPE_CHECKING:
    from collections.abc import Callable

    from lapine.broker.channel import Channel
    from lapine.broker.connection import Connection
    from lapine.broker.consumer import Consumer
    from lapine.broker.queue import Queue, QueuedMessage
    from lapine.broker.scheduler import Timer
    from lapine.broker.stats import MessageStats
    from lapine.broker.transaction import Transaction
    from lapine.broker.vhost import VirtualHost


class Delivery:
    """A message handed out with an ack expected: where it came from, and to whom."""

    __slots__ = ("consumer", "delivered_at", "entry", "queue")

    def __init__(self, entry: QueuedMessage, queue: Queue, consumer: Consumer | None, delivered_at: float) -> None:
        self.entry = entry
        self.queue = queue
        self.consumer = consumer
        self.delivered_at = delivered_at


class Acknowledgements:
    """Channel's part: the deliveries that await their ack, by delivery tag, oldest first."""

    def _init_acknowledgements(self) -> None:
        self.unacked: dict[int, Delivery] = {}
        self._next_delivery_tag = 1
        self.prefetch_global = 0  # shared by the whole channel (global=true)
        # Consumers with room of their own whose turn came while this channel could take no
        # deliveries (socket full, global prefetch used up), in that order: back to their queues
        # once it can.
        self._parked: dict[Consumer, None] = {}
        self._timeout_timer: Timer | None = None

    if TYPE_CHECKING:
        connection: Connection
        vhost: VirtualHost
        id: int
        stats: MessageStats
        closed: bool
        closing: bool
        active: bool
        tx: Transaction | None
        _now: Callable[[], float]

        def send_method(self, method: spec.Method) -> None: ...

    def _take_deliveries(self, delivery_tag: int, multiple: bool) -> list[tuple[int, Delivery]]:
        """Remove and return the deliveries a tag names, or fail as RabbitMQ does."""
        unacked = self.unacked
        if multiple:
            taken = []
            for tag in list(unacked) if delivery_tag == 0 else unacked:
                if delivery_tag and tag > delivery_tag:
                    break
                taken.append((tag, unacked[tag]))
            for tag, _delivery in taken:
                del unacked[tag]
            if not taken and delivery_tag > self._next_delivery_tag - 1:
                raise ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {delivery_tag}")
            return taken
        delivery = unacked.pop(delivery_tag, None)
        if delivery is None:
            raise ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {delivery_tag}")
        return [(delivery_tag, delivery)]

    def on_basic_ack(self, method: spec.BasicAck) -> None:
        taken = self._take_deliveries(method.delivery_tag, method.multiple)
        if self.tx is not None:
            self.tx.settlements.append((taken, False, True))
            return
        self._settle(taken, requeue=False, acked=True)

    def on_basic_reject(self, method: spec.BasicReject) -> None:
        self._reject(self._take_deliveries(method.delivery_tag, False), method.requeue)

    def on_basic_nack(self, method: spec.BasicNack) -> None:
        self._reject(self._take_deliveries(method.delivery_tag, method.multiple), method.requeue)

    def _reject(self, taken: list[tuple[int, Delivery]], requeue: bool) -> None:
        if self.tx is not None:
            self.tx.settlements.append((taken, requeue, False))
            return
        self._settle(taken, requeue=requeue)

    def _settle(
        self, taken: list[tuple[int, Delivery]], *, requeue: bool, acked: bool = False, failed: bool = False
    ) -> None:
        """Acked, rejected or requeued: free the consumers' windows, and let the queues of the
        consumers whose window opened dispatch (no other consumer can take more than before).
        ``failed``: requeued because the channel went away, not at the client's request."""
        if acked:
            self.stats.ack += len(taken)
        touched: dict[Queue, list[QueuedMessage]] = {}
        opened: dict[Queue, None] = {}
        for _tag, delivery in taken:
            consumer = delivery.consumer
            if consumer is not None:
                consumer.unacked -= 1
                if not (consumer.in_ring or consumer.parked or consumer.cancelled):
                    self._window_opened(consumer, opened)
            touched.setdefault(delivery.queue, []).append(delivery.entry)
        if self._parked:
            self._unpark_all(opened)
        for queue, entries in touched.items():
            if queue.deleted:
                continue
            if requeue:
                queue.requeue(entries, delivery_failed=failed)
            elif acked:
                queue.settled(entries)
                queue.stats.ack += len(entries)
            else:
                queue.rejected(entries)
        for queue in opened:
            queue.dispatch_opened()

    def _window_opened(self, consumer: Consumer, opened: dict[Queue, None]) -> None:
        """The consumer had left its queue's ring with a full window; an ack opened it."""
        if consumer.window_full():
            return
        if not self.can_deliver():
            self.park(consumer)
        elif consumer.queue.take_back(consumer):
            opened[consumer.queue] = None

    def can_deliver(self) -> bool:
        """Deliveries may go out on this channel: open, its socket taking them, global prefetch not used up."""
        return (
            self.active and not self.closed and (not self.prefetch_global or len(self.unacked) < self.prefetch_global)
        )

    def park(self, consumer: Consumer) -> None:
        consumer.parked = True
        self._parked[consumer] = None

    def unpark(self, consumer: Consumer) -> None:
        consumer.parked = False
        self._parked.pop(consumer, None)

    def _unpark_all(self, opened: dict[Queue, None]) -> None:
        """The channel can deliver again: its parked consumers go back to their queues' rings,
        in the order they were parked."""
        if not self.can_deliver():
            return
        parked, self._parked = self._parked, {}
        for consumer in parked:
            consumer.parked = False
            if consumer.queue.take_back(consumer):
                opened[consumer.queue] = None

    def refill(self) -> None:
        """The channel can deliver again (its socket drained, a larger global prefetch): the
        queues of its parked consumers dispatch."""
        if not self._parked:
            return
        opened: dict[Queue, None] = {}
        self._unpark_all(opened)
        for queue in opened:
            queue.dispatch_opened()

    def on_basic_recover(self, method: spec.BasicRecover) -> None:
        self._recover(method.requeue)
        self.send_method(spec.BasicRecoverOk())

    def on_basic_recover_async(self, method: spec.BasicRecoverAsync) -> None:
        self._recover(method.requeue)

    def _recover(self, requeue: bool) -> None:
        if not requeue:
            raise ConnectionError(NOT_IMPLEMENTED, "requeue=false", *spec.BasicRecover.IDS)
        taken = list(self.unacked.items())
        self.unacked.clear()
        self._settle(taken, requeue=True)

    def _timeout_of(self, delivery: Delivery) -> int:
        """The consumer's own x-consumer-timeout (quorum queues take one), else the queue's, else
        the broker's, as rabbit_queue_type:consume resolves it."""
        consumer = delivery.consumer
        own = consumer.arguments.get("x-consumer-timeout") if consumer is not None else None
        if isinstance(own, int) and not isinstance(own, bool):
            return own
        queue_timeout = delivery.queue.consumer_timeout
        return queue_timeout if queue_timeout is not None else self.connection.broker.config.consumer_timeout

    def _watch_timeouts(self) -> None:
        """Check, when the oldest delivery falls due, that it has been acknowledged in time."""
        if not self.unacked or self.closed:
            self._timeout_timer = None
            return
        oldest = next(iter(self.unacked.values()))
        due = oldest.delivered_at + self._timeout_of(oldest) / 1000
        self._timeout_timer = self.vhost.scheduler.call_later(max(due - self._now(), 0.0), self._timeouts_due)

    def _timeouts_due(self) -> None:
        self._timeout_timer = None
        if self.closed or self.closing or not self.unacked:
            return
        oldest = next(iter(self.unacked.values()))
        timeout = self._timeout_of(oldest)
        if self._now() - oldest.delivered_at >= timeout / 1000:
            error = ChannelError(
                PRECONDITION_FAILED,
                f"delivery acknowledgement on channel {self.id} timed out. Timeout value used: {timeout} ms. "
                "This timeout value can be configured, see consumers doc guide to learn more",
            )
            self.connection.close_channel_with_error(cast("Channel", self), error)  # it is a Channel's part
            return
        self._watch_timeouts()
