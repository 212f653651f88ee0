"""Which old segments retention removes: whole segments only, never the one being written.

x-max-length-bytes bounds the bytes of the segments kept; x-max-age removes a segment once its
newest chunk is older than the age (RabbitMQ's osiris does the same, segment by segment).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Retention(NamedTuple):
    max_bytes: int | None = None
    max_age_ms: int | None = None


class SegmentExtent(NamedTuple):
    size: int
    last_timestamp: int


def segments_to_drop(segments: Sequence[SegmentExtent], retention: Retention, now_ms: int) -> int:
    """How many of the oldest segments go (the last one always stays)."""
    drop = 0
    removable = len(segments) - 1
    if retention.max_bytes is not None:
        total = sum(segment.size for segment in segments)
        while drop < removable and total > retention.max_bytes:
            total -= segments[drop].size
            drop += 1
    if retention.max_age_ms is not None:
        oldest_kept = now_ms - retention.max_age_ms
        while drop < removable and segments[drop].last_timestamp < oldest_kept:
            drop += 1
    return drop
