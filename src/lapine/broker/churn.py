"""Object churn: connections, channels and queues opened and closed since the broker started.

RabbitMQ keeps these node-wide counters for the management overview's ``churn_rates`` and for
Prometheus' ``rabbitmq_*_opened_total`` / ``*_closed_total`` and ``rabbitmq_queues_*_total``; the
field names are the overview's.
"""

from __future__ import annotations

FIELDS = (
    "connection_created",
    "connection_closed",
    "channel_created",
    "channel_closed",
    "queue_declared",
    "queue_created",
    "queue_deleted",
)


class Churn:
    __slots__ = FIELDS

    def __init__(self) -> None:
        self.connection_created = 0
        self.connection_closed = 0
        self.channel_created = 0
        self.channel_closed = 0
        # Every non-passive queue.declare, new queue or not; created counts the new ones only.
        self.queue_declared = 0
        self.queue_created = 0
        self.queue_deleted = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIELDS}
