"""Rates for the API's *_details: the counters are sampled every few seconds, as RabbitMQ does.

A rate is the change between the last two samples divided by the time between them, so it lags
by at most one interval (RabbitMQ's collect_statistics_interval, 5 s by default). Objects are
held weakly: a deleted queue or closed channel drops out by itself.

The node's own figures (the overview's) are also kept for RabbitMQ's first retention period, ten
minutes, so that ``?msg_rates_age=60&msg_rates_incr=5`` (and ``lengths_*``) can answer with
``samples``, ``avg_rate`` and ``avg`` as RabbitMQ does.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lapine.management import counters

if TYPE_CHECKING:
    from lapine.broker.broker import Broker


class _Samples:
    __slots__ = ("current", "previous")

    def __init__(self, at: float, values: Mapping[str, float], interval: float) -> None:
        # An object first seen now was born since the last round: it counted from zero.
        self.previous: tuple[float, dict[str, float]] | None = (at - interval, {})
        self.current = (at, dict(values))

    def push(self, at: float, values: Mapping[str, float]) -> None:
        self.previous = self.current
        self.current = (at, dict(values))

    def rate(self, name: str) -> float:
        if self.previous is None:
            return 0.0
        (t0, before), (t1, after) = self.previous, self.current
        if t1 <= t0:
            return 0.0
        return (after.get(name, 0.0) - before.get(name, 0.0)) / (t1 - t0)


# RabbitMQ's sample_retention_policies "global" starts with 600 s: the history the overview keeps.
HISTORY_SECONDS = 600


@dataclass(frozen=True)
class Range:
    """A history request: ``age`` seconds back from now, one sample every ``incr`` seconds."""

    age: int
    incr: int

    @classmethod
    def from_query(cls, query: Mapping[str, str], prefix: str) -> Range | None:
        """``{prefix}_age`` and ``{prefix}_incr``; like RabbitMQ, no history unless both are numbers."""
        try:
            age, incr = int(query[f"{prefix}_age"]), int(query[f"{prefix}_incr"])
        except (KeyError, ValueError):
            return None
        return cls(age, incr) if age >= 0 and incr > 0 else None


class History:
    """Timestamped samples of one object, the oldest dropped after HISTORY_SECONDS."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.values: deque[dict[str, float]] = deque()

    def push(self, at: float, values: Mapping[str, float]) -> None:
        self.times.append(at)
        self.values.append(dict(values))
        while self.times and self.times[0] < at - HISTORY_SECONDS:
            self.times.popleft()
            self.values.popleft()

    def details(self, name: str, wanted: Range, now: float) -> dict[str, object]:
        """RabbitMQ's samples (newest first, on multiples of incr), avg_rate and avg."""
        incr_ms = wanted.incr * 1000
        newest = int(now * 1000) // incr_ms * incr_ms
        stamps = [newest - step * incr_ms for step in range(wanted.age // wanted.incr + 1)]
        samples = [{"sample": self._value_at(name, stamp / 1000), "timestamp": stamp} for stamp in stamps]
        span = (stamps[0] - stamps[-1]) / 1000
        first, last = samples[-1]["sample"], samples[0]["sample"]
        return {
            "samples": samples,
            "avg_rate": round((last - first) / span, 1) if span else 0.0,
            "avg": round(sum(s["sample"] for s in samples) / len(samples), 1),
        }

    def _value_at(self, name: str, at: float) -> float:
        """The value sampled last at or before ``at`` (before the first sample: the first)."""
        if not self.times:
            return 0
        index = max(bisect.bisect_right(self.times, at) - 1, 0)
        return self.values[index].get(name, 0)


class Sampler:
    def __init__(self, broker: Broker, interval: float = 5.0) -> None:
        self.broker = broker
        self.interval = interval
        self._samples: weakref.WeakKeyDictionary[object, _Samples] = weakref.WeakKeyDictionary()
        self.history = History()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    def sample(self) -> None:
        """Record the counters of every object once; cheap integer reads, no message is touched."""
        broker = self.broker
        now = time.monotonic()
        node = {
            **counters.broker_totals(broker),
            **counters.queue_totals(broker.vhosts.values()),
            **broker.churn.as_dict(),
        }
        self._record(broker, now, node)
        self.history.push(time.time(), node)
        for vhost in broker.vhosts.values():
            totals = counters.vhost_totals(broker, vhost)
            self._record(vhost, now, {**totals, **counters.queue_totals([vhost]), **vhost_bytes(broker, vhost)})
            for exchange in vhost.exchanges.values():
                self._record(exchange, now, counters.of(exchange.stats))
            for queue in vhost.queues.values():
                values = counters.of(queue.stats)
                ready, unacked = queue.message_count, queue.unacked_count
                values.update(messages=ready + unacked, messages_ready=ready, messages_unacknowledged=unacked)
                self._record(queue, now, values)
        for connection in list(broker.connections):
            self._record(connection, now, {"recv_oct": connection.bytes_received, "send_oct": connection.bytes_sent})
            for channel in list(connection.channels.values()):
                self._record(channel, now, counters.of(channel.stats))

    def _record(self, obj: object, now: float, values: Mapping[str, float]) -> None:
        samples = self._samples.get(obj)
        if samples is None:
            self._samples[obj] = _Samples(now, values, self.interval)
        else:
            samples.push(now, values)

    def rate(self, obj: object, name: str) -> float:
        samples = self._samples.get(obj)
        if samples is None:
            return 0.0
        value = samples.rate(name)
        return value if name in _GAUGES else max(value, 0.0)

    def details(
        self, obj: object, values: Mapping[str, int], fields: Iterable[str], wanted: Range | None = None
    ) -> dict[str, object]:
        """{"publish": 10, "publish_details": {"rate": 2.0}, ...} as RabbitMQ's message_stats; with a
        range (the node's figures only), each detail also has its samples, avg_rate and avg."""
        out: dict[str, object] = {}
        now = time.time()
        for name in fields:
            out[name] = values.get(name, 0)
            detail: dict[str, object] = {"rate": round(self.rate(obj, name), 1)}
            if wanted is not None and obj is self.broker:
                detail.update(self.history.details(name, wanted, now))
            out[f"{name}_details"] = detail
        return out


# Gauges may fall (a rate below zero is real); counters only rise, except when an object resets.
_GAUGES = frozenset({"messages", "messages_ready", "messages_unacknowledged"})


def vhost_bytes(broker: Broker, vhost: object) -> dict[str, int]:
    recv = send = 0
    for connection in list(broker.connections):
        if connection.vhost is vhost:
            recv += connection.bytes_received
            send += connection.bytes_sent
    return {"recv_oct": recv, "send_oct": send}
