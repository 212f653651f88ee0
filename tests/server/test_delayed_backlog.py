"""A publisher is paused while delayed.db's writes lag, as while the store's do (server/throttle.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from lapine.broker.broker import Broker
from lapine.broker.read_gate import Pause
from lapine.server import throttle
from lapine.store.delayed import MemoryDelayStore


class LaggingDelayStore(MemoryDelayStore):
    def __init__(self) -> None:
        super().__init__()
        self.lag = 0

    @property
    def backlog(self) -> int:
        return self.lag


class Gate:
    def __init__(self) -> None:
        self.paused: set[Pause] = set()

    def pause(self, reason: Pause) -> None:
        self.paused.add(reason)

    def resume(self, reason: Pause) -> None:
        self.paused.discard(reason)


async def test_delayed_db_backlog_pauses_a_publisher_until_it_drains() -> None:
    broker = Broker()
    store = LaggingDelayStore()
    broker.delayed.store = store
    gate = Gate()
    connection: Any = object()
    publisher = throttle.PublisherThrottle(broker, connection, gate)  # type: ignore[arg-type]
    store.lag = throttle.STORE_BACKLOG_HIGH + 1
    publisher.publish_received()
    assert gate.paused == {Pause.STORE}
    store.lag = throttle.STORE_BACKLOG_LOW + 1
    await asyncio.sleep(throttle.STORE_RECHECK * 3)
    assert gate.paused == {Pause.STORE}
    store.lag = 0
    await asyncio.sleep(throttle.STORE_RECHECK * 3)
    assert gate.paused == set()
    publisher.close()
