"""/api/consumers: every consumer, with its channel and queue, as RabbitMQ shows them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.broker.consumer import Consumer
from lapine.broker.queue import Queue
from lapine.management.auth import scoped_vhosts
from lapine.management.context import node_of
from lapine.management.http import listing


def channel_details(consumer: Consumer, node: str) -> dict[str, Any]:
    channel = consumer.channel
    connection = channel.connection
    return {
        "connection_name": connection.name,
        "name": f"{connection.name} ({channel.id})",
        "node": node,
        "number": channel.id,
        "peer_host": connection.peer_host,
        "peer_port": connection.peer_port,
        "user": connection.username,
    }


def channel_consumers(queue: Queue) -> list[Consumer]:
    """The queue's subscribers that are consumers on a channel (the ones with channel details)."""
    return [c for c in queue.consumers if isinstance(c, Consumer)]


def consumer_info(consumer: Consumer, node: str) -> dict[str, Any]:
    queue = consumer.queue
    return {
        "arguments": dict(consumer.arguments),
        "ack_required": not consumer.no_ack,
        "active": queue.active_consumer in (None, consumer),
        "activity_status": "up",
        "channel_details": channel_details(consumer, node),
        "consumer_tag": consumer.tag,
        "exclusive": consumer.exclusive,
        "prefetch_count": consumer.prefetch,
        "queue": {"name": queue.name, "vhost": queue.vhost.name},
    }


async def list_consumers(request: web.Request) -> web.Response:
    node = node_of(request).name
    queues = [q for v in scoped_vhosts(request) for q in v.queues.values()]
    rows = [consumer_info(c, node) for q in queues for c in channel_consumers(q)]
    return listing(request, rows)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/consumers", list_consumers), web.get("/api/consumers/{vhost}", list_consumers)]
