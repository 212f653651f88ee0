"""Barriers over several writers (broker/barriers.py): each completes once all its parts have and
every barrier before it has; a failed writer's barriers are cleared so that later ones go on."""

from __future__ import annotations

from collections.abc import Callable

from lapine.broker.barriers import OrderedBarriers


class Writer:
    """A writer whose barriers complete when the test says."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def barrier(self, callback: Callable[[], None]) -> None:
        self.pending.append(callback)

    def complete_one(self) -> None:
        self.pending.pop(0)()


def test_confirms_never_overtake_one_another() -> None:
    store, log = Writer(), Writer()
    barriers = OrderedBarriers()
    done: list[str] = []
    barriers.submit([store.barrier, log.barrier], lambda: done.append("first"))
    barriers.submit([store.barrier], lambda: done.append("second"))
    store.complete_one()
    store.complete_one()  # the second's only part is done, but the first still waits for the log
    assert done == []
    log.complete_one()
    assert done == ["first", "second"]
    assert not barriers.waiting


def test_after_a_writer_fails_later_barriers_are_not_held_back() -> None:
    store = Writer()
    barriers = OrderedBarriers()
    done: list[str] = []
    barriers.submit([store.barrier], lambda: done.append("lost"))
    store.pending.clear()  # the failed store never calls it back
    barriers.clear()
    barriers.submit([store.barrier], lambda: done.append("after recovery"))
    store.complete_one()
    assert done == ["after recovery"]
