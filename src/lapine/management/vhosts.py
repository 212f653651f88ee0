"""/api/vhosts: list, show, create and delete vhosts, with their message totals."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.broker import definitions
from lapine.broker.vhost import VirtualHost
from lapine.management import counters
from lapine.management.auth import listed_vhosts, require_admin, user_of
from lapine.management.context import broker_of, node_of, sampler_of
from lapine.management.http import bad_request, created, listing, no_content, not_found, one, read_json
from lapine.management.permissions import permission_info, topic_permission_info
from lapine.management.rates import vhost_bytes

GAUGES = ("messages", "messages_ready", "messages_unacknowledged")


def vhost_info(request: web.Request, vhost: VirtualHost) -> dict[str, Any]:
    broker, sampler = broker_of(request), sampler_of(request)
    metadata = definitions.vhost_metadata(vhost)
    info: dict[str, Any] = {
        "name": vhost.name,
        "description": metadata.description,
        "tags": list(metadata.tags),
        "default_queue_type": metadata.default_queue_type,
        "metadata": {"description": metadata.description, "tags": list(metadata.tags)},
        "tracing": False,
        "cluster_state": {node_of(request).name: "running"},
        **sampler.details(vhost, counters.queue_totals([vhost]), GAUGES),
        **sampler.details(vhost, vhost_bytes(broker, vhost), ("recv_oct", "send_oct")),
    }
    totals = counters.vhost_totals(broker, vhost)
    if counters.any_activity(totals, counters.TOTAL_FIELDS):
        info["message_stats"] = sampler.details(vhost, totals, counters.TOTAL_FIELDS)
    return info


def find(request: web.Request) -> VirtualHost:
    vhost = broker_of(request).vhosts.get(request.match_info["vhost"])
    if vhost is None:
        raise not_found()
    return vhost


async def list_vhosts(request: web.Request) -> web.Response:
    return listing(request, [vhost_info(request, v) for v in listed_vhosts(request)])


async def get_vhost(request: web.Request) -> web.Response:
    require_admin(request)
    return one(request, vhost_info(request, find(request)))


async def put_vhost(request: web.Request) -> web.Response:
    """Create a vhost (its creator gets full permissions there, as in RabbitMQ) or update it."""
    require_admin(request)
    body = await read_json(request)
    name = request.match_info["vhost"]
    broker = broker_of(request)
    tags = body.get("tags")
    if tags is not None and not isinstance(tags, str | list):
        raise bad_request("tags must be a list or a comma-separated string")
    try:
        _vhost, was_created = definitions.add_vhost(
            broker,
            name,
            description=str(body.get("description", "")),
            tags=definitions.parse_tags(tags),
            default_queue_type=body.get("default_queue_type"),
        )
        if was_created:
            definitions.set_permissions(broker, user_of(request).name, name, ".*", ".*", ".*")
    except definitions.DefinitionError as error:
        raise bad_request(error.reason) from None
    return created() if was_created else no_content()


async def delete_vhost(request: web.Request) -> web.Response:
    require_admin(request)
    if not definitions.delete_vhost(broker_of(request), request.match_info["vhost"]):
        raise not_found()
    return no_content()


async def vhost_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    vhost = find(request)
    return listing(request, [permission_info(p) for p in broker_of(request).permissions.for_vhost(vhost.name)])


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/vhosts", list_vhosts),
        web.get("/api/vhosts/{vhost}", get_vhost),
        web.put("/api/vhosts/{vhost}", put_vhost),
        web.delete("/api/vhosts/{vhost}", delete_vhost),
        web.get("/api/vhosts/{vhost}/permissions", vhost_permissions),
        web.get("/api/vhosts/{vhost}/topic-permissions", vhost_topic_permissions),
    ]


async def vhost_topic_permissions(request: web.Request) -> web.Response:
    """Listed vhost first, as RabbitMQ lists a vhost's topic permissions."""
    require_admin(request)
    vhost = find(request)
    entries = [p for p in broker_of(request).permissions.topic.values() if p.vhost == vhost.name]
    return listing(request, [{"vhost": p.vhost, **topic_permission_info(p)} for p in entries])
