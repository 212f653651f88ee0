"""Quorum queues: RabbitMQ's replicated FIFO (rabbit_quorum_queue), here on one node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lapine.broker.queue_types.base import ReplicatedQueueType
from lapine.broker.queue_types.rabbitmq_arguments import QUORUM_CONSUMER_ARGUMENTS, QUORUM_QUEUE_ARGUMENTS
from lapine.broker.quorum_queue import MODULE, QuorumQueue

if TYPE_CHECKING:
    from lapine.broker.ports import QueueHost
    from lapine.broker.queue import Queue


class QuorumQueueType(ReplicatedQueueType):
    name = "quorum"
    module = MODULE
    queue_arguments = QUORUM_QUEUE_ARGUMENTS
    consumer_arguments = QUORUM_CONSUMER_ARGUMENTS
    # RabbitMQ 4.x checks every argument of the type on a redeclare, in capabilities() order.
    equivalent_arguments = (
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-dead-letter-strategy",
        "x-expires",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-overflow",
        "x-single-active-consumer",
        "x-quorum-initial-group-size",
        "x-member-placement-tag",
        "x-delivery-limit",
        "x-message-ttl",
        "x-queue-leader-locator",
        "x-consumer-disconnected-timeout",
        "x-consumer-timeout",
        "x-delayed-retry-type",
        "x-delayed-retry-min",
        "x-delayed-retry-max",
    )

    def create(
        self,
        host: QueueHost,
        name: str,
        *,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> Queue:
        return QuorumQueue(host, name, durable=True, exclusive=False, auto_delete=False, arguments=arguments)


QUORUM = QuorumQueueType()
