"""The Prometheus endpoint: /metrics (node totals) and /metrics/per-object, no authentication,
as rabbitmq_prometheus serves them.

Rendering walks every queue, channel and connection on the event loop, so an answer is kept for
``prometheus_cache_ttl`` seconds and given to every scraper asking meanwhile: scrapers, however
many and however often they ask, cost one rendering per interval (RabbitMQ's metrics, too, are
refreshed every 5 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from lapine.broker.broker import Broker
from lapine.management.connection_gate import GATE, ConnectionGate, track_requests
from lapine.prometheus import metrics
from lapine.prometheus.exposition import Family, render

CONTENT_TYPE = "text/plain; version=0.0.4"


class RenderedMetrics:
    """The text of each endpoint, rendered at most once per ``ttl`` seconds."""

    def __init__(self, broker: Broker, ttl: float) -> None:
        self.broker = broker
        self.ttl = ttl
        self.started_at = time.time()
        self.renders = 0
        self._kept: dict[str, tuple[float, str]] = {}

    def text(self, path: str, families: Callable[[Broker], list[Family]]) -> str:
        now = time.monotonic()
        kept = self._kept.get(path)
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1]
        broker = self.broker
        text = render(
            [*metrics.node_families(broker, self.started_at), *metrics.global_families(broker), *families(broker)]
        )
        self.renders += 1
        self._kept[path] = (now, text)
        return text


RENDERED = web.AppKey("rendered", RenderedMetrics)


def _response(text: str) -> web.Response:
    response = web.Response(text=text)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def aggregated(request: web.Request) -> web.Response:
    return _response(request.app[RENDERED].text("/metrics", metrics.aggregated_families))


async def per_object(request: web.Request) -> web.Response:
    return _response(request.app[RENDERED].text("/metrics/per-object", metrics.per_object_families))


def create_prometheus_app(broker: Broker) -> web.Application:
    config = broker.config
    app = web.Application(middlewares=[track_requests])
    # No login here: every socket counts against the cap on sockets before login.
    app[GATE] = ConnectionGate(config.http_request_timeout, config.http_max_unauthenticated)
    app[RENDERED] = RenderedMetrics(broker, config.prometheus_cache_ttl)
    app.add_routes([web.get("/metrics", aggregated), web.get("/metrics/per-object", per_object)])
    return app
