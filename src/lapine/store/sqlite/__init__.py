"""The embedded store: stdlib sqlite3 in WAL mode, written by one thread in group commits.

- schema.py: the files, tables and key layout;
- store.py: SqliteStore, the API on the owner thread, with its batches and queue-id registry;
- writer.py: the writer thread and its group commits, failures and retries;
- segments.py: the batched message operations and the statements that apply them;
- pages.py: reading messages back (recovery counts, pages);
- definitions.py: the rows of definitions; values.py: AMQP field values as tagged JSON.
"""

from lapine.store.sqlite.schema import (
    DB_FILE,
    EXPIRES_LIMIT,
    MAX_MESSAGE_BYTES,
    OUT_OF_LINE_BYTES,
    PAGE_SIZE,
    SEQ_BITS,
    SEQ_MASK,
    TRANSIENT_FILE,
)
from lapine.store.sqlite.store import SqliteStore
from lapine.store.sqlite.values import decode_value, encode_value
from lapine.store.sqlite.writer import WriterStats

__all__ = [
    "DB_FILE",
    "EXPIRES_LIMIT",
    "MAX_MESSAGE_BYTES",
    "OUT_OF_LINE_BYTES",
    "PAGE_SIZE",
    "SEQ_BITS",
    "SEQ_MASK",
    "TRANSIENT_FILE",
    "SqliteStore",
    "WriterStats",
    "decode_value",
    "encode_value",
]
