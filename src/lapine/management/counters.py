"""The counters behind the API's message_stats, gathered from the model in RabbitMQ's field names.

Queues, exchanges and channels count for themselves (lapine.broker.stats). A vhost's figures are
those of its channels: the ones open now, plus what closed channels left in ``vhost.stats``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from lapine.broker.stats import FIELDS, MessageStats

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.broker.channel import Channel
    from lapine.broker.vhost import VirtualHost

# Which counters RabbitMQ shows for each kind of object.
QUEUE_FIELDS = (
    "ack",
    "deliver",
    "deliver_get",
    "deliver_no_ack",
    "get",
    "get_empty",
    "get_no_ack",
    "publish",
    "redeliver",
)
EXCHANGE_FIELDS = ("publish_in", "publish_out")
PUBLISHER_FIELDS = ("confirm", "drop_unroutable", "publish", "return_unroutable")
CONSUMER_FIELDS = ("ack", "deliver", "deliver_get", "deliver_no_ack", "get", "get_empty", "get_no_ack", "redeliver")
TOTAL_FIELDS = (
    "ack",
    "confirm",
    "deliver",
    "deliver_get",
    "deliver_no_ack",
    "drop_unroutable",
    "get",
    "get_empty",
    "get_no_ack",
    "publish",
    "redeliver",
    "return_unroutable",
)


def of(stats: MessageStats) -> dict[str, int]:
    counts = stats.as_dict()
    counts["deliver_get"] = stats.deliver_get
    return counts


def add(total: dict[str, int], stats: MessageStats) -> None:
    for name in FIELDS:
        total[name] = total.get(name, 0) + getattr(stats, name)
    total["deliver_get"] = total.get("deliver_get", 0) + stats.deliver_get


def channels(broker: Broker) -> Iterator[Channel]:
    for connection in list(broker.connections):
        yield from list(connection.channels.values())


def vhost_totals(broker: Broker, vhost: VirtualHost) -> dict[str, int]:
    total: dict[str, int] = {}
    add(total, vhost.stats)
    for channel in channels(broker):
        if channel.vhost is vhost and not channel.closed:
            add(total, channel.stats)
    return total


def broker_totals(broker: Broker) -> dict[str, int]:
    total: dict[str, int] = {}
    for vhost in broker.vhosts.values():
        add(total, vhost.stats)
    for channel in channels(broker):
        # A channel closed by an error waits for close-ok in the list, its counts already in its vhost's.
        if not channel.closed:
            add(total, channel.stats)
    return total


def node_totals(broker: Broker) -> dict[str, int]:
    """broker_totals, plus what deleted vhosts had counted: node-wide counters never go backwards."""
    total = broker_totals(broker)
    add(total, broker.deleted_vhosts_stats)
    return total


def queue_totals(vhosts: Iterable[VirtualHost]) -> dict[str, int]:
    ready = unacked = 0
    for vhost in vhosts:
        for queue in vhost.queues.values():
            ready += queue.message_count
            unacked += queue.unacked_count
    return {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked}


def any_activity(counts: dict[str, int], fields: Iterable[str]) -> bool:
    return any(counts.get(name) for name in fields)
