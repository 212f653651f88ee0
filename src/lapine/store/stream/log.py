"""A stream's log: offsets handed out at once, chunks written and fsync'd by the log's own thread.

The owner (the broker's thread) calls ``append`` for each message: the message gets its offset at
once and joins the batch of this loop turn, which is handed to the I/O thread in one piece and
becomes one chunk (or a few, for a large batch) with one fdatasync. What the owner learns from
the thread (committed offset, segments, first offset) comes back through ``notify`` callbacks,
so the owner's view needs no lock; reads, timestamp lookups and retention are jobs on the same
thread, answered the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol, TypeVar

from lapine.store.stream import chunk
from lapine.store.stream.bloom import DEFAULT_SIZE, may_contain
from lapine.store.stream.files import SegmentFiles
from lapine.store.stream.record import PendingRecord, StreamRecord
from lapine.store.stream.retention import Retention, SegmentExtent, segments_to_drop
from lapine.store.stream.segment import Segment

log = logging.getLogger("lapine.stream")
T = TypeVar("T")

DEFAULT_MAX_SEGMENT_BYTES = 500_000_000  # RabbitMQ's x-stream-max-segment-size-bytes default
CHUNK_MAX_BYTES = 1 << 20
RETRY_INTERVAL = 1.0

# A job runs on the log's thread and returns what to run on the owner's thread, if anything.
Job = Callable[[], Callable[[], None] | None]
Notify = Callable[[Callable[[], object]], object]


class Worker(Protocol):
    def submit(self, job: Job) -> None: ...

    def stop(self, *, wait: bool = True) -> None: ...


class ThreadWorker:
    """A thread that runs a log's jobs in order; their answers go to the owner through ``notify``."""

    def __init__(self, notify: Notify, name: str = "lapine-stream") -> None:
        self._notify = notify
        self._jobs: deque[Job | None] = deque()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._ready:
            self._jobs.append(job)
            self._ready.notify()

    def stop(self, *, wait: bool = True) -> None:
        """No more jobs: the thread ends after those submitted (``wait``: block until it has)."""
        with self._ready:
            self._jobs.append(None)
            self._ready.notify()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                job = self._jobs.popleft()
            if job is None:
                return
            try:
                answer = job()
            except Exception:
                log.exception("a stream log job failed")
                continue
            if answer is not None:
                self._notify(answer)


class InlineWorker:
    """Jobs run at once on the caller's thread: in-memory logs of a broker with no store."""

    def submit(self, job: Job) -> None:
        answer = job()
        if answer is not None:
            answer()

    def stop(self, *, wait: bool = True) -> None:
        pass


class LogState(NamedTuple):
    """The log as the owner sees it, sent back after every write and retention."""

    first_offset: int
    committed_offset: int  # -1 when nothing is written
    last_chunk_offset: int  # the first offset of the newest chunk, -1 when none
    first_timestamp: int  # ms, 0 when empty
    segments: int
    bytes: int


class ReadAnswer(NamedTuple):
    records: list[StreamRecord]
    next_offset: int  # where the next read starts (past skipped chunks too)


class StreamLog:
    def __init__(
        self,
        files: SegmentFiles,
        worker: Worker,
        *,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
        filter_size: int = DEFAULT_SIZE,
        schedule: Callable[[Callable[[], None]], object] | None = None,
        durable: bool = False,
    ) -> None:
        """Open the log in ``files`` (a torn tail is cut). ``durable``: its commits are on disk,
        so that a publisher confirm waits for them. ``schedule(fn)`` runs ``fn`` on the owner
        thread later in this loop turn, to hand the turn's batch over at once; without it each
        append is handed over at once (inline logs)."""
        self.files = files
        self.worker = worker
        self.max_segment_bytes = max_segment_bytes
        self.filter_size = filter_size
        self._schedule = schedule
        self.durable = durable
        # The I/O thread's own state (read and changed by jobs only, after this constructor).
        self._segments: list[Segment] = []
        self._open_segments()
        # Handed over, not yet written: the thread takes all of it in one go.
        self._handed: list[tuple[int, int, list[PendingRecord]]] = []
        self._handed_lock = threading.Lock()
        self._flush_queued = False
        # The owner's state.
        self.state = self._state()
        self.next_offset = self._segments[-1].last_offset + 1 if self._segments else 0
        self._batch: list[PendingRecord] = []
        self._batch_first = self.next_offset
        self._batch_timestamp = 0
        self._handoff_scheduled = False
        self.on_commit: Callable[[LogState], None] | None = None
        # Called when a batch starts: the log has appends a barrier must wait for.
        self.on_dirty: Callable[[], None] | None = None
        self.closed = False

    # --- opening (the owner's thread, before the worker has any job) ---------------------------

    def _open_segments(self) -> None:
        names = self.files.segments()
        for number, first_offset in enumerate(names):
            data, index = self.files.open(first_offset)
            segment = Segment(first_offset, data, index)
            segment.recover(scan=number == len(names) - 1)
            self._segments.append(segment)
        # Segments emptied by a cut tail hold nothing: only the newest may stay, to be written.
        while len(self._segments) > 1 and self._segments[-1].empty:
            empty = self._segments.pop()
            empty.close()
            self.files.delete(empty.first_offset)

    def _state(self) -> LogState:
        segments = self._segments
        written = [segment for segment in segments if not segment.empty]
        if not written:
            first = segments[0].first_offset if segments else 0
            return LogState(first, first - 1, -1, 0, len(segments), 0)
        last = written[-1]
        return LogState(
            written[0].first_offset,
            last.last_offset,
            last.last_chunk_offset,
            written[0].first_timestamp,
            len(segments),
            sum(segment.size for segment in segments),
        )

    # --- appending (owner) ---------------------------------------------------------------------

    def append(
        self,
        exchange: bytes,
        routing_key: bytes,
        header: bytes,
        body: bytes,
        filter_value: bytes | None,
        timestamp_ms: int,
    ) -> int:
        """The message's offset; it is on disk once ``committed_offset`` reaches it."""
        offset = self.next_offset
        self.next_offset = offset + 1
        if not self._batch:
            self._batch_first = offset
            self._batch_timestamp = timestamp_ms
            if self.on_dirty is not None:
                self.on_dirty()
        self._batch.append(PendingRecord(filter_value, exchange, routing_key, header, body))
        if self._schedule is None:
            self.hand_over()
        elif not self._handoff_scheduled:
            self._handoff_scheduled = True
            self._schedule(self.hand_over)
        return offset

    def hand_over(self) -> None:
        """This turn's batch goes to the I/O thread (one flush job for whatever is waiting)."""
        self._handoff_scheduled = False
        if not self._batch or self.closed:
            return
        batch, self._batch = self._batch, []
        with self._handed_lock:
            self._handed.append((self._batch_first, self._batch_timestamp, batch))
            queued, self._flush_queued = self._flush_queued, True
        if not queued:
            self.worker.submit(self._flush)

    def barrier(self, callback: Callable[[], None]) -> None:
        """``callback`` runs on the owner's thread once everything appended so far is on disk."""
        self.hand_over()
        self.worker.submit(lambda: callback)

    @property
    def pending(self) -> bool:
        """Appended but not yet known to be on disk."""
        return self.next_offset - 1 > self.state.committed_offset

    # --- the I/O thread -----------------------------------------------------------------------

    def _flush(self) -> Callable[[], None] | None:
        with self._handed_lock:
            handed, self._handed = self._handed, []
            self._flush_queued = False
        chunks = [piece for batch in handed for piece in _chunks(*batch, self.filter_size)]
        if not chunks:
            return None
        while True:
            try:
                self._write(chunks)
                break
            except OSError as error:
                log.error("stream log write failed, retrying in %.0fs: %s", RETRY_INTERVAL, error)
                time.sleep(RETRY_INTERVAL)
        state = self._state()
        return lambda: self._committed(state)

    def _write(self, chunks: list[tuple[bytes, chunk.ChunkHeader]]) -> None:
        touched: dict[int, Segment] = {}
        marks = {id(segment): segment.size for segment in self._segments[-1:]}
        try:
            for raw, header in chunks:
                segment = self._active_for(len(raw), header.first_offset)
                marks.setdefault(id(segment), segment.size)
                segment.append(raw, header)
                touched[id(segment)] = segment
            for segment in touched.values():
                segment.sync()
        except OSError:
            # Cut what was half written; the retry writes it all again.
            for segment in self._segments:
                mark = marks.get(id(segment))
                if mark is not None and segment.size != mark:
                    segment.data.truncate(mark)
            self._reopen_tail()
            raise

    def _reopen_tail(self) -> None:
        segment = self._segments[-1]
        segment.chunks = 0
        segment.last_offset = segment.first_offset - 1
        segment.recover(scan=True)

    def _active_for(self, size: int, first_offset: int) -> Segment:
        segments = self._segments
        if segments and (segments[-1].empty or segments[-1].size + size <= self.max_segment_bytes):
            return segments[-1]
        if segments:
            segments[-1].seal()
        data, index = self.files.open(first_offset)
        segment = Segment(first_offset, data, index)
        segments.append(segment)
        return segment

    def _committed(self, state: LogState) -> None:
        self.state = state
        if self.on_commit is not None and not self.closed:
            self.on_commit(state)

    # --- reading -------------------------------------------------------------------------------

    def read(
        self,
        start: int,
        limit: int,
        callback: Callable[[ReadAnswer], None],
        *,
        filters: frozenset[bytes] | None = None,
        match_unfiltered: bool = False,
        max_bytes: int | None = None,
    ) -> None:
        """Up to ``limit`` committed records (and once their bodies reach ``max_bytes``, no more)
        from offset ``start`` (or the first kept, if older), skipping, with ``filters``, the chunks
        and records that match none of them."""
        budget = max_bytes if max_bytes is not None else 1 << 62
        self.worker.submit(lambda: self._answer(callback, self._read(start, limit, budget, filters, match_unfiltered)))

    def find_timestamp(self, timestamp_ms: int, callback: Callable[[int], None]) -> None:
        """The offset of the first chunk written at or after the time (else the end)."""
        self.worker.submit(lambda: self._answer(callback, self._offset_at(timestamp_ms)))

    @staticmethod
    def _answer(callback: Callable[[T], None], value: T) -> Callable[[], None]:
        return lambda: callback(value)

    def _offset_at(self, timestamp_ms: int) -> int:
        for segment in self._segments:
            found = segment.offset_at_timestamp(timestamp_ms)
            if found is not None:
                return found
        return self._segments[-1].last_offset + 1 if self._segments else 0

    def _read(
        self, start: int, limit: int, budget: int, filters: frozenset[bytes] | None, match_unfiltered: bool
    ) -> ReadAnswer:
        segments = [segment for segment in self._segments if not segment.empty]
        if not segments:
            return ReadAnswer([], start)
        start = max(start, segments[0].first_offset)
        found: list[StreamRecord] = []
        next_offset = start
        index = _segment_holding(segments, start)
        while index < len(segments) and len(found) < limit:
            segment = segments[index]
            if next_offset > segment.last_offset:
                index += 1
                continue
            for header, raw in segment.chunks_from(segment.position_of_offset(next_offset)):
                if filters is not None and not _chunk_matches(raw, header, filters, match_unfiltered):
                    next_offset = header.last_offset + 1
                    continue
                for record in chunk.records(raw, header):
                    if record.offset < next_offset:
                        continue
                    next_offset = record.offset + 1
                    if filters is None or _record_matches(record, filters, match_unfiltered):
                        found.append(record)
                        budget -= len(record.body)
                        if len(found) >= limit or budget <= 0:
                            limit = len(found)
                            break
                if len(found) >= limit:
                    break
            index += 1
        return ReadAnswer(found, next_offset)

    # --- retention -----------------------------------------------------------------------------

    def retain(self, retention: Retention, now_ms: int) -> None:
        """Drop the old segments the retention no longer keeps (on the I/O thread)."""
        if retention.max_bytes is None and retention.max_age_ms is None:
            return
        self.worker.submit(lambda: self._retain(retention, now_ms))

    def _retain(self, retention: Retention, now_ms: int) -> Callable[[], None] | None:
        extents = [SegmentExtent(segment.size, segment.last_timestamp) for segment in self._segments]
        drop = segments_to_drop(extents, retention, now_ms)
        if not drop:
            return None
        for segment in self._segments[:drop]:
            segment.close()
            self.files.delete(segment.first_offset)
        del self._segments[:drop]
        state = self._state()
        return lambda: self._committed(state)

    # --- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what was appended, stop the thread and close the files (blocking)."""
        if self.closed:
            return
        self.hand_over()
        self.closed = True
        self.worker.submit(self._close_files)
        self.worker.stop()

    def destroy(self) -> None:
        """The stream is deleted: its files go, on the I/O thread."""
        if self.closed:
            return
        self.closed = True
        self._batch = []

        def remove() -> None:
            self._close_files()
            self.files.destroy()

        self.worker.submit(remove)
        self.worker.stop(wait=False)

    def _close_files(self) -> None:
        for segment in self._segments:
            segment.close()
        self._segments = []


def _chunks(
    first_offset: int, timestamp: int, records: list[PendingRecord], filter_size: int
) -> list[tuple[bytes, chunk.ChunkHeader]]:
    """A batch as chunks of at most CHUNK_MAX_BYTES of records (one record may be larger)."""
    pieces = []
    start = 0
    size = 0
    for index, record in enumerate(records):
        size += len(record.body) + len(record.header) + 32
        if size >= CHUNK_MAX_BYTES or index == len(records) - 1:
            group = records[start : index + 1]
            raw = chunk.encode_chunk(first_offset + start, timestamp, group, filter_size)
            header = chunk.parse_header(raw)
            assert header is not None
            pieces.append((raw, header))
            start, size = index + 1, 0
    return pieces


def _segment_holding(segments: list[Segment], offset: int) -> int:
    low, high = 0, len(segments) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if segments[middle].first_offset <= offset:
            low = middle
        else:
            high = middle - 1
    return low


def _chunk_matches(raw: memoryview, header: chunk.ChunkHeader, filters: frozenset[bytes], unfiltered: bool) -> bool:
    if unfiltered and header.flags & chunk.HAS_UNFILTERED:
        return True
    bits = chunk.bloom_of(raw, header)
    return any(may_contain(bits, value) for value in filters)


def _record_matches(record: StreamRecord, filters: frozenset[bytes], unfiltered: bool) -> bool:
    if record.filter_value is None:
        return unfiltered
    return record.filter_value in filters
