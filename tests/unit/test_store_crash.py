"""Crash safety with real processes: SIGKILL mid-write, and torn WAL tails.

A child process enqueues messages with increasing seqs and acks the oldest ones in seq order,
printing "C <low> <next>" from each barrier callback: from then on, the queue holding exactly
[low, next) is confirmed. Every state the store can recover to is then a contiguous range
[lo, hi) with lo >= low and hi >= next for the last confirmation printed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lapine.store import SqliteStore
from lapine.store.sqlite import DB_FILE

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from lapine.store import QueueDef, SqliteStore

    def body(seq):
        return seq.to_bytes(8, "big") * (1 + seq % 13)

    async def main():
        loop = asyncio.get_running_loop()
        store = SqliteStore(sys.argv[1], notify=loop.call_soon_threadsafe, wal_autocheckpoint=int(sys.argv[2]))
        q = store.put_queue(QueueDef("/", "q"))
        info = store.recover_queues()[q]
        nxt = 0 if info.last_seq is None else info.last_seq + 1
        low = nxt if info.first_seq is None else info.first_seq
        print("R", low, nxt, flush=True)
        while True:
            for _ in range(200):
                store.enqueue(q, nxt, b"x", b"rk", b"h", body(nxt))
                nxt += 1
            if nxt - low > 2000:
                store.ack(q, range(low, low + 150))
                low += 150
            store.submit_barrier(lambda low=low, nxt=nxt: print("C", low, nxt, flush=True))
            await asyncio.sleep(0)
            while store.backlog > 5000:
                await asyncio.sleep(0.001)

    asyncio.run(main())
    """
)


def body(seq: int) -> bytes:
    return seq.to_bytes(8, "big") * (1 + seq % 13)


def run_and_kill(data_dir: Path, rng: random.Random, checkpoint: int = 1000) -> tuple[int, int]:
    """Run the child until it has confirmed a few batches, SIGKILL it at a random moment while
    it is writing, and return its last confirmed (low, next)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), str(checkpoint)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().startswith("R ")
        confirmed = (0, 0)
        deadline = time.monotonic() + rng.uniform(0.2, 0.6)
        while time.monotonic() < deadline or confirmed == (0, 0):
            line = child.stdout.readline()
            assert line.startswith("C "), (line, child.stderr.read() if child.stderr and child.poll() else "")
            low, nxt = map(int, line.split()[1:])
            confirmed = (low, nxt)
        os.kill(child.pid, signal.SIGKILL)
        # Confirmations printed before the kill landed count too; the kill may tear the last line.
        for line in child.stdout:
            fields = line.split()
            if line.endswith("\n") and len(fields) == 3:
                confirmed = (int(fields[1]), int(fields[2]))
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return confirmed


def recovered_range(data_dir: Path) -> tuple[int, int]:
    conn = sqlite3.connect(data_dir / DB_FILE)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    store = SqliteStore(data_dir, notify=lambda fn: fn())
    try:
        q = store.queue_id("/", "q")
        if q is None:  # a WAL cut before the queue's declaration: the very start of the history
            return (0, 0)
        messages = store.read_messages(q, -1, 1_000_000)
        info = store.recover_queues()[q]
    finally:
        store.close()
    if not messages:
        assert info.count == 0
        return (0, 0)
    seqs = [m.seq for m in messages]
    lo, hi = seqs[0], seqs[-1] + 1
    assert seqs == list(range(lo, hi)), "a hole: the state is not one the log ever went through"
    assert all(m.body == body(m.seq) and m.header == b"h" and not m.delivered for m in messages)
    assert (info.count, info.first_seq, info.last_seq) == (len(seqs), lo, hi - 1)
    return lo, hi


def test_sigkill_mid_write_loses_nothing_confirmed(tmp_path: Path) -> None:
    rng = random.Random(os.getpid())
    data_dir = tmp_path / "data"
    for _ in range(3):
        low, nxt = run_and_kill(data_dir, rng)
        lo, hi = recovered_range(data_dir)
        assert nxt > 0
        assert low <= lo <= nxt <= hi, ((low, nxt), (lo, hi))


def test_torn_wal_tail_recovers_to_a_committed_batch(tmp_path: Path) -> None:
    rng = random.Random(os.getpid() + 1)
    data_dir = tmp_path / "data"
    # No checkpoints: the database file holds the empty queue and the WAL every batch since.
    low, nxt = run_and_kill(data_dir, rng, checkpoint=0)
    wal = (data_dir / DB_FILE).with_name(DB_FILE + "-wal").read_bytes()
    db = (data_dir / DB_FILE).read_bytes()
    assert len(wal) > 100_000
    cuts = sorted({0, 32, 32 + 24 + 100, len(wal), *(rng.randrange(len(wal)) for _ in range(12))})
    seen: list[tuple[int, int]] = []
    for cut in cuts:
        copy = tmp_path / f"cut{cut}"
        copy.mkdir()
        (copy / DB_FILE).write_bytes(db)
        (copy / (DB_FILE + "-wal")).write_bytes(wal[:cut])
        seen.append(recovered_range(copy))
        shutil.rmtree(copy)
    # A longer WAL recovers a later point of the same history, never a different one.
    assert seen == sorted(seen)
    lo, hi = seen[-1]
    assert low <= lo <= nxt <= hi
