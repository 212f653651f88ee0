"""The Prometheus endpoint: /metrics (node totals) and /metrics/per-object, no authentication,
as rabbitmq_prometheus serves them."""

from __future__ import annotations

import time

from aiohttp import web

from lapine.broker.broker import Broker
from lapine.prometheus import metrics
from lapine.prometheus.exposition import render

BROKER = web.AppKey("broker", Broker)
STARTED = web.AppKey("started_at", float)
CONTENT_TYPE = "text/plain; version=0.0.4"


def _response(text: str) -> web.Response:
    response = web.Response(text=text)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def aggregated(request: web.Request) -> web.Response:
    broker = request.app[BROKER]
    families = [
        *metrics.node_families(broker, request.app[STARTED]),
        *metrics.global_families(broker),
        *metrics.aggregated_families(broker),
    ]
    return _response(render(families))


async def per_object(request: web.Request) -> web.Response:
    broker = request.app[BROKER]
    families = [
        *metrics.node_families(broker, request.app[STARTED]),
        *metrics.global_families(broker),
        *metrics.per_object_families(broker),
    ]
    return _response(render(families))


def create_prometheus_app(broker: Broker) -> web.Application:
    app = web.Application()
    app[BROKER] = broker
    app[STARTED] = time.time()
    app.add_routes([web.get("/metrics", aggregated), web.get("/metrics/per-object", per_object)])
    return app
