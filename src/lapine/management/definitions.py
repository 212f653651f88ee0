"""/api/definitions: export and import users, vhosts, permissions, queues, exchanges and bindings.

The JSON is RabbitMQ's, so a file exported from one broker imports into the other. It is posted
as application/json (the UI reads the file and posts its JSON): a form upload, as RabbitMQ's UI
sends, is refused, since any web page could send one and create an administrator.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lapine.broker import definitions, definitions_format
from lapine.management.auth import require_admin, vhost_from_path
from lapine.management.context import broker_of
from lapine.management.http import ApiError, bad_request, json_response, no_content


def _download_headers(request: web.Request) -> dict[str, str]:
    filename = request.query.get("download")
    return {"Content-Disposition": f"attachment; filename={filename}"} if filename else {}


async def export_all(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(definitions_format.export_definitions(broker_of(request)), headers=_download_headers(request))


async def export_vhost(request: web.Request) -> web.Response:
    require_admin(request)
    vhost = vhost_from_path(request)
    data = definitions_format.export_definitions(broker_of(request), vhost.name)
    return json_response(data, headers=_download_headers(request))


async def _uploaded(request: web.Request) -> Any:
    """The definitions a request carries as its JSON body."""
    text = await request.text()
    try:
        return json.loads(text)
    except ValueError:
        raise bad_request("failed_to_parse_json") from None


async def import_all(request: web.Request) -> web.Response:
    require_admin(request)
    _apply(request, await _uploaded(request), None)
    return no_content()


async def import_vhost(request: web.Request) -> web.Response:
    require_admin(request)
    vhost = vhost_from_path(request)
    _apply(request, await _uploaded(request), vhost.name)
    return no_content()


def _apply(request: web.Request, data: Any, vhost: str | None) -> None:
    try:
        definitions_format.import_definitions(broker_of(request), data, vhost)
    except definitions.DefinitionError as error:
        if error.kind == "not_found":
            raise ApiError(404, "not_found", error.reason) from None
        raise bad_request(error.reason) from None


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/definitions", export_all),
        web.post("/api/definitions", import_all),
        web.get("/api/definitions/{vhost}", export_vhost),
        web.post("/api/definitions/{vhost}", import_vhost),
    ]
