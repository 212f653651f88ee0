"""Publisher throttling for one connection: RabbitMQ's "throttle" (rabbit_reader.erl).

Two reasons stop us reading from a publisher:

* A resource alarm (server/alarms.py). As in RabbitMQ, a connection is not blocked when the alarm
  goes off but when it next publishes: consumers and idle connections carry on, so queues keep
  draining. A blocked connection is not read from at all, and a client that announced the
  ``connection.blocked`` capability is told so, with RabbitMQ's reason text ("low on memory",
  "low on disk", "low on disk & memory"); connection.unblocked follows when every alarm clears.
* The store's write backlog, delayed.db's included (RabbitMQ's credit flow): while more than
  ``STORE_BACKLOG_HIGH`` operations wait for the disk, a publishing connection is paused,
  silently as RabbitMQ's "flow" state is, until the backlog is back under ``STORE_BACKLOG_LOW``.

Pausing reading is what bounds memory: the publisher's bytes wait in its socket buffers and then in
the client, not in the broker.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lapine.broker.read_gate import Pause, ReadGate

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.broker.connection import Connection

# Store operations submitted and not yet committed: pause publishers above HIGH, resume below LOW.
STORE_BACKLOG_HIGH = 20_000
STORE_BACKLOG_LOW = 10_000
# How often a paused publisher looks at the store's backlog again.
STORE_RECHECK = 0.01


def blocked_reason(alarms: set[str]) -> str:
    """RabbitMQ's connection.blocked reason: "low on " and the resources, joined by " & "."""
    return "low on " + " & ".join(sorted(alarms))


class PublisherThrottle:
    """Decides when the protocol stops and restarts reading from its connection."""

    def __init__(self, broker: Broker, connection: Connection, gate: ReadGate) -> None:
        self.broker = broker
        self.connection = connection
        self.gate = gate
        self.blocked = False  # by an alarm
        self.flow = False  # by the store's backlog
        self._blocked_sent = False
        self._timer: asyncio.TimerHandle | None = None

    def publish_received(self) -> None:
        """The connection published during the last read: stop reading if we must."""
        if self.broker.alarms and not self.blocked:
            self.blocked = self.connection.blocked = True
            self.gate.pause(Pause.ALARM)
            if not self._blocked_sent and self.connection.client_capability("connection.blocked"):
                self._blocked_sent = True
                self.connection.send_blocked(blocked_reason(self.broker.alarms))
        if not self.flow and self._backlog() > STORE_BACKLOG_HIGH:
            self.flow = True
            self.gate.pause(Pause.STORE)
            self._timer = asyncio.get_running_loop().call_later(STORE_RECHECK, self._recheck_store)

    def alarms_changed(self) -> None:
        """An alarm was set or cleared: a blocked connection goes on once none is left."""
        if not self.blocked or self.broker.alarms:
            return
        self.blocked = self.connection.blocked = False
        if self._blocked_sent:
            self._blocked_sent = False
            self.connection.send_unblocked()
        self.gate.resume(Pause.ALARM)

    def _backlog(self) -> int:
        """Writes waiting for the disk: the store's, and delayed.db's (delayed messages)."""
        store = self.broker.store
        return (store.backlog if store is not None else 0) + self.broker.delayed.store.backlog

    def _recheck_store(self) -> None:
        if self._backlog() > STORE_BACKLOG_LOW:
            self._timer = asyncio.get_running_loop().call_later(STORE_RECHECK, self._recheck_store)
            return
        self._timer = None
        self.flow = False
        self.gate.resume(Pause.STORE)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
