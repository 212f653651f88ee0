"""The files, the tables and the key layout of the store.

- ``lapine.db`` (+ ``-wal``): definitions and the messages that must survive a restart
  (persistent messages of durable queues). ``synchronous=FULL``: every commit fsyncs the WAL, so a
  completion callback, and therefore a publisher confirm, means the data is on disk. (``NORMAL``
  would skip that fsync in WAL mode and could lose confirmed messages on power loss.)
- ``transient.db``: every other message that is paged out of memory (non-persistent messages,
  messages of non-durable queues). It is attached to the same connection so it shares the batches,
  but it is never fsynced, never goes through the WAL, and is deleted at startup: that is how
  transient messages are "dropped at restart", for the cost of unlinking a file rather than
  scanning the message table for a flag.

A message row: the key, a delivered flag, ``info`` (the broker's expiry and two lengths), ``meta``
(exchange, routing key and content-header payload, concatenated as they came from the wire) and
the body: few columns, because each costs the writer per row about as much as the data does,
and small ones first, so that recovery reads no blob. One rowid table per file, keyed ``queue_id << 44 | seq``: an
integer primary key keeps the whole message (inline up to a page) in one B-tree, so one insert
and one delete per message, a queue's messages contiguous and in publish order, a page of them
one range scan. That bounds a queue id below 2**19 (ids of deleted queues are reused) and a seq
below 2**44 (17.6e12 publishes per queue).

A body of OUT_OF_LINE_BYTES or more goes to ``bodies``, and the message row keeps its size and
points at it; a trigger drops the body with the row (by a reference count, so that rows may share
a body). So message rows stay small whatever the bodies: the count at recovery reads only them.
Smaller bodies stay inline: a second row would cost more than they do.
"""

from __future__ import annotations

import sqlite3

DB_FILE = "lapine.db"
TRANSIENT_FILE = "transient.db"
SCHEMA_VERSION = 1

SEQ_BITS = 44
SEQ_MASK = (1 << SEQ_BITS) - 1
MAX_QUEUE_ID = (1 << (63 - SEQ_BITS)) - 1
# Bodies this large go to the bodies table, out of the message rows (see above).
OUT_OF_LINE_BYTES = 1024
# RabbitMQ's hard limit on a message; SQLite refuses values over 1e9 bytes, and a refusal in the
# writer would fail the store, so bigger messages are refused at enqueue.
MAX_MESSAGE_BYTES = 512 << 20
# expires shares an integer column with two length bytes (see segments.message_info).
EXPIRES_LIMIT = 1 << 46

# Twice SQLite's default: faster at every figure of the benchmark in alternating runs with 4096.
PAGE_SIZE = 8192

DEFINITIONS_DDL = """
CREATE TABLE IF NOT EXISTS vhosts(
    name TEXT PRIMARY KEY, description TEXT NOT NULL, tags TEXT NOT NULL, default_queue_type TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users(
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, hashing_algorithm TEXT NOT NULL,
    tags TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS permissions(
    user TEXT NOT NULL, vhost TEXT NOT NULL,
    configure TEXT NOT NULL, write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY(user, vhost)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS permissions_vhost ON permissions(vhost);
CREATE TABLE IF NOT EXISTS topic_permissions(
    user TEXT NOT NULL, vhost TEXT NOT NULL, exchange TEXT NOT NULL,
    write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY(user, vhost, exchange)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exchanges(
    vhost TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, durable INTEGER NOT NULL,
    auto_delete INTEGER NOT NULL, internal INTEGER NOT NULL, arguments TEXT NOT NULL,
    PRIMARY KEY(vhost, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues(
    id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL, durable INTEGER NOT NULL,
    auto_delete INTEGER NOT NULL, arguments TEXT NOT NULL,
    UNIQUE(vhost, name)
);
CREATE TABLE IF NOT EXISTS bindings(
    vhost TEXT NOT NULL, source TEXT NOT NULL, destination_type TEXT NOT NULL,
    destination TEXT NOT NULL, routing_key TEXT NOT NULL, arguments TEXT NOT NULL,
    PRIMARY KEY(vhost, source, destination_type, destination, routing_key, arguments)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bindings_destination ON bindings(vhost, destination_type, destination);
CREATE TABLE IF NOT EXISTS policies(
    vhost TEXT NOT NULL, name TEXT NOT NULL, pattern TEXT NOT NULL, apply_to TEXT NOT NULL,
    definition TEXT NOT NULL, priority INTEGER NOT NULL,
    PRIMARY KEY(vhost, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parameters(
    vhost TEXT NOT NULL, component TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY(vhost, component, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS global_parameters(
    name TEXT PRIMARY KEY, value TEXT NOT NULL
) WITHOUT ROWID;
"""

# {s} is the schema: "main" (lapine.db) or "t" (transient.db).
MESSAGES_DDL = """
CREATE TABLE IF NOT EXISTS {s}.messages(
    k INTEGER PRIMARY KEY, delivered INTEGER NOT NULL DEFAULT 0, info INTEGER NOT NULL,
    body_id INTEGER, body_size INTEGER, meta BLOB NOT NULL, body BLOB
);
CREATE TABLE IF NOT EXISTS {s}.bodies(id INTEGER PRIMARY KEY, refs INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS {s}.release_body AFTER DELETE ON messages
WHEN old.body_id IS NOT NULL BEGIN
    UPDATE bodies SET refs = refs - 1 WHERE id = old.body_id;
    DELETE FROM bodies WHERE id = old.body_id AND refs <= 0;
END;
"""


def split_sql(script: str) -> list[str]:
    """Split DDL into statements, keeping a trigger's body (which holds semicolons) whole."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


def key_range(queue_id: int) -> tuple[int, int]:
    """The first and last key a queue's messages may have."""
    base = queue_id << SEQ_BITS
    return base, base | SEQ_MASK


def delete_messages(conn: sqlite3.Connection, queue_id: int) -> None:
    """Every message of a queue, in both files (writer thread)."""
    for schema in ("main", "t"):
        conn.execute(f"DELETE FROM {schema}.messages WHERE k BETWEEN ? AND ?", key_range(queue_id))
