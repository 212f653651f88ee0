"""/api/users: list, show, create, update and delete users; a user's permissions."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.broker import definitions, definitions_format
from lapine.management.auth import require_admin
from lapine.management.context import broker_of
from lapine.management.http import bad_request, created, listing, no_content, not_found, one, read_json
from lapine.management.permissions import permission_info, topic_permission_info


def user_info(user: Any) -> dict[str, Any]:
    return definitions_format.user_definition(user)


async def list_users(request: web.Request) -> web.Response:
    require_admin(request)
    return listing(request, [user_info(u) for u in broker_of(request).users.users.values()])


async def without_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    broker = broker_of(request)
    users = [u for u in broker.users.users.values() if not broker.permissions.for_user(u.name)]
    return listing(request, [user_info(u) for u in users])


def _name(request: web.Request) -> str:
    require_admin(request)
    name = request.match_info["user"]
    if name not in broker_of(request).users.users:
        raise not_found()
    return name


async def get_user(request: web.Request) -> web.Response:
    return one(request, user_info(broker_of(request).users.users[_name(request)]))


async def put_user(request: web.Request) -> web.Response:
    """Create or update; a user needs "password" or "password_hash" (or neither: no password login)."""
    require_admin(request)
    body = await read_json(request)
    tags = body.get("tags", "")
    if not isinstance(tags, str | list):
        raise bad_request("tags must be a list or a comma-separated string")
    password, password_hash = body.get("password"), body.get("password_hash")
    if password is not None and not isinstance(password, str):
        raise bad_request("password must be a string")
    try:
        was_created = definitions.put_user(
            broker_of(request),
            request.match_info["user"],
            password=password,
            password_hash=password_hash,
            hashing_algorithm=body.get("hashing_algorithm"),
            tags=tags,
        )
    except definitions.DefinitionError as error:
        raise bad_request(error.reason) from None
    return created() if was_created else no_content()


async def delete_user(request: web.Request) -> web.Response:
    definitions.delete_user(broker_of(request), _name(request))
    return no_content()


async def bulk_delete(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    names = body.get("users")
    if not isinstance(names, list):
        raise bad_request("[{key_missing,users}]")
    for name in names:
        definitions.delete_user(broker_of(request), str(name))
    return no_content()


async def user_permissions(request: web.Request) -> web.Response:
    name = _name(request)
    return listing(request, [permission_info(p) for p in broker_of(request).permissions.for_user(name)])


async def user_topic_permissions(request: web.Request) -> web.Response:
    name = _name(request)
    entries = [p for p in broker_of(request).permissions.topic.values() if p.user == name]
    return listing(request, [topic_permission_info(p) for p in entries])


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/users", list_users),
        web.get("/api/users/without-permissions", without_permissions),
        web.post("/api/users/bulk-delete", bulk_delete),
        web.get("/api/users/{user}", get_user),
        web.put("/api/users/{user}", put_user),
        web.delete("/api/users/{user}", delete_user),
        web.get("/api/users/{user}/permissions", user_permissions),
        web.get("/api/users/{user}/topic-permissions", user_topic_permissions),
    ]
