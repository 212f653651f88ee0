"""The declare and consume arguments of each of RabbitMQ's queue types (their capabilities()).

A queue refuses an argument that belongs to another type only ("invalid arg ... of queue type
..."), and ignores one that no type knows; so the lists of every type are needed, also of types
a broker has not registered.
"""

from __future__ import annotations

CLASSIC_QUEUE_ARGUMENTS = frozenset(
    {
        "x-expires",
        "x-message-ttl",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-priority",
        "x-overflow",
        "x-queue-mode",
        "x-queue-version",
        "x-single-active-consumer",
        "x-queue-type",
        "x-queue-master-locator",
        "x-queue-leader-locator",
        # Lapine takes the per-queue consumer timeout of RabbitMQ 3.12 to 4.2 for classic queues too.
        "x-consumer-timeout",
    }
)
QUORUM_QUEUE_ARGUMENTS = frozenset(
    {
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
        "x-queue-type",
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
    }
)
STREAM_QUEUE_ARGUMENTS = frozenset(
    {
        "x-max-length-bytes",
        "x-queue-type",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
        "x-stream-filter-size-bytes",
        "x-initial-cluster-size",
        "x-queue-leader-locator",
    }
)
ALL_QUEUE_ARGUMENTS = CLASSIC_QUEUE_ARGUMENTS | QUORUM_QUEUE_ARGUMENTS | STREAM_QUEUE_ARGUMENTS

CLASSIC_CONSUMER_ARGUMENTS = frozenset({"x-priority"})
QUORUM_CONSUMER_ARGUMENTS = frozenset({"x-priority", "x-consumer-timeout"})
STREAM_CONSUMER_ARGUMENTS = frozenset({"x-stream-offset", "x-stream-filter", "x-stream-match-unfiltered"})
ALL_CONSUMER_ARGUMENTS = CLASSIC_CONSUMER_ARGUMENTS | QUORUM_CONSUMER_ARGUMENTS | STREAM_CONSUMER_ARGUMENTS
