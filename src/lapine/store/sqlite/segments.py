"""What the owner thread batches for the writer: a segment of message operations, and the
statements that apply one.

Why the message statements look the way they do: sqlite3 releases the GIL around every
sqlite3_step() and must take it back afterwards. While the event loop is busy running Python,
taking it back waits up to sys.getswitchinterval() (5 ms), so executemany (one step per row)
falls to a few thousand rows/s under load: the GIL convoy effect. Each batch therefore costs a
handful of steps, whatever its size: inserts go in multi-row statements of up to
_MAX_CHUNK rows (padded to a power of two with NULL rows that the WHERE drops, so that few
distinct statements stay prepared), deletes and marks in one statement over a JSON array, and a
page read returns one row (see pages.py).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lapine.store.sqlite.schema import EXPIRES_LIMIT

# The lists of a segment, per schema; flat: each holds the columns of its rows one after another.
BODIES, INS, REFS, DELS, MARKS = range(5)
T = 5  # offset of the transient schema's lists
_LISTS = 10
SCHEMAS = ("main", "t")
_INSERT_COLUMNS = {
    BODIES: "bodies(id, refs, body)",
    INS: "messages(k, info, meta, body)",
    REFS: "messages(k, info, body_id, body_size, meta)",
}
_WIDTH = {BODIES: 3, INS: 4, REFS: 5}
# Where the writer finds the metas and bodies it measures (see Applier.largest): column offsets.
_METAS = {INS: 2, REFS: 4}
_BODY_COLUMN = {INS: 3, BODIES: 2}
_MAX_CHUNK = 1024  # a 1024-row insert statement takes about 2 MB prepared
_DELETE_SQL = "DELETE FROM {s}.messages WHERE k IN (SELECT value FROM json_each(?))"
_MARK_SQL = "UPDATE {s}.messages SET delivered = 1 WHERE k IN (SELECT value FROM json_each(?))"

Segment = list[list[Any]]


def new_segment() -> Segment:
    return [[] for _ in range(_LISTS)]


def _chunk_sizes(limit: int) -> tuple[int, ...]:
    sizes, size = [], 1
    while size <= _MAX_CHUNK and size * max(_WIDTH.values()) <= limit:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def _insert_sql(schema: str, kind: int, rows: int) -> str:
    width = _WIDTH[kind]
    values = ",".join(["(" + ",".join("?" * width) + ")"] * rows)
    columns = ", ".join(f"column{i + 1}" for i in range(width))
    return (
        f"INSERT INTO {schema}.{_INSERT_COLUMNS[kind]} SELECT {columns} "
        f"FROM (VALUES {values}) WHERE column1 IS NOT NULL"
    )


def message_info(exchange: bytes, routing_key: bytes, expires: int | None) -> int:
    """The small fields of a message row in one integer: the expiry and the lengths that split
    ``meta`` (exchange, routing key and header, concatenated) back apart."""
    lengths = len(exchange) << 8 | len(routing_key)
    if lengths > 0xFFFF or len(routing_key) > 255:
        raise ValueError("exchange and routing key must be shortstrs (255 bytes at most)")
    if expires is None:
        return lengths
    if not 0 <= expires < EXPIRES_LIMIT:
        raise ValueError(f"expires {expires} out of range")
    return (expires + 1) << 16 | lengths



class Applier:
    """Runs a segment's lists against the connection (writer thread only)."""

    def __init__(self, conn: sqlite3.Connection, recovered: tuple[int, int] | None) -> None:
        self.conn = conn
        # The largest meta and body inserted since the start, and among the recovered messages
        # (None until recover_queues has scanned them): their sums bound a message, and pages
        # are sized by that.
        self.seen = (0, 0)
        self.recovered = recovered
        self.sizes = _chunk_sizes(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        self.sql: dict[tuple[int, int], str] = {}
        self.deletes = [_DELETE_SQL.format(s=schema) for schema in SCHEMAS]
        self.marks = [_MARK_SQL.format(s=schema) for schema in SCHEMAS]

    def apply(self, segment: Segment) -> None:
        for offset, schema in ((0, 0), (T, 1)):
            for kind in (BODIES, INS, REFS):
                if segment[offset + kind]:
                    self.insert(schema, kind, segment[offset + kind])
            # Deletes before marks: a mark for a message acked in the same batch then costs nothing.
            if segment[offset + DELS]:
                self.conn.execute(self.deletes[schema], (json.dumps(segment[offset + DELS]),))
            if segment[offset + MARKS]:
                self.conn.execute(self.marks[schema], (json.dumps(segment[offset + MARKS]),))

    def statements(self, segment: Segment) -> int:
        """How many statements apply() will run for this segment."""
        biggest = self.sizes[-1]
        count = 0
        for offset in (0, T):
            for kind in (BODIES, INS, REFS):
                rows = len(segment[offset + kind]) // _WIDTH[kind]
                count += -(-rows // biggest)
            count += bool(segment[offset + DELS]) + bool(segment[offset + MARKS])
        return count

    @property
    def largest(self) -> int | None:
        if self.recovered is None:
            return None
        return max(self.seen[0], self.recovered[0]) + max(self.seen[1], self.recovered[1])

    def saw(self, meta: int, body: int) -> None:
        self.seen = (max(self.seen[0], meta), max(self.seen[1], body))

    def insert(self, schema: int, kind: int, flat: list[Any]) -> None:
        width = _WIDTH[kind]
        if kind in _METAS:
            self.saw(max(map(len, flat[_METAS[kind] :: width])), 0)
        if kind in _BODY_COLUMN:
            self.saw(0, max(map(len, flat[_BODY_COLUMN[kind] :: width])))
        sizes = self.sizes
        biggest = sizes[-1]
        rows, pos = len(flat) // width, 0
        while rows:
            take = min(rows, biggest)
            size = next(s for s in sizes if s >= take)
            end = pos + take * width
            params = flat[pos:end]
            if take < size:
                params.extend([None] * ((size - take) * width))
            sql = self.sql.get((schema * 16 + kind, size))
            if sql is None:
                sql = self.sql[(schema * 16 + kind, size)] = _insert_sql(SCHEMAS[schema], kind, size)
            self.conn.execute(sql, params)
            rows -= take
            pos = end
