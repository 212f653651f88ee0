"""What Lapine measures, under rabbitmq_prometheus's metric names and help texts.

/metrics gives node-wide totals (RabbitMQ's default, aggregated); /metrics/per-object labels each
queue, channel and connection. Only what Lapine really has is exported: no Erlang VM figures.
Everything RabbitMQ's Grafana "RabbitMQ-Overview" dashboard queries is here (see
tests/management/test_grafana.py); the global counters are counted, never derived, and never go
backwards (a deleted vhost's counts stay in them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lapine import __version__
from lapine.broker.broker import Broker
from lapine.broker.consumer import Consumer
from lapine.broker.definitions import RABBITMQ_COMPATIBLE_VERSION
from lapine.broker.message_sizes import BOUNDS
from lapine.broker.ports import Subscriber
from lapine.broker.queue import Queue
from lapine.broker.server_identity import default_cluster_name
from lapine.management import counters, system
from lapine.management.queues import unacked_bytes
from lapine.mqtt.connection import MqttConnection
from lapine.prometheus.exposition import Family

AMQP = {"protocol": "amqp091"}
CLASSIC = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}
RABBITMQ_VERSION = RABBITMQ_COMPATIBLE_VERSION
# The node's name, which renaming the cluster does not change (as RabbitMQ's node()).
NODE_NAME = default_cluster_name()

# (metric, help, the counter in lapine.broker.stats, labels)
GLOBAL_COUNTERS: tuple[tuple[str, str, Callable[[dict[str, int]], int], dict[str, str]], ...] = (
    ("received", "Total number of messages received from publishers", lambda c: c["publish"], AMQP),
    ("confirmed", "Total number of messages confirmed to publishers", lambda c: c["confirm"], AMQP),
    (
        "received_confirm",
        "Total number of messages received from publishers expecting confirmations",
        lambda c: c["received_confirm"],
        AMQP,
    ),
    # One per queue a message reached, as RabbitMQ counts it.
    ("routed", "Total number of messages routed to queues or streams", lambda c: c["publish_out"], AMQP),
    (
        "unroutable_dropped",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        lambda c: c["drop_unroutable"],
        AMQP,
    ),
    (
        "unroutable_returned",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        lambda c: c["return_unroutable"],
        AMQP,
    ),
    ("delivered", "Total number of messages delivered to consumers", lambda c: c["deliver_get"], CLASSIC),
    (
        "delivered_consume_manual_ack",
        "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
        lambda c: c["deliver"],
        CLASSIC,
    ),
    (
        "delivered_consume_auto_ack",
        "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
        lambda c: c["deliver_no_ack"],
        CLASSIC,
    ),
    (
        "delivered_get_manual_ack",
        "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
        lambda c: c["get"],
        CLASSIC,
    ),
    (
        "delivered_get_auto_ack",
        "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
        lambda c: c["get_no_ack"],
        CLASSIC,
    ),
    ("redelivered", "Total number of messages redelivered to consumers", lambda c: c["redeliver"], CLASSIC),
    ("acknowledged", "Total number of messages acknowledged by consumers", lambda c: c["ack"], CLASSIC),
    (
        "get_empty",
        "Total number of times basic.get operations fetched no message",
        lambda c: c["get_empty"],
        CLASSIC,
    ),
)

# (metric, help, the channel counter): RabbitMQ's per-channel totals, summed over open channels.
CHANNEL_COUNTERS = (
    ("messages_published_total", "Total number of messages published into an exchange on a channel", "publish"),
    (
        "messages_confirmed_total",
        "Total number of messages published into an exchange and confirmed on the channel",
        "confirm",
    ),
    (
        "messages_unroutable_returned_total",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        "return_unroutable",
    ),
    (
        "messages_unroutable_dropped_total",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        "drop_unroutable",
    ),
    (
        "messages_delivered_ack_total",
        "Total number of messages delivered to consumers in manual acknowledgement mode",
        "deliver",
    ),
    (
        "messages_delivered_total",
        "Total number of messages delivered to consumers in automatic acknowledgement mode",
        "deliver_no_ack",
    ),
    ("messages_redelivered_total", "Total number of messages redelivered to consumers", "redeliver"),
    ("messages_acked_total", "Total number of messages acknowledged by consumers", "ack"),
    ("get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", "get"),
    ("get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", "get_no_ack"),
    ("get_empty_total", "Total number of times basic.get operations fetched no message", "get_empty"),
)


# (metric, help, the field of lapine.broker.churn.Churn)
CHURN_COUNTERS = (
    ("connections_opened_total", "Total number of connections opened", "connection_created"),
    ("connections_closed_total", "Total number of connections closed or terminated", "connection_closed"),
    ("channels_opened_total", "Total number of channels opened", "channel_created"),
    ("channels_closed_total", "Total number of channels closed", "channel_closed"),
    ("queues_declared_total", "Total number of queues declared", "queue_declared"),
    ("queues_created_total", "Total number of queues created", "queue_created"),
    ("queues_deleted_total", "Total number of queues deleted", "queue_deleted"),
)


def _bucket_label(bound: int) -> str:
    """A bucket bound as Prometheus (3.x) normalises ``le``, the form RabbitMQ's dashboards query:
    le="100.0", le="1e+06"."""
    text = f"{float(bound):g}"
    return text if "e" in text or "." in text else text + ".0"


MESSAGE_SIZE_BUCKETS = (*(_bucket_label(bound) for bound in BOUNDS), "+Inf")


def node_families(broker: Broker, started_at: float, endpoint: str) -> list[Family]:
    """Identity, process, object counts and churn: the same in both endpoints but for the
    identity's rabbitmq_endpoint ("aggregated" or "per-object"), which dashboards select on."""
    connections = list(broker.connections)
    queues = [q for v in broker.vhosts.values() for q in v.queues.values()]
    consumers = sum(len(q.consumers) for q in queues)
    families = [
        Family("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info").add(
            1,
            rabbitmq_version=RABBITMQ_VERSION,
            prometheus_plugin_version=__version__,
            prometheus_client_version=__version__,
            erlang_version="Lapine " + __version__,
        ),
        Family("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info").add(
            1,
            rabbitmq_node=NODE_NAME,
            rabbitmq_cluster=broker.cluster_name,
            rabbitmq_cluster_permanent_id=broker.cluster_id,
            rabbitmq_endpoint=endpoint,
        ),
        Family("rabbitmq_process_resident_memory_bytes", "gauge", "Memory used in bytes").add(system.resident_memory()),
        Family("rabbitmq_resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes").add(
            system.memory_limit(broker.config)
        ),
        Family("rabbitmq_process_open_fds", "gauge", "Open file descriptors").add(system.open_fds()),
        Family("rabbitmq_process_max_fds", "gauge", "Open file descriptors limit").add(system.max_fds()),
        Family("rabbitmq_disk_space_available_bytes", "gauge", "Disk space available in bytes").add(
            system.disk_free(broker.config.data_dir)
        ),
        Family("rabbitmq_disk_space_available_limit_bytes", "gauge", "Free disk space low watermark in bytes").add(
            broker.config.disk_free_limit
        ),
        Family("rabbitmq_alarms_memory_used_watermark", "gauge", "is 1 if VM memory watermark alarm is in effect").add(
            int("memory" in broker.alarms)
        ),
        Family(
            "rabbitmq_alarms_free_disk_space_watermark",
            "gauge",
            "is 1 if free disk space watermark alarm is in effect",
        ).add(int("disk" in broker.alarms)),
        Family(
            "rabbitmq_alarms_file_descriptor_limit", "gauge", "is 1 if file descriptor limit alarm is in effect"
        ).add(0),
        Family("rabbitmq_erlang_uptime_seconds", "gauge", "Node uptime").add(round(time.time() - started_at, 3)),
        Family("rabbitmq_connections", "gauge", "Connections currently open").add(len(connections)),
        Family("rabbitmq_channels", "gauge", "Channels currently open").add(sum(len(c.channels) for c in connections)),
        # Credit flow (broker/flow.py); RabbitMQ has no such metric, so these carry Lapine's name.
        Family("lapine_connections_flow", "gauge", "Connections held by credit flow in the last 5 seconds").add(
            sum(1 for c in connections if c.in_flow)
        ),
        Family("lapine_connection_flow_holds_total", "counter", "Times a connection was held by credit flow").add(
            broker.flow_holds
        ),
        Family("rabbitmq_consumers", "gauge", "Consumers currently connected").add(consumers),
        Family("rabbitmq_queues", "gauge", "Queues available").add(len(queues)),
        _per_protocol(
            Family("rabbitmq_global_consumers", "gauge", "Current number of consumers").add(
                sum(1 for q in queues for c in q.consumers if not _other_protocol(c)), **AMQP
            ),
            broker,
            lambda protocol: sum(
                len(c.consumers)
                for c in connections
                if isinstance(c, MqttConnection) and c.counter_protocol == protocol
            ),
        ),
        # RabbitMQ counts a channel as a publisher from its first basic.publish until it closes.
        Family("rabbitmq_global_publishers", "gauge", "Current number of publishers").add(
            sum(1 for ch in counters.channels(broker) if ch.stats.publish and not ch.closed), **AMQP
        ),
    ]
    churn = broker.churn
    for name, text, field in CHURN_COUNTERS:
        families.append(Family(f"rabbitmq_{name}", "counter", text).add(getattr(churn, field)))
    sizes = broker.message_sizes
    families.append(
        Family("rabbitmq_message_size_bytes", "histogram", "Size of messages received from publishers").add_histogram(
            MESSAGE_SIZE_BUCKETS, sizes.cumulative(), sizes.sum, **AMQP
        )
    )
    return families


# (reason, help): RabbitMQ's classic queues dead-letter at most once, or drop ("disabled"); quorum
# queues also at least once, count confirmed at-least-once dead letters, and have a delivery limit.
DEAD_LETTER_COUNTERS = (
    ("expired", "Total number of messages dead-lettered due to message TTL exceeded"),
    ("maxlen", "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx"),
    ("rejected", "Total number of messages dead-lettered due to basic.reject or basic.nack"),
    ("delivery_limit", "Total number of messages dead-lettered due to delivery-limit exceeded"),
    ("confirmed", "Total number of messages dead-lettered and confirmed by target queues"),
)
# (queue type, strategy, its reasons): the series RabbitMQ's rabbit_global_counters sets up.
_CLASSIC_REASONS = ("expired", "maxlen", "rejected")
_QUORUM_REASONS = ("expired", "maxlen", "rejected", "delivery_limit")
DEAD_LETTER_SERIES = (
    ("rabbit_classic_queue", "at_most_once", _CLASSIC_REASONS),
    ("rabbit_classic_queue", "disabled", _CLASSIC_REASONS),
    ("rabbit_quorum_queue", "at_least_once", ("confirmed", "expired", "rejected", "delivery_limit")),
    ("rabbit_quorum_queue", "at_most_once", _QUORUM_REASONS),
    ("rabbit_quorum_queue", "disabled", _QUORUM_REASONS),
)


def _other_protocol(consumer: Subscriber) -> bool:
    """A consumer of an MQTT connection is counted under that connection's protocol."""
    return isinstance(consumer, Consumer) and hasattr(consumer.channel, "counter_protocol")


def _per_protocol(
    family: Family, broker: Broker, value: Callable[[str], int], labels: dict[str, str] | None = None
) -> Family:
    """The family's samples for the protocols beside AMQP (MQTT) that have been seen."""
    for protocol in sorted(broker.protocol_counters):
        family.add(value(protocol), protocol=protocol, **(labels or {}))
    return family


def global_families(broker: Broker) -> list[Family]:
    totals = counters.node_totals(broker)
    others = broker.protocol_counters
    families = [
        _per_protocol(
            Family(f"rabbitmq_global_messages_{name}_total", "counter", text).add(value(totals), **labels),
            broker,
            lambda protocol, name=name: others[protocol][name],  # type: ignore[misc]
            {k: v for k, v in labels.items() if k != "protocol"},
        )
        for name, text, value, labels in GLOBAL_COUNTERS
    ]
    for reason, text in DEAD_LETTER_COUNTERS:
        family = Family(f"rabbitmq_global_messages_dead_lettered_{reason}_total", "counter", text)
        for queue_type, strategy, reasons in DEAD_LETTER_SERIES:
            if reason in reasons:
                count = broker.dead_lettered[(queue_type, reason, strategy)]
                family.add(count, queue_type=queue_type, dead_letter_strategy=strategy)
        families.append(family)
    return families


# (metric without "rabbitmq_", type, help) of each queue, in RabbitMQ's names.
QUEUE_METRICS = (
    ("queue_messages_ready", "gauge", "Messages ready to be delivered to consumers"),
    ("queue_messages_unacked", "gauge", "Messages delivered to consumers but not yet acknowledged"),
    ("queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth"),
    ("queue_consumers", "gauge", "Consumers on a queue"),
    ("queue_messages_published_total", "counter", "Total number of messages published to queues"),
    ("queue_messages_ram", "gauge", "Ready and unacknowledged messages stored in memory"),
    ("queue_messages_ram_bytes", "gauge", "Size of ready and unacknowledged messages stored in memory"),
    ("queue_messages_ready_ram", "gauge", "Ready messages stored in memory"),
    ("queue_messages_unacked_ram", "gauge", "Unacknowledged messages stored in memory"),
    ("queue_messages_bytes", "gauge", "Size in bytes of ready and unacknowledged messages"),
    ("queue_messages_ready_bytes", "gauge", "Size in bytes of ready messages"),
    ("queue_messages_unacked_bytes", "gauge", "Size in bytes of all unacknowledged messages"),
    ("queue_messages_paged_out", "gauge", "Messages paged out to disk"),
    ("queue_messages_paged_out_bytes", "gauge", "Size in bytes of messages paged out to disk"),
)


def queue_values(queue: Queue, unacked_size: int) -> dict[str, int]:
    """One queue's figures; past its window a queue's backlog is on disk only (paged out)."""
    ready, unacked, paged = queue.message_count, queue.unacked_count, queue.paged
    ready_bytes = queue.ready_bytes + queue.paged_bytes
    return {
        "queue_messages_ready": ready,
        "queue_messages_unacked": unacked,
        "queue_messages": ready + unacked,
        "queue_consumers": len(queue.consumers),
        "queue_messages_published_total": queue.stats.publish,
        "queue_messages_ram": ready - paged + unacked,
        "queue_messages_ram_bytes": queue.ready_bytes + unacked_size,
        "queue_messages_ready_ram": ready - paged,
        "queue_messages_unacked_ram": unacked,
        "queue_messages_bytes": ready_bytes + unacked_size,
        "queue_messages_ready_bytes": ready_bytes,
        "queue_messages_unacked_bytes": unacked_size,
        "queue_messages_paged_out": paged,
        "queue_messages_paged_out_bytes": queue.paged_bytes,
    }


def aggregated_families(broker: Broker) -> list[Family]:
    """RabbitMQ's /metrics: one sample per metric for the whole node."""
    queues = [q for v in broker.vhosts.values() for q in v.queues.values()]
    channels = list(counters.channels(broker))
    connections = list(broker.connections)
    unacked = unacked_bytes(broker)
    totals = dict.fromkeys((name for name, _kind, _text in QUEUE_METRICS), 0)
    for queue in queues:
        for name, value in queue_values(queue, unacked.get(queue, 0)).items():
            totals[name] += value
    families = [Family(f"rabbitmq_{name}", kind, text).add(totals[name]) for name, kind, text in QUEUE_METRICS]
    families += [
        Family("rabbitmq_channel_consumers", "gauge", "Consumers on a channel").add(
            sum(len(ch.consumers) for ch in channels)
        ),
        Family("rabbitmq_channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages").add(
            sum(len(ch.unacked) for ch in channels)
        ),
        Family(
            "rabbitmq_connection_incoming_bytes_total", "counter", "Total number of bytes received on a connection"
        ).add(sum(c.bytes_received for c in connections)),
        Family("rabbitmq_connection_outgoing_bytes_total", "counter", "Total number of bytes sent on a connection").add(
            sum(c.bytes_sent for c in connections)
        ),
        Family("rabbitmq_connection_channels", "gauge", "Channels on a connection").add(
            sum(len(c.channels) for c in connections)
        ),
    ]
    for name, text, field in CHANNEL_COUNTERS:
        families.append(
            Family(f"rabbitmq_channel_{name}", "counter", text).add(sum(getattr(ch.stats, field) for ch in channels))
        )
    return families
