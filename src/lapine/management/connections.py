"""/api/connections: the open AMQP connections, and closing one (320 CONNECTION_FORCED)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.broker import definitions
from lapine.broker.connection import Connection, State
from lapine.management.auth import is_admin, sees_all_connections, user_of, vhost_from_path
from lapine.management.context import broker_of, node_of, sampler_of
from lapine.management.http import ApiError, listing, no_content, not_found, one
from lapine.mqtt.connection import MqttConnection

# RabbitMQ's names for a connection's states.
STATES = {State.OPEN: "running", State.CLOSING: "closing", State.CLOSED: "closed"}


def connection_state(connection: Connection | MqttConnection) -> str:
    """RabbitMQ's state: "blocked" by an alarm, "flow" if held by credit flow lately, else by
    the protocol's state."""
    if connection.state is State.OPEN:
        if connection.blocked:
            return "blocked"
        if connection.in_flow:
            return "flow"
    return STATES.get(connection.state, "starting")


BYTE_FIELDS = ("recv_oct", "send_oct")


def connection_info(request: web.Request, connection: Connection | MqttConnection) -> dict[str, Any]:
    node = node_of(request)
    address, port = node.listeners.get("amqp", ("", 0))
    user_name = connection.client_properties.get("connection_name")
    values = {"recv_oct": connection.bytes_received, "send_oct": connection.bytes_sent}
    return {
        "name": connection.name,
        "node": node.name,
        "type": "network",
        "protocol": connection.protocol_label,
        "auth_mechanism": connection.auth_mechanism,
        "user": connection.username,
        "user_who_performed_action": connection.username,
        "vhost": connection.vhost.name if connection.vhost is not None else "",
        "host": address,
        "port": port,
        "peer_host": connection.peer_host,
        "peer_port": connection.peer_port,
        "ssl": False,
        "ssl_protocol": None,
        "ssl_key_exchange": None,
        "ssl_cipher": None,
        "ssl_hash": None,
        "peer_cert_subject": None,
        "peer_cert_issuer": None,
        "peer_cert_validity": None,
        "state": connection_state(connection),
        "channels": len(connection.channels),
        "channel_max": connection.channel_max,
        "frame_max": connection.frame_max,
        "timeout": connection.heartbeat,
        "client_properties": connection.client_properties,
        "user_provided_name": user_name if isinstance(user_name, str) else None,
        "connected_at": int(connection.connected_at * 1000),
        "send_pend": 0,
        **sampler_of(request).details(connection, values, BYTE_FIELDS),
    }


def visible_connections(request: web.Request, vhost_name: str | None = None) -> list[Connection | MqttConnection]:
    """Monitoring users see every connection, others only their own."""
    user = user_of(request)
    everyone = sees_all_connections(request)
    found = []
    for connection in broker_of(request).connections:
        if not everyone and connection.username != user.name:
            continue
        if vhost_name is not None and (connection.vhost is None or connection.vhost.name != vhost_name):
            continue
        found.append(connection)
    return sorted(found, key=lambda c: c.connected_at)


def find(request: web.Request) -> Connection | MqttConnection:
    name = request.match_info["name"]
    for connection in visible_connections(request):
        if connection.name == name:
            return connection
    raise not_found()


async def list_connections(request: web.Request) -> web.Response:
    return listing(request, [connection_info(request, c) for c in visible_connections(request)])


async def list_vhost_connections(request: web.Request) -> web.Response:
    vhost = vhost_from_path(request)
    return listing(request, [connection_info(request, c) for c in visible_connections(request, vhost.name)])


async def get_connection(request: web.Request) -> web.Response:
    return one(request, connection_info(request, find(request)))


async def delete_connection(request: web.Request) -> web.Response:
    """Close with 320 CONNECTION_FORCED and the X-Reason header's text, as RabbitMQ does."""
    connection = find(request)
    user = user_of(request)
    if not is_admin(user) and connection.username != user.name:
        raise ApiError(401, "not_authorised", "Not administrator user")
    reason = request.headers.get("X-Reason", "Closed via management plugin")
    definitions.close_connection(broker_of(request), connection.name, reason)
    return no_content()


async def connection_channels(request: web.Request) -> web.Response:
    from lapine.management.channels import channel_info

    connection = find(request)
    return listing(request, [channel_info(request, ch) for ch in connection.channels.values()])


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/connections", list_connections),
        web.get("/api/connections/{name}", get_connection),
        web.delete("/api/connections/{name}", delete_connection),
        web.get("/api/connections/{name}/channels", connection_channels),
        web.get("/api/vhosts/{vhost}/connections", list_vhost_connections),
    ]
