"""Reading a queue's messages back: counts at recovery, and pages in publish order."""

from __future__ import annotations

import heapq
import json
from itertools import accumulate
from operator import itemgetter

from lapine.store.base import StoredMessage
from lapine.store.sqlite.schema import SEQ_MASK
from lapine.store.sqlite.segments import Applier

# A page read is one value made of the page's headers and bodies (see _READ_SQL): kept well
# under SQLite's 1e9-byte limit on a value, whatever the caller's limits.
READ_CAP_BYTES = 256 << 20

# The length of a message's body without loading it: length() of a plain column reads only the
# record header, so neither recovery nor a byte-capped page read touches the bodies it skips.
_BODY_LENGTH = "CASE WHEN m.body_id IS NULL THEN length(m.body) ELSE m.body_size END"
STATS_SQL = (
    "SELECT count(*), min(m.k), max(m.k), coalesce(sum(" + _BODY_LENGTH + "), 0), "
    "coalesce(max(length(m.meta)), 0), coalesce(max(" + _BODY_LENGTH + "), 0) "
    "FROM {s}.messages AS m WHERE m.k BETWEEN ? AND ?"
)
# A page comes back as one row: keys, delivered flags and expiries as JSON arrays; the lengths
# of each message's exchange, routing key, header and body as one list; and all those bytes
# concatenated in one blob (|| and group_concat copy bytes as they are; the CAST turns the text
# back into a blob). The aggregates all see the rows in the same order.
_PAGE_COLUMNS = (
    "SELECT json_group_array(m.k), json_group_array(m.delivered), json_group_array(nullif(m.info >> 16, 0) - 1), "
    "'[' || group_concat((m.info >> 8 & 255) || ',' || (m.info & 255) || ',' || "
    "(length(m.meta) - (m.info >> 8 & 255) - (m.info & 255)) || ',' || " + _BODY_LENGTH + ") || ']', "
    "CAST(group_concat(m.meta || coalesce(m.body, x.body), '') AS BLOB) "
)
_READ_SQL = (
    _PAGE_COLUMNS + "FROM (SELECT * FROM {s}.messages WHERE k > ? AND k <= ? ORDER BY k LIMIT ?) AS m "
    "LEFT JOIN {s}.bodies AS x ON x.id = m.body_id"
)
# The same, capped by body bytes: the running total is computed from lengths alone, so bodies
# past the cap are never loaded. Slower (a window and a join), so only used when asked.
_READ_CAPPED_SQL = (
    "WITH page AS (SELECT k, bl, sum(bl) OVER (ORDER BY k ROWS UNBOUNDED PRECEDING) AS run FROM ("
    "SELECT m.k AS k, " + _BODY_LENGTH + " AS bl FROM {s}.messages AS m "
    "WHERE m.k > ? AND m.k <= ? ORDER BY m.k LIMIT ?)) "
    + _PAGE_COLUMNS
    + "FROM page AS p JOIN {s}.messages AS m ON m.k = p.k LEFT JOIN {s}.bodies AS x ON x.id = m.body_id "
    "WHERE p.run - p.bl < ?"
)


def read_messages(
    applier: Applier, schemas: list[str], lo: int, hi: int, limit: int, max_bytes: int | None
) -> list[StoredMessage]:
    """A page of a queue whose messages may be in both files: each file is read on its own, and
    the merge stops at the first seq one of them may have left out (a file's read stops at its
    own count or byte cap), so that the page is every message of the queue in its seq range."""
    conn = applier.conn
    parts = []
    bound = SEQ_MASK  # every file's messages up to here are in the parts
    for schema in schemas:
        if max_bytes is None and applier.largest is not None:
            # The fast query cannot stop at a byte count, so bound the page by the largest message.
            safe = min(limit, max(1, READ_CAP_BYTES // max(applier.largest, 1)))
            row = conn.execute(_READ_SQL.format(s=schema), (lo, hi, safe)).fetchone()
            part = _decode_page(*row)
            cut = len(part) == safe
        else:
            cap = READ_CAP_BYTES if max_bytes is None else min(max_bytes, READ_CAP_BYTES)
            row = conn.execute(_READ_CAPPED_SQL.format(s=schema), (lo, hi, limit, cap)).fetchone()
            part = _decode_page(*row)
            cut = len(part) == limit or sum(len(m.body) for m in part) >= cap
        if cut:
            bound = min(bound, part[-1].seq)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    merged: list[StoredMessage] = []
    size = 0
    for message in heapq.merge(*parts):
        if message.seq > bound or len(merged) == limit or (max_bytes is not None and size >= max_bytes):
            break
        merged.append(message)
        size += len(message.body)
    return merged


def _decode_page(
    keys: str, delivered: str, expires: str, lengths: str | None, blob: bytes | None
) -> list[StoredMessage]:
    # Only C-level loops (map, slices, accumulate): this runs once per paged message and holds
    # the GIL the event loop is waiting for.
    if lengths is None or blob is None:
        return []
    ends = list(accumulate(json.loads(lengths)))
    starts = [0]
    starts += ends[:-1]
    pieces = list(map(blob.__getitem__, map(slice, starts, ends)))
    page = list(
        map(
            StoredMessage._make,
            zip(
                map(SEQ_MASK.__and__, json.loads(keys)),
                pieces[0::4],
                pieces[1::4],
                pieces[2::4],
                pieces[3::4],
                map(bool, json.loads(delivered)),
                json.loads(expires),
                strict=True,
            ),
        )
    )
    # Aggregates promise no order; they keep the subquery's key order in practice, making this O(n).
    page.sort(key=itemgetter(0))
    return page
