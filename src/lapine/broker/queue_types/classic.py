"""Classic queues: RabbitMQ's default type, in memory with their backlog paged to the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lapine.broker.queue import Queue
from lapine.broker.queue_types.base import QueueType
from lapine.broker.queue_types.rabbitmq_arguments import CLASSIC_CONSUMER_ARGUMENTS, CLASSIC_QUEUE_ARGUMENTS

if TYPE_CHECKING:
    from lapine.broker.ports import QueueHost


class ClassicQueueType(QueueType):
    name = "classic"
    module = "rabbit_classic_queue"
    queue_arguments = CLASSIC_QUEUE_ARGUMENTS
    consumer_arguments = CLASSIC_CONSUMER_ARGUMENTS
    equivalent_arguments = (
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-expires",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-priority",
        "x-message-ttl",
        "x-overflow",
        "x-queue-mode",
        "x-single-active-consumer",
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
        return Queue(host, name, durable=durable, exclusive=exclusive, auto_delete=auto_delete, arguments=arguments)


CLASSIC = ClassicQueueType()
