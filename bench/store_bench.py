"""Store benchmark: group-committed inserts and acks, paging reads, confirm latency, recovery.

    python bench/store_bench.py                 # 1M messages of 100 bytes, temp dir
    python bench/store_bench.py -n 200000 --dir /var/tmp/x --queues 4

Everything is driven from an asyncio loop the way the broker drives it: operations are submitted
on the loop thread, one barrier per loop tick stands for the publisher confirms of that tick, and
the figures are taken when the last barrier's callback runs (that is, when the data is fsync'd).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from lapine.store import QueueDef, SqliteStore


def _open(path: str, loop: asyncio.AbstractEventLoop) -> SqliteStore:
    return SqliteStore(path, notify=loop.call_soon_threadsafe)


async def _drive(store: SqliteStore, ops: list[tuple[int, int, int]], chunk: int, kind: str, body: bytes) -> float:
    """Submit ``ops`` (queue id, first seq, count) ``chunk`` messages per loop tick, confirming each
    tick with a barrier and keeping at most a few ticks unconfirmed (as publishers in confirm mode
    do); return the owner-thread seconds spent inside the store calls."""
    loop = asyncio.get_running_loop()
    header = b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x10\x00\x02"  # basic header, delivery-mode 2
    inflight: list[asyncio.Future[None]] = []
    owner = 0.0
    for queue_id, first, count in ops:
        seq, end = first, first + count
        while seq < end:
            stop = min(seq + chunk, end)
            t0 = time.perf_counter()
            if kind == "enqueue":
                for s in range(seq, stop):
                    store.enqueue(queue_id, s, b"x", b"rk", header, body)
            else:
                store.ack(queue_id, range(seq, stop))
            done: asyncio.Future[None] = loop.create_future()
            store.submit_barrier(partial(done.set_result, None))
            owner += time.perf_counter() - t0
            inflight.append(done)
            seq = stop
            if len(inflight) > 8:
                await inflight.pop(0)
            else:
                await asyncio.sleep(0)
    for f in inflight:
        await f
    return owner


def _calibrate(work_us: float) -> int:
    """Iterations of a pure-Python loop that take ``work_us`` microseconds (best of 5: the
    machine may be shared)."""
    n = 200_000
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        _burn(n)
        best = min(best, time.perf_counter() - t0)
    return max(1, int(n * work_us / (best * 1e6)))


def _burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


async def _loaded(store: SqliteStore | None, queue_id: int, n: int, chunk: int, spin: int, body: bytes) -> float:
    """The loop busy as a broker's is: Python work for every message besides the store call,
    publishers confirming each tick and keeping a few ticks unconfirmed. Returns msg/s."""
    loop = asyncio.get_running_loop()
    inflight: list[asyncio.Future[None]] = []
    t0 = time.perf_counter()
    for first in range(0, n, chunk):
        for seq in range(first, min(first + chunk, n)):
            _burn(spin)
            if store is not None:
                store.enqueue(queue_id, seq, b"x", b"rk", b"h", body)
        if store is not None:
            done: asyncio.Future[None] = loop.create_future()
            store.submit_barrier(partial(done.set_result, None))
            inflight.append(done)
            if len(inflight) > 8:
                await inflight.pop(0)
                continue
        await asyncio.sleep(0)
    for f in inflight:
        await f
    return n / (time.perf_counter() - t0)


async def _confirm_latency(store: SqliteStore, queue_id: int, first_seq: int, rounds: int, body: bytes) -> float:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    for i in range(rounds):
        done: asyncio.Future[None] = loop.create_future()
        store.enqueue(queue_id, first_seq + i, b"x", b"rk", b"h", body)
        store.submit_barrier(partial(done.set_result, None))
        await done
    store.ack(queue_id, range(first_seq, first_seq + rounds))
    store.sync()
    return (time.perf_counter() - t0) / rounds


async def _page_all(store: SqliteStore, queue_id: int, page: int) -> int:
    loop = asyncio.get_running_loop()
    after, total = -1, 0
    while True:
        fut: asyncio.Future[list] = loop.create_future()  # type: ignore[type-arg]
        store.read_messages_async(queue_id, after, page, fut.set_result)
        rows = await fut
        if not rows:
            return total
        total += len(rows)
        after = rows[-1].seq


def _split(n: int, queues: list[int]) -> list[tuple[int, int, int]]:
    per = n // len(queues)
    return [(q, 0, per) for q in queues]


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    path = args.dir or tempfile.mkdtemp(prefix="lapine-store-bench-")
    shutil.rmtree(path, ignore_errors=True)
    body = os.urandom(args.size)
    n = args.n
    print(f"store bench: {n} messages of {args.size} bytes, {args.queues} queue(s), {args.chunk} per tick, in {path}")
    store = _open(path, loop)
    queues = [store.put_queue(QueueDef("/", f"q{i}")) for i in range(args.queues)]
    plan = _split(n, queues)
    n = sum(count for _, _, count in plan)

    t0 = time.perf_counter()
    owner = await _drive(store, plan, args.chunk, "enqueue", body)
    elapsed = time.perf_counter() - t0
    st = store.stats
    print(
        f"  insert   {n / elapsed:10,.0f} msg/s  ({elapsed:.2f} s; owner thread {owner / n * 1e6:.2f} us/msg; "
        f"{st.commits} commits, {st.rows / max(st.commits, 1):.0f} ops/commit)"
    )
    before = store.stats.commits
    t0 = time.perf_counter()
    owner = await _drive(store, plan, args.chunk, "ack", body)
    elapsed = time.perf_counter() - t0
    commits = store.stats.commits - before
    print(
        f"  ack      {n / elapsed:10,.0f} msg/s  ({elapsed:.2f} s; owner thread {owner / n * 1e6:.2f} us/msg; "
        f"{commits} commits)"
    )

    latency = await _confirm_latency(store, queues[0], n, 500, body)
    print(f"  confirm latency (idle, enqueue + barrier round trip): {latency * 1e6:,.0f} us")

    # Refill for paging and recovery.
    plan2 = [(q, first + count, count) for q, first, count in plan]
    await _drive(store, plan2, args.chunk, "enqueue", body)
    t0 = time.perf_counter()
    total = 0
    for q in queues:
        total += await _page_all(store, q, args.page)
    elapsed = time.perf_counter() - t0
    print(f"  page in  {total / elapsed:10,.0f} msg/s  ({args.page} per read, {elapsed:.2f} s)")

    size = sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())
    t0 = time.perf_counter()
    store.close()
    print(f"  close    {time.perf_counter() - t0:.2f} s  (data dir {size / 1e6:,.0f} MB before checkpoint)")

    t0 = time.perf_counter()
    store = _open(path, loop)
    opened = time.perf_counter() - t0
    definitions = store.load_definitions()
    recovered = store.recover_queues()
    recovery = time.perf_counter() - t0
    first_page = store.read_messages(queues[0], -1, args.page)
    page_time = time.perf_counter() - t0 - recovery
    count = sum(r.count for r in recovered.values())
    print(
        f"  recovery {count:,} messages in {len(definitions.queues)} queue(s): open {opened * 1000:.0f} ms, "
        f"open + definitions + counts {recovery * 1000:.0f} ms, first page {page_time * 1000:.1f} ms "
        f"({len(first_page)} msgs)"
    )
    t0 = time.perf_counter()
    for q in queues:
        store.purge(q)
    store.sync()
    print(f"  purge    {count / (time.perf_counter() - t0):10,.0f} msg/s")

    if args.work_us > 0:
        spin = _calibrate(args.work_us)
        m = min(n, 100_000)
        q = store.put_queue(QueueDef("/", "loaded"))
        alone, loaded = [], []
        for _ in range(5):  # alternated, so that a noisy neighbour hurts both alike
            alone.append(await _loaded(None, 0, m, args.chunk, spin, body))
            loaded.append(await _loaded(store, q, m, args.chunk, spin, body))
            store.purge(q)
            store.sync()
        a, b = statistics.median(alone), statistics.median(loaded)
        print(
            f"  busy loop (switch interval {sys.getswitchinterval() * 1000:g} ms), medians of 5: "
            f"{a:,.0f} msg/s ({1e6 / a:.1f} us/msg) without the store, "
            f"{b:,.0f} msg/s ({1e6 / b:.1f} us/msg) with persistent enqueues and confirms"
        )
    store.close()
    if not args.dir:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1_000_000, help="messages (default 1M)")
    parser.add_argument("--size", type=int, default=100, help="body bytes (default 100)")
    parser.add_argument("--queues", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=500, help="messages per loop tick (default 500)")
    parser.add_argument("--page", type=int, default=1000, help="messages per paging read")
    parser.add_argument("--dir", help="data directory (default: a fresh temp dir, removed afterwards)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument(
        "--work-us", type=float, default=3.0, help="Python work per message in the busy-loop phase (0: skip)"
    )
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval, in ms")
    arguments = parser.parse_args()
    if arguments.switch_interval:
        sys.setswitchinterval(arguments.switch_interval / 1000)
    if arguments.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(arguments))
