"""A channel's part that confirms publishes (confirm.select): basic.ack and basic.nack in order.

Everything published while handling one read is confirmed at the end of it, at once, or, when a
persistent message reached a durable queue (or an earlier confirm still waits), once the broker's
barrier says all of it is on disk. A publish a queue refused is nacked; after a store failure,
what needed the disk is nacked, never confirmed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lapine.amqp import spec
from lapine.amqp.constants import PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError

if TYPE_CHECKING:
    from lapine.broker.connection import Connection
    from lapine.broker.stats import MessageStats
    from lapine.broker.transaction import Transaction


class PublisherConfirms:
    """Channel's part: the sequence numbers of publishes and how far the client has been told."""

    def _init_confirms(self) -> None:
        self.confirm_mode = False
        self.publish_seq = 0
        self.confirmed_seq = 0
        self._nacks: list[int] = []
        self._confirm_requested = 0
        self._durable_since_flush = False
        self._confirms_waiting = 0

    if TYPE_CHECKING:
        connection: Connection
        stats: MessageStats
        closed: bool
        tx: Transaction | None

        def send_method(self, method: spec.Method) -> None: ...

    def flush_confirms(self) -> None:
        """Confirm everything published since the last flush: at once, or, when a persistent
        message went to a durable queue (or an earlier confirm still waits), once the store says
        all of it is on disk. Confirms stay in order either way."""
        upto = self.publish_seq
        if upto <= self._confirm_requested:
            return
        self._confirm_requested = upto
        nacks, self._nacks = self._nacks, []
        store = self.connection.broker.store
        if store is not None and store.failed is not None and (self._durable_since_flush or self._confirms_waiting):
            # The disk failed: what needed it is nacked, never confirmed as if it were safe, and the
            # barriers still waiting will never complete.
            self._durable_since_flush = False
            self._confirms_waiting = 0
            first = self.confirmed_seq + 1
            self._confirm_through(upto, sorted({*nacks, *range(first, upto + 1)}))
            return
        if store is not None and (self._durable_since_flush or self._confirms_waiting):
            self._durable_since_flush = False
            self._confirms_waiting += 1
            self.connection.broker.submit_barrier(lambda: self._confirms_durable(upto, nacks))
            return
        self._confirm_through(upto, nacks)

    def store_failed(self) -> None:
        """The store died: confirms waiting for it will never come, so the publisher hears nack."""
        if self._confirms_waiting and not self.closed:
            self._confirms_waiting = 0
            first = self.confirmed_seq + 1
            self._confirm_through(self._confirm_requested, list(range(first, self._confirm_requested + 1)))

    def _confirms_durable(self, upto: int, nacks: list[int]) -> None:
        self._confirms_waiting -= 1
        if not self.closed:
            self._confirm_through(upto, nacks)

    def _confirm_through(self, upto: int, nacks: list[int]) -> None:
        """basic.ack (multiple where it can) up to ``upto``, with a basic.nack for each refused one."""
        first = self.confirmed_seq + 1
        if upto < first:
            return
        self.stats.confirm += upto - self.confirmed_seq
        self.confirmed_seq = upto
        for nacked in nacks:
            if nacked > first:
                self.send_method(spec.BasicAck(delivery_tag=nacked - 1, multiple=nacked - 1 > first))
            self.send_method(spec.BasicNack(delivery_tag=nacked, multiple=False, requeue=False))
            first = nacked + 1
        if upto >= first:
            self.send_method(spec.BasicAck(delivery_tag=upto, multiple=upto > first))

    def on_confirm_select(self, method: spec.ConfirmSelect) -> None:
        if self.tx is not None:
            raise ChannelError(PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        self.confirm_mode = True
        if not method.nowait:
            self.send_method(spec.ConfirmSelectOk())
