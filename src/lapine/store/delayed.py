"""The store of delayed messages (the delayed-message exchange): its interface, and one in memory.

A delayed message waits here, not in a queue, until it is due. Rows are ordered by (due, seq):
``due`` is the wall-clock time in ms since the epoch when it is to be routed, ``seq`` the order
it was held in. The broker keeps only a window of the earliest rows in memory and pages the next
ones in with ``read_after``; everything else lives here.

Threading follows lapine.store.base: one owner thread calls every method; writes never block;
reads and barriers answer through callbacks on the owner thread, and a read sees every write
submitted before it (see ``read_after``). ``MemoryDelayStore`` answers at once (the model's, and a broker's without a
data directory); ``SqliteDelayStore`` (delayed_sqlite.py) writes from a thread of its own.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

Callback = Callable[[], object]


class DelayedRow(NamedTuple):
    due: int  # ms since the epoch
    seq: int
    exchange_id: int  # the delayed exchange holding it (see add_exchange)
    exchange: bytes  # the exchange it was published to, as on the wire
    routing_key: bytes
    keys: bytes  # its CC and BCC routing keys, each a length byte and the key (empty: none)
    header: bytes  # the content-header payload it is to be released with
    body: bytes


@dataclass
class DelayRecovery:
    """What the store holds at start, without reading a body."""

    exchanges: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (vhost, name)
    counts: dict[int, int] = field(default_factory=dict)  # id -> delayed messages
    last_seq: int = 0
    last_exchange_id: int = 0


class DelayStore(ABC):
    @property
    @abstractmethod
    def failed(self) -> BaseException | None:
        """The storage error that stopped the store, or None."""

    @property
    @abstractmethod
    def backlog(self) -> int:
        """Writes submitted and not yet on disk: publishers are held back while it is long."""

    @abstractmethod
    def idle(self) -> bool:
        """Nothing submitted waits for the disk, and no barrier is still to run."""

    @abstractmethod
    def submit_barrier(self, callback: Callback) -> None:
        """Run ``callback`` on the owner thread once everything submitted so far is durable."""

    @abstractmethod
    def add_exchange(self, exchange_id: int, vhost: str, name: str) -> None:
        """Name the exchange that ``exchange_id`` stands for (a new id for each declared one)."""

    @abstractmethod
    def add(self, row: DelayedRow) -> None: ...

    @abstractmethod
    def remove(self, seqs: Iterable[int]) -> None:
        """Forget released messages."""

    @abstractmethod
    def drop_exchange(self, exchange_id: int) -> None:
        """Forget an exchange and every message it holds."""

    @abstractmethod
    def read_after(
        self, after: tuple[int, int], limit: int, callback: Callable[[list[DelayedRow]], None]
    ) -> None:
        """At most ``limit`` rows with (due, seq) > ``after``, in that order, to ``callback``.
        Every row added before the call is seen; one removed or dropped by a write not yet on
        disk may still be (the broker asks beyond what it released, and skips dropped ones)."""

    @abstractmethod
    def recover(self) -> DelayRecovery:
        """What the store holds (blocking; for the start)."""

    @abstractmethod
    def close(self) -> None: ...


class MemoryDelayStore(DelayStore):
    """Rows in a sorted list: nothing survives the process, every answer comes at once."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, int]] = []
        self._rows: dict[int, DelayedRow] = {}
        self._exchanges: dict[int, tuple[str, str]] = {}

    @property
    def failed(self) -> BaseException | None:
        return None

    @property
    def backlog(self) -> int:
        return 0

    def idle(self) -> bool:
        return True

    def submit_barrier(self, callback: Callback) -> None:
        callback()

    def add_exchange(self, exchange_id: int, vhost: str, name: str) -> None:
        self._exchanges[exchange_id] = (vhost, name)

    def add(self, row: DelayedRow) -> None:
        self._rows[row.seq] = row
        bisect.insort(self._keys, (row.due, row.seq))

    def remove(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            row = self._rows.pop(seq, None)
            if row is not None:
                index = bisect.bisect_left(self._keys, (row.due, row.seq))
                del self._keys[index]

    def drop_exchange(self, exchange_id: int) -> None:
        self._exchanges.pop(exchange_id, None)
        self.remove([row.seq for row in self._rows.values() if row.exchange_id == exchange_id])

    def read_after(
        self, after: tuple[int, int], limit: int, callback: Callable[[list[DelayedRow]], None]
    ) -> None:
        start = bisect.bisect_right(self._keys, after)
        callback([self._rows[seq] for _due, seq in self._keys[start : start + limit]])

    def recover(self) -> DelayRecovery:
        counts: dict[int, int] = {}
        for row in self._rows.values():
            counts[row.exchange_id] = counts.get(row.exchange_id, 0) + 1
        return DelayRecovery(
            dict(self._exchanges), counts, max(self._rows, default=0), max(self._exchanges, default=0)
        )

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._rows)
