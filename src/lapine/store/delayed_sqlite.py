"""Delayed messages on disk: ``delayed.db`` in the data directory, written by a thread of its own.

One row per message, keyed by its seq, with an index on (due, seq) so that the broker pages in the
next ones due with one range scan. Exchanges get a row each, named by (vhost, name), so that a
message knows which exchange holds it across a restart. The owner thread appends operations to an
open batch and hands it to the writer at the end of the event-loop tick (through ``notify``) or
when it is full; the writer applies every batch waiting in one transaction (group commit), then
passes their barriers back through ``notify``, in order. Reads go to a second connection on a
thread of its own, so that the broker's window, which waits for them, never waits behind the
writes: they see what is committed, and the owner adds the rows of the batches submitted before
the read and not yet committed (it still holds them), so a read still sees every earlier write. ``synchronous=FULL``
in WAL mode: a commit is fsync'd, so a barrier, and therefore a publisher confirm, means the
message is on disk. A failed write stops the store (``failed``); what it caught is never
confirmed, and the broker refuses delayed messages from then on.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue as queue_mod
import sqlite3
import threading
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from lapine.store.base import Notify, StoreError
from lapine.store.delayed import Callback, DelayedRow, DelayRecovery, DelayStore

log = logging.getLogger(__name__)

FILE = "delayed.db"
# The owner hands a batch over at this many operations even within one tick.
BATCH_MAX_OPS = 5000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS exchanges (id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, due INTEGER NOT NULL,"
    " exchange_id INTEGER NOT NULL, exchange BLOB NOT NULL, routing_key BLOB NOT NULL, keys BLOB NOT NULL,"
    " header BLOB NOT NULL, body BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS messages_due ON messages (due, seq)",
)
_INSERT = (
    "INSERT INTO messages (due, seq, exchange_id, exchange, routing_key, keys, header, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE = "DELETE FROM messages WHERE seq = ?"
_READ = (
    "SELECT due, seq, exchange_id, exchange, routing_key, keys, header, body FROM messages"
    " WHERE (due, seq) > (?, ?) ORDER BY due, seq LIMIT ?"
)

# Operation kinds in a batch.
_ADD, _REMOVE, _DROP, _EXCHANGE, _BARRIER = range(5)


class _Batch:
    __slots__ = ("number", "ops", "rows")

    def __init__(self) -> None:
        self.ops: list[tuple[Any, ...]] = []
        self.rows = 0
        self.number = 0  # given at handoff: batches are committed in this order


class _Read:
    """A read asked for: where, and which writes were submitted before it (they must show)."""

    __slots__ = ("after", "batch", "callback", "limit", "ops")

    def __init__(self, after: tuple[int, int], limit: int, callback: Callable[[list[DelayedRow]], None],
                 batch: _Batch) -> None:
        self.after = after
        self.limit = limit
        self.callback = callback
        self.batch = batch  # the batch that was open when it was asked, and how far it went
        self.ops = len(batch.ops)


class SqliteDelayStore(DelayStore):
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        notify: Notify,
        on_error: Callable[[BaseException], None] | None = None,
        fsync: bool = True,
    ) -> None:
        """Open (creating if needed) ``directory``/delayed.db; the directory is the store's data
        directory, locked by it. ``notify(fn)`` runs ``fn`` on the owner thread."""
        self.path = Path(directory) / FILE
        self._notify = notify
        self._on_error = on_error
        self._failed: BaseException | None = None
        self._closed = False
        self._batch = _Batch()
        self._handoff_scheduled = False
        self._submitted = 0
        self._committed = 0  # written by the writer thread; only ever grows
        self._barriers = 0  # submitted barriers whose callback has not run yet
        self._queue: queue_mod.SimpleQueue[_Batch | None] = queue_mod.SimpleQueue()
        # Reads run on a connection and thread of their own, so that they do not wait behind the
        # writes: they see what is committed, and the owner adds what its batches not yet
        # committed hold (``_unwritten``, by batch number; ``_written`` is the last committed).
        self._next_number = 1
        self._written = 0  # written by the writer thread; only ever grows
        self._unwritten: collections.deque[_Batch] = collections.deque()
        self._reads: queue_mod.SimpleQueue[_Read | None] = queue_mod.SimpleQueue()
        self._reads_out = 0
        self._conn = self._open(fsync)
        try:
            self._recovery = _recover(self._conn)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.path} is damaged or not a Lapine database ({exc})") from exc
        self._reader_conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._reader_conn.execute("PRAGMA query_only = 1")
        self._writer = threading.Thread(target=self._writer_main, name="lapine-delayed-writer", daemon=True)
        self._writer.start()
        self._reader = threading.Thread(target=self._reader_main, name="lapine-delayed-reader", daemon=True)
        self._reader.start()

    def _open(self, fsync: bool) -> sqlite3.Connection:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA page_size = 8192")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'OFF'}")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            for statement in _SCHEMA:
                conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        return conn

    # --- state -------------------------------------------------------------------------------

    @property
    def failed(self) -> BaseException | None:
        return self._failed

    def idle(self) -> bool:
        return self._submitted == self._committed and not self._barriers

    @property
    def backlog(self) -> int:
        return self._submitted - self._committed

    # --- owner-side batching -----------------------------------------------------------------

    def _append(self, op: tuple[Any, ...], rows: int = 1) -> None:
        if self._closed:
            raise StoreError("the delayed-message store is closed")
        batch = self._batch
        batch.ops.append(op)
        batch.rows += rows
        self._submitted += rows
        if batch.rows >= BATCH_MAX_OPS:
            self._handoff()
        elif not self._handoff_scheduled:
            self._handoff_scheduled = True
            self._notify(self._scheduled_handoff)

    def _scheduled_handoff(self) -> None:
        self._handoff_scheduled = False
        if not self._closed:
            self._handoff()

    def _handoff(self) -> None:
        if self._batch.ops:
            batch, self._batch = self._batch, _Batch()
            batch.number = self._next_number
            self._next_number += 1
            self._forget_written()
            self._unwritten.append(batch)
            self._queue.put(batch)

    def _forget_written(self) -> None:
        """Batches committed are no longer needed for reads (none is out that could want them)."""
        if self._reads_out:
            return
        written = self._written
        unwritten = self._unwritten
        while unwritten and unwritten[0].number <= written:
            unwritten.popleft()

    def submit_barrier(self, callback: Callback) -> None:
        self._barriers += 1

        def done() -> None:
            self._barriers -= 1
            callback()

        self._append((_BARRIER, done), 0)

    def add_exchange(self, exchange_id: int, vhost: str, name: str) -> None:
        self._append((_EXCHANGE, exchange_id, vhost, name))

    def add(self, row: DelayedRow) -> None:
        self._append((_ADD, row))

    def remove(self, seqs: Iterable[int]) -> None:
        seqs = list(seqs)
        if seqs:
            self._append((_REMOVE, seqs), len(seqs))

    def drop_exchange(self, exchange_id: int) -> None:
        self._append((_DROP, exchange_id))

    def read_after(
        self, after: tuple[int, int], limit: int, callback: Callable[[list[DelayedRow]], None]
    ) -> None:
        if self._closed:
            raise StoreError("the delayed-message store is closed")
        self._reads_out += 1
        self._reads.put(_Read(after, limit, callback, self._batch))

    def _read_done(self, read: _Read, written: int, rows: list[DelayedRow]) -> None:
        """On the owner: what the read found committed (up to batch ``written`` at least), and
        the rows of later batches submitted before the read, in (due, seq) order."""
        self._reads_out -= 1
        extra: list[DelayedRow] = []
        for batch in (*self._unwritten, self._batch):
            last = batch is read.batch  # later batches came after the read
            if not batch.number or batch.number > written:
                ops = batch.ops[: read.ops] if last else batch.ops
                extra.extend(op[1] for op in ops if op[0] == _ADD and (op[1].due, op[1].seq) > read.after)
            if last:
                break
        if extra:
            seen = {row.seq for row in rows}
            rows = sorted([*rows, *(row for row in extra if row.seq not in seen)])[: read.limit]
        self._forget_written()
        read.callback(rows)

    def recover(self) -> DelayRecovery:
        return self._recovery

    def close(self) -> None:
        """Write what was submitted, stop the writer and close the file (blocking)."""
        if self._closed:
            return
        self._handoff()
        self._closed = True
        self._queue.put(None)
        self._reads.put(None)
        self._writer.join()
        self._reader.join()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
            self._reader_conn.close()

    # --- the reader thread -------------------------------------------------------------------

    def _reader_main(self) -> None:
        conn = self._reader_conn
        while True:
            read = self._reads.get()
            if read is None:
                return
            # Read before the snapshot starts: the snapshot holds at least these batches.
            written = self._written
            try:
                found = [DelayedRow(*row) for row in conn.execute(_READ, (*read.after, read.limit))]
            except sqlite3.Error as exc:
                log.error("Reading delayed messages from %s failed: %s", self.path, exc)
                found = []
            self._notify(partial(self._read_done, read, written, found))

    # --- the writer thread -------------------------------------------------------------------

    def _writer_main(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            batches = [batch]
            stop = False
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue_mod.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batches.append(more)
            if self._failed is None:
                self._write(batches)
            if stop:
                return

    def _write(self, batches: list[_Batch]) -> None:
        conn = self._conn
        answers: list[Callback] = []
        rows = sum(batch.rows for batch in batches)
        try:
            conn.execute("BEGIN")
            adds: list[DelayedRow] = []
            for batch in batches:
                for op in batch.ops:
                    kind = op[0]
                    if kind == _ADD:
                        adds.append(op[1])
                        continue
                    if adds:
                        conn.executemany(_INSERT, adds)
                        adds = []
                    if kind == _REMOVE:
                        conn.executemany(_DELETE, ((seq,) for seq in op[1]))
                    elif kind == _DROP:
                        conn.execute("DELETE FROM messages WHERE exchange_id = ?", (op[1],))
                        conn.execute("DELETE FROM exchanges WHERE id = ?", (op[1],))
                    elif kind == _EXCHANGE:
                        conn.execute("INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?)", op[1:])
                    else:
                        answers.append(op[1])
            if adds:
                conn.executemany(_INSERT, adds)
            conn.execute("COMMIT")
            self._written = batches[-1].number
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._failed = exc
            log.error("Writing delayed messages to %s failed: %s", self.path, exc)
            on_error = self._on_error
            if on_error is not None:
                self._notify(partial(on_error, exc))
            return
        self._committed += rows
        if answers:
            self._notify(lambda: _run(answers))


def _run(callbacks: list[Callback]) -> None:
    for callback in callbacks:
        callback()


def _recover(conn: sqlite3.Connection) -> DelayRecovery:
    exchanges = {row[0]: (row[1], row[2]) for row in conn.execute("SELECT id, vhost, name FROM exchanges")}
    counts = dict(conn.execute("SELECT exchange_id, count(*) FROM messages GROUP BY exchange_id").fetchall())
    last_seq = conn.execute("SELECT max(seq) FROM messages").fetchone()[0] or 0
    last_exchange = max([*exchanges, *counts], default=0)
    return DelayRecovery(exchanges, counts, last_seq, last_exchange)
