"""The Prometheus endpoint: /metrics (node totals) and /metrics/per-object, no authentication,
as rabbitmq_prometheus serves them.

Rendering walks every queue, channel and connection on the event loop, so an answer is kept for
``prometheus_cache_ttl`` seconds and given to every scraper asking meanwhile: scrapers, however
many and however often they ask, cost one rendering per interval (RabbitMQ's metrics, too, are
refreshed every 5 s). The per-object text is built in slices (per_object.py), so that even that
one rendering leaves room for AMQP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from lapine.broker.broker import Broker
from lapine.management.connection_gate import GATE, ConnectionGate, track_requests
from lapine.prometheus import metrics
from lapine.prometheus.exposition import render
from lapine.prometheus.per_object import render_per_object

CONTENT_TYPE = "text/plain; version=0.0.4"
# rabbitmq_identity_info's rabbitmq_endpoint for each path, as RabbitMQ labels them.
ENDPOINTS = {"/metrics": "aggregated", "/metrics/per-object": "per-object"}


class RenderedMetrics:
    """The text of each endpoint, rendered at most once per ``ttl`` seconds; scrapes that arrive
    while one is being rendered wait for it rather than render again."""

    def __init__(self, broker: Broker, ttl: float) -> None:
        self.broker = broker
        self.ttl = ttl
        self.started_at = time.time()
        self.renders = 0
        self._kept: dict[str, tuple[float, str]] = {}
        self._rendering: dict[str, asyncio.Future[str]] = {}

    async def text(self, path: str, objects: Callable[[Broker], Awaitable[str]]) -> str:
        kept = self._kept.get(path)
        if kept is not None and time.monotonic() - kept[0] < self.ttl:
            return kept[1]
        rendering = self._rendering.get(path)
        if rendering is None:
            rendering = asyncio.ensure_future(self._render(path, objects))
            self._rendering[path] = rendering
            rendering.add_done_callback(lambda _done: self._rendering.pop(path, None))
        # Shielded: a scraper that hangs up does not cancel the rendering the others wait for.
        return await asyncio.shield(rendering)

    async def _render(self, path: str, objects: Callable[[Broker], Awaitable[str]]) -> str:
        broker = self.broker
        endpoint = ENDPOINTS[path]
        head = render([*metrics.node_families(broker, self.started_at, endpoint), *metrics.global_families(broker)])
        text = head + await objects(broker)
        self.renders += 1
        self._kept[path] = (time.monotonic(), text)
        return text


async def _aggregated_text(broker: Broker) -> str:
    return render(metrics.aggregated_families(broker))


RENDERED = web.AppKey("rendered", RenderedMetrics)


def _response(text: str) -> web.Response:
    response = web.Response(text=text)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def aggregated(request: web.Request) -> web.Response:
    return _response(await request.app[RENDERED].text("/metrics", _aggregated_text))


async def per_object(request: web.Request) -> web.Response:
    return _response(await request.app[RENDERED].text("/metrics/per-object", render_per_object))


def create_prometheus_app(broker: Broker) -> web.Application:
    config = broker.config
    app = web.Application(middlewares=[track_requests])
    # No login here: every socket counts against the cap on sockets before login.
    app[GATE] = ConnectionGate(config.http_request_timeout, config.http_max_unauthenticated)
    app[RENDERED] = RenderedMetrics(broker, config.prometheus_cache_ttl)
    app.add_routes([web.get("/metrics", aggregated), web.get("/metrics/per-object", per_object)])
    return app
