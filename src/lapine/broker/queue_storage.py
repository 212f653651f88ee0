"""A queue's message storage in the broker's store: the store's rows of one queue id.

The persistence seam makes one for every queue it registers (broker/persistence.py); a queue
talks to it only through the MessageStorage interface of broker/ports.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lapine.broker.message import Message
    from lapine.store import Store, StoredMessage
    from lapine.store.stream import StreamHome, StreamLog


class StoreQueueStorage:
    __slots__ = ("pages", "queue_id", "restored", "store", "streams")

    def __init__(
        self, store: Store, queue_id: int, *, pages: bool, streams: StreamHome | None = None, restored: bool = False
    ) -> None:
        self.store = store
        self.queue_id = queue_id
        self.pages = pages
        # Where a stream's log goes; ``restored``: the queue came back at start, and so does its log.
        self.streams = streams
        self.restored = restored

    @property
    def failed(self) -> BaseException | None:
        return self.store.failed

    def enqueue(self, seq: int, message: Message, expires_ms: int | None, *, persistent: bool) -> None:
        self.store.enqueue(
            self.queue_id,
            seq,
            message.exchange_bytes,
            message.routing_key_bytes,
            message.header_payload,
            message.body,
            persistent=persistent,
            expires=expires_ms,
        )

    def ack(self, seqs: Iterable[int]) -> None:
        self.store.ack(self.queue_id, seqs)

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        self.store.mark_delivered(self.queue_id, seqs)

    def purge(self) -> None:
        self.store.purge(self.queue_id)

    def read(self, after_seq: int, limit: int) -> list[StoredMessage]:
        return self.store.read_messages(self.queue_id, after_seq, limit)

    def read_async(self, after_seq: int, limit: int, callback: Callable[[list[StoredMessage]], None]) -> None:
        self.store.read_messages_async(self.queue_id, after_seq, limit, callback)

    def open_log(self, *, max_segment_bytes: int, filter_size: int) -> StreamLog:
        if self.streams is None:
            from lapine.broker.ports import MEMORY_ONLY

            return MEMORY_ONLY.open_log(max_segment_bytes=max_segment_bytes, filter_size=filter_size)
        return self.streams.open(
            self.queue_id, restored=self.restored, max_segment_bytes=max_segment_bytes, filter_size=filter_size
        )

    def drop_log(self, log: StreamLog) -> None:
        if self.streams is not None:
            self.streams.forget(log)
        log.destroy()
