"""Messages in the SQLite store: enqueue, ack, page, purge, flags, transient data, recovery."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lapine.store import QueueDef, QueueRecovery, QueueStats, SqliteStore, StoredMessage
from lapine.store import sqlite as store_sqlite
from lapine.store.sqlite import DB_FILE, OUT_OF_LINE_BYTES, SEQ_BITS, SEQ_MASK
from lapine.store.sqlite import pages as store_pages
from lapine.store.sqlite import store as store_module

Opener = Callable[[], SqliteStore]


def run_now(fn: Callable[[], object]) -> None:
    fn()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def open_store(data_dir: Path) -> Iterator[Opener]:
    opened: list[SqliteStore] = []

    def opener() -> SqliteStore:
        store = SqliteStore(data_dir, notify=run_now)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def read_all(store: SqliteStore, queue_id: int, page: int = 3) -> list[StoredMessage]:
    """Page through the whole queue, the way a queue refills its in-memory window."""
    found: list[StoredMessage] = []
    after = -1
    while batch := store.read_messages(queue_id, after, page):
        assert len(batch) <= page
        found += batch
        after = batch[-1].seq
    return found


def seqs(messages: list[StoredMessage]) -> list[int]:
    return [m.seq for m in messages]


def stored(seq: int, header: bytes, body: bytes, delivered: bool = False) -> StoredMessage:
    return StoredMessage(seq, b"x", b"rk", header, body, delivered, None)


def test_enqueue_then_page_in_order(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    for seq in (0, 1, 2, 5, 9, 10, 11):
        store.enqueue(q, seq, b"x", b"rk", b"header%d" % seq, b"body%d" % seq)
    # Read-your-writes: nothing has been waited for, the read still sees every enqueue before it.
    messages = read_all(store, q)
    assert seqs(messages) == [0, 1, 2, 5, 9, 10, 11]
    assert messages[3] == stored(5, b"header5", b"body5")
    assert seqs(store.read_messages(q, 5, 2)) == [9, 10]
    assert store.read_messages(q, 11, 5) == []
    assert store.read_messages(q, SEQ_MASK, 5) == []


def test_routing_info_and_expiry_round_trip(open_store: Opener) -> None:
    store = open_store()
    queues = [store.put_queue(QueueDef("/", name, durable=name != "tmp")) for name in ("a", "b", "tmp")]
    big = b"B" * OUT_OF_LINE_BYTES
    store.enqueue(queues[0], 1, b"", b"\xff\x00not utf-8", b"h", b"b", expires=1_700_000_000_123)
    store.enqueue(queues[0], 2, b"amq.topic", b"", b"h", b"t", persistent=False)
    for q in queues:
        store.enqueue(q, 3, b"fan", b"out", b"h", big, expires=1000 + q)
    expected = [
        StoredMessage(1, b"", b"\xff\x00not utf-8", b"h", b"b", False, 1_700_000_000_123),
        StoredMessage(2, b"amq.topic", b"", b"h", b"t", False, None),
        StoredMessage(3, b"fan", b"out", b"h", big, False, 1000 + queues[0]),
    ]
    assert read_all(store, queues[0]) == expected
    assert read_all(store, queues[2]) == [StoredMessage(3, b"fan", b"out", b"h", big, False, 1000 + queues[2])]
    store.close()
    store = open_store()
    assert read_all(store, queues[0]) == [expected[0], expected[2]]


def test_queues_do_not_see_each_other(open_store: Opener) -> None:
    store = open_store()
    a, b = store.put_queue(QueueDef("/", "a")), store.put_queue(QueueDef("/", "b"))
    store.enqueue(a, SEQ_MASK, b"x", b"rk", b"h", b"last possible seq")
    store.enqueue(b, 0, b"x", b"rk", b"h", b"first of b")
    assert seqs(read_all(store, a)) == [SEQ_MASK]
    assert seqs(read_all(store, b)) == [0]


def test_ack_and_purge(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    for seq in range(10):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"b")
    store.ack(q, [0, 3, 4, 99])  # 99 was never there: ignored
    store.ack(q, [])
    assert seqs(read_all(store, q)) == [1, 2, 5, 6, 7, 8, 9]
    store.purge(q)
    assert read_all(store, q) == []
    store.enqueue(q, 3, b"x", b"rk", b"h", b"a seq may come back after a purge")
    assert seqs(read_all(store, q)) == [3]


def test_delivered_flag_survives_reopen(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    for seq in range(4):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"b")
    store.mark_delivered(q, [1, 3])
    store.mark_delivered(q, [2])
    store.ack(q, [2])  # marked and acked in one batch: gone
    assert [m.delivered for m in read_all(store, q)] == [False, True, True]
    store.close()
    store = open_store()
    assert [(m.seq, m.delivered) for m in read_all(store, q)] == [(0, False), (1, True), (3, True)]


def test_transient_messages_are_paged_but_dropped_at_restart(open_store: Opener, data_dir: Path) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    for seq in range(6):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"b%d" % seq, persistent=seq % 2 == 0)
    store.mark_delivered(q, [1, 2])
    store.ack(q, [3])
    # One queue, two files: the page merges them in seq order.
    assert [(m.seq, m.delivered) for m in read_all(store, q, page=2)] == [
        (0, False),
        (1, True),
        (2, True),
        (4, False),
        (5, False),
    ]
    assert store.queue_stats(q) == QueueStats(5, 10)
    store.close()
    assert not (data_dir / "transient.db").exists()
    store = open_store()
    assert seqs(read_all(store, q)) == [0, 2, 4]
    assert store.recover_queues() == {q: QueueRecovery(q, 3, 6, 0, 4)}


def test_non_durable_queue_pages_to_disk(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "tmp", durable=False))
    for seq in range(5):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"b", persistent=True)  # persistent, but the queue is not
    store.ack(q, [0])
    store.mark_delivered(q, [1])
    assert [(m.seq, m.delivered) for m in read_all(store, q)] == [(1, True), (2, False), (3, False), (4, False)]
    store.delete_queue("/", "tmp")
    assert store.queue_id("/", "tmp") is None
    assert store.recover_queues() == {}


def test_page_capped_by_bytes(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    sizes = [10, 10, 50, 10, 1000, 10]
    for seq, size in enumerate(sizes):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"x" * size, persistent=seq != 3)
    assert seqs(store.read_messages(q, -1, 100, max_bytes=20)) == [0, 1]
    assert seqs(store.read_messages(q, -1, 100, max_bytes=21)) == [0, 1, 2]
    assert seqs(store.read_messages(q, 3, 100, max_bytes=1)) == [4]  # the first always comes
    assert seqs(store.read_messages(q, 1, 2, max_bytes=10_000)) == [2, 3]
    with pytest.raises(ValueError):
        store.read_messages(q, -1, 0)


def test_odd_bodies_round_trip(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    bodies = [b"", bytes(range(256)) * 3, b"\x00" * 10, b"x" * (3 * 1024 * 1024)]
    for seq, body in enumerate(bodies):
        store.enqueue(q, seq, b"x", b"rk", b"\x00\x3c" + bytes([seq]), body)
    store.close()
    store = open_store()
    found = read_all(store, q, page=10)
    assert [m.body for m in found] == bodies
    assert [m.header for m in found] == [b"\x00\x3c" + bytes([seq]) for seq in range(4)]


def test_recover_queues_counts_without_bodies(open_store: Opener) -> None:
    store = open_store()
    a = store.put_queue(QueueDef("/", "a"))
    b = store.put_queue(QueueDef("/", "b"))
    c = store.put_queue(QueueDef("/", "c"))
    for seq in range(100, 200):
        store.enqueue(a, seq, b"x", b"rk", b"hh", b"0123456789")
    store.enqueue(b, 7, b"x", b"rk", b"h", b"abc")
    store.ack(a, range(100, 150))
    store.close()
    store = open_store()
    assert store.recover_queues() == {
        a: QueueRecovery(a, 50, 500, 150, 199),
        b: QueueRecovery(b, 1, 3, 7, 7),
        c: QueueRecovery(c, 0, 0, None, None),
    }
    assert store.queue_stats(a) == QueueStats(50, 500)


def count_rows(store: SqliteStore, table: str) -> int:
    return store._query(lambda conn: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[no-any-return]


def test_large_bodies_stay_out_of_the_message_rows(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    store.enqueue(q, 1, b"x", b"rk", b"h", b"s" * (OUT_OF_LINE_BYTES - 1))
    store.enqueue(q, 2, b"x", b"rk", b"h", b"L" * OUT_OF_LINE_BYTES)
    store.enqueue(q, 3, b"x", b"rk", b"h", b"t" * 10, persistent=False)
    store.enqueue(q, 4, b"x", b"rk", b"h", b"T" * OUT_OF_LINE_BYTES, persistent=False)
    assert (count_rows(store, "main.bodies"), count_rows(store, "t.bodies")) == (1, 1)
    assert [len(m.body) for m in read_all(store, q)] == [
        OUT_OF_LINE_BYTES - 1,
        OUT_OF_LINE_BYTES,
        10,
        OUT_OF_LINE_BYTES,
    ]
    assert store.queue_stats(q) == QueueStats(4, 3 * OUT_OF_LINE_BYTES + 9)
    store.mark_delivered(q, [2])
    store.close()
    store = open_store()
    assert store.recover_queues()[q] == QueueRecovery(q, 2, 2 * OUT_OF_LINE_BYTES - 1, 1, 2)
    assert read_all(store, q)[1] == stored(2, b"h", b"L" * OUT_OF_LINE_BYTES, delivered=True)
    store.ack(q, [2])
    assert count_rows(store, "main.bodies") == 0


def test_recovery_reads_no_out_of_line_body(open_store: Opener, data_dir: Path) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    for seq in range(3):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"L" * 100_000)
    store.close()
    # Wreck the bodies' pages: recovery must not notice, as it must not read them.
    store = open_store()
    pages = store._query(
        lambda conn: [
            row[0] for row in conn.execute("SELECT pageno FROM dbstat WHERE name = 'bodies' AND pagetype = 'overflow'")
        ]
    )
    store.close()
    if not pages:
        pytest.skip("this SQLite has no dbstat table")
    page_size = store_sqlite.PAGE_SIZE
    with open(data_dir / DB_FILE, "r+b") as db:
        for page in pages:
            db.seek((page - 1) * page_size)
            db.write(b"\xee" * page_size)
    store = open_store()
    assert store.recover_queues()[q] == QueueRecovery(q, 3, 300_000, 0, 2)


def test_bad_message_calls_raise_without_failing_the_store(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    with pytest.raises(KeyError):
        store.enqueue(999, 0, b"x", b"rk", b"h", b"b")
    with pytest.raises(ValueError):
        store.enqueue(q, -1, b"x", b"rk", b"h", b"b")
    with pytest.raises(ValueError):
        store.enqueue(q, SEQ_MASK + 1, b"x", b"rk", b"h", b"b")
    store.enqueue(q, 0, b"x", b"rk", b"h", b"b")
    assert store.failed is None
    assert len(read_all(store, q)) == 1


def test_messages_of_unknown_queues_are_dropped_at_open(open_store: Opener, data_dir: Path) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    store.enqueue(q, 1, b"x", b"rk", b"h", b"kept")
    store.close()
    # Rows no queue owns (they cannot arise through the store; written here behind its back).
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        for key in ((7 << SEQ_BITS) | 3, (2 << SEQ_BITS) | 3):
            conn.execute("INSERT INTO messages(k, info, meta, body) VALUES (?, 0, x'', x'')", (key,))
    conn.close()
    store = open_store()
    assert seqs(read_all(store, q)) == [1]
    assert count_rows(store, "main.messages") == 1
    assert store.put_queue(QueueDef("/", "new")) == 2
    assert read_all(store, 2) == []


def test_pages_stay_under_sqlites_value_limit(open_store: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    # A page is one SQLite value; with READ_CAP_BYTES shrunk, big messages must shrink pages.
    monkeypatch.setattr(store_pages, "READ_CAP_BYTES", 2500)
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    for seq in range(20):
        store.enqueue(q, seq, b"x", b"rk", b"h", b"x" * (100 if seq < 10 else 1000))
    # Largest message known: 1000 bytes of body and 4 of exchange, routing key and header: the
    # fast path takes 2500 // 1004 = 2 per page.
    assert seqs(store.read_messages(q, -1, 50)) == [0, 1]
    assert seqs(read_all(store, q, page=50)) == list(range(20))
    store.close()
    store = open_store()
    # After a restart the largest is unknown until recover_queues scans: the path capped by body
    # bytes, which takes messages while less than 2500 came before them (2000 before seq 11).
    assert seqs(store.read_messages(q, -1, 50)) == list(range(12))
    store.recover_queues()
    assert seqs(store.read_messages(q, -1, 50)) == [0, 1]
    assert seqs(read_all(store, q, page=50)) == list(range(20))


def test_routing_fields_are_checked(open_store: Opener) -> None:
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    with pytest.raises(ValueError, match="shortstr"):
        store.enqueue(q, 0, b"x" * 256, b"rk", b"h", b"b")
    with pytest.raises(ValueError, match="shortstr"):
        store.enqueue(q, 0, b"x", b"k" * 256, b"h", b"b")
    with pytest.raises(ValueError, match="expires"):
        store.enqueue(q, 0, b"x", b"rk", b"h", b"b", expires=-1)
    store.enqueue(q, 0, b"x" * 255, b"k" * 255, b"h", b"b", expires=store_sqlite.EXPIRES_LIMIT - 1)
    assert store.read_messages(q, -1, 1) == [
        StoredMessage(0, b"x" * 255, b"k" * 255, b"h", b"b", False, store_sqlite.EXPIRES_LIMIT - 1)
    ]


def test_oversized_message_is_refused_at_enqueue(open_store: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_MESSAGE_BYTES", 10)
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    with pytest.raises(ValueError, match="over the store's"):
        store.enqueue(q, 0, b"x", b"rk", b"h", b"x" * 11)
    store.enqueue(q, 0, b"x", b"rk", b"h", b"x" * 10)
    assert store.failed is None


@pytest.mark.parametrize("max_bytes", [None, 100_000])
def test_a_page_over_both_files_has_no_gap(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch, max_bytes: int | None
) -> None:
    """Each file is read with its own limits (a count bounded by the largest message, or the cap
    on a read's bytes): the page must stop where either read stopped, or the messages of one file
    that the other's read jumped past are never read."""
    monkeypatch.setattr(store_pages, "READ_CAP_BYTES", 4000)
    store = open_store()
    q = store.put_queue(QueueDef("/", "q"))
    # A run of large persistent messages, then a run of small transient ones.
    for seq in range(12):
        persistent = seq < 6
        body = b"P" * 1500 if persistent else b"t%d" % seq
        store.enqueue(q, seq, b"", b"q", b"h", body, persistent=persistent)
    pages = []
    after = -1
    while page := store.read_messages(q, after, 4, max_bytes):
        pages.append(seqs(page))
        after = page[-1].seq
    assert [seq for page in pages for seq in page] == list(range(12))
