"""The delayed-message stores: SqliteDelayStore (delayed.db, its own writer thread) and the one in memory."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lapine.store.delayed import DelayedRow, DelayStore, MemoryDelayStore
from lapine.store.delayed_sqlite import SqliteDelayStore


class Owner:
    """The owner thread's side: what the store hands back through notify, run when pumped."""

    def __init__(self) -> None:
        self.posted: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()

    def notify(self, fn: Callable[[], object]) -> None:
        self.posted.put(fn)

    def pump_until(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            try:
                self.posted.get(timeout=max(0.0, deadline - time.monotonic()))()
            except queue.Empty:
                raise AssertionError("the store did not answer in time") from None


def row(seq: int, due: int, exchange_id: int = 1, body: bytes = b"body") -> DelayedRow:
    return DelayedRow(due, seq, exchange_id, b"x", b"key", b"", b"\x00\x3c" + bytes(12), body)


@pytest.fixture
def owner() -> Owner:
    return Owner()


@pytest.fixture
def open_store(tmp_path: Path, owner: Owner) -> Iterator[Callable[[], SqliteDelayStore]]:
    opened: list[SqliteDelayStore] = []

    def make() -> SqliteDelayStore:
        store = SqliteDelayStore(tmp_path, notify=owner.notify, fsync=False)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def read(store: DelayStore, owner: Owner, after: tuple[int, int], limit: int) -> list[DelayedRow]:
    got: list[list[DelayedRow]] = []
    store.read_after(after, limit, got.append)
    owner.pump_until(lambda: bool(got))
    return got[0]


def sync(store: DelayStore, owner: Owner) -> None:
    done: list[bool] = []
    store.submit_barrier(lambda: done.append(True))
    owner.pump_until(lambda: bool(done))


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, open_store: Callable[[], SqliteDelayStore]) -> DelayStore:
    return open_store() if request.param == "sqlite" else MemoryDelayStore()


def test_reads_come_by_due_then_seq_after_a_key(store: DelayStore, owner: Owner) -> None:
    store.add_exchange(1, "/", "x")
    for seq, due in [(1, 300), (2, 100), (3, 200), (4, 100), (5, 400)]:
        store.add(row(seq, due))
    # A read sees every write submitted before it, committed or not.
    assert [(r.due, r.seq) for r in read(store, owner, (-1, -1), 10)] == [
        (100, 2), (100, 4), (200, 3), (300, 1), (400, 5)
    ]
    assert [r.seq for r in read(store, owner, (100, 2), 2)] == [4, 3]
    assert read(store, owner, (400, 5), 10) == []


def test_remove_and_drop_exchange(store: DelayStore, owner: Owner) -> None:
    store.add_exchange(1, "/", "a")
    store.add_exchange(2, "/", "b")
    for seq in range(1, 7):
        store.add(row(seq, seq * 10, exchange_id=1 + seq % 2))
    store.remove([1, 2])
    store.drop_exchange(2)
    sync(store, owner)  # a removal not yet on disk may still show in a read
    # Odd seqs were exchange 2's.
    assert [r.seq for r in read(store, owner, (-1, -1), 10)] == [4, 6]


def test_rows_come_back_whole(store: DelayStore, owner: Owner) -> None:
    store.add_exchange(7, "v", "x")
    original = DelayedRow(123, 9, 7, b"pub", b"rk", b"\x01a", b"\x00\x3c" + bytes(12), b"\x00\xff" * 600)
    store.add(original)
    assert read(store, owner, (0, 0), 1) == [original]


def test_what_a_restart_finds(open_store: Callable[[], SqliteDelayStore], owner: Owner) -> None:
    store = open_store()
    store.add_exchange(1, "/", "a")
    store.add_exchange(3, "v", "b")
    for seq in range(1, 6):
        store.add(row(seq, 1000 + seq, exchange_id=1 if seq < 4 else 3))
    store.remove([2])
    store.close()
    again = open_store()
    recovered = again.recover()
    assert recovered.exchanges == {1: ("/", "a"), 3: ("v", "b")}
    assert recovered.counts == {1: 2, 3: 2}
    assert (recovered.last_seq, recovered.last_exchange_id) == (5, 3)
    assert [r.seq for r in read(again, owner, (-1, -1), 10)] == [1, 3, 4, 5]


def test_a_read_sees_adds_still_waiting_for_the_writer(
    open_store: Callable[[], SqliteDelayStore], owner: Owner
) -> None:
    store = open_store()
    store.add_exchange(1, "/", "a")
    for seq in range(1, 4):
        store.add(row(seq, seq))
    sync(store, owner)
    for seq in range(4, 3000):  # several batches, most not committed when the read runs
        store.add(row(seq, 10_000 - seq))
    got = read(store, owner, (2, 2), 5)
    assert [(r.due, r.seq) for r in got] == [(3, 3), (7001, 2999), (7002, 2998), (7003, 2997), (7004, 2996)]
    assert len(read(store, owner, (-1, -1), 5000)) == 2999


def test_a_barrier_runs_after_the_commit_and_idle_says_so(
    open_store: Callable[[], SqliteDelayStore], owner: Owner
) -> None:
    store = open_store()
    assert store.idle()
    store.add_exchange(1, "/", "a")
    store.add(row(1, 10))
    assert not store.idle()
    done: list[bool] = []
    store.submit_barrier(lambda: done.append(store.backlog == 0))
    owner.pump_until(lambda: bool(done))
    assert done == [True]
    assert store.idle()


def test_a_failed_write_stops_the_store_and_runs_no_barrier(tmp_path: Path, owner: Owner) -> None:
    errors: list[BaseException] = []
    store = SqliteDelayStore(tmp_path, notify=owner.notify, on_error=errors.append, fsync=False)
    try:
        store.add_exchange(1, "/", "a")
        store.add(row(1, 10))
        store.add(row(1, 20))  # the same seq twice: the transaction fails
        confirmed: list[bool] = []
        store.submit_barrier(lambda: confirmed.append(True))
        owner.pump_until(lambda: bool(errors))
        assert store.failed is not None
        assert confirmed == []
    finally:
        store.close()
    # Nothing of the failed transaction is on disk.
    again = SqliteDelayStore(tmp_path, notify=owner.notify, fsync=False)
    try:
        assert again.recover().counts == {}
    finally:
        again.close()


def test_the_file_is_private(open_store: Callable[[], SqliteDelayStore], tmp_path: Path) -> None:
    open_store()
    assert (tmp_path / "delayed.db").stat().st_mode & 0o777 == 0o600
