"""/metrics/per-object's samples for every queue, connection and channel, rendered in slices.

With thousands of queues the text is megabytes; built in one go it would hold the event loop (and
every AMQP client) for a third of a second. Here each object's label set is escaped once, shared by
its samples, and the loop is given back every ``SLICE`` objects. Prometheus wants a family's
samples together, so each family collects its lines and they are joined at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from lapine.broker.broker import Broker
from lapine.management import counters
from lapine.management.queues import unacked_bytes
from lapine.prometheus.exposition import escape, number
from lapine.prometheus.metrics import CHANNEL_COUNTERS, QUEUE_METRICS, queue_values

# Objects rendered between two returns to the event loop: a few milliseconds' work.
SLICE = 500
T = TypeVar("T")

# The queue metrics of /metrics, per queue: each reads the queue's figures (metrics.queue_values).
QUEUE_SAMPLES: tuple[tuple[str, str, str, Callable[[Any], float]], ...] = tuple(
    (f"rabbitmq_{name}", kind, text, itemgetter(name)) for name, kind, text in QUEUE_METRICS
)
CONNECTION_METRICS: tuple[tuple[str, str, str, Callable[[Any], float]], ...] = (
    (
        "rabbitmq_connection_incoming_bytes_total",
        "counter",
        "Total number of bytes received on a connection",
        lambda c: c.bytes_received,
    ),
    (
        "rabbitmq_connection_outgoing_bytes_total",
        "counter",
        "Total number of bytes sent on a connection",
        lambda c: c.bytes_sent,
    ),
)
CHANNEL_METRICS: tuple[tuple[str, str, str, Callable[[Any], float]], ...] = tuple(
    (f"rabbitmq_channel_{name}", "counter", text, attrgetter(f"stats.{field}"))
    for name, text, field in CHANNEL_COUNTERS
)


async def render_per_object(broker: Broker) -> str:
    """The per-object families' text, giving the loop back between slices of objects."""
    queues = [(vhost.name, queue) for vhost in broker.vhosts.values() for queue in list(vhost.queues.values())]
    connections = list(broker.connections)
    channels = list(counters.channels(broker))
    unacked = unacked_bytes(broker)
    parts = [
        await _families(
            QUEUE_SAMPLES, queues, _queue_labels, lambda item: queue_values(item[1], unacked.get(item[1], 0))
        ),
        await _families(CONNECTION_METRICS, connections, _connection_labels, _same),
        await _families(CHANNEL_METRICS, channels, _channel_labels, _same),
    ]
    return "".join(parts)


def _queue_labels(item: tuple[str, Any]) -> str:
    return f'{{vhost="{escape(item[0])}",queue="{escape(item[1].name)}"}}'


def _connection_labels(connection: Any) -> str:
    return f'{{connection="{escape(connection.name)}"}}'


def _channel_labels(channel: Any) -> str:
    return f'{{channel="{escape(f"{channel.connection.name} ({channel.id})")}"}}'


def _same(item: T) -> T:
    return item


async def _families(
    metrics: Iterable[tuple[str, str, str, Callable[[Any], float]]],
    items: list[Any],
    labels: Callable[[Any], str],
    subject: Callable[[Any], Any],
) -> str:
    chosen = list(metrics)
    lines: list[list[str]] = [[f"# TYPE {name} {kind}", f"# HELP {name} {text}"] for name, kind, text, _ in chosen]
    for start in range(0, len(items), SLICE):
        if start:
            await asyncio.sleep(0)
        for item in items[start : start + SLICE]:
            label = labels(item)
            target = subject(item)
            for (name, _kind, _text, value), out in zip(chosen, lines, strict=True):
                out.append(f"{name}{label} {number(value(target))}")
    return "".join("\n".join(family) + "\n" for family in lines)
