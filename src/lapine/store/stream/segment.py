"""One segment: its chunks in a data file, and an index entry per chunk for lookups.

An index entry is (first offset, timestamp, position). The index is derived from the data: a
segment opened after a crash is scanned, its torn tail cut and its index rebuilt as needed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from lapine.store.stream import chunk
from lapine.store.stream.chunk import CHUNK_HEADER, ChunkHeader
from lapine.store.stream.files import LogFile

INDEX_ENTRY = struct.Struct(">QqQ")
_READ_BLOCK = 1 << 18


class Segment:
    """A segment's files and what the log needs to know of it without reading it."""

    def __init__(self, first_offset: int, data: LogFile, index: LogFile) -> None:
        self.first_offset = first_offset
        self.data = data
        self.index = index
        self.last_offset = first_offset - 1  # none yet
        self.first_timestamp = 0
        self.last_timestamp = 0
        self.chunks = 0
        self.last_chunk_offset = first_offset - 1  # the first offset of its newest chunk

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def empty(self) -> bool:
        return self.chunks == 0

    # --- opening -------------------------------------------------------------------------------

    def recover(self, *, scan: bool) -> None:
        """Learn the segment's extent. ``scan`` (the last segment, or an index that does not
        match its data): read every chunk header, cut what is torn, and rebuild the index."""
        if not scan and self._index_matches():
            return
        entries: list[bytes] = []
        end = 0
        for position, header, whole in self._scan():
            if whole is None:
                break
            entries.append(INDEX_ENTRY.pack(header.first_offset, header.timestamp, position))
            end = position + header.total_size
            self._seen(header)
        if self.data.size != end:
            self.data.truncate(end)
            self.data.sync()
        rebuilt = b"".join(entries)
        if self.index.size != len(rebuilt) or self.index.read(0, len(rebuilt)) != rebuilt:
            self.index.truncate(0)
            self.index.append(rebuilt)
            self.index.sync()

    def _index_matches(self) -> bool:
        """An index whose last entry points at the data's last chunk, ending at the data's end."""
        size = self.index.size
        if size == 0 or size % INDEX_ENTRY.size:
            return False
        first, first_timestamp, _position = INDEX_ENTRY.unpack(self.index.read(0, INDEX_ENTRY.size))
        _offset, _timestamp, position = INDEX_ENTRY.unpack(self.index.read(size - INDEX_ENTRY.size, INDEX_ENTRY.size))
        header = chunk.parse_header(self.data.read(position, CHUNK_HEADER.size))
        if header is None or position + header.total_size != self.data.size or first != self.first_offset:
            return False
        self.chunks = size // INDEX_ENTRY.size
        self.first_timestamp = first_timestamp
        self.last_timestamp = header.timestamp
        self.last_offset = header.last_offset
        self.last_chunk_offset = header.first_offset
        return True

    def _scan(self) -> Iterator[tuple[int, ChunkHeader, bytes | None]]:
        """Every chunk from the start, checked; the last one yielded with None is torn."""
        position = 0
        expected = self.first_offset
        size = self.data.size
        while position < size:
            raw_header = self.data.read(position, CHUNK_HEADER.size)
            header = chunk.parse_header(raw_header)
            if header is None or header.first_offset != expected or position + header.total_size > size:
                if header is not None:
                    yield position, header, None
                return
            whole = self.data.read(position, header.total_size)
            if not chunk.crc_ok(whole, header):
                yield position, header, None
                return
            yield position, header, whole
            position += header.total_size
            expected = header.last_offset + 1

    def _seen(self, header: ChunkHeader) -> None:
        if self.chunks == 0:
            self.first_timestamp = header.timestamp
        self.chunks += 1
        self.last_offset = header.last_offset
        self.last_chunk_offset = header.first_offset
        self.last_timestamp = header.timestamp

    # --- writing -------------------------------------------------------------------------------

    def append(self, raw: bytes, header: ChunkHeader) -> None:
        position = self.data.size
        self.data.append(raw)
        self.index.append(INDEX_ENTRY.pack(header.first_offset, header.timestamp, position))
        self._seen(header)

    def sync(self) -> None:
        self.data.sync()

    def seal(self) -> None:
        """No more chunks: the index is made durable too (the last segment's is rebuilt on open)."""
        self.index.sync()

    def close(self) -> None:
        self.data.close()
        self.index.close()

    # --- reading -------------------------------------------------------------------------------

    def _entry(self, number: int) -> tuple[int, int, int]:
        offset, timestamp, position = INDEX_ENTRY.unpack(self.index.read(number * INDEX_ENTRY.size, INDEX_ENTRY.size))
        return offset, timestamp, position

    def position_of_offset(self, offset: int) -> int:
        """Where the chunk holding ``offset`` starts (binary search over the index)."""
        low, high = 0, self.chunks - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self._entry(middle)[0] <= offset:
                low = middle
            else:
                high = middle - 1
        return self._entry(low)[2]

    def offset_at_timestamp(self, timestamp: int) -> int | None:
        """The first offset of the first chunk written at or after ``timestamp``, if any."""
        if self.empty or self.last_timestamp < timestamp:
            return None
        low, high = 0, self.chunks - 1
        while low < high:
            middle = (low + high) // 2
            if self._entry(middle)[1] >= timestamp:
                high = middle
            else:
                low = middle + 1
        return self._entry(low)[0]

    def chunks_from(self, position: int) -> Iterator[tuple[ChunkHeader, memoryview]]:
        """The chunks from ``position`` to the end, read in large blocks."""
        size = self.data.size
        buffer = b""
        start = position  # file position of buffer[0]
        while position < size:
            offset_in = position - start
            if offset_in + CHUNK_HEADER.size > len(buffer):
                buffer, start, offset_in = self.data.read(position, max(_READ_BLOCK, CHUNK_HEADER.size)), position, 0
            header = chunk.parse_header(memoryview(buffer)[offset_in:])
            if header is None:
                return
            if offset_in + header.total_size > len(buffer):
                buffer = self.data.read(position, max(_READ_BLOCK, header.total_size))
                start, offset_in = position, 0
            yield header, memoryview(buffer)[offset_in : offset_in + header.total_size]
            position += header.total_size
