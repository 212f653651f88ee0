"""/api/permissions: a user's configure/write/read patterns on a vhost."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.auth.permissions import Permission
from lapine.broker import definitions
from lapine.management.auth import require_admin
from lapine.management.context import broker_of
from lapine.management.http import bad_request, created, listing, no_content, not_found, one, read_json, require_keys


def permission_info(permission: Permission) -> dict[str, Any]:
    return definitions.permission_definition(permission)


async def list_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    return listing(request, [permission_info(p) for p in broker_of(request).permissions.entries.values()])


def _find(request: web.Request) -> Permission:
    require_admin(request)
    broker = broker_of(request)
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    if vhost not in broker.vhosts or user not in broker.users.users:
        raise not_found()
    permission = broker.permissions.get(user, vhost)
    if permission is None:
        raise not_found()
    return permission


async def get_permission(request: web.Request) -> web.Response:
    return one(request, permission_info(_find(request)))


async def put_permission(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    require_keys(body, "configure", "write", "read")
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    try:
        was_created = definitions.set_permissions(
            broker_of(request), user, vhost, str(body["configure"]), str(body["write"]), str(body["read"])
        )
    except definitions.DefinitionError as error:
        raise bad_request(error.reason) from None
    return created() if was_created else no_content()


async def delete_permission(request: web.Request) -> web.Response:
    permission = _find(request)
    definitions.clear_permissions(broker_of(request), permission.user, permission.vhost)
    return no_content()


async def topic_permissions(request: web.Request) -> web.Response:
    """Topic permissions are not in Lapine's model yet: there are none to show."""
    require_admin(request)
    return listing(request, [])


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/permissions", list_permissions),
        web.get("/api/permissions/{vhost}/{user}", get_permission),
        web.put("/api/permissions/{vhost}/{user}", put_permission),
        web.delete("/api/permissions/{vhost}/{user}", delete_permission),
        web.get("/api/topic-permissions", topic_permissions),
    ]
