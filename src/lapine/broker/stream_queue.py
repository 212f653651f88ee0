"""A stream: an append-only log that consumers read from an offset of their choosing.

Publishing appends (the message gets its offset and the ``x-stream-offset`` header then), and
nothing ever leaves the stream but by retention (x-max-length-bytes, x-max-age: whole old
segments). Each consumer has its own cursor: where it reads next, and its filter. It reads from
the recent messages this queue keeps in memory (``_tail``) while it is near the end, and from
the log, on the log's thread, when it is behind; it is handed only what is on disk. Its prefetch
is its credit: an ack (or a nack or reject, which requeue nothing) only returns credit, as in
RabbitMQ. The log itself is lapine.store.stream, opened through the queue's storage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lapine.amqp.codec import Timestamp
from lapine.amqp.constants import NOT_IMPLEMENTED, PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError, ConnectionError
from lapine.broker import stream_headers
from lapine.broker.message import Message
from lapine.broker.ports import MEMORY_ONLY, MessageStorage
from lapine.broker.queue import Queue, QueuedMessage
from lapine.broker.queue_types.declare_arguments import max_age_seconds
from lapine.store.stream import LogState, ReadAnswer, Retention, StreamRecord
from lapine.store.stream.bloom import DEFAULT_SIZE
from lapine.store.stream.log import DEFAULT_MAX_SEGMENT_BYTES

if TYPE_CHECKING:
    from lapine.broker.ports import QueueHost, Subscriber
    from lapine.broker.scheduler import Timer
    from lapine.store.stream import StreamLog

TAIL_BYTES = 8 << 20  # recent messages kept in memory for consumers near the end
TAIL_MESSAGES = 50_000
READ_BATCH = 2000  # messages per read from the log for a consumer behind the tail
READ_BYTES = 4 << 20  # and at most this many body bytes (the first message always comes)
READ_AHEAD = READ_BATCH // 2  # buffered messages left when the next read is asked for
RETENTION_INTERVAL = 10.0  # seconds: x-max-age applies without new publishes too


class OffsetSpec:
    """Where a consumer starts: "first", "last", "next", an offset, or a time in ms."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value: int = 0) -> None:
        self.kind = kind
        self.value = value


class Cursor:
    """One consumer's place in the stream."""

    __slots__ = ("buffer", "consumer", "filters", "match_unfiltered", "offset", "reading")

    def __init__(self, consumer: Subscriber, filters: frozenset[bytes] | None, match_unfiltered: bool) -> None:
        self.consumer = consumer
        self.offset: int | None = None  # the next offset to look at; None until a timestamp is found
        self.filters = filters
        self.match_unfiltered = match_unfiltered
        self.buffer: deque[tuple[int, Message]] = deque()  # read from the log, waiting for credit
        self.reading = False

    def wants(self, value: bytes | None) -> bool:
        filters = self.filters
        if filters is None:
            return True
        return self.match_unfiltered if value is None else value in filters


def parse_offset(value: Any, now_ms: int) -> OffsetSpec | str:
    """x-stream-offset as RabbitMQ's rabbit_stream_queue:parse_offset_arg reads it, or its error."""
    if value is None:
        return OffsetSpec("next")
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if isinstance(text, str):
        if text in ("first", "last", "next"):
            return OffsetSpec(text)
        seconds = max_age_seconds(text)
        if seconds is None:
            return "invalid_max_age"
        return OffsetSpec("timestamp", now_ms - seconds * 1000)
    if isinstance(value, Timestamp):
        return OffsetSpec("timestamp", int(value) * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return OffsetSpec("offset", value)
    return "{invalid_offset_arg," + repr(value) + "}"


def _filters(arguments: Mapping[str, Any]) -> tuple[frozenset[bytes] | None, bool]:
    """x-stream-filter (a string or an array of them) and x-stream-match-unfiltered."""
    raw = arguments.get("x-stream-filter")
    values = raw if isinstance(raw, list) else [raw] if isinstance(raw, str | bytes) else None
    if values is None:
        return None, False
    filters = frozenset(
        v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v for v in values if isinstance(v, str | bytes)
    )
    return filters, arguments.get("x-stream-match-unfiltered") is True


class StreamQueue(Queue):
    type_name = "stream"

    def __init__(
        self,
        vhost: QueueHost,
        name: str,
        *,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.retention = Retention()
        self.max_segment_bytes = DEFAULT_MAX_SEGMENT_BYTES
        self.filter_size = DEFAULT_SIZE
        super().__init__(
            vhost, name, durable=durable, exclusive=exclusive, auto_delete=auto_delete, arguments=arguments
        )
        self._cursors: dict[Subscriber, Cursor] = {}
        self._runnable: dict[Cursor, None] = {}  # cursors whose consumer may have room again
        self._tail: deque[tuple[int, bytes | None, Message]] = deque()
        self._tail_bytes = 0
        self._retention_timer: Timer | None = None
        self.log = self._open(MEMORY_ONLY)
        self._schedule_retention()

    @property
    def where(self) -> str:
        return f"queue '{self.name}' in vhost '{self.vhost.name}'"

    # --- settings and the log ------------------------------------------------------------------

    def apply_settings(self, policy: Any = None) -> None:
        super().apply_settings(policy)
        # For a stream, a policy wins over the queue's arguments (rabbit_stream_queue's precedence).
        settings = {**self.arguments, **(policy.as_arguments("queue") if policy is not None else {})}
        max_bytes = settings.get("x-max-length-bytes")
        age = settings.get("x-max-age")
        age_text = age.decode() if isinstance(age, bytes) else age
        seconds = max_age_seconds(age_text) if isinstance(age_text, str) else None
        self.retention = Retention(
            max_bytes if isinstance(max_bytes, int) and not isinstance(max_bytes, bool) else None,
            seconds * 1000 if seconds is not None else None,
        )
        segment = settings.get("x-stream-max-segment-size-bytes")
        if isinstance(segment, int) and not isinstance(segment, bool) and segment > 0:
            self.max_segment_bytes = segment
        size = settings.get("x-stream-filter-size-bytes")
        if isinstance(size, int) and not isinstance(size, bool):
            self.filter_size = size
        log = getattr(self, "log", None)
        if log is not None:
            log.max_segment_bytes = self.max_segment_bytes
            self._schedule_retention()

    def _open(self, storage: MessageStorage) -> StreamLog:
        log = storage.open_log(max_segment_bytes=self.max_segment_bytes, filter_size=self.filter_size)
        log.on_commit = self._committed
        self._segments_seen = log.state.segments
        self._tail.clear()
        self._tail_bytes = 0
        return log

    def attach_storage(self, storage: MessageStorage, window: int) -> None:
        self.storage = storage
        self.log = self._open(storage)
        self._schedule_retention()

    def _schedule_retention(self) -> None:
        if self._retention_timer is not None or self.deleted:
            return
        if self.retention.max_bytes is None and self.retention.max_age_ms is None:
            return
        self._retention_timer = self.vhost.scheduler.call_later(RETENTION_INTERVAL, self._retention_due)

    def _retention_due(self) -> None:
        self._retention_timer = None
        if self.deleted:
            return
        self.apply_retention()
        self._schedule_retention()

    def apply_retention(self) -> None:
        self.log.retain(self.retention, int(self.vhost.scheduler.wall_time() * 1000))

    def _committed(self, state: LogState) -> None:
        """The log wrote more (or retention dropped old segments): consumers may read on."""
        if state.segments > self._segments_seen:
            self.apply_retention()  # a segment rolled over: as osiris, look at retention then
        self._segments_seen = state.segments
        tail = self._tail
        while tail and tail[0][0] < state.first_offset:
            self._tail_bytes -= len(tail.popleft()[2].body)
        for cursor in self._cursors.values():
            self._runnable[cursor] = None
        self.dispatch()

    # --- what counts -----------------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        state = self.log.state
        return max(state.committed_offset - state.first_offset + 1, 0)

    @property
    def message_bytes(self) -> int:
        return self.log.state.bytes

    @property
    def segments(self) -> int:
        return self.log.state.segments

    def type_info(self, node: str) -> dict[str, Any]:
        """rabbit_stream_queue's info keys: one node is leader, member and online."""
        state = self.log.state
        count = self.message_count
        return {
            "messages": count,
            "messages_ready": count,
            "messages_unacknowledged": self.unacked_count,
            "leader": node,
            "members": [node],
            "online": [node],
            "readers": {node: len(self.consumers)},
            "segments": state.segments,
            "committed_offset": state.committed_offset if state.committed_offset >= 0 else None,
            "committed_chunk_id": state.last_chunk_offset if state.last_chunk_offset >= 0 else None,
            "first_timestamp": state.first_timestamp or None,
        }

    # --- messages in -------------------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        log = self.log
        header = message.header_payload
        value = stream_headers.filter_value(message)
        offset = log.next_offset
        stored = Message(
            message.exchange, message.routing_key, stream_headers.with_offset(header, offset), message.body
        )
        tail = self._tail
        tail.append((offset, value, stored))
        self._tail_bytes += len(message.body)
        while len(tail) > 1 and (self._tail_bytes > TAIL_BYTES or len(tail) > TAIL_MESSAGES):
            self._tail_bytes -= len(tail.popleft()[2].body)
        if log.durable:
            message.durably_written = True
        log.append(
            stored.exchange_bytes,
            stored.routing_key_bytes,
            stored.header_payload,
            stored.body,
            value,
            int(self.vhost.scheduler.wall_time() * 1000),
        )
        return True

    # --- messages out --------------------------------------------------------------------------

    def dispatch(self) -> None:
        runnable, self._runnable = self._runnable, {}
        for cursor in runnable:
            if not cursor.consumer.cancelled:
                self._feed(cursor)

    def dispatch_opened(self) -> None:
        self.dispatch()

    def take_back(self, consumer: Subscriber) -> bool:
        cursor = self._cursors.get(consumer)
        if cursor is None or self.deleted:
            return False
        self._runnable[cursor] = None
        return True

    def _feed(self, cursor: Cursor) -> None:
        """Hand the consumer what it may have, from its buffer, the tail, or a read of the log."""
        consumer = cursor.consumer
        committed = self.log.state.committed_offset
        tail = self._tail
        while True:
            if not consumer.has_room():
                self._without_room(consumer)
                return
            if cursor.buffer:
                buffered, message = cursor.buffer.popleft()
                self._deliver(consumer, buffered, message)
                if len(cursor.buffer) == READ_AHEAD and not cursor.reading:
                    self._read_ahead(cursor, committed)
                continue
            offset = cursor.offset
            if offset is None or cursor.reading or offset > committed:
                return  # waiting for a lookup, a read, or a write
            first = tail[0][0] if tail else None
            if first is None or offset < first:
                self._read(cursor, offset)
                return
            index = offset - first
            if index >= len(tail):
                return
            entry_offset, value, message = tail[index]
            cursor.offset = entry_offset + 1
            if cursor.wants(value):
                self._deliver(consumer, entry_offset, message)

    def _deliver(self, consumer: Subscriber, offset: int, message: Message) -> None:
        consumer.unacked += 1
        self.unacked_count += 1
        consumer.channel.deliver(consumer, QueuedMessage(message, offset), self)

    def _read_ahead(self, cursor: Cursor, committed: int) -> None:
        """Half the buffer is left: the next read goes now, so that it lands before the rest is out."""
        offset = cursor.offset
        tail = self._tail
        if offset is not None and offset <= committed and (not tail or offset < tail[0][0]):
            self._read(cursor, offset)

    def _read(self, cursor: Cursor, offset: int) -> None:
        cursor.reading = True
        self.log.read(
            offset,
            READ_BATCH,
            lambda answer: self._read_done(cursor, answer),
            filters=cursor.filters,
            match_unfiltered=cursor.match_unfiltered,
            max_bytes=READ_BYTES,
        )

    def _read_done(self, cursor: Cursor, answer: ReadAnswer) -> None:
        cursor.reading = False
        if cursor.consumer.cancelled or self.deleted:
            return
        cursor.buffer.extend((record.offset, _message(record)) for record in answer.records)
        if cursor.offset is not None:
            cursor.offset = max(cursor.offset, answer.next_offset)
        self._runnable[cursor] = None
        self.dispatch()

    # --- settling: credit only -------------------------------------------------------------------

    def settled(self, entries: list[QueuedMessage]) -> None:
        self.unacked_count -= len(entries)

    def rejected(self, entries: list[QueuedMessage]) -> None:
        self.unacked_count -= len(entries)

    def requeue(self, entries: list[QueuedMessage], *, delivery_failed: bool = False) -> None:
        self.unacked_count -= len(entries)

    def purge(self) -> int:
        """Only a deleted stream loses its messages: its log and files go."""
        if self.deleted:
            if self._retention_timer is not None:
                self._retention_timer.cancel()
                self._retention_timer = None
            self.storage.drop_log(self.log)
        return 0

    def get(self, no_ack: bool) -> QueuedMessage | None:
        raise self._get_refused()

    def wait_for_page(self, then: Any) -> bool:
        return False

    def store_recovered(self) -> None:
        pass

    # --- what a stream refuses -----------------------------------------------------------------

    def check_consume(self, *, no_ack: bool, prefetch: int, prefetch_global: int, arguments: Mapping[str, Any]) -> None:
        # In rabbit_stream_queue:consume's order.
        if prefetch == 0:
            raise ChannelError(PRECONDITION_FAILED, f"consumer prefetch count is not set for stream {self.where}")
        if no_ack:
            raise ConnectionError(NOT_IMPLEMENTED, f"automatic acknowledgement not supported by stream {self.where}")
        if prefetch_global:
            raise ConnectionError(NOT_IMPLEMENTED, f"{self.where} does not support global qos")
        spec = parse_offset(arguments.get("x-stream-offset"), int(self.vhost.scheduler.wall_time() * 1000))
        if isinstance(spec, str):
            raise ChannelError(PRECONDITION_FAILED, f"failed consuming from stream {self.where}: {spec}")

    def check_get(self) -> None:
        raise self._get_refused()

    def _get_refused(self) -> ConnectionError:
        return ConnectionError(NOT_IMPLEMENTED, f"basic.get not supported by stream queues {self.where}")

    def check_purge(self) -> None:
        raise ConnectionError(NOT_IMPLEMENTED, f"queue.purge not supported by stream queues {self.where}")

    def check_delete(self, *, if_unused: bool, if_empty: bool) -> None:
        """RabbitMQ deletes a stream whatever if-unused and if-empty say."""

    # --- consumers ---------------------------------------------------------------------------

    def add_consumer(self, consumer: Subscriber) -> None:
        arguments: Mapping[str, Any] = getattr(consumer, "arguments", {}) or {}
        filters, match_unfiltered = _filters(arguments)
        cursor = Cursor(consumer, filters, match_unfiltered)
        spec = parse_offset(arguments.get("x-stream-offset"), int(self.vhost.scheduler.wall_time() * 1000))
        assert not isinstance(spec, str)  # check_consume refused it
        self.consumers.append(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        self._cursors[consumer] = cursor
        self._start(cursor, spec)

    def _start(self, cursor: Cursor, spec: OffsetSpec) -> None:
        log = self.log
        state = log.state
        if spec.kind == "timestamp":
            log.hand_over()
            log.find_timestamp(spec.value, lambda offset: self._found(cursor, offset))
            return
        if spec.kind == "first":
            cursor.offset = state.first_offset
        elif spec.kind == "last":
            cursor.offset = state.last_chunk_offset if state.last_chunk_offset >= 0 else log.next_offset
        elif spec.kind == "next":
            cursor.offset = log.next_offset
        else:
            cursor.offset = min(max(spec.value, state.first_offset), log.next_offset)
        self._runnable[cursor] = None
        self.dispatch()

    def _found(self, cursor: Cursor, offset: int) -> None:
        if cursor.consumer.cancelled or self.deleted:
            return
        cursor.offset = offset
        self._runnable[cursor] = None
        self.dispatch()

    def remove_consumer(self, consumer: Subscriber) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        consumer.cancel()
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        cursor = self._cursors.pop(consumer, None)
        if cursor is not None:
            self._runnable.pop(cursor, None)


def _message(record: StreamRecord) -> Message:
    return Message(
        record.exchange.decode("utf-8", "surrogateescape"),
        record.routing_key.decode("utf-8", "surrogateescape"),
        record.header,
        record.body,
    )
