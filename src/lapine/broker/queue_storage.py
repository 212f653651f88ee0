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


class StoreQueueStorage:
    __slots__ = ("pages", "queue_id", "store")

    def __init__(self, store: Store, queue_id: int, *, pages: bool) -> None:
        self.store = store
        self.queue_id = queue_id
        self.pages = pages

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
