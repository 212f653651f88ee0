"""A consumer: one basic.consume on one channel, with its own prefetch window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lapine.broker.channel import Channel
    from lapine.broker.queue import Queue


class Consumer:
    __slots__ = (
        "arguments",
        "channel",
        "exclusive",
        "no_ack",
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

    def has_room(self) -> bool:
        channel = self.channel
        if not channel.active or channel.closed:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return not channel.prefetch_global or len(channel.unacked) < channel.prefetch_global
