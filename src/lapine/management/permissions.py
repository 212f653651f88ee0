"""/api/permissions: a user's configure/write/read patterns on a vhost; /api/topic-permissions: the
write/read patterns on a topic exchange's routing keys, one entry per user, vhost and exchange."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.auth.permissions import Permission, TopicPermission
from lapine.broker import definitions, definitions_format
from lapine.management.auth import require_admin
from lapine.management.context import broker_of
from lapine.management.http import bad_request, created, listing, no_content, not_found, one, read_json, require_keys


def permission_info(permission: Permission) -> dict[str, Any]:
    return definitions_format.permission_definition(permission)


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


def topic_permission_info(permission: TopicPermission) -> dict[str, Any]:
    return definitions_format.topic_permission_definition(permission)


async def list_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    entries = broker_of(request).permissions.topic.values()
    return listing(request, [topic_permission_info(p) for p in entries])


def _find_topic(request: web.Request) -> list[TopicPermission]:
    """The user's topic permissions in the vhost: 404 when the vhost, the user or they are missing."""
    require_admin(request)
    broker = broker_of(request)
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    if vhost not in broker.vhosts or user not in broker.users.users:
        raise not_found()
    found = broker.permissions.topic_for(user, vhost)
    if not found:
        raise not_found()
    return found


async def get_topic_permissions(request: web.Request) -> web.Response:
    return listing(request, [topic_permission_info(p) for p in _find_topic(request)])


async def put_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    require_keys(body, "exchange", "write", "read")
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    try:
        was_created = definitions.set_topic_permissions(
            broker_of(request), user, vhost, str(body["exchange"]), str(body["write"]), str(body["read"])
        )
    except definitions.DefinitionError as error:
        raise bad_request(error.reason) from None
    return created() if was_created else no_content()


async def delete_topic_permissions(request: web.Request) -> web.Response:
    """All the user's topic permissions in the vhost, or, with {exchange}, that one; as in RabbitMQ,
    404 only when the user has none there."""
    _find_topic(request)
    exchange = request.match_info.get("exchange")
    user, vhost = request.match_info["user"], request.match_info["vhost"]
    definitions.clear_topic_permissions(broker_of(request), user, vhost, exchange)
    return no_content()


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/permissions", list_permissions),
        web.get("/api/permissions/{vhost}/{user}", get_permission),
        web.put("/api/permissions/{vhost}/{user}", put_permission),
        web.delete("/api/permissions/{vhost}/{user}", delete_permission),
        web.get("/api/topic-permissions", list_topic_permissions),
        web.get("/api/topic-permissions/{vhost}/{user}", get_topic_permissions),
        web.put("/api/topic-permissions/{vhost}/{user}", put_topic_permissions),
        web.delete("/api/topic-permissions/{vhost}/{user}", delete_topic_permissions),
        web.delete("/api/topic-permissions/{vhost}/{user}/{exchange}", delete_topic_permissions),
    ]
