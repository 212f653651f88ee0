"""A consumer: one basic.consume on one channel, with its own prefetch window.

It is the queue's Subscriber (broker/ports.py): the queue asks it for room, then hands its
messages to its channel, which numbers and sends them.

Where it waits for its turn: in its queue's ring while it may have room (``in_ring``), parked on
its channel while the channel cannot take deliveries (``parked``: the socket is full, or a global
prefetch is used up), or nowhere while its own window is full (its next ack brings it back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lapine.broker.channel import Channel
    from lapine.broker.queue import Queue


class Consumer:
    __slots__ = (
        "arguments",
        "cancelled",
        "channel",
        "exclusive",
        "in_ring",
        "no_ack",
        "parked",
        "prefetch",
        "priority",
        "queue",
        "tag",
        "tag_bytes",
        "unacked",
    )

    def __init__(
        self,
        channel: Channel,
        queue: Queue,
        tag: str,
        *,
        no_ack: bool,
        exclusive: bool,
        prefetch: int,
        arguments: dict[str, Any],
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.tag_bytes = tag.encode()
        self.no_ack = no_ack
        self.exclusive = exclusive
        # RabbitMQ reads basic.qos global=false as a per-consumer limit fixed at consume time.
        self.prefetch = prefetch
        self.arguments = arguments
        # x-priority: higher-priority consumers get messages first while they have room.
        priority = arguments.get("x-priority", 0)
        self.priority = priority if isinstance(priority, int) and not isinstance(priority, bool) else 0
        self.unacked = 0
        self.in_ring = False
        self.parked = False
        self.cancelled = False

    def has_room(self) -> bool:
        channel = self.channel
        if self.cancelled or not channel.active or channel.closed:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return not channel.prefetch_global or len(channel.unacked) < channel.prefetch_global

    def window_full(self) -> bool:
        """Its own prefetch is used up (whatever its channel's state)."""
        return not self.no_ack and 0 < self.prefetch <= self.unacked

    def wait_for_room(self) -> None:
        self.channel.park(self)

    def queue_deleted(self) -> None:
        self.channel.cancel_by_broker(self)

    def cancel(self) -> None:
        """Gone from its queue: it is never handed a message again."""
        self.cancelled = True
        if self.parked:
            self.channel.unpark(self)
