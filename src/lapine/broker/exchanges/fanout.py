"""The fanout exchange: a message goes to every bound destination, whatever its routing key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from lapine.broker.exchanges.base import ArgumentsKey, CountedDestinations, Router


class FanoutRouter(Router):
    type_name = "fanout"

    __slots__ = ("_destinations",)

    def __init__(self) -> None:
        super().__init__()
        # Bindings with different keys or arguments to one destination still deliver one copy.
        self._destinations = CountedDestinations()

    def _added(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        self._destinations.add(destination)

    def _removed(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        self._destinations.remove(destination)

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple[Hashable, ...]:
        return self._destinations.members
