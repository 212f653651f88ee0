"""Message counters, in RabbitMQ's names (the management API's ``message_stats``).

Each queue, exchange, channel and vhost keeps one, and so does the broker as a whole; the
management side samples them to compute rates. Counting is a few integer increments per message.
"""

from __future__ import annotations

FIELDS = (
    "publish",
    "publish_in",
    "publish_out",
    "confirm",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "redeliver",
    "ack",
    "return_unroutable",
    "drop_unroutable",
    # Publishes on a channel in confirm or tx mode (Prometheus' messages_received_confirm_total).
    "received_confirm",
)


class MessageStats:
    __slots__ = FIELDS

    def __init__(self) -> None:
        self.publish = 0
        self.publish_in = 0
        self.publish_out = 0
        self.confirm = 0
        self.deliver = 0
        self.deliver_no_ack = 0
        self.get = 0
        self.get_no_ack = 0
        self.get_empty = 0
        self.redeliver = 0
        self.ack = 0
        self.return_unroutable = 0
        self.drop_unroutable = 0
        self.received_confirm = 0

    def add(self, other: MessageStats) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIELDS}

    @property
    def deliver_get(self) -> int:
        """RabbitMQ's sum of everything handed to clients."""
        return self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
