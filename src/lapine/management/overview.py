"""/api/overview and the small node-wide answers: cluster-name, whoami, extensions, auth."""

from __future__ import annotations

import platform

from aiohttp import web

from lapine import __version__
from lapine.broker.churn import FIELDS as CHURN_FIELDS
from lapine.broker.definitions import RABBITMQ_COMPATIBLE_VERSION
from lapine.broker.exchanges import delayed, router_for
from lapine.management import counters
from lapine.management.auth import is_monitor, require_admin, user_of, visible_vhosts
from lapine.management.context import broker_of, node_of, sampler_of
from lapine.management.http import json_response, one, read_json, require_keys
from lapine.management.rates import Range

RABBITMQ_VERSION = RABBITMQ_COMPATIBLE_VERSION
EXCHANGE_TYPES = ("direct", "fanout", "headers", "topic")


def exchange_types() -> list[dict[str, object]]:
    types: list[dict[str, object]] = [
        {"name": name, "description": f"AMQP {name} exchange, as per the AMQP specification", "enabled": True}
        for name in EXCHANGE_TYPES
        if router_for(name) is not None
    ]
    # As the rabbitmq_delayed_message_exchange plugin registers it.
    types.append({"name": delayed.TYPE_NAME, "description": delayed.DESCRIPTION, "enabled": True})
    return types


def listeners(request: web.Request) -> list[dict[str, object]]:
    node = node_of(request)
    return [
        {"node": node.name, "protocol": protocol, "ip_address": address, "port": port}
        for protocol, (address, port) in node.listeners.items()
    ]


async def get_overview(request: web.Request) -> web.Response:
    broker, sampler, node = broker_of(request), sampler_of(request), node_of(request)
    vhosts = visible_vhosts(request)
    totals = counters.broker_totals(broker)
    queues = counters.queue_totals(vhosts)
    msg_rates = Range.from_query(request.query, "msg_rates")
    lengths = Range.from_query(request.query, "lengths")
    http_port = node.listeners.get("http", ("", 0))[1]
    data = {
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600]},
        "exchange_types": exchange_types(),
        "product_version": __version__,
        "product_name": "Lapine",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": broker.cluster_name,
        "erlang_version": platform.python_version(),
        "erlang_full_version": f"Python {platform.python_version()} ({platform.python_implementation()})",
        "release_series_support_status": "supported",
        "disable_stats": False,
        "enable_queue_totals": False,
        "message_stats": sampler.details(broker, totals, counters.TOTAL_FIELDS, msg_rates),
        # RabbitMQ samples churn over the lengths_* range, as it does the queue totals.
        "churn_rates": sampler.details(broker, broker.churn.as_dict(), sorted(CHURN_FIELDS), lengths),
        # The history is the node's: shown to those who see every vhost.
        "queue_totals": sampler.details(broker, queues, queues, lengths if len(vhosts) == len(broker.vhosts) else None),
        "object_totals": _object_totals(request),
        "statistics_db_event_queue": 0,
        "node": node.name,
        "listeners": listeners(request) if is_monitor(user_of(request)) else [],
        "contexts": [{"node": node.name, "description": "Lapine Management", "path": "/", "port": str(http_port)}],
    }
    return one(request, data)


def _object_totals(request: web.Request) -> dict[str, int]:
    vhosts = visible_vhosts(request)
    connections = [c for c in broker_of(request).connections if c.vhost in vhosts]
    return {
        "channels": sum(len(c.channels) for c in connections),
        "connections": len(connections),
        "consumers": sum(len(q.consumers) for v in vhosts for q in v.queues.values()),
        "exchanges": sum(len(v.exchanges) for v in vhosts),
        "queues": sum(len(v.queues) for v in vhosts),
    }


async def get_cluster_name(request: web.Request) -> web.Response:
    return json_response({"name": broker_of(request).cluster_name})


async def put_cluster_name(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    require_keys(body, "name")
    broker_of(request).cluster_name = str(body["name"])
    return web.Response(status=204)


async def get_whoami(request: web.Request) -> web.Response:
    user = user_of(request)
    return json_response({"name": user.name, "tags": list(user.tags)})


async def get_extensions(request: web.Request) -> web.Response:
    return json_response([])


async def get_auth(request: web.Request) -> web.Response:
    """Asked by UIs before login: there is no OAuth here, only basic auth."""
    return json_response({"oauth_enabled": False, "enable_uaa": False, "uaa_client_id": "", "uaa_location": ""})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/overview", get_overview),
        web.get("/api/cluster-name", get_cluster_name),
        web.put("/api/cluster-name", put_cluster_name),
        web.get("/api/whoami", get_whoami),
        web.get("/api/extensions", get_extensions),
        web.get("/api/auth", get_auth),
    ]
