"""/api/bindings: exchange-to-queue and exchange-to-exchange bindings, each named by its "props".

A binding's properties_key names it in a URL: the routing key, and when there are arguments
"~" and a short hash of them, as RabbitMQ does ("rk", "rk~Ajat_Q", "~" for an empty key).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from lapine.amqp.errors import AMQPError
from lapine.broker.definitions_format import bindings_of
from lapine.broker.exchange import Exchange
from lapine.broker.queue import Queue
from lapine.broker.vhost import VirtualHost
from lapine.management.auth import act_in, check, scoped_vhosts, vhost_from_path
from lapine.management.http import (
    ApiError,
    bad_request,
    from_amqp,
    listing,
    no_content,
    not_found,
    one,
    read_json,
)

KINDS = {"q": "queue", "e": "exchange"}


def properties_key(routing_key: str, arguments: Mapping[str, Any]) -> str:
    # Erlang's quote_plus leaves these as they are: "orders.*" stays, "a.#" becomes "a.%23".
    key = quote(routing_key, safe="!*'()")
    if not arguments:
        return key or "~"
    canonical = json.dumps(arguments, sort_keys=True, default=str).encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()[:4]).decode().rstrip("=")
    return f"{key}~{digest}"


def binding_info(binding: dict[str, Any]) -> dict[str, Any]:
    return {**binding, "properties_key": properties_key(binding["routing_key"], binding["arguments"])}


def all_bindings(vhost: VirtualHost) -> list[dict[str, Any]]:
    return [binding_info(b) for b in bindings_of(vhost)]


async def list_bindings(request: web.Request) -> web.Response:
    return listing(request, [b for v in scoped_vhosts(request) for b in all_bindings(v)])


def _ends(request: web.Request) -> tuple[VirtualHost, Exchange, Queue | Exchange]:
    """The vhost, source exchange and destination a binding path names (404 when missing)."""
    vhost = vhost_from_path(request)
    source_name = request.match_info["source"]
    source = vhost.exchanges.get("" if source_name == "amq.default" else source_name)
    kind = KINDS[request.match_info["kind"]]
    destination_name = request.match_info["destination"]
    destination: Queue | Exchange | None = (
        vhost.queues.get(destination_name) if kind == "queue" else vhost.exchanges.get(destination_name)
    )
    if source is None:
        raise ApiError(404, "not_found", f"no exchange '{source_name}' in vhost '{vhost.name}'")
    if destination is None:
        raise ApiError(404, "not_found", f"no {kind} '{destination_name}' in vhost '{vhost.name}'")
    return vhost, source, destination


def _between(vhost: VirtualHost, source: Exchange, destination: Queue | Exchange) -> list[dict[str, Any]]:
    kind = "exchange" if isinstance(destination, Exchange) else "queue"
    return [
        b
        for b in all_bindings(vhost)
        if b["source"] == source.name and b["destination"] == destination.name and b["destination_type"] == kind
    ]


async def get_between(request: web.Request) -> web.Response:
    vhost, source, destination = _ends(request)
    return listing(request, _between(vhost, source, destination))


async def post_binding(request: web.Request) -> web.Response:
    vhost, source, destination = _ends(request)
    body = await read_json(request)
    routing_key = body.get("routing_key", "")
    arguments = body.get("arguments") or {}
    if not isinstance(routing_key, str) or not isinstance(arguments, dict):
        raise bad_request("routing_key must be a string and arguments an object")
    act_in(request, vhost)
    kind = "exchange" if isinstance(destination, Exchange) else "queue"
    try:
        check(request, vhost, "write", kind, destination.name)
        check(request, vhost, "read", "exchange", source.name)
        vhost.bind(source, destination, routing_key, arguments)
    except AMQPError as error:
        raise from_amqp(error) from None
    location = f"{quote(destination.name, safe='')}/{properties_key(routing_key, arguments)}"
    return web.Response(status=201, headers={"Location": location})


def _find(request: web.Request) -> tuple[VirtualHost, Exchange, Queue | Exchange, dict[str, Any]]:
    vhost, source, destination = _ends(request)
    props = request.match_info["props"]
    for binding in _between(vhost, source, destination):
        key = binding["properties_key"]
        # aiohttp hands the segment over decoded; clients may or may not have encoded it.
        if props in (key, unquote(key)):
            return vhost, source, destination, binding
    raise not_found()


async def get_binding(request: web.Request) -> web.Response:
    return one(request, _find(request)[3])


async def delete_binding(request: web.Request) -> web.Response:
    vhost, source, destination, binding = _find(request)
    act_in(request, vhost)
    kind = binding["destination_type"]
    try:
        check(request, vhost, "write", kind, destination.name)
        check(request, vhost, "read", "exchange", source.name)
        vhost.unbind(source, destination, binding["routing_key"], binding["arguments"])
    except AMQPError as error:
        raise from_amqp(error) from None
    return no_content()


def routes() -> list[web.RouteDef]:
    base = "/api/bindings/{vhost}/e/{source}/{kind:[qe]}/{destination}"
    return [
        web.get("/api/bindings", list_bindings),
        web.get("/api/bindings/{vhost}", list_bindings),
        web.get(base, get_between),
        web.post(base, post_binding),
        web.get(base + "/{props}", get_binding),
        web.delete(base + "/{props}", delete_binding),
    ]
