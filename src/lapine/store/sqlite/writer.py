"""The writer thread: it applies the batches the owner hands over, in group commits.

The owner thread appends operations to an open batch that it alone touches, and hands the batch
to the writer at the end of the event-loop tick, when it is full, or when a blocking call needs
it. The writer takes every batch waiting (up to ``txn_max_rows`` operations), applies them in one
transaction, commits, then passes the batches' callbacks to the owner through ``post``. Within the
run of message operations between two other operations, it inserts first, then deletes, then
marks delivered: the broker never acks or marks a message before enqueueing it, nor reuses a seq
before a purge, so the result is the same, and a mark for a message acked in the same batch costs
nothing. The batch commits as a whole, so the reordering is never visible on disk. (A batch that
is a single statement commits without BEGIN/COMMIT, atomically all the same.)

When a transaction fails (a full or failing disk), the writer rolls it back, keeps its batches and
tries them again every ``retry_interval`` seconds, with whatever message operations arrive
meanwhile, until one commit succeeds (see lapine.store.base for what callers hear meanwhile).
"""

from __future__ import annotations

import contextlib
import logging
import queue as queue_mod
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from lapine.store.base import Callback, Notify, StoreError
from lapine.store.sqlite.segments import Applier, Segment

log = logging.getLogger(__name__)


@dataclass
class WriterStats:
    """Counters kept by the writer thread, for tests and the benchmark."""

    commits: int = 0  # writes of merged batches, each atomic: a transaction or a single statement
    batches: int = 0  # batches handed over by the owner
    rows: int = 0  # operations
    max_rows_per_commit: int = 0


class Op:
    """A step the writer runs in order, between runs of message operations."""

    __slots__ = ("blocking", "fn")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        # Its caller waits for it: if its write fails the caller hears so, and it is not retried.
        self.blocking = False

    def run(self, conn: sqlite3.Connection) -> None:
        self.fn(conn)


class Query(Op):
    """An Op whose result is handed to a callback once its batch has committed."""

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


class Waiter:
    """Wakes a blocked owner thread; set directly by the writer (the loop may be the one waiting)."""

    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None

    def done(self, error: BaseException | None) -> None:
        self.error = error
        self.event.set()


class Batch:
    __slots__ = ("callbacks", "rows", "steps", "waiters")

    def __init__(self, segment: Segment) -> None:
        self.steps: list[Segment | Op] = [segment]
        self.callbacks: list[Callback] = []
        self.waiters: list[Waiter] = []
        self.rows = 0



class Writer:
    """The thread that writes, and what it alone touches: the connection, its applier, the
    failure state and the counters. The owner hands batches over with ``hand`` and reads
    ``failed`` and ``committed``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        applier: Applier,
        *,
        notify: Notify,
        on_error: Callable[[BaseException], None] | None,
        on_recover: Callable[[], None] | None,
        retry_interval: float,
        txn_max_rows: int,
    ) -> None:
        self.conn = conn
        self._applier = applier
        self._notify = notify
        self._on_error = on_error
        self._on_recover = on_recover
        self._retry_interval = retry_interval
        self._txn_max_rows = txn_max_rows
        self.stats = WriterStats()
        self.failed: BaseException | None = None
        # Set by the owner to stop as a crash would: nothing more is committed or called back.
        self.abandoned = False
        self.committed = 0
        self._queue: queue_mod.SimpleQueue[Batch | None] = queue_mod.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="lapine-store-writer", daemon=True)
        self._thread.start()

    def hand(self, batch: Batch) -> None:
        self._queue.put(batch)

    def stop(self) -> None:
        """Write what was handed over (unless abandoned), then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def applier(self, conn: sqlite3.Connection) -> Applier:
        """The applier for the connection in use (writer thread only)."""
        if self._applier.conn is not conn:  # tests swap the connection for a failing one
            old, self._applier = self._applier, Applier(conn, self._applier.recovered)
            self._applier.seen = old.seen
        return self._applier

    def _main(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        retained: list[Batch] = []  # work whose write failed: tried again every retry_interval
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
                if self.failed is not None:
                    self._disarm(more, self.failed)
                batches.append(more)
                rows += more.rows
            retained = []
            if self.abandoned:
                self._drop(batches, self.failed)
            else:
                try:
                    self._write(batches, rows)
                except BaseException as exc:  # a storage error, or a bug: either way, stop confirming
                    self._write_failed(exc, batches)
                    retained = batches
                else:
                    if self.failed is not None:
                        self._recovered()
            if stop:
                return

    def _collect_until_retry(self, retained: list[Batch]) -> bool:
        """Wait for the next retry, adding the work that comes meanwhile; True when told to stop."""
        failed = self.failed
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

    def _write(self, batches: list[Batch], rows: int) -> None:
        conn = self.conn
        applier = self.applier(conn)
        plan: list[Segment | Op] = []
        pending: Segment | None = None
        for batch in batches:
            for step in batch.steps:
                if isinstance(step, Op):
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
        if self.abandoned:
            self._drop(batches, None)
            return
        # Every step costs a GIL round trip that a busy event loop makes slow (see the
        # statements' comment), BEGIN and COMMIT included. A single statement commits atomically
        # on its own, and reads and barriers need no transaction at all.
        writes = 0  # statements that write, definition changes counted as two
        for step in plan:
            if isinstance(step, Query):
                continue
            writes += 2 if isinstance(step, Op) else applier.statements(step)
        if writes == 0 or (writes == 1 and len(plan) == 1):
            for step in plan:
                if isinstance(step, Op):
                    step.run(conn)
                else:
                    applier.apply(step)
        else:
            conn.execute("BEGIN")
            try:
                for step in plan:
                    if isinstance(step, Op):
                        step.run(conn)
                    else:
                        applier.apply(step)
                if self.abandoned:
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
        self.committed += rows
        callbacks = []
        for batch in batches:
            callbacks.extend(batch.callbacks)
            for waiter in batch.waiters:
                waiter.done(None)
        if callbacks:
            self._post(partial(_run_callbacks, callbacks))

    def _post(self, fn: Callback) -> None:
        try:
            self._notify(fn)
        except RuntimeError:  # the event loop is closed: nobody is left to call back
            log.debug("store callback dropped: event loop closed")

    def _drop(self, batches: list[Batch], error: BaseException | None) -> None:
        # Never run the callbacks of unwritten work: a confirm would be a lie.
        for batch in batches:
            for waiter in batch.waiters:
                waiter.done(error or StoreError("the store was closed before this was written"))

    def _write_failed(self, exc: BaseException, batches: list[Batch]) -> None:
        if self.failed is None:
            log.error(
                "store write failed; nothing more is confirmed until a retry (every %gs) succeeds: %r",
                self._retry_interval,
                exc,
            )
            self.failed = exc
            if self._on_error is not None:
                self._post(partial(self._on_error, exc))
        else:
            log.debug("store write retry failed: %r", exc)
        if self.conn.in_transaction:  # a failed COMMIT may leave the transaction open
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
        for batch in batches:
            self._disarm(batch, exc)

    def _disarm(self, batch: Batch, error: BaseException) -> None:
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
        self.failed = None
        if self._on_recover is not None:
            self._post(self._on_recover)


def _answers_someone(step: Segment | Op) -> bool:
    return isinstance(step, Query) or (isinstance(step, Op) and step.blocking)


def _run_callbacks(callbacks: list[Callback]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # one broken callback must not cost the others their confirm
            log.exception("store completion callback failed")

