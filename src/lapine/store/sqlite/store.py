"""SqliteStore: the store's API on the owner thread (the event loop's).

Operations are appended to an open batch that the owner alone touches and handed to the writer
thread (writer.py) at the end of the event-loop tick (scheduled through ``notify``), when the batch
is full, or when a blocking call needs it. The queue-id registry lives here, so that message
operations need no lookup in SQL. At open, ``PRAGMA quick_check`` reads every table but the
out-of-line bodies, so that a damaged file stops the start with its name rather than failing the
store at its first read of a bad page. See schema.py for the files and the rows.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

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
from lapine.store.sqlite import definitions, pages
from lapine.store.sqlite.definitions import Run, params
from lapine.store.sqlite.schema import (
    DB_FILE,
    DEFINITIONS_DDL,
    MAX_MESSAGE_BYTES,
    MAX_QUEUE_ID,
    MESSAGES_DDL,
    OUT_OF_LINE_BYTES,
    PAGE_SIZE,
    SCHEMA_VERSION,
    SEQ_BITS,
    SEQ_MASK,
    TRANSIENT_FILE,
    delete_messages,
    key_range,
    split_sql,
)
from lapine.store.sqlite.segments import BODIES, DELS, INS, MARKS, REFS, Applier, Segment, T, message_info, new_segment
from lapine.store.sqlite.values import encode_value
from lapine.store.sqlite.writer import Batch, Op, Query, Waiter, Writer, WriterStats

log = logging.getLogger(__name__)

_R = TypeVar("_R")

# The owner hands a batch over when it reaches this many operations even within one loop tick,
# so that one busy tick cannot build an unbounded batch.
BATCH_MAX_ROWS = 2000
# The writer merges waiting batches into one transaction up to about this many operations.
TXN_MAX_ROWS = 10000
# After a failed write the writer tries the same work again this often (seconds).
RETRY_INTERVAL = 1.0


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
        self._batch_max_rows = batch_max_rows
        self._closed = False
        self._submitted = 0
        self._handoff_scheduled = False

        # Owner-side registry of queue ids, so that message operations need no lookup in SQL.
        self._queue_ids: dict[tuple[str, str], int] = {}
        self._durable_ids: set[int] = set()
        self._transient_ids: set[int] = set()
        self._has_transient: set[int] = set()
        self._free_ids: list[int] = []
        self._next_id = 1
        self._next_body_id = [1, 1]  # main, transient

        try:
            conn = self._open_database(wal_autocheckpoint, fsync)
        except BaseException:
            if self._owns_datadir:
                self._datadir.close()
            raise
        self._open_batch()
        applier = Applier(conn, None if self._recovered_messages else (0, 0))
        self._writer = Writer(
            conn,
            applier,
            notify=notify,
            on_error=on_error,
            on_recover=on_recover,
            retry_interval=retry_interval,
            txn_max_rows=txn_max_rows,
        )

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
        for statement in split_sql(DEFINITIONS_DDL + MESSAGES_DDL.format(s="main")):
            conn.execute(statement)
        for statement in split_sql(MESSAGES_DDL.format(s="t")):
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
                conn.execute("DELETE FROM main.messages WHERE k BETWEEN ? AND ?", key_range(queue_id))
            if queue_id >= MAX_QUEUE_ID:
                break
            key = (queue_id + 1) << SEQ_BITS

    # --- owner-side batching -----------------------------------------------------------------

    def _open_batch(self) -> None:
        segment = new_segment()
        self._batch = Batch(segment)
        self._bind_segment(segment)

    def _bind_segment(self, segment: Segment) -> None:
        # The hot operations append straight to these lists.
        self._segment = segment
        self._ins, self._t_ins = segment[INS], segment[T + INS]
        self._dels, self._t_dels = segment[DELS], segment[T + DELS]
        self._marks, self._t_marks = segment[MARKS], segment[T + MARKS]

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
            self._writer.hand(batch)

    def _added(self, rows: int) -> None:
        batch = self._batch
        batch.rows += rows
        self._submitted += rows
        if batch.rows >= self._batch_max_rows:
            self._handoff()
        elif not self._handoff_scheduled:
            self._schedule_handoff()

    def _check(self) -> None:
        if self._writer.failed is not None:
            raise StoreFailedError(f"the store failed: {self._writer.failed}") from self._writer.failed
        self._check_open()

    def _check_open(self) -> None:
        """For the message operations, which a failing store still takes: they are written with
        the retry that succeeds."""
        if self._closed:
            raise StoreError("the store is closed")

    def _add_op(self, op: Op, rows: int = 1, callback: Callback | None = None) -> None:
        batch = self._batch
        batch.steps.append(op)
        if callback is not None:
            # Before _added, which may hand the batch over: the callback must travel with it.
            batch.callbacks.append(callback)
        segment = new_segment()
        batch.steps.append(segment)
        self._bind_segment(segment)
        self._added(rows)

    def _submit(self, op: Op, callback: Callback | None, *, durable: bool = True) -> None:
        """Queue a (definition) operation: with a callback, return at once; else block if durable."""
        op.blocking = callback is None and durable
        self._add_op(op, 1, callback)
        if op.blocking:
            self._wait()

    def _wait(self) -> None:
        waiter = Waiter()
        self._batch.waiters.append(waiter)
        self._handoff()
        waiter.event.wait()
        if waiter.error is not None:
            raise StoreFailedError(f"the store failed: {waiter.error}") from waiter.error

    def _query(self, fn: Callable[[sqlite3.Connection], _R]) -> _R:
        self._check()
        query = Query(fn)
        self._add_op(query, 0)
        self._wait()
        return cast(_R, query.result)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def failed(self) -> BaseException | None:
        return self._writer.failed

    @property
    def stats(self) -> WriterStats:
        return self._writer.stats

    @property
    def backlog(self) -> int:
        return self._submitted - self._writer.committed

    def close(self) -> None:
        if self._closed:
            return
        if self._writer.failed is None:
            with contextlib.suppress(StoreError):
                self.sync()
        self._shutdown()

    def abandon(self) -> None:
        """Stop as a crash would: nothing pending is committed and no further callback runs.

        For tests; a transaction the writer is in the middle of is rolled back.
        """
        if self._closed:
            return
        self._writer.abandoned = True
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        self._writer.stop()
        with contextlib.suppress(sqlite3.Error):
            self._writer.conn.close()
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
        return self._query(definitions.load_definitions)

    def _define(self, run: Run, callback: Callback | None) -> None:
        self._submit(Op(run), callback)

    def put_vhost(self, vhost: VHostDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_vhost(vhost), callback)

    def delete_vhost(self, name: str, callback: Callback | None = None) -> None:
        self._check()
        doomed = [queue_id for (vhost, _), queue_id in self._queue_ids.items() if vhost == name]
        self._define(definitions.delete_vhost(name, doomed), callback)
        for vhost, queue_name in list(self._queue_ids):
            if vhost == name:
                self._forget_queue(vhost, queue_name)

    def put_user(self, user: UserDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_user(user), callback)

    def delete_user(self, name: str, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.delete_user(name), callback)

    def put_permission(self, permission: PermissionDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_permission(permission), callback)

    def delete_permission(self, user: str, vhost: str, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.delete_permission(user, vhost), callback)

    def put_topic_permission(self, permission: TopicPermissionDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_topic_permission(permission), callback)

    def delete_topic_permission(self, user: str, vhost: str, exchange: str, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.delete_topic_permission(user, vhost, exchange), callback)

    def put_exchange(self, exchange: ExchangeDef, callback: Callback | None = None) -> None:
        self._check()
        if not exchange.durable:
            if callback is not None:
                self.submit_barrier(callback)
            return
        self._define(definitions.put_exchange(exchange), callback)

    def delete_exchange(self, vhost: str, name: str, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.delete_exchange(vhost, name), callback)

    def put_queue(self, queue: QueueDef, callback: Callback | None = None) -> int:
        if queue.durable or callback is not None:
            self._check()
        else:
            self._check_open()  # nothing to write: a failing store still hands out the id
        # Validate before registering anything, so that a bad queue leaves no trace.
        arguments = encode_value(queue.arguments) if queue.durable else ""
        params(queue.vhost, queue.name)
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
        try:
            self._define(definitions.put_queue(queue_id, queue, arguments), callback)
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
        params(vhost, name)
        queue_id = self._queue_ids.get((vhost, name))
        durable = queue_id is None or queue_id in self._durable_ids
        if durable or callback is not None:
            self._check()
        else:
            self._check_open()  # a non-durable queue's messages go with the retry that succeeds
        self._submit(Op(definitions.delete_queue(vhost, name, queue_id)), callback, durable=durable)
        self._forget_queue(vhost, name)

    def queue_id(self, vhost: str, name: str) -> int | None:
        return self._queue_ids.get((vhost, name))

    def put_binding(self, binding: BindingDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_binding(binding), callback)

    def delete_binding(self, binding: BindingDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.delete_binding(binding), callback)

    def put_policy(self, policy: PolicyDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_policy(policy), callback)

    def delete_policy(self, vhost: str, name: str, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.delete_policy(vhost, name), callback)

    def put_parameter(self, parameter: ParameterDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_parameter(parameter), callback)

    def delete_parameter(self, vhost: str, component: str, name: str, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.delete_parameter(vhost, component, name), callback)

    def put_global_parameter(self, parameter: GlobalParameterDef, callback: Callback | None = None) -> None:
        self._check()
        self._define(definitions.put_global_parameter(parameter), callback)

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
        # message_info(), inlined for the common case: this is the publish hot path.
        info = len(exchange) << 8 | len(routing_key)
        if info > 0xFFFF or len(routing_key) > 255 or expires is not None:
            info = message_info(exchange, routing_key, expires)
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

    def _out_of_line(self, which: int, keys: list[tuple[int, int]], meta: bytes, body: bytes) -> None:
        """Store a body once in ``bodies`` (of the main or the transient file), and a row per queue
        pointing at it; ``keys`` are (key, info) pairs."""
        body_id = self._next_body_id[which]
        self._next_body_id[which] = body_id + 1
        offset = T * which
        segment = self._segment
        segment[offset + BODIES] += (body_id, len(keys), body)
        refs = segment[offset + REFS]
        size = len(body)
        for key, info in keys:
            refs += (key, info, body_id, size, meta)
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
        self._add_op(Op(partial(delete_messages, queue_id=queue_id)))

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
            return pages.read_messages(self._writer.applier(conn), schemas, lo, hi, limit, max_bytes)

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
        query = Query(self._reader(queue_id, after_seq, limit, max_bytes), callback)
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
                n, _, _, b, _, _ = conn.execute(pages.STATS_SQL.format(s=schema), key_range(queue_id)).fetchone()
                count, size = count + n, size + b
            return QueueStats(count, size)

        return self._query(run)

    def recover_queues(self) -> dict[int, QueueRecovery]:
        ids = sorted(self._durable_ids)

        def run(conn: sqlite3.Connection) -> dict[int, QueueRecovery]:
            found = {}
            sql = pages.STATS_SQL.format(s="main")
            largest_meta = largest_body = 0
            for queue_id in ids:
                count, low, high, size, meta, body = conn.execute(sql, key_range(queue_id)).fetchone()
                largest_meta, largest_body = max(largest_meta, meta), max(largest_body, body)
                found[queue_id] = QueueRecovery(
                    queue_id,
                    count,
                    size,
                    None if low is None else low & SEQ_MASK,
                    None if high is None else high & SEQ_MASK,
                )
            self._writer.applier(conn).recovered = (largest_meta, largest_body)
            return found

        return self._query(run)
