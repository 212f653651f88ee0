"""The stream log survives kill -9: every record confirmed before the kill is there after, in
order and intact, and a torn tail left by the kill is cut on open."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lapine.store.stream import DiskSegmentFiles, InlineWorker, StreamLog
from lapine.store.stream.log import ReadAnswer

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from lapine.store.stream import DiskSegmentFiles, StreamLog, ThreadWorker

    def body(offset):
        return offset.to_bytes(8, "big") * (1 + offset % 11)

    async def main():
        loop = asyncio.get_running_loop()
        log = StreamLog(DiskSegmentFiles(sys.argv[1]), ThreadWorker(loop.call_soon_threadsafe),
                        max_segment_bytes=int(sys.argv[2]), schedule=loop.call_soon)
        print("R", log.next_offset, flush=True)
        # At most this many records per run, so that the checks stay quick on a slow machine.
        stop_at = log.next_offset + 40000
        while True:
            if log.next_offset < stop_at:
                for _ in range(300):
                    offset = log.next_offset
                    log.append(b"", b"s", b"h", body(offset), None, 0)
            else:
                await asyncio.sleep(0.01)
            log.barrier(lambda upto=log.next_offset: print("C", upto, flush=True))
            await asyncio.sleep(0)

    asyncio.run(main())
    """
)


def body(offset: int) -> bytes:
    return offset.to_bytes(8, "big") * (1 + offset % 11)


def run_and_kill(path: Path, rng: random.Random) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "200000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().startswith("R ")
        confirmed = 0
        deadline = time.monotonic() + rng.uniform(0.2, 0.6)
        while time.monotonic() < deadline or not confirmed:
            line = child.stdout.readline()
            assert line.startswith("C "), (line, child.stderr.read() if child.stderr and child.poll() else "")
            confirmed = int(line.split()[1])
        child.send_signal(signal.SIGKILL)
        # What was printed before the kill landed still counts as confirmed.
        for line in child.stdout:
            # A line the kill cut short says less than it would have: it is not counted.
            if line.startswith("C ") and line.endswith("\n") and len(line.split()) == 2:
                confirmed = int(line.split()[1])
        return confirmed
    finally:
        child.kill()
        child.wait()


def test_kill_9_loses_nothing_confirmed(tmp_path: Path) -> None:
    rng = random.Random(11)
    confirmed = 0
    for _round in range(3):
        confirmed = max(confirmed, run_and_kill(tmp_path, rng))
        log = StreamLog(DiskSegmentFiles(tmp_path), InlineWorker(), max_segment_bytes=200000)
        assert log.next_offset >= confirmed
        answers: list[ReadAnswer] = []
        log.read(0, 10**9, answers.append)
        records = answers[0].records
        assert [r.offset for r in records] == list(range(log.next_offset))
        assert all(r.body == body(r.offset) for r in records)
        log.close()
    assert len(list(tmp_path.glob("*.segment"))) > 1
