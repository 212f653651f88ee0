"""One message of a stream as the log keeps it: what the publish brought, and where it sits."""

from __future__ import annotations

import struct
from typing import NamedTuple

# header size, body size, exchange size, routing key size, filter value size
RECORD_HEADER = struct.Struct(">IIBBH")


class StreamRecord(NamedTuple):
    offset: int
    timestamp: int  # ms since the epoch: its chunk's
    filter_value: bytes | None  # x-stream-filter-value, None when it had none
    exchange: bytes
    routing_key: bytes
    header: bytes  # the content-header frame payload
    body: bytes


class PendingRecord(NamedTuple):
    """A record handed to the log, not yet in a chunk (its offset is known already)."""

    filter_value: bytes | None
    exchange: bytes
    routing_key: bytes
    header: bytes
    body: bytes


def encode_record(record: PendingRecord, parts: list[bytes]) -> int:
    """Append the record's bytes to ``parts``; return how many."""
    filter_value = record.filter_value or b""
    parts.append(
        RECORD_HEADER.pack(
            len(record.header), len(record.body), len(record.exchange), len(record.routing_key), len(filter_value)
        )
    )
    parts += (record.exchange, record.routing_key, filter_value, record.header, record.body)
    return (
        RECORD_HEADER.size
        + len(record.exchange)
        + len(record.routing_key)
        + len(filter_value)
        + len(record.header)
        + len(record.body)
    )
