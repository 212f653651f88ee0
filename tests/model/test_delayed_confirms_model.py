"""Publisher confirms wait for delayed.db as well as the store, and keep their order across both
(Broker.submit_barrier), with stores whose writes complete when the test says."""

from __future__ import annotations

from collections.abc import Callable

from lapine.amqp import spec
from lapine.store.delayed import MemoryDelayStore
from lapine.testing.model import ModelBroker


class ManualBarriers:
    """Barriers that run when ``complete`` is called, in submission order, like a writer thread's."""

    failed: BaseException | None = None

    def __init__(self) -> None:
        self.waiting: list[Callable[[], object]] = []

    def submit_barrier(self, callback: Callable[[], object]) -> None:
        self.waiting.append(callback)

    def complete(self) -> None:
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()


class SlowDelayStore(MemoryDelayStore):
    """A delayed-message store whose writes are on disk only once ``complete`` runs."""

    barriers: ManualBarriers

    def __init__(self) -> None:
        super().__init__()
        self.barriers = ManualBarriers()
        self.unwritten = 0

    def idle(self) -> bool:
        return not self.unwritten and not self.barriers.waiting

    def add(self, row):  # type: ignore[no-untyped-def]
        super().add(row)
        self.unwritten += 1

    def submit_barrier(self, callback: Callable[[], object]) -> None:
        self.barriers.submit_barrier(callback)

    def complete(self) -> None:
        self.unwritten = 0
        self.barriers.complete()


def test_a_delayed_messages_confirm_waits_for_both_stores_and_later_ones_behind_it() -> None:
    model = ModelBroker()
    main, delayed = ManualBarriers(), SlowDelayStore()
    model.broker.store = main  # type: ignore[assignment]
    model.broker.delayed.store = delayed
    client = model.client()
    client.declare_exchange("dx", "x-delayed-message", **{"x-delayed-type": "direct"})
    client.declare_queue("q", durable=True)
    client.bind("q", "dx", "k")
    client.call(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
    client.publish(1, b"held", "dx", "k", spec.BasicProperties(headers={"x-delay": 1000}))
    # One that needs no disk: still confirmed after the first, never before it.
    client.publish(1, b"now", "", "q")
    assert client.confirms() == []
    main.complete()  # the store is done, delayed.db is not: neither is confirmed
    assert client.confirms() == []
    delayed.complete()
    assert client.confirms() == [("ack", 1, False), ("ack", 2, False)]
    # Nothing waits any more: one that needs no disk is confirmed at once.
    client.publish(1, b"again", "", "q")
    assert client.confirms() == [("ack", 3, False)]
