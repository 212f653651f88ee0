"""A chunk: the messages of one write, with a header that says where they start, when, and a CRC.

Layout: header (CHUNK_HEADER), then the bloom filter (``bloom_size`` bytes, none when no message
had a filter value), then the records (record.py). The CRC covers the header fields before it,
the bloom and the records, so a chunk torn by a crash, or damaged, is recognised on open.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from lapine.store.stream import bloom
from lapine.store.stream.record import RECORD_HEADER, PendingRecord, StreamRecord, encode_record

MAGIC = b"LSC1"
# magic, first offset, record count, timestamp ms, records size, bloom size, flags, crc32
CHUNK_HEADER = struct.Struct(">4sQIqIBBI")
_CRC_START = CHUNK_HEADER.size - 4
HAS_UNFILTERED = 0x01  # some message had no filter value


class ChunkHeader(NamedTuple):
    first_offset: int
    record_count: int
    timestamp: int
    data_size: int
    bloom_size: int
    flags: int
    crc: int

    @property
    def total_size(self) -> int:
        return CHUNK_HEADER.size + self.bloom_size + self.data_size

    @property
    def last_offset(self) -> int:
        return self.first_offset + self.record_count - 1


def encode_chunk(first_offset: int, timestamp: int, records: list[PendingRecord], bloom_size: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    values: set[bytes] = set()
    unfiltered = False
    for record in records:
        size += encode_record(record, parts)
        if record.filter_value is None:
            unfiltered = True
        else:
            values.add(record.filter_value)
    filter_bits = bloom.build(values, bloom_size)
    data = b"".join(parts)
    flags = HAS_UNFILTERED if unfiltered else 0
    head = CHUNK_HEADER.pack(MAGIC, first_offset, len(records), timestamp, size, len(filter_bits), flags, 0)
    crc = zlib.crc32(data, zlib.crc32(filter_bits, zlib.crc32(head[:_CRC_START])))
    return head[:_CRC_START] + crc.to_bytes(4, "big") + filter_bits + data


def parse_header(raw: bytes | memoryview) -> ChunkHeader | None:
    """The header at the start of ``raw``, or None when it is not one (torn or foreign)."""
    if len(raw) < CHUNK_HEADER.size:
        return None
    magic, first, count, timestamp, data_size, bloom_size, flags, crc = CHUNK_HEADER.unpack_from(raw, 0)
    if magic != MAGIC or count == 0:
        return None
    return ChunkHeader(first, count, timestamp, data_size, bloom_size, flags, crc)


def crc_ok(raw: bytes | memoryview, header: ChunkHeader) -> bool:
    """``raw`` is the whole chunk: does its CRC hold?"""
    if len(raw) < header.total_size:
        return False
    crc = zlib.crc32(raw[CHUNK_HEADER.size : header.total_size], zlib.crc32(raw[:_CRC_START]))
    return crc == header.crc


def bloom_of(raw: bytes | memoryview, header: ChunkHeader) -> bytes:
    return bytes(raw[CHUNK_HEADER.size : CHUNK_HEADER.size + header.bloom_size])


def records(raw: bytes | memoryview, header: ChunkHeader) -> Iterator[StreamRecord]:
    """The records of a whole chunk, in offset order."""
    view = memoryview(raw)
    pos = CHUNK_HEADER.size + header.bloom_size
    unpack = RECORD_HEADER.unpack_from
    for index in range(header.record_count):
        header_size, body_size, exchange_size, key_size, filter_size = unpack(view, pos)
        pos += RECORD_HEADER.size
        exchange = bytes(view[pos : pos + exchange_size])
        pos += exchange_size
        routing_key = bytes(view[pos : pos + key_size])
        pos += key_size
        filter_value = bytes(view[pos : pos + filter_size]) if filter_size else None
        pos += filter_size
        content_header = bytes(view[pos : pos + header_size])
        pos += header_size
        body = bytes(view[pos : pos + body_size])
        pos += body_size
        yield StreamRecord(
            header.first_offset + index, header.timestamp, filter_value, exchange, routing_key, content_header, body
        )
