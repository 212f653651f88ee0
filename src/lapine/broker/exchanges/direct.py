"""The direct exchange: a message goes to the bindings whose key equals its routing key exactly."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from lapine.broker.exchanges.base import EMPTY, ArgumentsKey, CountedDestinations, Router


class DirectRouter(Router):
    type_name = "direct"

    __slots__ = ("_by_key", "_routes")

    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[str, CountedDestinations] = {}
        # The hot path (the default exchange routes every queue-named publish through here):
        # one dict lookup returning a tuple built when the bindings changed.
        self._routes: dict[str, tuple[Hashable, ...]] = {}

    def _added(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        counted = self._by_key.get(routing_key)
        if counted is None:
            counted = self._by_key[routing_key] = CountedDestinations()
        counted.add(destination)
        self._routes[routing_key] = counted.members

    def _removed(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        counted = self._by_key[routing_key]
        counted.remove(destination)
        if counted:
            self._routes[routing_key] = counted.members
        else:
            del self._by_key[routing_key]
            del self._routes[routing_key]

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple[Hashable, ...]:
        return self._routes.get(routing_key, EMPTY)
