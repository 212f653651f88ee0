"""Streams: RabbitMQ's append-only queue type, read by offset (broker/stream_queue.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lapine.amqp.errors import ChannelError
from lapine.broker.queue_types.base import PRECONDITION_FAILED, ReplicatedQueueType
from lapine.broker.queue_types.rabbitmq_arguments import STREAM_CONSUMER_ARGUMENTS, STREAM_QUEUE_ARGUMENTS
from lapine.broker.stream_queue import StreamQueue
from lapine.store.stream.bloom import MAX_SIZE, MIN_SIZE

if TYPE_CHECKING:
    from lapine.broker.ports import QueueHost
    from lapine.broker.queue import Queue

MAX_SEGMENT_SIZE = 3_000_000_000  # RabbitMQ's ?MAX_STREAM_MAX_SEGMENT_SIZE


class StreamQueueType(ReplicatedQueueType):
    name = "stream"
    module = "rabbit_stream_queue"
    queue_arguments = STREAM_QUEUE_ARGUMENTS
    consumer_arguments = STREAM_CONSUMER_ARGUMENTS
    # rabbit_amqqueue:assert_args_equivalence compares the type's own arguments.
    equivalent_arguments = tuple(sorted(STREAM_QUEUE_ARGUMENTS - {"x-queue-type"}))

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
        _check_sizes(arguments)
        return StreamQueue(
            host, name, durable=durable, exclusive=exclusive, auto_delete=auto_delete, arguments=arguments
        )


def _check_sizes(arguments: dict[str, Any]) -> None:
    """rabbit_stream_queue:declare's own checks, after the common ones."""
    segment = arguments.get("x-stream-max-segment-size-bytes")
    if isinstance(segment, int) and segment > MAX_SEGMENT_SIZE:
        raise ChannelError(PRECONDITION_FAILED, "Exceeded max value for x-stream-max-segment-size-bytes")
    if "x-stream-filter-size-bytes" in arguments:
        size = arguments["x-stream-filter-size-bytes"]
        if isinstance(size, bool) or not isinstance(size, int):
            raise ChannelError(PRECONDITION_FAILED, "Invalid type for x-stream-filter-size-bytes")
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ChannelError(PRECONDITION_FAILED, "Invalid value for x-stream-filter-size-bytes")


STREAM = StreamQueueType()
