"""A queue type: what RabbitMQ's rabbit_queue_type behaviour is to its queue modules.

Each type names itself (``x-queue-type`` value and module name, as RabbitMQ's error texts use
it), lists the declare and consume arguments it takes, says which queue properties it allows,
and makes its queues. The vhost asks the type; nothing outside a type's own module tests which
type a queue is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from lapine.amqp.constants import PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError

if TYPE_CHECKING:
    from lapine.broker.ports import QueueHost
    from lapine.broker.queue import Queue



class QueueType(ABC):
    # The x-queue-type value, and the Erlang module RabbitMQ names in its texts.
    name = ""
    module = ""
    # The declare and consume arguments of this type (rabbit_*_queue:capabilities()).
    queue_arguments: frozenset[str] = frozenset()
    consumer_arguments: frozenset[str] = frozenset()
    # The arguments that must match on a redeclare.
    equivalent_arguments: tuple[str, ...] = ()

    def is_compatible(self, durable: bool, exclusive: bool, auto_delete: bool) -> bool:
        """May a queue of this type have these properties? (a vhost default applies only then)"""
        return True

    def check_properties(self, where: str, durable: bool, exclusive: bool, auto_delete: bool) -> None:  # noqa: B027
        """Refuse properties the type cannot have, with RabbitMQ's texts (a classic queue has any)."""

    @abstractmethod
    def create(
        self,
        host: QueueHost,
        name: str,
        *,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> Queue:
        """A new queue of this type (its arguments already checked)."""

    def __repr__(self) -> str:
        return f"<QueueType {self.name}>"


class ReplicatedQueueType(QueueType):
    """Quorum queues and streams: durable, never exclusive, never auto-delete."""

    def is_compatible(self, durable: bool, exclusive: bool, auto_delete: bool) -> bool:
        return durable and not exclusive and not auto_delete

    def check_properties(self, where: str, durable: bool, exclusive: bool, auto_delete: bool) -> None:
        # In rabbit_queue_type_util's order: auto-delete, exclusive, then durable.
        refusals = ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"), (not durable, "non-durable"))
        for refused, what in refusals:
            if refused:
                raise ChannelError(PRECONDITION_FAILED, f"invalid property '{what}' for {where}")
