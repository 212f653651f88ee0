"""The broker: vhosts, users, open connections and settings. No sockets here either."""

from __future__ import annotations

import base64
import logging
import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lapine.amqp.constants import CONNECTION_FORCED
from lapine.amqp.errors import ConnectionError
from lapine.auth.permissions import Permission, Permissions
from lapine.auth.users import Users
from lapine.broker.barriers import Barrier, OrderedBarriers
from lapine.broker.churn import Churn
from lapine.broker.delayed import DelayedMessages
from lapine.broker.message_sizes import MessageSizes
from lapine.broker.scheduler import ManualScheduler, Scheduler
from lapine.broker.server_identity import default_cluster_name, server_properties
from lapine.broker.stats import MessageStats
from lapine.broker.vhost import VirtualHost
from lapine.config import Config

if TYPE_CHECKING:
    from lapine.broker.connection import Connection
    from lapine.broker.persistence import Persistence
    from lapine.mqtt.connection import MqttConnection
    from lapine.store import Store
    from lapine.store.delayed import DelayStore
    from lapine.store.stream import StreamHome

log = logging.getLogger("lapine.broker")


def new_cluster_id() -> str:
    """An id in RabbitMQ's form: "rabbitmq-cluster-id-" and 16 random bytes, URL-safe base64."""
    return "rabbitmq-cluster-id-" + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


class Broker:
    def __init__(self, config: Config | None = None, scheduler: Scheduler | None = None) -> None:
        self.config = config or Config()
        self.scheduler: Scheduler = scheduler or ManualScheduler()
        self.cluster_name = default_cluster_name()
        # RabbitMQ's internal_cluster_id: made once, kept in the store, the same whatever the
        # cluster is (re)named (Prometheus' rabbitmq_cluster_permanent_id).
        self.cluster_id = new_cluster_id()
        self.vhosts: dict[str, VirtualHost] = {}
        self.users = Users(self.config.password_hashing_module)
        self.permissions = Permissions()
        # Every client connection, AMQP and MQTT: the management API, Prometheus and the limits
        # count them all.
        self.connections: set[Connection | MqttConnection] = set()
        # Times any connection was held by credit flow (broker/flow.py), for Prometheus.
        self.flow_holds = 0
        # Node-wide counters that must never go backwards: objects opened and closed, the sizes
        # of published messages, and what deleted vhosts had counted.
        self.churn = Churn()
        self.dead_lettered: Counter[tuple[str, str, str]] = Counter()
        self.message_sizes = MessageSizes()
        self.deleted_vhosts_stats = MessageStats()
        # Resource alarms in effect, "memory" and/or "disk": kept by server/alarms.py; publishers
        # are blocked while it is not empty.
        self.alarms: set[str] = set()
        # Set by attach_store; without a store nothing survives a restart.
        self.store: Store | None = None
        self.persistence: Persistence | None = None
        self.store_error: BaseException | None = None
        # Where streams keep their logs on disk (without one, a stream's log is in memory).
        self.streams: StreamHome | None = None
        self._barriers = OrderedBarriers()
        # Message counters of the protocols beside AMQP, by RabbitMQ's protocol label ("mqtt311",
        # "mqtt50", ...) then by rabbit_global_counters' name ("received", ...): for Prometheus.
        self.protocol_counters: dict[str, Counter[str]] = {}
        # What x-delayed-message exchanges hold (in memory until attach_delay_store).
        self.delayed = DelayedMessages(self)
        self.add_vhost(self.config.default_vhost)
        self.users.add(self.config.default_user, self.config.default_pass, ["administrator"])
        self.permissions.set(Permission(self.config.default_user, self.config.default_vhost))

    def add_vhost(self, name: str, *, persist: bool = True) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name, self.scheduler)
            vhost.persistence = self.persistence
            vhost.delayed = self.delayed
            vhost.churn = self.churn
            vhost.dead_lettered = self.dead_lettered
            if persist and self.persistence is not None:
                self.persistence.vhost_added(vhost)
        return vhost

    def attach_store(self, store: Store, streams: StreamHome | None = None) -> None:
        """Make durable state durable: recover what the store holds, and write what changes."""
        from lapine.broker.persistence import Persistence

        self.store = store
        self.streams = streams
        self.persistence = Persistence(self, store)
        for vhost in self.vhosts.values():
            vhost.persistence = self.persistence
        self.persistence.recover()

    def attach_delay_store(self, store: DelayStore) -> None:
        """Keep delayed messages in ``store`` and take up those it holds (after attach_store)."""
        self.delayed.attach(store)

    def submit_barrier(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything submitted so far is on disk: the store's writes, the
        delayed-message store's (while it has any) and the appends to stream logs (requires a
        store). A publisher confirm waits for all of them, and confirms keep their order."""
        store = self.store
        assert store is not None
        parts: list[Barrier] = [store.submit_barrier]
        delayed = self.delayed.store
        if not delayed.idle() and delayed.failed is None:
            parts.append(delayed.submit_barrier)
        if self.streams is not None:
            parts.extend(log.barrier for log in self.streams.take_dirty())
        if len(parts) == 1 and not self._barriers.waiting:
            store.submit_barrier(callback)
            return
        self._barriers.submit(parts, callback)

    def store_failed(self, error: BaseException) -> None:
        """The store cannot write: nothing more is confirmed, and the operator must hear of it."""
        log.error("storage failure, persistent messages are no longer accepted safely: %s", error)
        self.store_error = error
        self._barriers.clear()  # they would wait for ever: the channels nack what they covered
        for connection in list(self.connections):
            for channel in list(connection.channels.values()):
                channel.store_failed()

    def delay_store_failed(self, error: BaseException) -> None:
        """delayed.db cannot be written: the confirms waiting for it are nacks, and delayed
        messages are refused from now on (broker/delayed.py)."""
        log.error("delayed messages can no longer be stored: %s", error)
        self._barriers.clear()  # they would wait for ever: the channels nack what they covered
        for connection in list(self.connections):
            for channel in list(connection.channels.values()):
                channel.store_failed()

    def store_recovered(self) -> None:
        """The store's retried writes went through: confirms flow again, paging resumes."""
        log.warning("storage recovered, persistent messages are accepted safely again")
        self.store_error = None
        for vhost in self.vhosts.values():
            for queue in list(vhost.queues.values()):
                queue.store_recovered()

    def server_properties(self) -> dict[str, Any]:
        return server_properties(self.cluster_name)

    def close_all(self, reason: str = "shutdown") -> None:
        """Tell every client we are going (320 CONNECTION_FORCED), as RabbitMQ does on stop."""
        error = ConnectionError(CONNECTION_FORCED, f"broker forced connection closure with reason '{reason}'")
        for connection in list(self.connections):
            connection.close_with_error(error)
