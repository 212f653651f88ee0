"""Summaries of py-spy profiles: the functions that cost the most, by self time.

``py-spy record --format raw`` writes collapsed stacks, one per line: ``frame;frame;...;frame COUNT``,
outermost frame first, each frame ``function (file)`` (``--nolineno``). A function's self time is
the samples in which it is the innermost frame; its total time is the samples in which it appears
anywhere (counted once per sample). Idle samples (the event loop waiting in epoll) are not recorded
by py-spy unless ``--idle``, so percentages are of the samples in which the broker was running Python.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*)\)$")


@dataclass
class Row:
    function: str
    self_samples: int
    total_samples: int
    self_pct: float
    total_pct: float


def short_frame(frame: str) -> str:
    """``function (path/to/lapine/broker/queue.py)`` -> ``lapine/broker/queue.py:function``."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    func, file = match.group("func"), match.group("file")
    for marker in ("/src/", "/site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    if file.startswith(".") and "/" in file:
        file = file.split("/", 1)[1]
    return f"{file}:{func}"


def parse(path: Path) -> tuple[Counter[str], Counter[str], int]:
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        count = int(match.group("count"))
        frames = [short_frame(frame) for frame in match.group("stack").split(";") if frame]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count
    return self_counts, total_counts, samples


def summarize(path: Path, top: int = 15) -> tuple[list[Row], int]:
    self_counts, total_counts, samples = parse(path)
    rows = [
        Row(
            function=name,
            self_samples=count,
            total_samples=total_counts[name],
            self_pct=100.0 * count / samples if samples else 0.0,
            total_pct=100.0 * total_counts[name] / samples if samples else 0.0,
        )
        for name, count in self_counts.most_common(top)
    ]
    return rows, samples


def format_table(rows: list[Row], samples: int) -> str:
    width = max([len("function"), *(len(row.function) for row in rows)])
    lines = [
        f"{'function':<{width}}  {'self %':>7}  {'total %':>7}  {'samples':>8}",
        f"{'-' * width}  {'-' * 7}  {'-' * 7}  {'-' * 8}",
    ]
    for row in rows:
        lines.append(f"{row.function:<{width}}  {row.self_pct:7.1f}  {row.total_pct:7.1f}  {row.self_samples:8d}")
    lines.append(f"({samples} samples in all)")
    return "\n".join(lines)


class Spy:
    """``py-spy record --pid`` attached to a running broker ``delay`` seconds from ``start``, for ``duration`` s."""

    def __init__(self, output: Path, rate: int, delay: float, duration: int) -> None:
        self.output = output
        self.rate = rate
        self.delay = delay
        self.duration = duration
        self._timer: threading.Timer | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _attach(self, pid: int) -> None:
        command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--nolineno", "--nonblocking"]
        command += ["--rate", str(self.rate), "--duration", str(self.duration), "--output", str(self.output)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    def start(self, pid: int) -> None:
        self._timer = threading.Timer(self.delay, self._attach, args=(pid,))
        self._timer.start()

    def finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        if self._process is not None:
            self._process.wait(timeout=self.duration + 60)
