"""The sizes of published message bodies, as RabbitMQ's ``rabbitmq_message_size_bytes`` histogram.

RabbitMQ 4.x counts every message it accepts from a publisher into one of nine buckets (100 B up
to 100 MB, then everything larger) and keeps their sum; so does this, at one bisect per message.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds, inclusive; a last, open bucket takes the rest (Prometheus' le="+Inf").
BOUNDS = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 50_000_000, 100_000_000)


class MessageSizes:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.sum = 0

    def observe(self, size: int) -> None:
        self.counts[bisect_left(BOUNDS, size)] += 1
        self.sum += size

    def cumulative(self) -> list[int]:
        """Prometheus' bucket values: each counts its own messages and every smaller bucket's."""
        total = 0
        out = []
        for count in self.counts:
            total += count
            out.append(total)
        return out
