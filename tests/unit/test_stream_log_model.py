"""A stateful property test of the stream log: appends, reads, retention, clean and torn reopens.

The model is the list of every record ever appended, by offset, and the first offset retention
kept: a read must return exactly the model's records from there, whatever happened before.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lapine.store.stream import DiskSegmentFiles, InlineWorker, Retention, StreamLog
from lapine.store.stream.log import ReadAnswer

SEGMENT_BYTES = 400


class StreamLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.path = Path(tempfile.mkdtemp(prefix="lapine-stream-"))
        self.log = self._open()
        self.bodies: list[bytes] = []
        self.first = 0
        self.clock = 0

    def _open(self) -> StreamLog:
        return StreamLog(DiskSegmentFiles(self.path), InlineWorker(), max_segment_bytes=SEGMENT_BYTES)

    def _read(self, start: int, limit: int) -> ReadAnswer:
        answers: list[ReadAnswer] = []
        self.log.read(start, limit, answers.append)
        return answers[0]

    @rule(count=st.integers(1, 6), size=st.integers(0, 120), filtered=st.booleans())
    def append(self, count: int, size: int, filtered: bool) -> None:
        self.clock += 100
        for _ in range(count):
            body = b"%d:" % len(self.bodies) + b"x" * size
            offset = self.log.append(b"", b"s", b"h", body, b"f" if filtered else None, self.clock)
            assert offset == len(self.bodies)
            self.bodies.append(body)

    @rule(start=st.integers(0, 200), limit=st.integers(1, 50))
    def read(self, start: int, limit: int) -> None:
        answer = self._read(start, limit)
        begin = max(start, self.first)
        assert [r.body for r in answer.records] == self.bodies[begin : begin + limit]
        assert [r.offset for r in answer.records] == list(range(begin, begin + len(answer.records)))

    @rule(max_bytes=st.integers(0, 3000))
    def retain_bytes(self, max_bytes: int) -> None:
        self.log.retain(Retention(max_bytes=max_bytes), now_ms=self.clock)
        self._after_retention()
        assert self.log.state.bytes <= max_bytes or self.log.state.segments <= 1

    @rule(age=st.integers(1, 2000))
    def retain_age(self, age: int) -> None:
        self.log.retain(Retention(max_age_ms=age), now_ms=self.clock)
        self._after_retention()

    def _after_retention(self) -> None:
        first = self.log.state.first_offset
        assert first >= self.first
        self.first = min(first, len(self.bodies))

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = self._open()

    @rule(garbage=st.binary(min_size=1, max_size=60))
    def torn_reopen(self, garbage: bytes) -> None:
        """A crash mid-write leaves part of a chunk after the last whole one."""
        self.log.close()
        segments = sorted(self.path.glob("*.segment"))
        if segments:
            with segments[-1].open("ab") as f:
                f.write(b"LSC1" + garbage)
        self.log = self._open()

    @invariant()
    def everything_kept_is_readable(self) -> None:
        assert self.log.next_offset == len(self.bodies)
        answer = self._read(0, 10**6)
        assert [r.body for r in answer.records] == self.bodies[self.first :]

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.path, ignore_errors=True)


StreamLogMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestStreamLog = StreamLogMachine.TestCase
