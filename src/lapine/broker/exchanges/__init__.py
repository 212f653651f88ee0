"""Exchange types, one module each, behind the small ``Router`` interface of ``base``.

The broker asks ``router_for(type_name)`` for the class of a declared exchange's type; an unknown
type gives None (RabbitMQ answers that with 503 COMMAND_INVALID "unknown exchange type").
"""

from __future__ import annotations

from lapine.broker.exchanges.base import Router
from lapine.broker.exchanges.direct import DirectRouter
from lapine.broker.exchanges.fanout import FanoutRouter
from lapine.broker.exchanges.headers import HeadersRouter
from lapine.broker.exchanges.topic import TopicRouter

ROUTER_TYPES: dict[str, type[Router]] = {
    "direct": DirectRouter,
    "fanout": FanoutRouter,
    "topic": TopicRouter,
    "headers": HeadersRouter,
}


def router_for(type_name: str) -> type[Router] | None:
    return ROUTER_TYPES.get(type_name)


__all__ = [
    "ROUTER_TYPES",
    "DirectRouter",
    "FanoutRouter",
    "HeadersRouter",
    "Router",
    "TopicRouter",
    "router_for",
]
