"""/api/channels: every open channel with its prefetch, confirms, transactions and message rates."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.broker.channel import Channel
from lapine.management import counters
from lapine.management.auth import vhost_from_path
from lapine.management.connections import visible_connections
from lapine.management.consumers import consumer_info
from lapine.management.context import node_of, sampler_of
from lapine.management.http import listing, not_found, one


def channel_state(channel: Channel) -> str:
    """RabbitMQ's: "flow" for a publishing channel of a connection held by credit flow lately."""
    if channel.closing:
        return "closing"
    if channel.stats.publish and channel.connection.in_flow:
        return "flow"
    return "running"


def channel_name(channel: Channel) -> str:
    return f"{channel.connection.name} ({channel.id})"


def channel_info(request: web.Request, channel: Channel) -> dict[str, Any]:
    connection = channel.connection
    tx = channel.tx
    info: dict[str, Any] = {
        "name": channel_name(channel),
        "number": channel.id,
        "node": node_of(request).name,
        "vhost": channel.vhost.name,
        "user": connection.username,
        "user_who_performed_action": connection.username,
        "connection_details": {
            "name": connection.name,
            "peer_host": connection.peer_host,
            "peer_port": connection.peer_port,
        },
        "state": channel_state(channel),
        "confirm": channel.confirm_mode,
        "transactional": tx is not None,
        "consumer_count": len(channel.consumers),
        "messages_unacknowledged": len(channel.unacked),
        "messages_unconfirmed": channel.publish_seq - channel.confirmed_seq if channel.confirm_mode else 0,
        "messages_uncommitted": len(tx.publishes) if tx is not None else 0,
        "acks_uncommitted": len(tx.settlements) if tx is not None else 0,
        "prefetch_count": channel.prefetch_count,
        "global_prefetch_count": channel.prefetch_global,
        "pending_raft_commands": 0,
    }
    values = counters.of(channel.stats)
    fields = [
        *(counters.PUBLISHER_FIELDS if counters.any_activity(values, counters.PUBLISHER_FIELDS) else ()),
        *(counters.CONSUMER_FIELDS if counters.any_activity(values, counters.CONSUMER_FIELDS) else ()),
    ]
    if fields:
        info["message_stats"] = sampler_of(request).details(channel, values, sorted(fields))
    return info


def visible_channels(request: web.Request, vhost_name: str | None = None) -> list[Channel]:
    return [ch for c in visible_connections(request, vhost_name) for ch in list(c.channels.values())]


async def list_channels(request: web.Request) -> web.Response:
    return listing(request, [channel_info(request, ch) for ch in visible_channels(request)])


async def list_vhost_channels(request: web.Request) -> web.Response:
    vhost = vhost_from_path(request)
    return listing(request, [channel_info(request, ch) for ch in visible_channels(request, vhost.name)])


async def get_channel(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for channel in visible_channels(request):
        if channel_name(channel) == name:
            info = channel_info(request, channel)
            node = node_of(request).name
            info.update(
                consumer_details=[consumer_info(c, node) for c in channel.consumers.values()],
                deliveries=[],
                publishes=[],
            )
            return one(request, info)
    raise not_found()


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/channels", list_channels),
        web.get("/api/channels/{name}", get_channel),
        web.get("/api/vhosts/{vhost}/channels", list_vhost_channels),
    ]
