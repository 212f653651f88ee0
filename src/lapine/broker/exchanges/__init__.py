"""Exchange types, one module each, behind the small ``Router`` interface of ``base``.

The broker asks ``router_for(type_name)`` for the class of a declared exchange's type; an unknown
type gives None (RabbitMQ answers that with 503 COMMAND_INVALID "unknown exchange type").
"""

from __future__ import annotations

from lapine.broker.exchanges import delayed
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


# Every type an exchange can be declared with: the routers', and x-delayed-message, which routes
# with the router of the type its x-delayed-type argument names.
EXCHANGE_TYPES: tuple[str, ...] = (*ROUTER_TYPES, delayed.TYPE_NAME)


def router_for(type_name: str) -> type[Router] | None:
    return ROUTER_TYPES.get(type_name)


def is_exchange_type(type_name: str) -> bool:
    return type_name in ROUTER_TYPES or type_name == delayed.TYPE_NAME


__all__ = [
    "EXCHANGE_TYPES",
    "ROUTER_TYPES",
    "DirectRouter",
    "FanoutRouter",
    "HeadersRouter",
    "Router",
    "TopicRouter",
    "is_exchange_type",
    "router_for",
]
