"""Barriers over the store, delayed.db and stream logs complete in submission order, whichever part
is last; a failed writer's barriers are cleared so that later ones go on."""

from __future__ import annotations

from collections.abc import Callable

from lapine.broker.barriers import OrderedBarriers


class Writer:
    """A writer whose barriers complete when the test says so."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[], None]] = []

    def barrier(self, callback: Callable[[], None]) -> None:
        self.waiting.append(callback)

    def complete(self) -> None:
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()


def test_a_barrier_waits_for_all_its_parts_and_for_every_barrier_before_it() -> None:
    store, log = Writer(), Writer()
    barriers = OrderedBarriers()
    done: list[str] = []
    barriers.submit([store.barrier, log.barrier], lambda: done.append("first"))
    barriers.submit([store.barrier], lambda: done.append("second"))
    store.complete()
    assert done == []  # the first still waits for the log; the second waits behind it
    assert barriers.waiting
    log.complete()
    assert done == ["first", "second"]
    assert not barriers.waiting


def test_parts_that_complete_at_once_complete_the_barrier_at_once() -> None:
    barriers = OrderedBarriers()
    done: list[int] = []
    barriers.submit([lambda callback: callback(), lambda callback: callback()], lambda: done.append(1))
    assert done == [1]


def test_after_a_writer_fails_later_barriers_are_not_held_back() -> None:
    store = Writer()
    barriers = OrderedBarriers()
    done: list[str] = []
    barriers.submit([store.barrier], lambda: done.append("lost"))
    store.waiting.clear()  # the failed store never calls it back
    barriers.clear()
    barriers.submit([store.barrier], lambda: done.append("after recovery"))
    store.complete()
    assert done == ["after recovery"]
