"""A virtual host: its exchanges and queues, and the operations on them that RabbitMQ defines.

The operations check what RabbitMQ checks and raise ChannelError/ConnectionError with RabbitMQ's
reply codes and texts; the channel only translates methods into these calls.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lapine.amqp.constants import (
    ACCESS_REFUSED,
    COMMAND_INVALID,
    INTERNAL_ERROR,
    NOT_FOUND,
    PRECONDITION_FAILED,
    RESOURCE_LOCKED,
)
from lapine.amqp.errors import ChannelError, ConnectionError
from lapine.broker import arguments as args
from lapine.broker import dead_letter, names
from lapine.broker.churn import Churn
from lapine.broker.exchange import Exchange
from lapine.broker.exchanges import delayed as delayed_type
from lapine.broker.exchanges import is_exchange_type, router_for
from lapine.broker.flow import is_behind
from lapine.broker.message import Message
from lapine.broker.policies import Policies, Policy
from lapine.broker.queue import Queue
from lapine.broker.queue_types import CLASSIC, QUEUE_TYPES, QueueType, requested_type_name
from lapine.broker.queue_types.declare_arguments import declare_problem, queue_type_problem
from lapine.broker.stats import MessageStats
from lapine.store import StoreError

if TYPE_CHECKING:
    from lapine.broker.connection import Connection
    from lapine.broker.delayed import DelayedMessages
    from lapine.broker.direct_reply_to import ReplyConsumer
    from lapine.broker.flow import Publisher
    from lapine.broker.persistence import Persistence
    from lapine.broker.queue import QueuedMessage
    from lapine.broker.scheduler import Scheduler


STANDARD_EXCHANGES = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
)


@dataclasses.dataclass
class VhostMetadata:
    """What RabbitMQ keeps about a vhost beyond its contents (shown by the API, exported, stored)."""

    description: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    default_queue_type: str = "undefined"


class VirtualHost:
    """Also the host of its queues (broker/ports.py's QueueHost): their clock, their dead-letter
    routing, and their removal once unused."""

    def __init__(self, name: str, scheduler: Scheduler) -> None:
        self.name = name
        self.scheduler = scheduler
        self.metadata = VhostMetadata()
        self.stats = MessageStats()
        # The broker's, once the vhost is one of its own; dead_lettered is (queue type module, reason,
        # strategy) -> messages.
        self.churn = Churn()
        self.dead_lettered: Counter[tuple[str, str, str]] = Counter()
        self.policies = Policies()
        # RabbitMQ's vhost limits: "max-connections", "max-queues" (negative: none; 0: nothing allowed).
        self.limits: dict[str, int] = {}
        # Set by the broker once a store is attached; every hook below is skipped without one.
        self.persistence: Persistence | None = None
        # The broker's delayed messages, once the vhost is one of its own (x-delayed-message).
        self.delayed: DelayedMessages | None = None
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        # The connection that owns each exclusive queue: the queue goes when it closes.
        self._owners: dict[Queue, Connection] = {}
        # Direct reply-to consumers by the reply_to name they were given: a reply reaches one only
        # when published in this vhost, as in RabbitMQ.
        self.reply_consumers: dict[str, ReplyConsumer] = {}
        self.default_exchange = Exchange(self, "", "direct", durable=True)
        self.exchanges[""] = self.default_exchange
        for ex_name, ex_type in STANDARD_EXCHANGES:
            self.exchanges[ex_name] = Exchange(self, ex_name, ex_type, durable=True)

    def __repr__(self) -> str:
        return f"<VirtualHost {self.name!r}>"

    # --- lookups with RabbitMQ's errors ------------------------------------------------------

    def exchange(self, name: str) -> Exchange:
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise ChannelError(NOT_FOUND, f"no exchange '{name}' in vhost '{self.name}'")
        return exchange

    def queue(self, name: str, connection: Connection | None = None) -> Queue:
        """The named queue; with a connection, also check that it may use an exclusive one."""
        queue = self.queues.get(name)
        if queue is None:
            raise ChannelError(NOT_FOUND, f"no queue '{name}' in vhost '{self.name}'")
        if connection is not None:
            self.check_exclusive(queue, connection)
        return queue

    def owner_of(self, queue: Queue) -> Connection | None:
        """The connection an exclusive queue belongs to."""
        return self._owners.get(queue) if queue.exclusive else None

    def check_exclusive(self, queue: Queue, connection: Connection | None) -> None:
        if queue.exclusive and self._owners.get(queue) is not connection:
            raise ChannelError(RESOURCE_LOCKED, self._locked_text(queue))

    def _locked_text(self, queue: Queue) -> str:
        return (
            f"cannot obtain exclusive access to locked queue '{queue.name}' in vhost '{self.name}'. "
            "It could be originally declared on another connection or the exclusive property "
            "value does not match that of the original declaration."
        )

    # --- exchanges ---------------------------------------------------------------------------

    def declare_exchange(
        self,
        name: str,
        type_name: str,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> Exchange:
        if not name:
            raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        if passive:
            return self.exchange(name)
        _check_name_fits("exchange name", name)
        if name.startswith("amq."):
            existing = self.exchanges.get(name)
            if existing is None:
                raise ChannelError(ACCESS_REFUSED, f"exchange name '{name}' contains reserved prefix 'amq.*'")
        if not is_exchange_type(type_name):
            raise ConnectionError(COMMAND_INVALID, f"unknown exchange type '{type_name}'")
        arguments = dict(arguments or {})
        existing = self.exchanges.get(name)
        if existing is not None:
            self._check_exchange_equivalence(existing, type_name, durable, auto_delete, internal, arguments)
            return existing
        if type_name == delayed_type.TYPE_NAME:
            # As the plugin: checked when the exchange is made, its type as a declare's would be.
            routing = delayed_type.declared_routing_type(arguments)
            if router_for(routing) is None:
                raise ConnectionError(COMMAND_INVALID, f"unknown exchange type '{routing}'")
        exchange = Exchange(
            self,
            name,
            type_name,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments,
        )
        self.exchanges[name] = exchange
        if not name.startswith("amq."):
            exchange.apply_settings(self.policies.for_object(name, "exchange"))
        if self.persistence is not None:
            self.persistence.exchange_declared(exchange)
        return exchange

    def restore_exchange(
        self, name: str, type_name: str, auto_delete: bool, internal: bool, arguments: Mapping[str, Any]
    ) -> Exchange:
        """A durable exchange read back from the store at start (nothing is written)."""
        exchange = Exchange(
            self, name, type_name, durable=True, auto_delete=auto_delete, internal=internal, arguments=dict(arguments)
        )
        self.exchanges[name] = exchange
        exchange.apply_settings(self.policies.for_object(name, "exchange"))
        return exchange

    def _check_exchange_equivalence(
        self,
        existing: Exchange,
        type_name: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Mapping[str, Any],
    ) -> None:
        where = f"for exchange '{existing.name}' in vhost '{self.name}'"
        if existing.type != type_name:
            raise ChannelError(
                PRECONDITION_FAILED,
                f"inequivalent arg 'type' {where}: received '{type_name}' but current is '{existing.type}'",
            )
        flags = [
            ("durable", durable, existing.durable),
            ("auto_delete", auto_delete, existing.auto_delete),
            ("internal", internal, existing.internal),
        ]
        _check_equivalent(where, flags, args.EXCHANGE_EQUIVALENT_ARGS, arguments, existing.arguments)

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        exchange = self.exchanges.get(name)
        if exchange is None:
            # RabbitMQ answers delete-ok for an exchange that does not exist.
            return
        if if_unused and len(exchange.router):
            raise ChannelError(PRECONDITION_FAILED, f"exchange '{name}' in vhost '{self.name}' in use")
        self._remove_exchange(exchange)

    def _remove_exchange(self, exchange: Exchange) -> None:
        exchange.deleted = True
        self.exchanges.pop(exchange.name, None)
        if exchange.delayed_type is not None and self.delayed is not None:
            self.delayed.exchange_deleted(exchange)
        if self.persistence is not None:
            # The store drops the bindings from and to it with it.
            self.persistence.exchange_deleted(exchange)
        for source in list(exchange.bound_from):
            self._unbind_everything(source, exchange)
        for destination, _key, _arguments in list(exchange.router.bindings()):
            if isinstance(destination, Exchange):
                destination.bound_from.discard(exchange)

    def _unbind_everything(self, source: Exchange, destination: Queue | Exchange) -> None:
        source.router.unbind_destination(destination)
        if isinstance(destination, Exchange):
            destination.bound_from.discard(source)
        self._auto_delete_if_unbound(source)

    def _auto_delete_if_unbound(self, exchange: Exchange) -> None:
        if exchange.auto_delete and not exchange.deleted and not len(exchange.router):
            self._remove_exchange(exchange)

    # --- queues ------------------------------------------------------------------------------

    def declare_queue(
        self,
        name: str,
        connection: Connection | None,
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> Queue:
        if passive:
            queue = self.queue(name, connection)
            queue.touch()  # a declare is a use: x-expires counts again from now, as in RabbitMQ
            return queue
        _check_name_fits("queue name", name)
        self.churn.queue_declared += 1
        arguments = dict(arguments or {})
        queue_type = self._queue_type(name, arguments, durable=durable, exclusive=exclusive, auto_delete=auto_delete)
        existing = self.queues.get(name)
        if existing is not None:
            self.check_exclusive(existing, connection)
            self._check_queue_equivalence(existing, queue_type, durable, exclusive, auto_delete, arguments)
            existing.touch()
            return existing
        queue_type.check_properties(f"queue '{name}' in vhost '{self.name}'", durable, exclusive, auto_delete)
        if queue_type is not CLASSIC and "x-queue-type" not in arguments:
            # A type that came from the vhost's default is kept with the queue, as RabbitMQ does, so
            # that it is the same after a restart or an export.
            arguments["x-queue-type"] = queue_type.name
        limit = self.limits.get("max-queues", -1)
        if 0 <= limit <= len(self.queues):
            raise ChannelError(
                PRECONDITION_FAILED,
                f"cannot declare queue '{name}': queue limit in vhost '{self.name}' ({limit}) is reached",
            )
        queue = queue_type.create(
            self,
            name,
            # An exclusive queue dies with its connection: RabbitMQ never makes it durable.
            durable=durable and not exclusive,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
        )
        self.queues[name] = queue
        self.churn.queue_created += 1
        policy = self.policies.for_object(name, "queue", queue.type_name)
        if policy is not None:
            queue.apply_settings(policy)
        if self.persistence is not None:
            try:
                self.persistence.queue_declared(queue)
            except StoreError as exc:
                # Not declared: nothing of it may stay behind, in memory or in the store.
                del self.queues[name]
                queue.deleted = True
                queue.touch()
                raise ConnectionError(
                    INTERNAL_ERROR, f"cannot declare queue '{name}' in vhost '{self.name}': {exc}"
                ) from exc
        if exclusive:
            if connection is None:
                raise ValueError("an exclusive queue needs the connection that owns it")
            self._owners[queue] = connection
            connection.exclusive_queues.add(queue)
        return queue

    def _queue_type(
        self, name: str, arguments: Mapping[str, Any], *, durable: bool, exclusive: bool, auto_delete: bool
    ) -> QueueType:
        """The declare's queue type, its arguments checked for it as RabbitMQ 4.x checks them."""
        where = f"for queue '{name}' in vhost '{self.name}'"
        problem = queue_type_problem(arguments, where)
        if problem is not None:
            raise ChannelError(PRECONDITION_FAILED, problem)
        type_name = requested_type_name(
            arguments, self.metadata.default_queue_type, durable=durable, exclusive=exclusive, auto_delete=auto_delete
        )
        queue_type = QUEUE_TYPES.get(type_name)
        if queue_type is None:
            raise ChannelError(
                PRECONDITION_FAILED,
                f"invalid arg 'x-queue-type' {where}: queue type '{type_name}' is not supported by Lapine",
            )
        problem = declare_problem(arguments, where, queue_type.module, queue_type.queue_arguments)
        if problem is not None:
            raise ChannelError(PRECONDITION_FAILED, problem)
        return queue_type

    def queue_type_of(self, queue: Queue) -> QueueType:
        return QUEUE_TYPES[queue.type_name]

    def restore_queue(self, name: str, auto_delete: bool, arguments: Mapping[str, Any]) -> Queue:
        """A durable queue read back from the store at start (nothing is written)."""
        type_name = requested_type_name(arguments, "", durable=True, exclusive=False, auto_delete=auto_delete)
        queue_type = QUEUE_TYPES.get(type_name)
        if queue_type is None:
            raise ValueError(f"queue '{name}' in vhost '{self.name}' is of type '{type_name}', which is not offered")
        queue = queue_type.create(
            self, name, durable=True, exclusive=False, auto_delete=auto_delete, arguments=dict(arguments)
        )
        self.queues[name] = queue
        policy = self.policies.for_object(name, "queue", queue.type_name)
        if policy is not None:
            queue.apply_settings(policy)
        return queue

    def _check_queue_equivalence(
        self,
        existing: Queue,
        queue_type: QueueType,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: Mapping[str, Any],
    ) -> None:
        where = f"for queue '{existing.name}' in vhost '{self.name}'"
        if exclusive != existing.exclusive:
            raise ChannelError(RESOURCE_LOCKED, self._locked_text(existing))
        if queue_type.name != existing.type_name:
            # As RabbitMQ 4.x, which records every queue's type among its arguments.
            raise ChannelError(
                PRECONDITION_FAILED,
                args.inequivalent_text("x-queue-type", where, queue_type.name, existing.type_name),
            )
        checks = [("auto_delete", auto_delete, existing.auto_delete)]
        if not exclusive:
            # Exclusive queues live and die with their connection; RabbitMQ ignores 'durable' for them.
            checks.insert(0, ("durable", durable, existing.durable))
        keys = self.queue_type_of(existing).equivalent_arguments
        _check_equivalent(where, checks, keys, arguments, existing.arguments)

    def delete_queue(self, queue: Queue, *, if_unused: bool = False, if_empty: bool = False) -> int:
        queue.check_delete(if_unused=if_unused, if_empty=if_empty)
        count = queue.message_count
        queue.deleted = True
        if self.queues.pop(queue.name, None) is queue:
            self.churn.queue_deleted += 1
        for exchange in list(self.exchanges.values()):
            if exchange.router.is_bound_to(queue):
                self._unbind_everything(exchange, queue)
        for consumer in list(queue.consumers):
            consumer.queue_deleted()
        queue.consumers.clear()
        queue.purge()
        if self.persistence is not None:
            self.persistence.queue_deleted(queue)
        owner = self._owners.pop(queue, None)
        if owner is not None:
            owner.exclusive_queues.discard(queue)
        return count

    def queue_unused(self, queue: Queue) -> None:
        """Its last consumer went (auto-delete) or x-expires ran out."""
        self.delete_queue(queue)

    def dead_letter(self, queue: Queue, entries: list[QueuedMessage], reason: str) -> None:
        dead_letter.dead_letter(self, queue, entries, reason)

    def dead_letter_at_least_once(self, queue: Queue, entry: QueuedMessage, reason: str, settled: set[str]) -> bool:
        return dead_letter.forward_at_least_once(self, queue, entry, reason, settled)

    # --- policies ----------------------------------------------------------------------------

    def set_policy(self, policy: Policy) -> None:
        self.policies.set(policy)
        if self.persistence is not None:
            self.persistence.policy_set(policy)
        self.reapply_policies()

    def clear_policy(self, name: str) -> bool:
        cleared = self.policies.clear(name)
        if cleared:
            if self.persistence is not None:
                self.persistence.policy_cleared(self.name, name)
            self.reapply_policies()
        return cleared

    def reapply_policies(self) -> None:
        """A policy changed: every queue and exchange looks up the one that now applies."""
        for queue in list(self.queues.values()):
            queue.apply_settings(self.policies.for_object(queue.name, "queue", queue.type_name))
        for exchange in self.exchanges.values():
            if exchange.name and not exchange.name.startswith("amq."):
                exchange.apply_settings(self.policies.for_object(exchange.name, "exchange"))

    # --- bindings ----------------------------------------------------------------------------

    def bind(
        self, source: Exchange, destination: Queue | Exchange, routing_key: str, arguments: Mapping[str, Any]
    ) -> None:
        self._check_not_default(source, destination)
        _check_name_fits("routing_key", routing_key)
        problem = source.router.validate_binding_arguments(arguments)
        if problem is not None:
            raise ChannelError(PRECONDITION_FAILED, problem)
        if self.restore_binding(source, destination, routing_key, arguments) and self.persistence is not None:
            self.persistence.bound(source, destination, routing_key, arguments)

    def restore_binding(
        self, source: Exchange, destination: Queue | Exchange, routing_key: str, arguments: Mapping[str, Any]
    ) -> bool:
        """Add a binding to the model only; True when it is new."""
        added = source.router.bind(destination, routing_key, arguments)
        if isinstance(destination, Exchange):
            destination.bound_from.add(source)
        return added

    def unbind(
        self, source: Exchange, destination: Queue | Exchange, routing_key: str, arguments: Mapping[str, Any]
    ) -> None:
        self._check_not_default(source, destination)
        if source.router.unbind(destination, routing_key, arguments) and self.persistence is not None:
            self.persistence.unbound(source, destination, routing_key, arguments)
        if isinstance(destination, Exchange) and not source.router.is_bound_to(destination):
            destination.bound_from.discard(source)
        self._auto_delete_if_unbound(source)

    def _check_not_default(self, source: Exchange, destination: Queue | Exchange) -> None:
        if source.is_default or (isinstance(destination, Exchange) and destination.is_default):
            raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")

    # --- routing -----------------------------------------------------------------------------

    def publish(self, exchange: Exchange, message: Message, publisher: Publisher | None = None) -> tuple[bool, bool]:
        """Route a message and enqueue it in every queue it reaches, counting as RabbitMQ does.

        Returns (routed, accepted): accepted is False when a queue refused it (overflow
        reject-publish), which its publisher hears as a nack. The ``publisher`` is charged
        credit for every queue that is behind (broker/flow.py).
        """
        if exchange.is_default and message.cc is None and message.bcc is None:
            queue = self.queues.get(message.routing_key)
            queues = [queue] if queue is not None else []
        else:
            queues = self.route(exchange, message)
        exchange.stats.publish_in += 1
        if not queues:
            return False, True
        exchange.stats.publish_out += len(queues)
        # RabbitMQ's messages_routed counts one per queue reached; exchanges come and go, the vhost stays.
        self.stats.publish_out += len(queues)
        accepted = True
        for queue in queues:
            queue.stats.publish += 1
            if not queue.publish(message):
                accepted = False
            # Without consumers, or holding nothing (its consumers took the message), a queue is
            # not behind: the usual cases cost no call.
            if publisher is not None and queue.consumers and (queue.ready or queue.paged) and is_behind(queue):
                publisher.charge(queue)
        return True, accepted

    def publish_released(self, exchange: Exchange, message: Message) -> None:
        """A delayed message is due: routed now through its exchange, with no publisher to tell
        (its publish was counted when it came)."""
        queues = self._route_now(exchange, message)
        exchange.stats.publish_out += len(queues)
        self.stats.publish_out += len(queues)
        for queue in queues:
            queue.stats.publish += 1
            queue.publish(message)

    def route(self, exchange: Exchange, message: Message) -> list[Queue]:
        """The queues a message goes to, each once, for its routing key and any CC/BCC keys."""
        if exchange.delayed_type is not None and self.delayed is not None and self.delayed.hold(exchange, message):
            # Held: the exchange routed it nowhere for now, so its alternate exchange gets it, as
            # in RabbitMQ (rabbit_exchange:route1 tries it for any exchange that routes to none).
            return self._route_held(exchange, message)
        if message.cc is None and message.bcc is None:  # most messages: no call more than that
            return self._route_with_alternates(exchange, message)
        return self._route_now(exchange, message)

    def _route_now(self, exchange: Exchange, message: Message) -> list[Queue]:
        if message.cc is None and message.bcc is None:
            return self._route_with_alternates(exchange, message)
        found: dict[Queue, None] = {}
        original = message.routing_key
        for key in (original, *(message.cc or ()), *(message.bcc or ())):
            message.routing_key = key
            found.update(dict.fromkeys(self._route_with_alternates(exchange, message)))
        message.routing_key = original
        return list(found)

    def _route_held(self, exchange: Exchange, message: Message) -> list[Queue]:
        if exchange.alternate_exchange is None:
            return []
        found: dict[Queue, None] = {}
        original = message.routing_key
        for key in (original, *(message.cc or ()), *(message.bcc or ())):
            message.routing_key = key
            found.update(dict.fromkeys(self._route_alternates(exchange, message, [])))
        message.routing_key = original
        return list(found)

    def _route_with_alternates(self, exchange: Exchange, message: Message) -> list[Queue]:
        """Routing through one exchange; unroutable messages try its alternate exchanges."""
        queues = self._route_from(exchange, message)
        if queues or exchange.alternate_exchange is None:
            return queues
        return self._route_alternates(exchange, message, queues)

    def _route_alternates(self, exchange: Exchange, message: Message, queues: list[Queue]) -> list[Queue]:
        seen = {exchange}
        while not queues and exchange.alternate_exchange is not None:
            alternate = self.exchanges.get(exchange.alternate_exchange)
            if alternate is None or alternate in seen:
                break
            seen.add(alternate)
            exchange = alternate
            queues = self._route_from(exchange, message)
        return queues

    def _route_from(self, exchange: Exchange, message: Message) -> list[Queue]:
        """Routing through one exchange, following exchange-to-exchange bindings."""
        if exchange.is_default:
            queue = self.queues.get(message.routing_key)
            return [queue] if queue is not None else []
        router = exchange.router
        headers = message.properties.headers if router.needs_headers else None
        found = router.route(message.routing_key, headers)
        if not found:
            return []
        queues: list[Queue] = []
        nested = False
        for destination in found:
            if isinstance(destination, Queue):
                queues.append(destination)
            else:
                nested = True
        if nested:
            return self._route_through_exchanges(exchange, message)
        return queues

    def _route_through_exchanges(self, start: Exchange, message: Message) -> list[Queue]:
        seen_exchanges = {start}
        pending = [start]
        queues: dict[Queue, None] = {}
        while pending:
            exchange = pending.pop()
            router = exchange.router
            headers = message.properties.headers if router.needs_headers else None
            for destination in router.route(message.routing_key, headers):
                if isinstance(destination, Queue):
                    queues[destination] = None
                elif isinstance(destination, Exchange) and destination not in seen_exchanges:
                    seen_exchanges.add(destination)
                    if (
                        destination.delayed_type is not None
                        and self.delayed is not None
                        and self.delayed.hold(destination, message, all_keys=False)
                    ):
                        continue  # it routes there when due
                    pending.append(destination)
        return list(queues)


def _check_equivalent(
    where: str,
    flags: list[tuple[str, bool, bool]],
    keys: tuple[str, ...],
    received: Mapping[str, Any],
    current: Mapping[str, Any],
) -> None:
    """A redeclare must match the flags and the arguments that matter, or 406 as RabbitMQ says."""
    for field, new, old in flags:
        if new != old:
            raise ChannelError(
                PRECONDITION_FAILED,
                f"inequivalent arg '{field}' {where}: received '{args.bool_text(new)}' "
                f"but current is '{args.bool_text(old)}'",
            )
    diff = args.first_inequivalent(keys, received, current)
    if diff is not None:
        raise ChannelError(PRECONDITION_FAILED, args.inequivalent_text(diff[0], where, diff[1], diff[2]))


def _check_name_fits(what: str, name: str) -> None:
    """Names from the wire always fit; those from the HTTP API or an import may not."""
    problem = names.shortstr_problem(what, name)
    if problem is not None:
        raise ChannelError(PRECONDITION_FAILED, problem)
