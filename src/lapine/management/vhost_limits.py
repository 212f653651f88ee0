"""/api/vhost-limits: a vhost's max-connections and max-queues, as RabbitMQ's API shows and sets them.

GET lists ``{"vhost": ..., "value": {"max-queues": 10}}`` for each visible vhost that has limits;
PUT /api/vhost-limits/{vhost}/{name} with ``{"value": N}`` and DELETE are for administrators.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.broker import definitions
from lapine.broker.vhost import VirtualHost
from lapine.management.auth import require_admin, vhost_for_write, vhost_from_path, visible_vhosts
from lapine.management.context import broker_of
from lapine.management.http import bad_request, listing, no_content, read_json, require_keys


def limits_info(vhost: VirtualHost) -> dict[str, Any]:
    return {"vhost": vhost.name, "value": dict(sorted(vhost.limits.items()))}


async def list_limits(request: web.Request) -> web.Response:
    return listing(request, [limits_info(v) for v in visible_vhosts(request) if v.limits])


async def vhost_limits(request: web.Request) -> web.Response:
    vhost = vhost_from_path(request)
    return listing(request, [limits_info(vhost)] if vhost.limits else [])


async def put_limit(request: web.Request) -> web.Response:
    require_admin(request)
    vhost = vhost_for_write(request)
    body = await read_json(request)
    require_keys(body, "value")
    try:
        definitions.set_vhost_limit(broker_of(request), vhost, request.match_info["name"], body["value"])
    except definitions.DefinitionError as error:
        raise bad_request(error.reason) from None
    return no_content()


async def delete_limit(request: web.Request) -> web.Response:
    """RabbitMQ answers 204 whether or not the vhost had that limit."""
    require_admin(request)
    vhost = vhost_for_write(request)
    definitions.clear_vhost_limit(broker_of(request), vhost, request.match_info["name"])
    return no_content()


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/vhost-limits", list_limits),
        web.get("/api/vhost-limits/{vhost}", vhost_limits),
        web.put("/api/vhost-limits/{vhost}/{name}", put_limit),
        web.delete("/api/vhost-limits/{vhost}/{name}", delete_limit),
    ]
