"""An exchange: its declared attributes and the router of its type that holds its bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lapine.broker.exchanges import delayed, router_for
from lapine.broker.policies import Policy, effective
from lapine.broker.stats import MessageStats

if TYPE_CHECKING:
    from lapine.broker.vhost import VirtualHost


class Exchange:
    def __init__(
        self,
        vhost: VirtualHost,
        name: str,
        type_name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        # An x-delayed-message exchange routes with the router of its x-delayed-type.
        self.delayed_type = delayed.routing_type(type_name, arguments or {})
        router_type = router_for(self.delayed_type or type_name)
        if router_type is None:
            raise ValueError(type_name)
        self.vhost = vhost
        self.name = name
        self.type = type_name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = arguments or {}
        self.router = router_type()
        self.alternate_exchange: str | None = None
        self.policy: Policy | None = None
        self.is_default = name == ""
        self.apply_settings()
        self.deleted = False
        self.stats = MessageStats()
        # Exchanges that route into this one (exchange-to-exchange bindings), for clean deletion.
        self.bound_from: set[Exchange] = set()

    def __repr__(self) -> str:
        return f"<Exchange {self.name!r} ({self.type}) in vhost {self.vhost.name!r}>"

    def apply_settings(self, policy: Policy | None = None) -> None:
        """(Re)read the alternate exchange from the arguments, or else from the policy."""
        self.policy = policy
        alternate = effective(self.arguments, policy, "exchange").get("alternate-exchange")
        if isinstance(alternate, bytes):
            alternate = alternate.decode("utf-8", "surrogateescape")
        self.alternate_exchange = alternate if isinstance(alternate, str) else None

