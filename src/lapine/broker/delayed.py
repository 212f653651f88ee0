"""Delayed messages: what x-delayed-message exchanges hold until it is due, then route.

As RabbitMQ's rabbitmq_delayed_message_exchange plugin: a message published to such an exchange
with a positive ``x-delay`` (ms, broker/delay_header.py) is stored, its publisher is told nothing
was routed (so ``mandatory`` returns it and an alternate exchange gets it at once, as there), and
when it is due it is routed through the exchange's bindings as they are then, with ``x-delay``
negated. Every delayed message of the node waits in one store, whatever its delivery mode;
those of a durable exchange are there after a restart (the plugin's Mnesia table keeps them all),
those of an exchange that is gone are dropped, and so are an exchange's when it is deleted.

Scale: the store holds the messages (the data directory's delayed.db: SqliteDelayStore), not
memory. Memory keeps a *window*: the earliest ``window`` messages by (due, seq), in a heap, with
ONE timer for the first of them. ``_horizon`` is the key up to which every stored message is in
the window (None: all are); a message held beyond it is written only. When the window runs below
half, one read pages in the next messages after the horizon. While that read is out, messages
held beyond its start wait in ``_arrived`` and are merged when it lands, since it cannot see them.
"""

from __future__ import annotations

import heapq
import logging
import math
from functools import partial
from typing import TYPE_CHECKING

from lapine.amqp.constants import INTERNAL_ERROR
from lapine.broker.delay_header import ChannelCrash, is_held, parse, released_header
from lapine.broker.message import Message
from lapine.store.delayed import DelayedRow, DelayStore, MemoryDelayStore

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.broker.exchange import Exchange
    from lapine.broker.scheduler import Timer
    from lapine.broker.vhost import VirtualHost

log = logging.getLogger("lapine.delayed")

# Messages kept in memory, the earliest due; twice that before the latest are let go.
WINDOW = 10_000
# Messages routed per timer callback: a due backlog (after a restart, say) is released in turns of
# the event loop, so that clients are served in between.
RELEASE_BATCH = 2_000

_Entry = tuple[int, int, DelayedRow]  # (due, seq, row): the heap's order


class DelayedMessages:
    """The node's delayed messages (the plugin has one process for the node, too)."""

    def __init__(self, broker: Broker, store: DelayStore | None = None, window: int = WINDOW) -> None:
        self.broker = broker
        self.store: DelayStore = store or MemoryDelayStore()
        self.window = window
        self.released = 0  # messages routed when due, for the benchmark and tests
        self._heap: list[_Entry] = []
        self._horizon: tuple[int, int] | None = None
        self._on_disk = 0  # stored messages that are not in memory
        self._reading = False
        self._read_from = (0, 0)
        self._arrived: list[_Entry] = []
        self._ids: dict[Exchange, int] = {}
        self._exchanges: dict[int, Exchange] = {}
        self._counts: dict[int, int] = {}
        self._next_seq = 1
        self._next_exchange_id = 1
        self._timer: Timer | None = None
        self._timer_due = 0
        self._stopped = False

    # --- what the API shows ------------------------------------------------------------------

    def messages_delayed(self, exchange: Exchange) -> int:
        exchange_id = self._ids.get(exchange)
        return 0 if exchange_id is None else self._counts.get(exchange_id, 0)

    @property
    def in_memory(self) -> int:
        return len(self._heap) + len(self._arrived)

    def __len__(self) -> int:
        return sum(self._counts.values())

    # --- holding -----------------------------------------------------------------------------

    def hold(self, exchange: Exchange, message: Message, *, all_keys: bool = True) -> bool:
        """Keep the message if its x-delay says so (True); False: route it now.

        ``all_keys``: the message's CC and BCC keys are kept with it, to route it by all of them
        (False when a binding from another exchange brought it here for one of its keys)."""
        delay, parsed = parse(message.header_payload)
        if not is_held(delay):
            return False
        assert delay is not None and parsed is not None
        if self.store.failed is not None:
            # The plugin's store call fails inside the channel: RabbitMQ closes the connection.
            raise ChannelCrash(INTERNAL_ERROR, f"delayed messages cannot be stored: {self.store.failed}")
        exchange_id = self._id_of(exchange)
        seq = self._next_seq
        self._next_seq = seq + 1
        keys = _encode_keys([*(message.cc or ()), *(message.bcc or ())]) if all_keys else b""
        row = DelayedRow(
            # The next whole millisecond: released at or after the delay, never a fraction early.
            math.ceil(self.broker.scheduler.wall_time() * 1000) + delay,
            seq,
            exchange_id,
            message.exchange_bytes,
            message.routing_key_bytes,
            keys,
            # Kept as it will be released: x-delay negated (the plugin swaps it on release).
            released_header(message.header_payload, delay, parsed),
            message.body,
        )
        self.store.add(row)
        if not self.store.idle():
            # Its publisher confirm waits for the store (Broker.submit_barrier).
            message.durably_written = True
        self._counts[exchange_id] = self._counts.get(exchange_id, 0) + 1
        self._place((row.due, seq, row))
        return True

    def _id_of(self, exchange: Exchange) -> int:
        exchange_id = self._ids.get(exchange)
        if exchange_id is None:
            exchange_id = self._next_exchange_id
            self._next_exchange_id += 1
            self._ids[exchange] = exchange_id
            self._exchanges[exchange_id] = exchange
            self.store.add_exchange(exchange_id, exchange.vhost.name, exchange.name)
        return exchange_id

    def _place(self, entry: _Entry) -> None:
        key = (entry[0], entry[1])
        if self._reading and key > self._read_from:
            self._arrived.append(entry)
            self._on_disk += 1
        elif self._horizon is None or key <= self._horizon:
            heapq.heappush(self._heap, entry)
            if len(self._heap) > 2 * self.window and not self._reading:
                self._trim()
            self._arm()
        else:
            self._on_disk += 1

    def _trim(self) -> None:
        """Keep the earliest ``window`` in memory; the others are in the store already."""
        self._heap.sort()
        kept = self._heap[: self.window]
        self._on_disk += len(self._heap) - len(kept)
        self._heap = kept  # a sorted list is a heap
        last = kept[-1]
        self._horizon = (last[0], last[1])

    # --- paging in ---------------------------------------------------------------------------

    def _refill(self) -> None:
        if self._reading or self._on_disk <= 0 or len(self._heap) >= self.window // 2:
            return
        assert self._horizon is not None
        self._reading = True
        self._read_from = self._horizon
        limit = self.window - len(self._heap)
        self.store.read_after(self._read_from, limit, partial(self._read_done, limit))

    def _read_done(self, limit: int, rows: list[DelayedRow]) -> None:
        self._reading = False
        arrived, self._arrived = self._arrived, []
        live = [row for row in rows if row.exchange_id in self._exchanges]
        for row in live:
            heapq.heappush(self._heap, (row.due, row.seq, row))
        self._on_disk -= len(live)
        last = (rows[-1].due, rows[-1].seq) if len(rows) >= limit else None
        for entry in arrived:
            if entry[2].exchange_id not in self._exchanges:
                continue
            if last is None or (entry[0], entry[1]) <= last:
                heapq.heappush(self._heap, entry)
                self._on_disk -= 1
        if last is None or self._on_disk <= 0:
            # Everything the store had beyond the horizon came, and what was held meanwhile too.
            self._on_disk = 0
            self._horizon = None
        else:
            self._horizon = last
        if len(self._heap) > 2 * self.window:
            self._trim()
        self._arm()
        self._refill()

    # --- releasing ---------------------------------------------------------------------------

    def stop(self) -> None:
        """The broker is shutting down: nothing more is released (what is due waits in the store,
        and goes after the next start, late but in due order)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        """One timer, for the earliest message in memory."""
        if self._stopped:
            return
        if not self._heap:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        due = self._heap[0][0]
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        delay = max(0.0, (due - self._now_ms()) / 1000)
        self._timer = self.broker.scheduler.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._now_ms()
        heap = self._heap
        released: list[DelayedRow] = []
        # Never early: a timer that fires before the due millisecond is set again.
        while heap and heap[0][0] <= now and len(released) < RELEASE_BATCH:
            released.append(heapq.heappop(heap)[2])
        for row in released:
            self._release(row)
        if released:
            self.store.remove([row.seq for row in released])
        self._arm()
        self._refill()

    def _release(self, row: DelayedRow) -> None:
        count = self._counts.get(row.exchange_id, 0) - 1
        if count > 0:
            self._counts[row.exchange_id] = count
        else:
            self._counts.pop(row.exchange_id, None)
        exchange = self._exchanges.get(row.exchange_id)
        if exchange is None or exchange.deleted:
            return
        vhost = exchange.vhost
        if self.broker.vhosts.get(vhost.name) is not vhost:
            return
        message = Message(
            row.exchange.decode("utf-8", "surrogateescape"),
            row.routing_key.decode("utf-8", "surrogateescape"),
            row.header,
            row.body,
        )
        if row.keys:
            message.cc = _decode_keys(row.keys)
        if message.has_expiration:
            expiration = message.properties.expiration
            # Checked at publish; the queue's TTL counts from now, as the message enters it.
            message.ttl = int(expiration) if expiration and expiration.isdigit() else None
        self.released += 1
        vhost.publish_released(exchange, message)

    # --- exchanges going ---------------------------------------------------------------------

    def exchange_deleted(self, exchange: Exchange) -> None:
        exchange_id = self._ids.pop(exchange, None)
        if exchange_id is None:
            return
        del self._exchanges[exchange_id]
        total = self._counts.pop(exchange_id, 0)
        kept = [entry for entry in self._heap if entry[2].exchange_id != exchange_id]
        arrived = [entry for entry in self._arrived if entry[2].exchange_id != exchange_id]
        in_memory = len(self._heap) - len(kept) + len(self._arrived) - len(arrived)
        heapq.heapify(kept)
        self._heap, self._arrived = kept, arrived
        self._on_disk -= total - in_memory
        if self._on_disk <= 0 and not self._reading:
            self._on_disk = 0
            self._horizon = None
        self.store.drop_exchange(exchange_id)
        self._arm()
        self._refill()

    def vhost_deleted(self, vhost: VirtualHost) -> None:
        for exchange in [exchange for exchange in self._ids if exchange.vhost is vhost]:
            self.exchange_deleted(exchange)

    # --- start -------------------------------------------------------------------------------

    def attach(self, store: DelayStore) -> None:
        """Use ``store`` (empty so far in memory) and take up what it holds: the messages of
        exchanges that exist after recovery wait again, due or overdue; the others are dropped."""
        self.store = store
        recovered = store.recover()
        self._next_seq = recovered.last_seq + 1
        self._next_exchange_id = recovered.last_exchange_id + 1
        for exchange_id, (vhost_name, name) in recovered.exchanges.items():
            vhost = self.broker.vhosts.get(vhost_name)
            exchange = vhost.exchanges.get(name) if vhost is not None else None
            if exchange is None or exchange.delayed_type is None or exchange in self._ids:
                store.drop_exchange(exchange_id)
                continue
            self._ids[exchange] = exchange_id
            self._exchanges[exchange_id] = exchange
            count = recovered.counts.get(exchange_id, 0)
            if count:
                self._counts[exchange_id] = count
        for exchange_id in recovered.counts:
            if exchange_id not in recovered.exchanges:
                store.drop_exchange(exchange_id)
        self._on_disk = sum(self._counts.values())
        if self._on_disk:
            log.info("%d delayed messages to wait for", self._on_disk)
            self._horizon = (-1, -1)
            self._refill()

    def _now_ms(self) -> int:
        return int(self.broker.scheduler.wall_time() * 1000)


def _encode_keys(keys: list[str]) -> bytes:
    parts = []
    for key in keys:
        raw = key.encode("utf-8", "surrogateescape")
        parts.append(bytes([len(raw)]) + raw)
    return b"".join(parts)


def _decode_keys(data: bytes) -> list[str]:
    keys, pos = [], 0
    while pos < len(data):
        length = data[pos]
        keys.append(data[pos + 1 : pos + 1 + length].decode("utf-8", "surrogateescape"))
        pos += 1 + length
    return keys
