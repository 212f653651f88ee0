"""Group commit and completion callbacks, driven from a real event loop; storage failures."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lapine.store import QueueDef, SqliteStore, StoreError, StoreFailedError
from lapine.store.sqlite import DB_FILE


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def stores() -> Iterator[list[SqliteStore]]:
    opened: list[SqliteStore] = []
    yield opened
    for store in opened:
        store.close()


def open_on_loop(data_dir: Path, stores: list[SqliteStore], **kwargs: Any) -> SqliteStore:
    loop = asyncio.get_running_loop()
    store = SqliteStore(data_dir, notify=loop.call_soon_threadsafe, **kwargs)
    stores.append(store)
    return store


def committed_count(data_dir: Path) -> int:
    """What another connection sees: only committed data."""
    conn = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def barrier(store: SqliteStore, check: Callable[[], None] | None = None) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    owner = threading.get_ident()

    def done() -> None:
        assert threading.get_ident() == owner, "callbacks run on the loop's thread"
        if check is not None:
            check()
        future.set_result(None)

    store.submit_barrier(done)
    return future


async def test_callbacks_run_on_the_loop_after_commit_in_order(data_dir: Path, stores: list[SqliteStore]) -> None:
    store = open_on_loop(data_dir, stores)
    q = store.put_queue(QueueDef("/", "q"))
    order: list[int] = []
    futures = []
    seq = 0
    for round_ in range(20):
        for _ in range(50):
            store.enqueue(q, seq, b"x", b"rk", b"h", b"b")
            seq += 1
        expected = seq

        def check(round_: int = round_, expected: int = expected) -> None:
            # The data the callback confirms is visible to an independent reader: committed.
            assert committed_count(data_dir) >= expected
            order.append(round_)

        futures.append(barrier(store, check))
        if round_ % 3 == 0:
            await asyncio.sleep(0)  # let some batches go out on their own
    await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert order == list(range(20))
    assert store.backlog == 0


async def test_one_tick_is_one_batch(data_dir: Path, stores: list[SqliteStore]) -> None:
    store = open_on_loop(data_dir, stores, batch_max_rows=100_000)
    q = store.put_queue(QueueDef("/", "q"))
    before = store.stats.commits
    futures = []
    for seq in range(5000):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"b")
        if seq % 100 == 99:
            futures.append(barrier(store))  # a confirm per 100 publishes, all in one tick
    await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert store.stats.commits - before == 1
    assert store.stats.max_rows_per_commit == 5000
    store.ack(q, range(5000))
    await asyncio.wait_for(barrier(store), 10)
    assert store.stats.commits - before == 2


async def test_writer_merges_waiting_batches(data_dir: Path, stores: list[SqliteStore]) -> None:
    # Small owner batches pile up while the writer is busy; it takes them in one transaction.
    store = open_on_loop(data_dir, stores, batch_max_rows=10)
    q = store.put_queue(QueueDef("/", "q"))
    before = store.stats
    base_tx, base_batches = before.commits, before.batches
    for seq in range(20_000):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"b")
    await asyncio.wait_for(barrier(store), 20)
    transactions = store.stats.commits - base_tx
    batches = store.stats.batches - base_batches
    assert batches >= 2000
    assert transactions < batches / 5, (transactions, batches)


async def test_blocking_calls_work_from_the_loop(data_dir: Path, stores: list[SqliteStore]) -> None:
    store = open_on_loop(data_dir, stores)
    q = store.put_queue(QueueDef("/", "q"))  # blocks the loop until durable: must not deadlock
    store.enqueue(q, 0, b"x", b"rk", b"h", b"b")
    store.sync()
    assert committed_count(data_dir) == 1
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    store.read_messages_async(q, -1, 10, got.set_result)
    assert [m.body for m in await asyncio.wait_for(got, 5)] == [b"b"]


async def test_a_failing_callback_does_not_cost_the_others(
    data_dir: Path, stores: list[SqliteStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = open_on_loop(data_dir, stores)

    def broken() -> None:
        raise RuntimeError("broker bug")

    store.submit_barrier(broken)
    with caplog.at_level(logging.ERROR, logger="lapine.store.sqlite"):
        await asyncio.wait_for(barrier(store), 5)
    assert "callback failed" in caplog.text


class FailingConnection:
    """Wraps the writer's connection; fails every write as a dying disk would."""

    def __init__(self, conn: sqlite3.Connection, error: str) -> None:
        self._conn = conn
        self._error = error

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.split(None, 1)[0] in ("INSERT", "DELETE", "UPDATE", "COMMIT"):
            raise sqlite3.OperationalError(self._error)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class RoomAgain:
    """Wraps the writer's connection: lifts the page limit (the "disk") before its next statement."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lifted = False

    def execute(self, sql: str, *args: Any) -> Any:
        if not self._lifted:
            self._conn.execute("PRAGMA max_page_count = 1073741823")
            self._lifted = True
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def test_disk_error_fails_the_store_confirms_nothing_and_recovers(
    data_dir: Path, stores: list[SqliteStore]
) -> None:
    errors: list[BaseException] = []
    failed, recovered = asyncio.Event(), asyncio.Event()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        failed.set()

    store = open_on_loop(data_dir, stores, on_error=on_error, on_recover=recovered.set, retry_interval=0.05)
    q = store.put_queue(QueueDef("/", "q"))
    store.enqueue(q, 0, b"x", b"rk", b"h", b"committed")
    await barrier(store)
    real = store._writer.conn
    store._writer.conn = FailingConnection(real, "disk I/O error")  # type: ignore[assignment]
    confirmed: list[int] = []
    store.enqueue(q, 1, b"x", b"rk", b"h", b"failed once")
    store.submit_barrier(lambda: confirmed.append(1))
    await asyncio.wait_for(failed.wait(), 5)
    await asyncio.sleep(0.2)  # a few retries fail
    assert confirmed == []
    assert len(errors) == 1 and "disk I/O error" in str(errors[0])
    assert store.failed is errors[0]
    # Message operations are still taken, to be written by the retry that succeeds; whatever
    # would answer someone (a barrier, a blocking call, a definition change) is refused.
    store.enqueue(q, 2, b"x", b"rk", b"h", b"taken while failing")
    store.ack(q, [0])
    with pytest.raises(StoreFailedError) as raised:
        store.sync()
    assert raised.value.__cause__ is errors[0]
    with pytest.raises(StoreFailedError):
        store.submit_barrier(lambda: None)
    with pytest.raises(StoreFailedError):
        store.put_queue(QueueDef("/", "other"))
    store._writer.conn = real  # the disk works again
    await asyncio.wait_for(recovered.wait(), 5)
    assert store.failed is None
    await barrier(store)
    assert confirmed == []  # the publisher was told of the failure: no late confirm
    assert [m.body for m in store.read_messages(q, -1, 10)] == [b"failed once", b"taken while failing"]
    store.close()
    reopened = open_on_loop(data_dir, stores)
    assert [m.body for m in reopened.read_messages(q, -1, 10)] == [b"failed once", b"taken while failing"]


async def test_a_full_disk_fails_writes_until_there_is_room(data_dir: Path, stores: list[SqliteStore]) -> None:
    failed, recovered = asyncio.Event(), asyncio.Event()
    store = open_on_loop(
        data_dir, stores, on_error=lambda _exc: failed.set(), on_recover=recovered.set, retry_interval=0.05
    )
    q = store.put_queue(QueueDef("/", "q"))
    pages = store._query(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    store._query(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages + 5}"))
    for seq in range(20):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"x" * 10_000)
    await asyncio.wait_for(failed.wait(), 5)
    assert "full" in str(store.failed)
    # A blocking call fails while the disk is full, without waiting for room.
    with pytest.raises(StoreFailedError):
        store.put_queue(QueueDef("/", "refused"))
    # Room again (the page limit lifted on the writer's connection): what the store took is
    # written, in order.
    real = store._writer.conn
    store._writer.conn = RoomAgain(real)  # type: ignore[assignment]
    await asyncio.wait_for(recovered.wait(), 5)
    store._writer.conn = real
    assert [m.seq for m in store.read_messages(q, -1, 100)] == list(range(20))
    assert store.queue_id("/", "refused") is None


async def test_disk_full_is_reported(data_dir: Path, stores: list[SqliteStore]) -> None:
    errors: list[BaseException] = []
    failed = asyncio.Event()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        failed.set()

    store = open_on_loop(data_dir, stores, on_error=on_error)
    q = store.put_queue(QueueDef("/", "q"))
    pages = store._query(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    store._query(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages + 20}"))
    confirmed: list[int] = []
    for seq in range(100):
        try:
            store.enqueue(q, seq, b"x", b"rk", b"h", b"x" * 10_000)
            store.submit_barrier(functools.partial(confirmed.append, seq))
        except StoreFailedError:  # the writer failed between two of our calls
            break
        await asyncio.sleep(0)
    await asyncio.wait_for(failed.wait(), 5)
    assert isinstance(errors[0], sqlite3.Error)
    assert "full" in str(errors[0])
    # Everything confirmed before the failure is on disk.
    store.close()
    reopened = open_on_loop(data_dir, stores)
    stored = {m.seq for m in reopened.read_messages(q, -1, 1000)}
    assert set(confirmed) <= stored
    assert len(confirmed) < 100


async def test_abandon_keeps_only_what_was_committed(data_dir: Path, stores: list[SqliteStore]) -> None:
    store = open_on_loop(data_dir, stores)
    q = store.put_queue(QueueDef("/", "q"))
    store.enqueue(q, 0, b"x", b"rk", b"h", b"confirmed")
    await barrier(store)
    ran: list[int] = []
    store.enqueue(q, 1, b"x", b"rk", b"h", b"never handed over")
    store.submit_barrier(lambda: ran.append(1))
    store.abandon()
    await asyncio.sleep(0.05)
    assert ran == []
    with pytest.raises(StoreError):
        store.enqueue(q, 2, b"x", b"rk", b"h", b"closed")
    reopened = open_on_loop(data_dir, stores)
    assert [m.body for m in reopened.read_messages(q, -1, 10)] == [b"confirmed"]


def test_close_commits_what_was_submitted(data_dir: Path) -> None:
    store = SqliteStore(data_dir, notify=lambda fn: None)  # no loop: nothing is ever handed over
    q = store.put_queue(QueueDef("/", "q"))
    for seq in range(10):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"b")
    assert store.backlog == 10
    store.close()
    store.close()  # idempotent
    reopened = SqliteStore(data_dir, notify=lambda fn: fn())
    assert len(reopened.read_messages(q, -1, 100)) == 10
    reopened.close()
