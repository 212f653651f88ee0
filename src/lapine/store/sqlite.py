"""The embedded store: stdlib sqlite3 in WAL mode, written by one thread in group commits.

Files in the data directory:

- ``lapine.db`` (+ ``-wal``): definitions and the messages that must survive a restart
  (persistent messages of durable queues). ``synchronous=FULL``: every commit fsyncs the WAL, so a
  completion callback, and therefore a publisher confirm, means the data is on disk. (``NORMAL``
  would skip that fsync in WAL mode and could lose confirmed messages on power loss.)
- ``transient.db``: every other message that is paged out of memory (non-persistent messages,
  messages of non-durable queues). It is attached to the same connection so it shares the batches,
  but it is never fsynced, never goes through the WAL, and is deleted at startup: that is how
  transient messages are "dropped at restart", for the cost of unlinking a file rather than
  scanning the message table for a flag.

A message row: the key, a delivered flag, ``info`` (the broker's expiry and two lengths), ``meta``
(exchange, routing key and content-header payload, concatenated as they came from the wire) and
the body: few columns, because each costs the writer per row about as much as the data does,
and small ones first, so that recovery reads no blob. One rowid table per file, keyed ``queue_id << 44 | seq``: an
integer primary key keeps the whole message (inline up to a page) in one B-tree, so one insert
and one delete per message, a queue's messages contiguous and in publish order, a page of them
one range scan. That bounds a queue id below 2**19 (ids of deleted queues are reused) and a seq
below 2**44 (17.6e12 publishes per queue).

A body of OUT_OF_LINE_BYTES or more goes to ``bodies`` with a reference count, and the message
row keeps its size and points at it; a trigger drops the body with the last reference. So a body
routed to several queues is written once, and message rows stay small whatever the bodies: the
count at recovery reads only them. Smaller bodies stay inline: a second row would cost more than
they do.

Threading (see lapine.store.base for the contract): the owner thread appends operations to an open
batch that it alone touches, and hands the batch to the writer thread at the end of the event-loop
tick (scheduled through ``notify``), when it is full, or when a blocking call needs it. The writer
takes every batch waiting (up to ``txn_max_rows`` operations), applies them in one transaction,
commits, then passes the batches' callbacks to the owner through ``notify``. Within the run of
message operations between two other operations, the writer inserts first, then deletes, then
marks delivered: the broker never acks or marks a message before enqueueing it, nor reuses a seq
before a purge, so the result is the same, and a mark for a message acked in the same batch costs
nothing. The batch commits as a whole, so the reordering is never visible on disk. (A batch
that is a single statement commits without BEGIN/COMMIT, atomically all the same.)

When a transaction fails (a full or failing disk), the writer rolls it back, keeps its batches and
tries them again every ``retry_interval`` seconds, with whatever message operations arrive
meanwhile, until one commit succeeds (see lapine.store.base for what callers hear meanwhile). At
open, ``PRAGMA quick_check`` reads every table but the out-of-line bodies, so that a damaged file
stops the start with its name rather than failing the store at its first read of a bad page.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import json
import logging
import os
import queue as queue_mod
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar, cast

from lapine.amqp.codec import LongStr, Timestamp
from lapine.store.base import (
    BindingDef,
    Callback,
    Definitions,
    ExchangeDef,
    GlobalParameterDef,
    Notify,
    ParameterDef,
    PermissionDef,
    PolicyDef,
    QueueDef,
    QueueRecovery,
    QueueStats,
    Store,
    StoredMessage,
    StoreError,
    StoreFailedError,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)
from lapine.store.datadir import DataDirectory

log = logging.getLogger(__name__)

_R = TypeVar("_R")

DB_FILE = "lapine.db"
TRANSIENT_FILE = "transient.db"
SCHEMA_VERSION = 1

SEQ_BITS = 44
SEQ_MASK = (1 << SEQ_BITS) - 1
MAX_QUEUE_ID = (1 << (63 - SEQ_BITS)) - 1
# Bodies this large go to the bodies table, out of the message rows (see the module docstring).
OUT_OF_LINE_BYTES = 1024
# RabbitMQ's hard limit on a message; SQLite refuses values over 1e9 bytes, and a refusal in the
# writer would fail the store, so bigger messages are refused at enqueue.
MAX_MESSAGE_BYTES = 512 << 20
# A page read is one value made of the page's headers and bodies (see _READ_SQL): kept well
# under SQLite's 1e9-byte limit on a value, whatever the caller's limits.
READ_CAP_BYTES = 256 << 20
# expires shares an integer column with two length bytes (see _info).
EXPIRES_LIMIT = 1 << 46

# Twice SQLite's default: faster at every figure of the benchmark in alternating runs with 4096.
PAGE_SIZE = 8192
# The owner hands a batch over when it reaches this many operations even within one loop tick,
# so that one busy tick cannot build an unbounded batch.
BATCH_MAX_ROWS = 2000
# The writer merges waiting batches into one transaction up to about this many operations.
TXN_MAX_ROWS = 10000
# After a failed write the writer tries the same work again this often (seconds).
RETRY_INTERVAL = 1.0

_DEFINITIONS_DDL = """
CREATE TABLE IF NOT EXISTS vhosts(
    name TEXT PRIMARY KEY, description TEXT NOT NULL, tags TEXT NOT NULL, default_queue_type TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users(
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, hashing_algorithm TEXT NOT NULL,
    tags TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS permissions(
    user TEXT NOT NULL, vhost TEXT NOT NULL,
    configure TEXT NOT NULL, write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY(user, vhost)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS permissions_vhost ON permissions(vhost);
CREATE TABLE IF NOT EXISTS topic_permissions(
    user TEXT NOT NULL, vhost TEXT NOT NULL, exchange TEXT NOT NULL,
    write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY(user, vhost, exchange)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exchanges(
    vhost TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, durable INTEGER NOT NULL,
    auto_delete INTEGER NOT NULL, internal INTEGER NOT NULL, arguments TEXT NOT NULL,
    PRIMARY KEY(vhost, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues(
    id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL, durable INTEGER NOT NULL,
    auto_delete INTEGER NOT NULL, arguments TEXT NOT NULL,
    UNIQUE(vhost, name)
);
CREATE TABLE IF NOT EXISTS bindings(
    vhost TEXT NOT NULL, source TEXT NOT NULL, destination_type TEXT NOT NULL,
    destination TEXT NOT NULL, routing_key TEXT NOT NULL, arguments TEXT NOT NULL,
    PRIMARY KEY(vhost, source, destination_type, destination, routing_key, arguments)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bindings_destination ON bindings(vhost, destination_type, destination);
CREATE TABLE IF NOT EXISTS policies(
    vhost TEXT NOT NULL, name TEXT NOT NULL, pattern TEXT NOT NULL, apply_to TEXT NOT NULL,
    definition TEXT NOT NULL, priority INTEGER NOT NULL,
    PRIMARY KEY(vhost, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parameters(
    vhost TEXT NOT NULL, component TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY(vhost, component, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS global_parameters(
    name TEXT PRIMARY KEY, value TEXT NOT NULL
) WITHOUT ROWID;
"""

# {s} is the schema: "main" (lapine.db) or "t" (transient.db).
_MESSAGES_DDL = """
CREATE TABLE IF NOT EXISTS {s}.messages(
    k INTEGER PRIMARY KEY, delivered INTEGER NOT NULL DEFAULT 0, info INTEGER NOT NULL,
    body_id INTEGER, body_size INTEGER, meta BLOB NOT NULL, body BLOB
);
CREATE TABLE IF NOT EXISTS {s}.bodies(id INTEGER PRIMARY KEY, refs INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS {s}.release_body AFTER DELETE ON messages
WHEN old.body_id IS NOT NULL BEGIN
    UPDATE bodies SET refs = refs - 1 WHERE id = old.body_id;
    DELETE FROM bodies WHERE id = old.body_id AND refs <= 0;
END;
"""

# Why the message statements look the way they do: sqlite3 releases the GIL around every
# sqlite3_step() and must take it back afterwards. While the event loop is busy running Python,
# taking it back waits up to sys.getswitchinterval() (5 ms), so executemany (one step per row)
# falls to a few thousand rows/s under load: the GIL convoy effect. Each batch therefore costs a
# handful of steps, whatever its size: inserts go in multi-row statements of up to
# _MAX_CHUNK rows (padded to a power of two with NULL rows that the WHERE drops, so that few
# distinct statements stay prepared), deletes and marks in one statement over a JSON array, and a
# page read returns one row (see _READ_SQL).

# The lists of a segment, per schema; flat: each holds the columns of its rows one after another.
_BODIES, _INS, _REFS, _DELS, _MARKS = range(5)
_T = 5  # offset of the transient schema's lists
_LISTS = 10
_SCHEMAS = ("main", "t")
_INSERT_COLUMNS = {
    _BODIES: "bodies(id, refs, body)",
    _INS: "messages(k, info, meta, body)",
    _REFS: "messages(k, info, body_id, body_size, meta)",
}
_WIDTH = {_BODIES: 3, _INS: 4, _REFS: 5}
# Where the writer finds the metas and bodies it measures (see _Applier.largest): column offsets.
_METAS = {_INS: 2, _REFS: 4}
_BODY_COLUMN = {_INS: 3, _BODIES: 2}
_MAX_CHUNK = 1024  # a 1024-row insert statement takes about 2 MB prepared
_DELETE_SQL = "DELETE FROM {s}.messages WHERE k IN (SELECT value FROM json_each(?))"
_MARK_SQL = "UPDATE {s}.messages SET delivered = 1 WHERE k IN (SELECT value FROM json_each(?))"

# The length of a message's body without loading it: length() of a plain column reads only the
# record header, so neither recovery nor a byte-capped page read touches the bodies it skips.
_BODY_LENGTH = "CASE WHEN m.body_id IS NULL THEN length(m.body) ELSE m.body_size END"
_STATS_SQL = (
    "SELECT count(*), min(m.k), max(m.k), coalesce(sum(" + _BODY_LENGTH + "), 0), "
    "coalesce(max(length(m.meta)), 0), coalesce(max(" + _BODY_LENGTH + "), 0) "
    "FROM {s}.messages AS m WHERE m.k BETWEEN ? AND ?"
)
# A page comes back as one row: keys, delivered flags and expiries as JSON arrays; the lengths
# of each message's exchange, routing key, header and body as one list; and all those bytes
# concatenated in one blob (|| and group_concat copy bytes as they are; the CAST turns the text
# back into a blob). The aggregates all see the rows in the same order.
_PAGE_COLUMNS = (
    "SELECT json_group_array(m.k), json_group_array(m.delivered), json_group_array(nullif(m.info >> 16, 0) - 1), "
    "'[' || group_concat((m.info >> 8 & 255) || ',' || (m.info & 255) || ',' || "
    "(length(m.meta) - (m.info >> 8 & 255) - (m.info & 255)) || ',' || " + _BODY_LENGTH + ") || ']', "
    "CAST(group_concat(m.meta || coalesce(m.body, x.body), '') AS BLOB) "
)
_READ_SQL = (
    _PAGE_COLUMNS + "FROM (SELECT * FROM {s}.messages WHERE k > ? AND k <= ? ORDER BY k LIMIT ?) AS m "
    "LEFT JOIN {s}.bodies AS x ON x.id = m.body_id"
)
# The same, capped by body bytes: the running total is computed from lengths alone, so bodies
# past the cap are never loaded. Slower (a window and a join), so only used when asked.
_READ_CAPPED_SQL = (
    "WITH page AS (SELECT k, bl, sum(bl) OVER (ORDER BY k ROWS UNBOUNDED PRECEDING) AS run FROM ("
    "SELECT m.k AS k, " + _BODY_LENGTH + " AS bl FROM {s}.messages AS m "
    "WHERE m.k > ? AND m.k <= ? ORDER BY m.k LIMIT ?)) "
    + _PAGE_COLUMNS
    + "FROM page AS p JOIN {s}.messages AS m ON m.k = p.k LEFT JOIN {s}.bodies AS x ON x.id = m.body_id "
    "WHERE p.run - p.bl < ?"
)

Segment = list[list[Any]]


def _new_segment() -> Segment:
    return [[] for _ in range(_LISTS)]


def _chunk_sizes(limit: int) -> tuple[int, ...]:
    sizes, size = [], 1
    while size <= _MAX_CHUNK and size * max(_WIDTH.values()) <= limit:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def _insert_sql(schema: str, kind: int, rows: int) -> str:
    width = _WIDTH[kind]
    values = ",".join(["(" + ",".join("?" * width) + ")"] * rows)
    columns = ", ".join(f"column{i + 1}" for i in range(width))
    return (
        f"INSERT INTO {schema}.{_INSERT_COLUMNS[kind]} SELECT {columns} "
        f"FROM (VALUES {values}) WHERE column1 IS NOT NULL"
    )


def _info(exchange: bytes, routing_key: bytes, expires: int | None) -> int:
    """The small fields of a message row in one integer: the expiry and the lengths that split
    ``meta`` (exchange, routing key and header, concatenated) back apart."""
    lengths = len(exchange) << 8 | len(routing_key)
    if lengths > 0xFFFF or len(routing_key) > 255:
        raise ValueError("exchange and routing key must be shortstrs (255 bytes at most)")
    if expires is None:
        return lengths
    if not 0 <= expires < EXPIRES_LIMIT:
        raise ValueError(f"expires {expires} out of range")
    return (expires + 1) << 16 | lengths


def _key_range(queue_id: int) -> tuple[int, int]:
    base = queue_id << SEQ_BITS
    return base, base | SEQ_MASK


@dataclass
class WriterStats:
    """Counters kept by the writer thread, for tests and the benchmark."""

    commits: int = 0  # writes of merged batches, each atomic: a transaction or a single statement
    batches: int = 0  # batches handed over by the owner
    rows: int = 0  # operations
    max_rows_per_commit: int = 0


class _Op:
    """A step the writer runs in order, between runs of message operations."""

    __slots__ = ("blocking", "fn")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        # Its caller waits for it: if its write fails the caller hears so, and it is not retried.
        self.blocking = False

    def run(self, conn: sqlite3.Connection) -> None:
        self.fn(conn)


class _Query(_Op):
    """An _Op whose result is handed to a callback once its batch has committed."""

    __slots__ = ("callback", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], callback: Callable[[Any], None] | None = None) -> None:
        super().__init__(fn)
        self.result: Any = None
        self.callback = callback

    def run(self, conn: sqlite3.Connection) -> None:
        self.result = self.fn(conn)

    def deliver(self) -> None:
        if self.callback is not None:
            self.callback(self.result)


class _Waiter:
    """Wakes a blocked owner thread; set directly by the writer (the loop may be the one waiting)."""

    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None

    def done(self, error: BaseException | None) -> None:
        self.error = error
        self.event.set()


class _Batch:
    __slots__ = ("callbacks", "rows", "steps", "waiters")

    def __init__(self, segment: Segment) -> None:
        self.steps: list[Segment | _Op] = [segment]
        self.callbacks: list[Callback] = []
        self.waiters: list[_Waiter] = []
        self.rows = 0


class SqliteStore(Store):
    def __init__(
        self,
        data_dir: DataDirectory | str | os.PathLike[str],
        *,
        notify: Notify,
        on_error: Callable[[BaseException], None] | None = None,
        wal_autocheckpoint: int = 1000,
        batch_max_rows: int = BATCH_MAX_ROWS,
        txn_max_rows: int = TXN_MAX_ROWS,
        fsync: bool = True,
        on_recover: Callable[[], None] | None = None,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        """Open (creating if needed) the store in ``data_dir`` and start its writer thread.

        ``data_dir`` is a locked DataDirectory (left open by close()) or a path (locked here and
        released by close()). ``notify(fn)`` must arrange for ``fn()`` to run on the owner thread:
        the broker passes ``loop.call_soon_threadsafe``. ``on_error(exc)`` runs there once if the
        store fails, and ``on_recover()`` once a retry of the failed writes has committed (they
        are retried every ``retry_interval`` seconds). ``wal_autocheckpoint=0`` turns checkpoints
        off and ``fsync=False`` makes commits atomic but not durable against power loss: both for
        tests only.
        """
        if isinstance(data_dir, DataDirectory):
            self._datadir, self._owns_datadir = data_dir, False
        else:
            self._datadir, self._owns_datadir = DataDirectory(data_dir), True
        self._notify = notify
        self._on_error = on_error
        self._on_recover = on_recover
        self._retry_interval = retry_interval
        self._batch_max_rows = batch_max_rows
        self._txn_max_rows = txn_max_rows
        self.stats = WriterStats()
        self._failed: BaseException | None = None
        self._closed = False
        self._abandoned = False
        self._submitted = 0
        self._committed = 0
        self._handoff_scheduled = False
        self._queue: queue_mod.SimpleQueue[_Batch | None] = queue_mod.SimpleQueue()

        # Owner-side registry of queue ids, so that message operations need no lookup in SQL.
        self._queue_ids: dict[tuple[str, str], int] = {}
        self._durable_ids: set[int] = set()
        self._transient_ids: set[int] = set()
        self._has_transient: set[int] = set()
        self._free_ids: list[int] = []
        self._next_id = 1
        self._next_body_id = [1, 1]  # main, transient

        try:
            self._conn = self._open_database(wal_autocheckpoint, fsync)
            self._applier = _Applier(self._conn, None if self._recovered_messages else (0, 0))
        except BaseException:
            if self._owns_datadir:
                self._datadir.close()
            raise
        self._open_batch()
        self._writer = threading.Thread(target=self._writer_main, name="lapine-store-writer", daemon=True)
        self._writer.start()

    # --- opening -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._datadir.file(DB_FILE)

    def _open_database(self, wal_autocheckpoint: int, fsync: bool) -> sqlite3.Connection:
        transient = self._datadir.file(TRANSIENT_FILE)
        for stale in (transient, transient.with_name(TRANSIENT_FILE + "-journal")):
            stale.unlink(missing_ok=True)
        self._datadir.private_file(TRANSIENT_FILE)
        conn = sqlite3.connect(
            self._datadir.private_file(DB_FILE), isolation_level=None, check_same_thread=False, cached_statements=256
        )
        try:
            self._set_up(conn, transient, wal_autocheckpoint, fsync)
        except sqlite3.OperationalError as exc:
            conn.close()
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not SQLite, or damaged: say which file, and what
            conn.close()
            problem = f"{self.path} is damaged or not a Lapine database ({exc}); restore it or move it away"
            raise StoreError(problem) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_up(self, conn: sqlite3.Connection, transient: Path, wal_autocheckpoint: int, fsync: bool) -> None:
        """Settings, an integrity check, the schema and the queue registry, on a fresh connection."""
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # takes effect only on a new file
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"cannot put {self.path} in WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'OFF'}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint)}")
        # After a checkpoint the WAL is reused from its start; this bounds what stays on disk.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute("PRAGMA cache_size = -32768")
        conn.execute("ATTACH DATABASE ? AS t", (str(transient),))
        conn.execute(f"PRAGMA t.page_size = {PAGE_SIZE}")
        # Transient data is thrown away at startup: no fsync and no WAL; a rollback journal
        # kept in memory still lets a failed statement roll back.
        conn.execute("PRAGMA t.journal_mode = MEMORY")
        conn.execute("PRAGMA t.synchronous = OFF")
        conn.execute("PRAGMA t.cache_size = -8192")
        version = conn.execute("PRAGMA main.user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}; this Lapine knows {SCHEMA_VERSION}")
        self._quick_check(conn)
        # Not executescript: it would commit; schema and registry recovery form one transaction.
        conn.execute("BEGIN")
        for statement in _split_sql(_DEFINITIONS_DDL + _MESSAGES_DDL.format(s="main")):
            conn.execute(statement)
        for statement in _split_sql(_MESSAGES_DDL.format(s="t")):
            conn.execute(statement)
        conn.execute(f"PRAGMA main.user_version = {SCHEMA_VERSION}")
        self._recover_registry(conn)
        conn.execute("COMMIT")

    @staticmethod
    def _quick_check(conn: sqlite3.Connection) -> None:
        """Refuse a damaged file at start rather than fail the store at its first read of the bad
        page. Every table but the out-of-line bodies: recovery reads the message rows anyway, and
        reading every body would make the start as slow as the backlog is large."""
        tables = [row[0] for row in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table != "bodies":
                problems = [row[0] for row in conn.execute(f'PRAGMA main.quick_check("{table}")')]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(f"table {table}: " + "; ".join(problems[:3]))

    def _recover_registry(self, conn: sqlite3.Connection) -> None:
        ids = []
        for queue_id, vhost, name in conn.execute("SELECT id, vhost, name FROM queues"):
            self._queue_ids[(vhost, name)] = queue_id
            self._durable_ids.add(queue_id)
            ids.append(queue_id)
        top = max(ids, default=0)
        self._next_id = top + 1
        self._free_ids = sorted(set(range(1, top + 1)) - self._durable_ids)
        self._next_body_id[0] = (conn.execute("SELECT max(id) FROM main.bodies").fetchone()[0] or 0) + 1
        # Messages of a queue that no longer exists cannot arise (delete_queue removes both in
        # one transaction), but an id about to be reused must not inherit any: skip-scan the
        # distinct queue ids (one index seek each, no table scan) and drop strays.
        key = 0
        self._recovered_messages = False
        while True:
            row = conn.execute("SELECT k FROM main.messages WHERE k >= ? ORDER BY k LIMIT 1", (key,)).fetchone()
            if row is None:
                break
            queue_id = row[0] >> SEQ_BITS
            self._recovered_messages = True
            if queue_id not in self._durable_ids:
                log.warning("dropping messages of unknown queue id %d in %s", queue_id, self.path)
                conn.execute("DELETE FROM main.messages WHERE k BETWEEN ? AND ?", _key_range(queue_id))
            if queue_id >= MAX_QUEUE_ID:
                break
            key = (queue_id + 1) << SEQ_BITS

    # --- owner-side batching -----------------------------------------------------------------

    def _open_batch(self) -> None:
        segment = _new_segment()
        self._batch = _Batch(segment)
        self._bind_segment(segment)

    def _bind_segment(self, segment: Segment) -> None:
        # The hot operations append straight to these lists.
        self._segment = segment
        self._ins, self._t_ins = segment[_INS], segment[_T + _INS]
        self._dels, self._t_dels = segment[_DELS], segment[_T + _DELS]
        self._marks, self._t_marks = segment[_MARKS], segment[_T + _MARKS]

    def _schedule_handoff(self) -> None:
        self._handoff_scheduled = True
        self._notify(self._scheduled_handoff)

    def _scheduled_handoff(self) -> None:
        self._handoff_scheduled = False
        if not self._closed:
            self._handoff()

    def _handoff(self) -> None:
        batch = self._batch
        if batch.rows or batch.callbacks or batch.waiters or len(batch.steps) > 1:
            self._open_batch()
            self._queue.put(batch)

    def _added(self, rows: int) -> None:
        batch = self._batch
        batch.rows += rows
        self._submitted += rows
        if batch.rows >= self._batch_max_rows:
            self._handoff()
        elif not self._handoff_scheduled:
            self._schedule_handoff()

    def _check(self) -> None:
        if self._failed is not None:
            raise StoreFailedError(f"the store failed: {self._failed}") from self._failed
        self._check_open()

    def _check_open(self) -> None:
        """For the message operations, which a failing store still takes: they are written with
        the retry that succeeds."""
        if self._closed:
            raise StoreError("the store is closed")

    def _add_op(self, op: _Op, rows: int = 1, callback: Callback | None = None) -> None:
        batch = self._batch
        batch.steps.append(op)
        if callback is not None:
            # Before _added, which may hand the batch over: the callback must travel with it.
            batch.callbacks.append(callback)
        segment = _new_segment()
        batch.steps.append(segment)
        self._bind_segment(segment)
        self._added(rows)

    def _submit(self, op: _Op, callback: Callback | None, *, durable: bool = True) -> None:
        """Queue a (definition) operation: with a callback, return at once; else block if durable."""
        op.blocking = callback is None and durable
        self._add_op(op, 1, callback)
        if op.blocking:
            self._wait()

    def _wait(self) -> None:
        waiter = _Waiter()
        self._batch.waiters.append(waiter)
        self._handoff()
        waiter.event.wait()
        if waiter.error is not None:
            raise StoreFailedError(f"the store failed: {waiter.error}") from waiter.error

    def _query(self, fn: Callable[[sqlite3.Connection], _R]) -> _R:
        self._check()
        query = _Query(fn)
        self._add_op(query, 0)
        self._wait()
        return cast(_R, query.result)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def failed(self) -> BaseException | None:
        return self._failed

    @property
    def backlog(self) -> int:
        return self._submitted - self._committed

    def close(self) -> None:
        if self._closed:
            return
        if self._failed is None:
            with contextlib.suppress(StoreError):
                self.sync()
        self._shutdown()

    def abandon(self) -> None:
        """Stop as a crash would: nothing pending is committed and no further callback runs.

        For tests; a transaction the writer is in the middle of is rolled back.
        """
        if self._closed:
            return
        self._abandoned = True
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        with contextlib.suppress(OSError):
            self._datadir.file(TRANSIENT_FILE).unlink(missing_ok=True)
        if self._owns_datadir:
            self._datadir.close()

    # --- completion --------------------------------------------------------------------------

    def submit_barrier(self, callback: Callback) -> None:
        self._check()
        self._batch.callbacks.append(callback)
        if not self._handoff_scheduled:
            self._schedule_handoff()

    def sync(self) -> None:
        self._check()
        self._wait()

    # --- definitions -------------------------------------------------------------------------

    def load_definitions(self) -> Definitions:
        return self._query(_load_definitions)

    def put_vhost(self, vhost: VHostDef, callback: Callback | None = None) -> None:
        self._check()
        row = _params(vhost.name, vhost.description, json.dumps(list(vhost.tags)), vhost.default_queue_type)
        self._submit(_Op(lambda conn: conn.execute("INSERT OR REPLACE INTO vhosts VALUES (?, ?, ?, ?)", row)), callback)

    def delete_vhost(self, name: str, callback: Callback | None = None) -> None:
        self._check()
        _params(name)
        doomed = [queue_id for (vhost, _), queue_id in self._queue_ids.items() if vhost == name]

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM vhosts WHERE name = ?", (name,))
            for table in (
                "permissions",
                "topic_permissions",
                "exchanges",
                "queues",
                "bindings",
                "policies",
                "parameters",
            ):
                conn.execute(f"DELETE FROM {table} WHERE vhost = ?", (name,))
            for queue_id in doomed:
                _delete_messages(conn, queue_id)

        self._submit(_Op(run), callback)
        for (vhost, queue_name), _queue_id in list(self._queue_ids.items()):
            if vhost == name:
                self._forget_queue(vhost, queue_name)

    def put_user(self, user: UserDef, callback: Callback | None = None) -> None:
        self._check()
        row = _params(user.name, user.password_hash, user.hashing_algorithm, json.dumps(list(user.tags)))
        self._submit(_Op(lambda conn: conn.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?)", row)), callback)

    def delete_user(self, name: str, callback: Callback | None = None) -> None:
        self._check()
        _params(name)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM users WHERE name = ?", (name,))
            conn.execute("DELETE FROM permissions WHERE user = ?", (name,))
            conn.execute("DELETE FROM topic_permissions WHERE user = ?", (name,))

        self._submit(_Op(run), callback)

    def put_permission(self, permission: PermissionDef, callback: Callback | None = None) -> None:
        self._check()
        p = permission
        row = _params(p.user, p.vhost, p.configure, p.write, p.read)
        self._submit(
            _Op(lambda conn: conn.execute("INSERT OR REPLACE INTO permissions VALUES (?, ?, ?, ?, ?)", row)), callback
        )

    def delete_permission(self, user: str, vhost: str, callback: Callback | None = None) -> None:
        self._check()
        key = _params(user, vhost)
        self._submit(
            _Op(lambda conn: conn.execute("DELETE FROM permissions WHERE user = ? AND vhost = ?", key)), callback
        )

    def put_topic_permission(self, permission: TopicPermissionDef, callback: Callback | None = None) -> None:
        self._check()
        p = permission
        row = _params(p.user, p.vhost, p.exchange, p.write, p.read)
        sql = "INSERT OR REPLACE INTO topic_permissions VALUES (?, ?, ?, ?, ?)"
        self._submit(_Op(lambda conn: conn.execute(sql, row)), callback)

    def delete_topic_permission(self, user: str, vhost: str, exchange: str, callback: Callback | None = None) -> None:
        self._check()
        key = _params(user, vhost, exchange)
        sql = "DELETE FROM topic_permissions WHERE user = ? AND vhost = ? AND exchange = ?"
        self._submit(_Op(lambda conn: conn.execute(sql, key)), callback)

    def put_exchange(self, exchange: ExchangeDef, callback: Callback | None = None) -> None:
        self._check()
        if not exchange.durable:
            if callback is not None:
                self.submit_barrier(callback)
            return
        e = exchange
        row = _params(e.vhost, e.name, e.type, e.durable, e.auto_delete, e.internal, encode_value(e.arguments))
        sql = "INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?, ?, ?, ?, ?)"
        self._submit(_Op(lambda conn: conn.execute(sql, row)), callback)

    def delete_exchange(self, vhost: str, name: str, callback: Callback | None = None) -> None:
        self._check()
        _params(vhost, name)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM exchanges WHERE vhost = ? AND name = ?", (vhost, name))
            conn.execute("DELETE FROM bindings WHERE vhost = ? AND source = ?", (vhost, name))
            conn.execute(
                "DELETE FROM bindings WHERE vhost = ? AND destination_type = 'exchange' AND destination = ?",
                (vhost, name),
            )

        self._submit(_Op(run), callback)

    def put_queue(self, queue: QueueDef, callback: Callback | None = None) -> int:
        if queue.durable or callback is not None:
            self._check()
        else:
            self._check_open()  # nothing to write: a failing store still hands out the id
        # Validate before registering anything, so that a bad queue leaves no trace.
        arguments = encode_value(queue.arguments) if queue.durable else ""
        _params(queue.vhost, queue.name)
        key = (queue.vhost, queue.name)
        queue_id = self._queue_ids.get(key)
        new = queue_id is None
        if queue_id is None:
            queue_id = self._allocate_queue_id()
            self._queue_ids[key] = queue_id
        if not queue.durable:
            self._transient_ids.add(queue_id)
            if callback is not None:
                self.submit_barrier(callback)
            return queue_id
        self._transient_ids.discard(queue_id)
        self._durable_ids.add(queue_id)
        row = (queue_id, queue.vhost, queue.name, True, queue.auto_delete, arguments)
        try:
            self._submit(
                _Op(lambda conn: conn.execute("INSERT OR REPLACE INTO queues VALUES (?, ?, ?, ?, ?, ?)", row)), callback
            )
        except StoreFailedError:
            if new:  # the declaration failed: its id must not linger
                self._forget_queue(queue.vhost, queue.name)
            raise
        return queue_id

    def _allocate_queue_id(self) -> int:
        if self._free_ids:
            return heapq.heappop(self._free_ids)
        if self._next_id > MAX_QUEUE_ID:
            raise StoreError(f"too many queues: the store holds at most {MAX_QUEUE_ID}")
        self._next_id += 1
        return self._next_id - 1

    def _forget_queue(self, vhost: str, name: str) -> int | None:
        queue_id = self._queue_ids.pop((vhost, name), None)
        if queue_id is not None:
            self._durable_ids.discard(queue_id)
            self._transient_ids.discard(queue_id)
            self._has_transient.discard(queue_id)
            # Reuse is safe: the deletion is ahead of any later use of the id in the writer's FIFO.
            heapq.heappush(self._free_ids, queue_id)
        return queue_id

    def delete_queue(self, vhost: str, name: str, callback: Callback | None = None) -> None:
        _params(vhost, name)
        queue_id = self._queue_ids.get((vhost, name))
        durable = queue_id is None or queue_id in self._durable_ids
        if durable or callback is not None:
            self._check()
        else:
            self._check_open()  # a non-durable queue's messages go with the retry that succeeds

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM queues WHERE vhost = ? AND name = ?", (vhost, name))
            conn.execute(
                "DELETE FROM bindings WHERE vhost = ? AND destination_type = 'queue' AND destination = ?",
                (vhost, name),
            )
            if queue_id is not None:
                _delete_messages(conn, queue_id)

        self._submit(_Op(run), callback, durable=durable)
        self._forget_queue(vhost, name)

    def queue_id(self, vhost: str, name: str) -> int | None:
        return self._queue_ids.get((vhost, name))

    def put_binding(self, binding: BindingDef, callback: Callback | None = None) -> None:
        self._check()
        row = _binding_row(binding)
        sql = "INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?, ?)"
        self._submit(_Op(lambda conn: conn.execute(sql, row)), callback)

    def delete_binding(self, binding: BindingDef, callback: Callback | None = None) -> None:
        self._check()
        row = _binding_row(binding)
        sql = (
            "DELETE FROM bindings WHERE vhost = ? AND source = ? AND destination_type = ? "
            "AND destination = ? AND routing_key = ? AND arguments = ?"
        )
        self._submit(_Op(lambda conn: conn.execute(sql, row)), callback)

    def put_policy(self, policy: PolicyDef, callback: Callback | None = None) -> None:
        self._check()
        p = policy
        row = _params(p.vhost, p.name, p.pattern, p.apply_to, encode_value(p.definition), p.priority)
        sql = "INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?, ?, ?)"
        self._submit(_Op(lambda conn: conn.execute(sql, row)), callback)

    def delete_policy(self, vhost: str, name: str, callback: Callback | None = None) -> None:
        self._check()
        key = _params(vhost, name)
        self._submit(_Op(lambda conn: conn.execute("DELETE FROM policies WHERE vhost = ? AND name = ?", key)), callback)

    def put_parameter(self, parameter: ParameterDef, callback: Callback | None = None) -> None:
        self._check()
        p = parameter
        row = _params(p.vhost, p.component, p.name, encode_value(p.value))
        sql = "INSERT OR REPLACE INTO parameters VALUES (?, ?, ?, ?)"
        self._submit(_Op(lambda conn: conn.execute(sql, row)), callback)

    def delete_parameter(self, vhost: str, component: str, name: str, callback: Callback | None = None) -> None:
        self._check()
        key = _params(vhost, component, name)
        sql = "DELETE FROM parameters WHERE vhost = ? AND component = ? AND name = ?"
        self._submit(_Op(lambda conn: conn.execute(sql, key)), callback)

    def put_global_parameter(self, parameter: GlobalParameterDef, callback: Callback | None = None) -> None:
        self._check()
        row = _params(parameter.name, encode_value(parameter.value))
        sql = "INSERT OR REPLACE INTO global_parameters VALUES (?, ?)"
        self._submit(_Op(lambda conn: conn.execute(sql, row)), callback)

    def delete_global_parameter(self, name: str, callback: Callback | None = None) -> None:
        self._check()
        key = _params(name)
        self._submit(_Op(lambda conn: conn.execute("DELETE FROM global_parameters WHERE name = ?", key)), callback)

    # --- messages ----------------------------------------------------------------------------

    def enqueue(
        self,
        queue_id: int,
        seq: int,
        exchange: bytes,
        routing_key: bytes,
        header: bytes,
        body: bytes,
        *,
        persistent: bool = True,
        expires: int | None = None,
    ) -> None:
        if self._closed:
            self._check_open()
        if not 0 <= seq <= SEQ_MASK:
            raise ValueError(f"seq {seq} out of range")
        if len(body) > MAX_MESSAGE_BYTES:
            raise ValueError(f"message body of {len(body)} bytes is over the store's {MAX_MESSAGE_BYTES}")
        if persistent and queue_id in self._durable_ids:
            rows, which = self._ins, 0
        elif queue_id in self._transient_ids or queue_id in self._durable_ids:
            rows, which = self._t_ins, 1
            self._has_transient.add(queue_id)
        else:
            raise KeyError(f"unknown queue id {queue_id}")
        # _info(), inlined for the common case: this is the publish hot path.
        info = len(exchange) << 8 | len(routing_key)
        if info > 0xFFFF or len(routing_key) > 255 or expires is not None:
            info = _info(exchange, routing_key, expires)
        if len(body) >= OUT_OF_LINE_BYTES:
            self._out_of_line(which, [((queue_id << SEQ_BITS) | seq, info)], exchange + routing_key + header, body)
            return
        rows += ((queue_id << SEQ_BITS) | seq, info, exchange + routing_key + header, body)
        batch = self._batch
        batch.rows += 1
        self._submitted += 1
        if batch.rows >= self._batch_max_rows:
            self._handoff()
        elif not self._handoff_scheduled:
            self._schedule_handoff()

    def enqueue_shared(
        self,
        targets: Sequence[tuple[int, int, int | None]],
        exchange: bytes,
        routing_key: bytes,
        header: bytes,
        body: bytes,
        *,
        persistent: bool = True,
    ) -> None:
        if len(body) < OUT_OF_LINE_BYTES:
            for queue_id, seq, expires in targets:
                self.enqueue(queue_id, seq, exchange, routing_key, header, body, persistent=persistent, expires=expires)
            return
        self._check_open()
        if len(body) > MAX_MESSAGE_BYTES:
            raise ValueError(f"message body of {len(body)} bytes is over the store's {MAX_MESSAGE_BYTES}")
        durable: list[tuple[int, int]] = []
        transient: list[tuple[int, int]] = []
        for queue_id, seq, expires in targets:
            if not 0 <= seq <= SEQ_MASK:
                raise ValueError(f"seq {seq} out of range")
            info = _info(exchange, routing_key, expires)
            if persistent and queue_id in self._durable_ids:
                durable.append(((queue_id << SEQ_BITS) | seq, info))
            elif queue_id in self._transient_ids or queue_id in self._durable_ids:
                transient.append(((queue_id << SEQ_BITS) | seq, info))
            else:
                raise KeyError(f"unknown queue id {queue_id}")
        self._has_transient.update(key >> SEQ_BITS for key, _ in transient)
        meta = exchange + routing_key + header
        for which, keys in ((0, durable), (1, transient)):
            if keys:
                self._out_of_line(which, keys, meta, body, added=False)
        self._added(len(targets))

    def _out_of_line(
        self, which: int, keys: list[tuple[int, int]], meta: bytes, body: bytes, *, added: bool = True
    ) -> None:
        """Store a body once in ``bodies`` (of the main or the transient file), and a row per queue
        pointing at it; ``keys`` are (key, info) pairs."""
        body_id = self._next_body_id[which]
        self._next_body_id[which] = body_id + 1
        offset = _T * which
        segment = self._segment
        segment[offset + _BODIES] += (body_id, len(keys), body)
        refs = segment[offset + _REFS]
        size = len(body)
        for key, info in keys:
            refs += (key, info, body_id, size, meta)
        if added:
            self._added(len(keys))

    def ack(self, queue_id: int, seqs: Iterable[int]) -> None:
        self._check_open()
        keys = list(map((queue_id << SEQ_BITS).__or__, seqs))
        if keys:
            if queue_id in self._durable_ids:
                self._dels += keys
            if queue_id in self._has_transient:
                self._t_dels += keys
            self._added(len(keys))

    def mark_delivered(self, queue_id: int, seqs: Iterable[int]) -> None:
        self._check_open()
        keys = list(map((queue_id << SEQ_BITS).__or__, seqs))
        if keys:
            if queue_id in self._durable_ids:
                self._marks += keys
            if queue_id in self._has_transient:
                self._t_marks += keys
            self._added(len(keys))

    def purge(self, queue_id: int) -> None:
        self._check_open()
        self._add_op(_Op(partial(_delete_messages, queue_id=queue_id)))

    # --- reads -------------------------------------------------------------------------------

    def _reader(
        self, queue_id: int, after_seq: int, limit: int, max_bytes: int | None
    ) -> Callable[[sqlite3.Connection], list[StoredMessage]]:
        if limit <= 0 or (max_bytes is not None and max_bytes <= 0):
            raise ValueError("limit and max_bytes must be positive")
        base = queue_id << SEQ_BITS
        # after_seq = -1 reads from the first message; past SEQ_MASK the range is empty.
        lo, hi = base + min(max(after_seq, -1), SEQ_MASK), base | SEQ_MASK
        schemas = ["main"] if queue_id in self._durable_ids else []
        if queue_id in self._has_transient:
            schemas.append("t")

        def read(conn: sqlite3.Connection) -> list[StoredMessage]:
            return _read_messages(self._writer_applier(conn), schemas, lo, hi, limit, max_bytes)

        return read

    def read_messages_async(
        self,
        queue_id: int,
        after_seq: int,
        limit: int,
        callback: Callable[[list[StoredMessage]], None],
        max_bytes: int | None = None,
    ) -> None:
        self._check()
        query = _Query(self._reader(queue_id, after_seq, limit, max_bytes), callback)
        self._add_op(query, 0, query.deliver)

    def read_messages(
        self, queue_id: int, after_seq: int, limit: int, max_bytes: int | None = None
    ) -> list[StoredMessage]:
        self._check()
        return self._query(self._reader(queue_id, after_seq, limit, max_bytes))

    def queue_stats(self, queue_id: int) -> QueueStats:
        def run(conn: sqlite3.Connection) -> QueueStats:
            count = size = 0
            for schema in ("main", "t"):
                n, _, _, b, _, _ = conn.execute(_STATS_SQL.format(s=schema), _key_range(queue_id)).fetchone()
                count, size = count + n, size + b
            return QueueStats(count, size)

        return self._query(run)

    def recover_queues(self) -> dict[int, QueueRecovery]:
        ids = sorted(self._durable_ids)

        def run(conn: sqlite3.Connection) -> dict[int, QueueRecovery]:
            found = {}
            sql = _STATS_SQL.format(s="main")
            largest_meta = largest_body = 0
            for queue_id in ids:
                count, low, high, size, meta, body = conn.execute(sql, _key_range(queue_id)).fetchone()
                largest_meta, largest_body = max(largest_meta, meta), max(largest_body, body)
                found[queue_id] = QueueRecovery(
                    queue_id,
                    count,
                    size,
                    None if low is None else low & SEQ_MASK,
                    None if high is None else high & SEQ_MASK,
                )
            self._writer_applier(conn).recovered = (largest_meta, largest_body)
            return found

        return self._query(run)

    # --- the writer thread -------------------------------------------------------------------

    def _writer_main(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        retained: list[_Batch] = []  # work whose write failed: tried again every retry_interval
        while True:
            stop = False
            if retained:
                batches = retained
                stop = self._collect_until_retry(batches)
            else:
                first = get()
                if first is None:
                    return
                batches = [first]
            rows = sum(batch.rows for batch in batches)
            while not stop and rows < self._txn_max_rows:
                try:
                    more = get_nowait()
                except queue_mod.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if self._failed is not None:
                    self._disarm(more, self._failed)
                batches.append(more)
                rows += more.rows
            retained = []
            if self._abandoned:
                self._drop(batches, self._failed)
            else:
                try:
                    self._write(batches, rows)
                except BaseException as exc:  # a storage error, or a bug: either way, stop confirming
                    self._write_failed(exc, batches)
                    retained = batches
                else:
                    if self._failed is not None:
                        self._recovered()
            if stop:
                return

    def _collect_until_retry(self, retained: list[_Batch]) -> bool:
        """Wait for the next retry, adding the work that comes meanwhile; True when told to stop."""
        failed = self._failed
        assert failed is not None
        deadline = time.monotonic() + self._retry_interval
        while (left := deadline - time.monotonic()) > 0:
            try:
                more = self._queue.get(timeout=left)
            except queue_mod.Empty:
                return False
            if more is None:
                return True
            self._disarm(more, failed)
            retained.append(more)
        return False

    def _write(self, batches: list[_Batch], rows: int) -> None:
        conn = self._conn
        applier = self._writer_applier(conn)
        plan: list[Segment | _Op] = []
        pending: Segment | None = None
        for batch in batches:
            for step in batch.steps:
                if isinstance(step, _Op):
                    if pending is not None:
                        plan.append(pending)
                        pending = None
                    plan.append(step)
                elif pending is None:
                    pending = step
                else:
                    # Consecutive runs merge: one statement per list for all of them.
                    for into, more in zip(pending, step, strict=True):
                        if more:
                            into.extend(more)
        if pending is not None:
            plan.append(pending)
        if self._abandoned:
            self._drop(batches, None)
            return
        # Every step costs a GIL round trip that a busy event loop makes slow (see the
        # statements' comment), BEGIN and COMMIT included. A single statement commits atomically
        # on its own, and reads and barriers need no transaction at all.
        writes = 0  # statements that write, definition changes counted as two
        for step in plan:
            if isinstance(step, _Query):
                continue
            writes += 2 if isinstance(step, _Op) else applier.statements(step)
        if writes == 0 or (writes == 1 and len(plan) == 1):
            for step in plan:
                if isinstance(step, _Op):
                    step.run(conn)
                else:
                    applier.apply(step)
        else:
            conn.execute("BEGIN")
            try:
                for step in plan:
                    if isinstance(step, _Op):
                        step.run(conn)
                    else:
                        applier.apply(step)
                if self._abandoned:
                    conn.execute("ROLLBACK")
                    self._drop(batches, None)
                    return
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        stats = self.stats
        stats.commits += 1
        stats.batches += len(batches)
        stats.rows += rows
        stats.max_rows_per_commit = max(stats.max_rows_per_commit, rows)
        self._committed += rows
        callbacks = []
        for batch in batches:
            callbacks.extend(batch.callbacks)
            for waiter in batch.waiters:
                waiter.done(None)
        if callbacks:
            self._post(partial(_run_callbacks, callbacks))

    def _writer_applier(self, conn: sqlite3.Connection) -> _Applier:
        if self._applier.conn is not conn:  # tests swap the connection for a failing one
            old, self._applier = self._applier, _Applier(conn, self._applier.recovered)
            self._applier.seen = old.seen
        return self._applier

    def _post(self, fn: Callback) -> None:
        try:
            self._notify(fn)
        except RuntimeError:  # the event loop is closed: nobody is left to call back
            log.debug("store callback dropped: event loop closed")

    def _drop(self, batches: list[_Batch], error: BaseException | None) -> None:
        # Never run the callbacks of unwritten work: a confirm would be a lie.
        for batch in batches:
            for waiter in batch.waiters:
                waiter.done(error or StoreError("the store was closed before this was written"))

    def _write_failed(self, exc: BaseException, batches: list[_Batch]) -> None:
        if self._failed is None:
            log.error(
                "store write failed; nothing more is confirmed until a retry (every %gs) succeeds: %r",
                self._retry_interval,
                exc,
            )
            self._failed = exc
            if self._on_error is not None:
                self._post(partial(self._on_error, exc))
        else:
            log.debug("store write retry failed: %r", exc)
        if self._conn.in_transaction:  # a failed COMMIT may leave the transaction open
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        for batch in batches:
            self._disarm(batch, exc)

    def _disarm(self, batch: _Batch, error: BaseException) -> None:
        """Work caught by a failure is kept and written by the retry that succeeds, but nobody
        hears of it again: a confirm or a declare-ok sent later would come after the publisher or
        the client was told of the failure. Blocking callers get the error now, and their
        operations and every read are dropped: the caller has moved on."""
        for waiter in batch.waiters:
            waiter.done(error)
        batch.waiters = []
        batch.callbacks = []
        batch.steps = [step for step in batch.steps if not _answers_someone(step)]

    def _recovered(self) -> None:
        log.warning("store writes succeed again: what failed is now written")
        self._failed = None
        if self._on_recover is not None:
            self._post(self._on_recover)


def _answers_someone(step: Segment | _Op) -> bool:
    return isinstance(step, _Query) or (isinstance(step, _Op) and step.blocking)


def _split_sql(script: str) -> list[str]:
    """Split DDL into statements, keeping a trigger's body (which holds semicolons) whole."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


class _Applier:
    """Runs a segment's lists against the connection (writer thread only)."""

    def __init__(self, conn: sqlite3.Connection, recovered: tuple[int, int] | None) -> None:
        self.conn = conn
        # The largest meta and body inserted since the start, and among the recovered messages
        # (None until recover_queues has scanned them): their sums bound a message, and pages
        # are sized by that.
        self.seen = (0, 0)
        self.recovered = recovered
        self.sizes = _chunk_sizes(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        self.sql: dict[tuple[int, int], str] = {}
        self.deletes = [_DELETE_SQL.format(s=schema) for schema in _SCHEMAS]
        self.marks = [_MARK_SQL.format(s=schema) for schema in _SCHEMAS]

    def apply(self, segment: Segment) -> None:
        for offset, schema in ((0, 0), (_T, 1)):
            for kind in (_BODIES, _INS, _REFS):
                if segment[offset + kind]:
                    self.insert(schema, kind, segment[offset + kind])
            # Deletes before marks: a mark for a message acked in the same batch then costs nothing.
            if segment[offset + _DELS]:
                self.conn.execute(self.deletes[schema], (json.dumps(segment[offset + _DELS]),))
            if segment[offset + _MARKS]:
                self.conn.execute(self.marks[schema], (json.dumps(segment[offset + _MARKS]),))

    def statements(self, segment: Segment) -> int:
        """How many statements apply() will run for this segment."""
        biggest = self.sizes[-1]
        count = 0
        for offset in (0, _T):
            for kind in (_BODIES, _INS, _REFS):
                rows = len(segment[offset + kind]) // _WIDTH[kind]
                count += -(-rows // biggest)
            count += bool(segment[offset + _DELS]) + bool(segment[offset + _MARKS])
        return count

    @property
    def largest(self) -> int | None:
        if self.recovered is None:
            return None
        return max(self.seen[0], self.recovered[0]) + max(self.seen[1], self.recovered[1])

    def saw(self, meta: int, body: int) -> None:
        self.seen = (max(self.seen[0], meta), max(self.seen[1], body))

    def insert(self, schema: int, kind: int, flat: list[Any]) -> None:
        width = _WIDTH[kind]
        if kind in _METAS:
            self.saw(max(map(len, flat[_METAS[kind] :: width])), 0)
        if kind in _BODY_COLUMN:
            self.saw(0, max(map(len, flat[_BODY_COLUMN[kind] :: width])))
        sizes = self.sizes
        biggest = sizes[-1]
        rows, pos = len(flat) // width, 0
        while rows:
            take = min(rows, biggest)
            size = next(s for s in sizes if s >= take)
            end = pos + take * width
            params = flat[pos:end]
            if take < size:
                params.extend([None] * ((size - take) * width))
            sql = self.sql.get((schema * 16 + kind, size))
            if sql is None:
                sql = self.sql[(schema * 16 + kind, size)] = _insert_sql(_SCHEMAS[schema], kind, size)
            self.conn.execute(sql, params)
            rows -= take
            pos = end


def _run_callbacks(callbacks: list[Callback]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # one broken callback must not cost the others their confirm
            log.exception("store completion callback failed")


def _delete_messages(conn: sqlite3.Connection, queue_id: int) -> None:
    for schema in ("main", "t"):
        conn.execute(f"DELETE FROM {schema}.messages WHERE k BETWEEN ? AND ?", _key_range(queue_id))


def _read_messages(
    applier: _Applier, schemas: list[str], lo: int, hi: int, limit: int, max_bytes: int | None
) -> list[StoredMessage]:
    """A page of a queue whose messages may be in both files: each file is read on its own, and
    the merge stops at the first seq one of them may have left out (a file's read stops at its
    own count or byte cap), so that the page is every message of the queue in its seq range."""
    conn = applier.conn
    parts = []
    bound = SEQ_MASK  # every file's messages up to here are in the parts
    for schema in schemas:
        if max_bytes is None and applier.largest is not None:
            # The fast query cannot stop at a byte count, so bound the page by the largest message.
            safe = min(limit, max(1, READ_CAP_BYTES // max(applier.largest, 1)))
            row = conn.execute(_READ_SQL.format(s=schema), (lo, hi, safe)).fetchone()
            part = _decode_page(*row)
            cut = len(part) == safe
        else:
            cap = READ_CAP_BYTES if max_bytes is None else min(max_bytes, READ_CAP_BYTES)
            row = conn.execute(_READ_CAPPED_SQL.format(s=schema), (lo, hi, limit, cap)).fetchone()
            part = _decode_page(*row)
            cut = len(part) == limit or sum(len(m.body) for m in part) >= cap
        if cut:
            bound = min(bound, part[-1].seq)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    merged: list[StoredMessage] = []
    size = 0
    for message in heapq.merge(*parts):
        if message.seq > bound or len(merged) == limit or (max_bytes is not None and size >= max_bytes):
            break
        merged.append(message)
        size += len(message.body)
    return merged


def _decode_page(
    keys: str, delivered: str, expires: str, lengths: str | None, blob: bytes | None
) -> list[StoredMessage]:
    # Only C-level loops (map, slices, accumulate): this runs once per paged message and holds
    # the GIL the event loop is waiting for.
    if lengths is None or blob is None:
        return []
    ends = list(accumulate(json.loads(lengths)))
    starts = [0]
    starts += ends[:-1]
    pieces = list(map(blob.__getitem__, map(slice, starts, ends)))
    page = list(
        map(
            StoredMessage._make,
            zip(
                map(SEQ_MASK.__and__, json.loads(keys)),
                pieces[0::4],
                pieces[1::4],
                pieces[2::4],
                pieces[3::4],
                map(bool, json.loads(delivered)),
                json.loads(expires),
                strict=True,
            ),
        )
    )
    # Aggregates promise no order; they keep the subquery's key order in practice, making this O(n).
    page.sort(key=itemgetter(0))
    return page


def _binding_row(b: BindingDef) -> tuple[Any, ...]:
    if b.destination_type not in ("queue", "exchange"):
        raise ValueError(f"destination_type must be 'queue' or 'exchange', not {b.destination_type!r}")
    return _params(b.vhost, b.source, b.destination_type, b.destination, b.routing_key, encode_value(b.arguments))


def _params(*values: Any) -> tuple[Any, ...]:
    """Check on the caller's thread what SQLite would reject in the writer's, failing the store:
    text that is not valid Unicode (lone surrogates)."""
    for value in values:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"cannot store {value!r}: not valid Unicode") from exc
    return values


def _load_definitions(conn: sqlite3.Connection) -> Definitions:
    d = Definitions()
    for name, description, tags, default_queue_type in conn.execute("SELECT * FROM vhosts ORDER BY name"):
        d.vhosts.append(VHostDef(name, description, json.loads(tags), default_queue_type))
    for name, password_hash, algorithm, tags in conn.execute("SELECT * FROM users ORDER BY name"):
        d.users.append(UserDef(name, password_hash, algorithm, json.loads(tags)))
    for row in conn.execute("SELECT * FROM permissions ORDER BY user, vhost"):
        d.permissions.append(PermissionDef(*row))
    for row in conn.execute("SELECT * FROM topic_permissions ORDER BY user, vhost, exchange"):
        d.topic_permissions.append(TopicPermissionDef(*row))
    for vhost, name, type_, durable, auto_delete, internal, arguments in conn.execute(
        "SELECT * FROM exchanges ORDER BY vhost, name"
    ):
        d.exchanges.append(
            ExchangeDef(vhost, name, type_, bool(durable), bool(auto_delete), bool(internal), decode_value(arguments))
        )
    for queue_id, vhost, name, durable, auto_delete, arguments in conn.execute(
        "SELECT * FROM queues ORDER BY vhost, name"
    ):
        d.queues.append(QueueDef(vhost, name, bool(durable), bool(auto_delete), decode_value(arguments), queue_id))
    for vhost, source, destination_type, destination, routing_key, arguments in conn.execute(
        "SELECT * FROM bindings ORDER BY vhost, source, destination_type, destination, routing_key"
    ):
        d.bindings.append(
            BindingDef(vhost, source, destination, destination_type, routing_key, decode_value(arguments))
        )
    for vhost, name, pattern, apply_to, definition, priority in conn.execute(
        "SELECT * FROM policies ORDER BY vhost, name"
    ):
        d.policies.append(PolicyDef(vhost, name, pattern, apply_to, decode_value(definition), priority))
    for vhost, component, name, value in conn.execute("SELECT * FROM parameters ORDER BY vhost, component, name"):
        d.parameters.append(ParameterDef(vhost, component, name, decode_value(value)))
    for name, value in conn.execute("SELECT * FROM global_parameters ORDER BY name"):
        d.global_parameters.append(GlobalParameterDef(name, decode_value(value)))
    return d


# --- AMQP field values as tagged JSON ---------------------------------------------------------
# Plain JSON would confuse bytes with str, int with bool, lose Decimal and datetime, and not
# round-trip NaN. Each value becomes [tag, payload]. The codec's LongStr and Timestamp keep their
# type, so an argument goes back on the wire with the field type it came with. The text is
# canonical (sorted keys), so equal argument tables give equal strings, which binding identity
# relies on; it is ASCII, so strings holding surrogate escapes survive.


def encode_value(value: Any) -> str:
    return json.dumps(_tag(value), separators=(",", ":"), sort_keys=True)


def decode_value(text: str) -> Any:
    return _untag(json.loads(text))


def _tag(v: Any) -> list[Any]:
    if v is None:
        return ["V", None]
    if isinstance(v, Timestamp):
        return ["P", int(v)]
    if isinstance(v, bool):
        return ["t", v]
    if isinstance(v, int):
        return ["I", int(v)]
    if isinstance(v, float):
        return ["F", repr(v)]
    if isinstance(v, str):
        return ["S", v]
    if isinstance(v, LongStr):
        return ["L", base64.b64encode(v).decode("ascii")]
    if isinstance(v, bytes | bytearray | memoryview):
        return ["x", base64.b64encode(bytes(v)).decode("ascii")]
    if isinstance(v, Decimal):
        return ["D", str(v)]
    if isinstance(v, datetime):
        return ["T", [v.isoformat(), v.fold]]
    if isinstance(v, Mapping):
        for key in v:
            if not isinstance(key, str):
                raise TypeError(f"table keys must be str, not {type(key).__name__}")
        return ["M", {key: _tag(item) for key, item in v.items()}]
    if isinstance(v, list | tuple):
        return ["A", [_tag(item) for item in v]]
    raise TypeError(f"cannot store a value of type {type(v).__name__}")


def _untag(node: list[Any]) -> Any:
    tag, payload = node
    if tag in ("S", "I", "t", "V"):
        return payload
    if tag == "F":
        return float(payload)
    if tag == "x":
        return base64.b64decode(payload)
    if tag == "L":
        return LongStr(base64.b64decode(payload))
    if tag == "P":
        return Timestamp(payload)
    if tag == "D":
        return Decimal(payload)
    if tag == "T":
        text, fold = payload
        return datetime.fromisoformat(text).replace(fold=fold)
    if tag == "M":
        return {key: _untag(item) for key, item in payload.items()}
    if tag == "A":
        return [_untag(item) for item in payload]
    raise ValueError(f"unknown value tag {tag!r}")
