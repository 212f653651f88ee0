"""Where a broker's streams keep their logs: one directory per stream under ``streams/``.

A stream's directory is named ``<queue id>-<token>``: queue ids are reused once a queue is
deleted, and a deleted stream's files are removed on its log's thread, so a new stream never
opens the old one's files. At start the newest directory of each recovered stream is opened,
and the others (left by a crash between a delete and the removal) are swept.

It also knows which logs took appends since the last barrier: a durable answer (a publisher
confirm) waits for those logs as well as for the store.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lapine.store.stream.files import DiskSegmentFiles
from lapine.store.stream.log import Notify, StreamLog, ThreadWorker


class StreamHome:
    def __init__(self, root: str | Path, notify: Notify, schedule: Callable[[Callable[[], None]], object]) -> None:
        self.root = Path(root)
        self._notify = notify
        self._schedule = schedule
        self.logs: dict[StreamLog, None] = {}
        self._dirty: dict[StreamLog, None] = {}
        self._opened: set[str] = set()
        self._found: dict[int, list[str]] | None = None

    def _existing(self) -> dict[int, list[str]]:
        """The directories there at start, by queue id, newest last (read once)."""
        if self._found is None:
            found: dict[int, list[str]] = {}
            if self.root.is_dir():
                for path in self.root.iterdir():
                    queue_id, _, token = path.name.partition("-")
                    if path.is_dir() and queue_id.isdigit() and token.isdigit():
                        found.setdefault(int(queue_id), []).append(path.name)
            for names in found.values():
                names.sort(key=lambda name: int(name.partition("-")[2]))
            self._found = found
        return self._found

    def open(self, queue_id: int, *, restored: bool, max_segment_bytes: int, filter_size: int) -> StreamLog:
        """A stream's log: the one it had (``restored``, at start) or a new one."""
        names = self._existing().get(queue_id) if restored else None
        name = names[-1] if names else f"{queue_id}-{time.time_ns()}"
        self._opened.add(name)
        log = StreamLog(
            DiskSegmentFiles(self.root / name),
            ThreadWorker(self._notify, name=f"lapine-stream-{queue_id}"),
            max_segment_bytes=max_segment_bytes,
            filter_size=filter_size,
            schedule=self._schedule,
            durable=True,
        )
        log.on_dirty = lambda: self._dirty.__setitem__(log, None)
        self.logs[log] = None
        return log

    def forget(self, log: StreamLog) -> None:
        """The stream was deleted (its log destroys its own files)."""
        self.logs.pop(log, None)
        self._dirty.pop(log, None)

    def sweep(self) -> None:
        """After recovery: remove the directories no recovered stream opened (blocking, at start)."""
        for names in self._existing().values():
            for name in names:
                if name not in self._opened:
                    shutil.rmtree(self.root / name, ignore_errors=True)

    def take_dirty(self) -> list[StreamLog]:
        """The logs appended to since the last call: a barrier now must wait for them."""
        dirty, self._dirty = list(self._dirty), {}
        return dirty

    def close(self) -> None:
        """Write what was appended and stop every log's thread (blocking)."""
        for log in list(self.logs):
            log.close()
        self.logs.clear()
