"""The seam between the broker model and the store: what is written when, and recovery at start.

The model calls these hooks as its durable state changes; each turns the change into a store
operation. Nothing blocks the event loop on the disk: durable exchanges, queues and bindings,
vhosts, users, permissions and policies are submitted and counted in ``writes``, and whoever
answers for them (the AMQP connection's declare-ok, the HTTP API's response) waits for a store
barrier once ``writes`` moved. Message operations are batched by the store, and publisher confirms wait for a barrier
too (see Channel.flush_confirms).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lapine.auth.permissions import Permission, TopicPermission
from lapine.auth.users import User
from lapine.broker.exchange import Exchange
from lapine.broker.policies import Policy
from lapine.broker.queue_storage import StoreQueueStorage
from lapine.store import (
    BindingDef,
    Definitions,
    ExchangeDef,
    GlobalParameterDef,
    ParameterDef,
    PermissionDef,
    PolicyDef,
    QueueDef,
    Store,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.broker.queue import Queue
    from lapine.broker.vhost import VirtualHost

log = logging.getLogger("lapine.persistence")
VHOST_LIMITS_COMPONENT = "vhost-limits"
# The global parameter RabbitMQ keeps its cluster's permanent id in.
CLUSTER_ID_PARAMETER = "internal_cluster_id"


class Persistence:
    def __init__(self, broker: Broker, store: Store) -> None:
        self.broker = broker
        self.store = store
        # Durable definition changes submitted so far: an answer that promises durability waits
        # for a store barrier when this moved while the request was handled.
        self.writes = 0

    def _submitted(self) -> None:
        self.writes += 1

    def _submit(self, write: Callable[..., None], *args: Any) -> None:
        """A definition write: submitted and counted; its answer waits for a barrier."""
        write(*args, _written)
        self._submitted()

    # --- vhosts, users, permissions, policies ------------------------------------------------

    def vhost_added(self, vhost: VirtualHost) -> None:
        """A new vhost, or new metadata for one: the store's row is replaced."""
        metadata = vhost.metadata
        queue_type = None if metadata.default_queue_type == "undefined" else metadata.default_queue_type
        definition = VHostDef(vhost.name, metadata.description, list(metadata.tags), queue_type)
        self._submit(self.store.put_vhost, definition)

    def vhost_limits_changed(self, vhost: VirtualHost) -> None:
        """Kept as RabbitMQ keeps them: the vhost's runtime parameter vhost-limits/limits."""
        if vhost.limits:
            limits = ParameterDef(vhost.name, VHOST_LIMITS_COMPONENT, "limits", dict(vhost.limits))
            self._submit(self.store.put_parameter, limits)
        else:
            self._submit(self.store.delete_parameter, vhost.name, VHOST_LIMITS_COMPONENT, "limits")

    def vhost_deleted(self, name: str) -> None:
        self._submit(self.store.delete_vhost, name)

    def user_changed(self, user: User) -> None:
        definition = UserDef(user.name, user.password_hash, user.hashing_algorithm, list(user.tags))
        self._submit(self.store.put_user, definition)

    def user_deleted(self, name: str) -> None:
        self._submit(self.store.delete_user, name)

    def permission_set(self, permission: Permission) -> None:
        self._submit(
            self.store.put_permission,
            PermissionDef(permission.user, permission.vhost, permission.configure, permission.write, permission.read),
        )

    def permission_cleared(self, user: str, vhost: str) -> None:
        self._submit(self.store.delete_permission, user, vhost)

    def topic_permission_set(self, p: TopicPermission) -> None:
        definition = TopicPermissionDef(p.user, p.vhost, p.exchange, p.write, p.read)
        self._submit(self.store.put_topic_permission, definition)

    def topic_permission_cleared(self, p: TopicPermission) -> None:
        self._submit(self.store.delete_topic_permission, p.user, p.vhost, p.exchange)

    def policy_set(self, policy: Policy) -> None:
        self._submit(
            self.store.put_policy,
            PolicyDef(policy.vhost, policy.name, policy.pattern, policy.apply_to, policy.definition, policy.priority),
        )

    def policy_cleared(self, vhost: str, name: str) -> None:
        self._submit(self.store.delete_policy, vhost, name)

    # --- exchanges, queues, bindings ---------------------------------------------------------

    def exchange_declared(self, exchange: Exchange) -> None:
        if exchange.durable:
            definition = ExchangeDef(
                exchange.vhost.name,
                exchange.name,
                exchange.type,
                durable=True,
                auto_delete=exchange.auto_delete,
                internal=exchange.internal,
                arguments=dict(exchange.arguments),
            )
            self._submit(self.store.put_exchange, definition)

    def exchange_deleted(self, exchange: Exchange) -> None:
        if exchange.durable:
            self._submit(self.store.delete_exchange, exchange.vhost.name, exchange.name)

    def queue_declared(self, queue: Queue) -> None:
        """Every queue gets a store id: durable ones are written, any may page its backlog out."""
        definition = QueueDef(
            queue.vhost.name,
            queue.name,
            durable=queue.durable,
            auto_delete=queue.auto_delete,
            arguments=dict(queue.arguments),
        )
        # A transient queue only gets an id: nothing is written, nothing to wait for.
        queue_id = self.store.put_queue(definition, _written if queue.durable else None)
        if queue.durable:
            self._submitted()
        self._attach(queue, queue_id)

    def _attach(self, queue: Queue, queue_id: int, *, restored: bool = False) -> None:
        storage = StoreQueueStorage(self.store, queue_id, pages=True, streams=self.broker.streams, restored=restored)
        queue.attach_storage(storage, self.broker.config.queue_window)

    def queue_deleted(self, queue: Queue) -> None:
        # A transient queue's paged messages go without a wait (and even while the store fails).
        self.store.delete_queue(queue.vhost.name, queue.name, _written if queue.durable else None)
        if queue.durable:
            self._submitted()

    def bound(self, source: Exchange, destination: Queue | Exchange, routing_key: str, arguments: Any) -> None:
        if source.durable and destination.durable:
            self._submit(self.store.put_binding, _binding(source, destination, routing_key, arguments))

    def unbound(self, source: Exchange, destination: Queue | Exchange, routing_key: str, arguments: Any) -> None:
        if source.durable and destination.durable:
            self._submit(self.store.delete_binding, _binding(source, destination, routing_key, arguments))

    # --- start -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Rebuild the durable model from the store; on a first start, write the defaults."""
        started = time.monotonic()
        definitions = self.store.load_definitions()
        broker = self.broker
        if not definitions.vhosts:
            self._write_defaults()
            return
        broker.vhosts.clear()
        broker.users.users.clear()
        broker.permissions.entries.clear()
        stored_id = {p.name: p.value for p in definitions.global_parameters}.get(CLUSTER_ID_PARAMETER)
        if isinstance(stored_id, str):
            broker.cluster_id = stored_id
        else:  # a data directory from before the id was kept
            self._write_cluster_id()
        self._recover_access(definitions)
        self._recover_topology(definitions)
        queues = self._recover_messages()
        if broker.streams is not None:
            broker.streams.sweep()
        log.info(
            "recovered %d vhosts, %d exchanges, %d queues (%d messages) in %.2fs",
            len(definitions.vhosts),
            len(definitions.exchanges),
            len(definitions.queues),
            queues,
            time.monotonic() - started,
        )

    def _write_defaults(self) -> None:
        broker = self.broker
        self._write_cluster_id()
        for vhost in broker.vhosts.values():
            self.vhost_added(vhost)
        for user in broker.users.users.values():
            self.user_changed(user)
        for permission in broker.permissions.entries.values():
            self.permission_set(permission)

    def _write_cluster_id(self) -> None:
        self.store.put_global_parameter(GlobalParameterDef(CLUSTER_ID_PARAMETER, self.broker.cluster_id))

    def _recover_access(self, definitions: Definitions) -> None:
        broker = self.broker
        for vhost_def in definitions.vhosts:
            vhost = broker.add_vhost(vhost_def.name, persist=False)
            vhost.metadata.description = vhost_def.description
            vhost.metadata.tags = list(vhost_def.tags)
            vhost.metadata.default_queue_type = vhost_def.default_queue_type or "undefined"
        for user_def in definitions.users:
            broker.users.users[user_def.name] = User(
                user_def.name, user_def.password_hash, list(user_def.tags), user_def.hashing_algorithm
            )
        for p in definitions.permissions:
            broker.permissions.set(Permission(p.user, p.vhost, p.configure, p.write, p.read))
        for t in definitions.topic_permissions:
            broker.permissions.set_topic(TopicPermission(t.user, t.vhost, t.exchange, t.write, t.read))
        for parameter in definitions.parameters:
            limited = broker.vhosts.get(parameter.vhost)
            if parameter.component == VHOST_LIMITS_COMPONENT and limited is not None:
                limited.limits.update({name: int(value) for name, value in dict(parameter.value).items()})

    def _recover_topology(self, definitions: Definitions) -> None:
        vhosts = self.broker.vhosts
        for policy_def in definitions.policies:
            vhost = vhosts.get(policy_def.vhost)
            if vhost is not None:
                vhost.policies.set(
                    Policy(
                        policy_def.vhost,
                        policy_def.name,
                        policy_def.pattern,
                        dict(policy_def.definition),
                        policy_def.priority,
                        policy_def.apply_to,
                    )
                )
        for x in definitions.exchanges:
            vhost = vhosts.get(x.vhost)
            if vhost is not None and x.name not in vhost.exchanges:
                vhost.restore_exchange(x.name, x.type, x.auto_delete, x.internal, x.arguments)
        for q in definitions.queues:
            vhost = vhosts.get(q.vhost)
            if vhost is not None:
                queue = vhost.restore_queue(q.name, q.auto_delete, q.arguments)
                self._attach(queue, q.queue_id, restored=True)
        for b in definitions.bindings:
            vhost = vhosts.get(b.vhost)
            if vhost is None:
                continue
            source = vhost.exchanges.get(b.source)
            destination: Queue | Exchange | None = (
                vhost.queues.get(b.destination) if b.destination_type == "queue" else vhost.exchanges.get(b.destination)
            )
            if source is not None and destination is not None:
                vhost.restore_binding(source, destination, b.routing_key, b.arguments)

    def _recover_messages(self) -> int:
        """Each durable queue learns how many messages wait on disk; they page in as needed."""
        recovered = self.store.recover_queues()
        total = 0
        for vhost in self.broker.vhosts.values():
            for queue in vhost.queues.values():
                storage = queue.storage
                state = recovered.get(storage.queue_id) if isinstance(storage, StoreQueueStorage) else None
                if state is not None and state.count:
                    queue.recover_backlog(state.count, state.bytes, state.first_seq, state.last_seq)
                    total += state.count
        return total


def _written() -> None:
    """The store's callback for a definition write: the answer waits on a barrier instead."""


def _binding(source: Exchange, destination: Queue | Exchange, routing_key: str, arguments: Any) -> BindingDef:
    kind = "exchange" if isinstance(destination, Exchange) else "queue"
    return BindingDef(
        source.vhost.name,
        source.name,
        destination.name,
        kind,
        routing_key,
        dict(arguments) if isinstance(arguments, Mapping) else {},
    )
