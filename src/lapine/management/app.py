"""The management application: the HTTP API's routes, authentication, and the UI's files."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from lapine.broker.broker import Broker
from lapine.management import (
    bindings,
    channels,
    connections,
    consumers,
    definitions,
    exchanges,
    health,
    nodes,
    overview,
    permissions,
    policies,
    queues,
    static,
    users,
    vhost_limits,
    vhosts,
)
from lapine.management.auth import THROTTLE, authenticate
from lapine.management.connection_gate import GATE, ConnectionGate, track_requests
from lapine.management.context import BROKER, NODE, SAMPLER, Node
from lapine.management.durable_answers import answer_when_durable
from lapine.management.http import not_found
from lapine.management.login_throttle import LoginThrottle
from lapine.management.rates import Sampler
from lapine.management.request_guard import AllowedHosts, request_guard
from lapine.management.security_headers import add_security_headers

RESOURCES = (
    overview,
    nodes,
    connections,
    channels,
    consumers,
    exchanges,
    queues,
    bindings,
    vhosts,
    vhost_limits,
    users,
    permissions,
    policies,
    definitions,
    health,
)


@web.middleware
async def unknown_api_path(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404/405 pages become RabbitMQ's JSON answers under /api/."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith("/api/"):
            return not_found().response()
        raise
    except web.HTTPMethodNotAllowed as error:
        if request.path.startswith("/api/"):
            return web.json_response(
                {"error": "Method Not Allowed", "reason": "Method Not Allowed"},
                status=405,
                headers={"Allow": ", ".join(sorted(error.allowed_methods))},
            )
        raise


def create_app(broker: Broker, sampler: Sampler, node: Node) -> web.Application:
    config = broker.config
    guard = request_guard(AllowedHosts(config.host, config.management_allowed_hosts))
    middlewares: list[Middleware] = [track_requests, guard, unknown_api_path, authenticate, answer_when_durable]
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024 * 1024)
    app.on_response_prepare.append(add_security_headers)
    app[GATE] = ConnectionGate(config.http_request_timeout, config.http_max_unauthenticated)
    app[THROTTLE] = LoginThrottle(config.login_failure_delay)
    app[BROKER] = broker
    app[SAMPLER] = sampler
    app[NODE] = node
    for resource in RESOURCES:
        app.add_routes(resource.routes())
    app.add_routes(static.routes())
    return app
