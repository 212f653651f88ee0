"""A channel's part for transactions (tx.select): publishes and settlements held until commit.

As RabbitMQ: tx.commit routes the held publishes and applies the held acks, rejects and nacks,
and answers commit-ok once the transaction's persistent messages are on disk; tx.rollback drops
the publishes and makes the settled deliveries unacked again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lapine.amqp import spec
from lapine.amqp.constants import INTERNAL_ERROR, PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError, ConnectionError

if TYPE_CHECKING:
    from lapine.broker.acknowledgements import Delivery
    from lapine.broker.connection import Connection
    from lapine.broker.exchange import Exchange
    from lapine.broker.message import Message


class Transaction:
    """What a tx channel has done since its last commit or rollback."""

    __slots__ = ("publishes", "settlements")

    def __init__(self) -> None:
        self.publishes: list[tuple[Exchange, Message, bool]] = []
        # (deliveries, requeue, acked): an ack, or a reject/nack with or without requeue.
        self.settlements: list[tuple[list[tuple[int, Delivery]], bool, bool]] = []


class Transactions:
    """Channel's part: the open transaction, if the channel is transactional."""

    def _init_transactions(self) -> None:
        self.tx: Transaction | None = None

    if TYPE_CHECKING:
        connection: Connection
        closed: bool
        confirm_mode: bool
        unacked: dict[int, Delivery]

        def send_method(self, method: spec.Method) -> None: ...

        def route_and_enqueue(self, exchange: Exchange, message: Message, mandatory: bool) -> bool: ...

        def _settle(
            self, taken: list[tuple[int, Delivery]], *, requeue: bool, acked: bool = False, failed: bool = False
        ) -> None: ...

    def on_tx_select(self, method: spec.TxSelect) -> None:
        if self.confirm_mode:
            raise ChannelError(PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Transaction()
        self.send_method(spec.TxSelectOk())

    def on_tx_commit(self, method: spec.TxCommit) -> None:
        tx = self.tx
        if tx is None:
            raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
        self.tx = None
        durable = False
        try:
            for exchange, message, mandatory in tx.publishes:
                if not exchange.deleted:
                    self.route_and_enqueue(exchange, message, mandatory)
                    durable = durable or message.durably_written
            for taken, requeue, acked in tx.settlements:
                self._settle(taken, requeue=requeue, acked=acked)
        finally:
            self.tx = Transaction()
        store = self.connection.broker.store
        if durable and store is not None and store.failed is not None:
            text = f"the transaction cannot be made durable: {store.failed}"
            raise ConnectionError(INTERNAL_ERROR, text, *spec.TxCommit.IDS)
        if durable and store is not None:
            # commit-ok means the transaction's messages are on disk, as in RabbitMQ.
            self.connection.broker.submit_barrier(
                lambda: None if self.closed else self.send_method(spec.TxCommitOk())
            )
            return
        self.send_method(spec.TxCommitOk())

    def on_tx_rollback(self, method: spec.TxRollback) -> None:
        tx = self.tx
        if tx is None:
            raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
        # Settlements are undone: those deliveries are unacked again, in tag order.
        restored = dict(self.unacked)
        for taken, _requeue, _acked in tx.settlements:
            restored.update(taken)
        self.unacked = dict(sorted(restored.items()))
        self.tx = Transaction()
        self.send_method(spec.TxRollbackOk())
