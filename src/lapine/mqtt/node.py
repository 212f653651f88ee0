"""What every MQTT connection of one broker shares: who holds which client id, the retained
messages, and the settings. The connections themselves are in broker.connections beside AMQP's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lapine.mqtt.retained import FILE_NAME, RetainedStore

WILL_QUEUE_PREFIX = "mqtt-will-"

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.mqtt.connection import MqttConnection


class MqttNode:
    def __init__(self, broker: Broker, data_dir: str | Path | None = None) -> None:
        self.broker = broker
        self.config = broker.config
        self.retained = RetainedStore(Path(data_dir) / FILE_NAME if data_dir is not None else None)
        # (vhost, client id) -> the connection that holds it.
        self.clients: dict[tuple[str, str], MqttConnection] = {}
        self._resume_delayed_wills()

    def _resume_delayed_wills(self) -> None:
        """Delayed wills recovered from the store wait in their queues with nobody consuming: set
        their expiry going, so that each is published when its delay is over."""
        for vhost in self.broker.vhosts.values():
            for queue in list(vhost.queues.values()):
                if queue.name.startswith(WILL_QUEUE_PREFIX):
                    queue.expire()

    def register(self, connection: MqttConnection) -> MqttConnection | None:
        """Take the client id for ``connection``; returns the connection that had it, if any."""
        key = (connection.vhost.name, connection.client_id)
        previous = self.clients.get(key)
        self.clients[key] = connection
        return previous if previous is not connection else None

    def unregister(self, connection: MqttConnection) -> None:
        key = (connection.vhost.name, connection.client_id)
        if self.clients.get(key) is connection:
            del self.clients[key]

    def close(self) -> None:
        self.retained.close()
