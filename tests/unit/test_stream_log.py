"""The stream log (lapine.store.stream): offsets, segments, lookups, filters, retention, torn tails."""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path

import pytest

from lapine.store.stream import DiskSegmentFiles, InlineWorker, MemorySegmentFiles, Retention, StreamLog, ThreadWorker
from lapine.store.stream.chunk import CHUNK_HEADER
from lapine.store.stream.log import LogState, ReadAnswer


def open_log(path: Path, **options: int) -> StreamLog:
    return StreamLog(DiskSegmentFiles(path), InlineWorker(), **options)


def append(log: StreamLog, n: int, timestamp: int = 1000, filter_value: bytes | None = None) -> list[int]:
    return [
        log.append(b"ex", b"rk%d" % i, b"header%d" % i, b"body-%d" % log.next_offset, filter_value, timestamp)
        for i in range(n)
    ]


def read_all(log: StreamLog, start: int = 0, limit: int = 10**9, **options: object) -> ReadAnswer:
    answers: list[ReadAnswer] = []
    log.read(start, limit, answers.append, **options)  # type: ignore[arg-type]
    assert len(answers) == 1
    return answers[0]


def bodies(answer: ReadAnswer) -> list[bytes]:
    return [record.body for record in answer.records]


def test_offsets_count_from_zero_and_reads_return_what_was_appended(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert append(log, 3) == [0, 1, 2]
    assert log.state.committed_offset == 2
    answer = read_all(log)
    assert [r.offset for r in answer.records] == [0, 1, 2]
    assert answer.records[1] == (1, 1000, None, b"ex", b"rk1", b"header1", b"body-1")
    assert answer.next_offset == 3
    assert bodies(read_all(log, 1, 1)) == [b"body-1"]


def test_reopen_keeps_every_record_and_the_next_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_segment_bytes=300)
    append(log, 20)
    segments = log.state.segments
    assert segments > 3
    log.close()
    again = open_log(tmp_path, max_segment_bytes=300)
    assert again.next_offset == 20
    assert again.state.segments == segments
    assert bodies(read_all(again)) == [b"body-%d" % i for i in range(20)]
    assert bodies(read_all(again, 13, 3)) == [b"body-13", b"body-14", b"body-15"]
    assert append(again, 1) == [20]


def test_a_timestamp_finds_the_first_chunk_written_at_or_after_it(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_segment_bytes=200)
    for second in range(10):
        append(log, 2, timestamp=second * 1000)
    found: list[int] = []
    log.find_timestamp(4500, found.append)
    log.find_timestamp(4000, found.append)
    log.find_timestamp(0, found.append)
    log.find_timestamp(99_000, found.append)
    assert found == [10, 8, 0, 20]


def test_retention_by_bytes_drops_whole_old_segments_never_the_newest(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_segment_bytes=250)
    append(log, 30)
    before = log.state
    log.retain(Retention(max_bytes=600), now_ms=0)
    after = log.state
    assert after.bytes <= 600 < before.bytes
    assert after.first_offset > 0
    assert bodies(read_all(log))[0] == b"body-%d" % after.first_offset
    assert read_all(log).records[-1].offset == 29
    log.retain(Retention(max_bytes=0), now_ms=0)
    assert log.state.segments == 1
    assert read_all(log).records[-1].offset == 29
    # A read from before the first offset kept starts at it.
    assert read_all(log, 0, 1).records[0].offset == log.state.first_offset


def test_retention_by_age_drops_segments_whose_newest_chunk_is_older(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_segment_bytes=100)
    for second in range(5):
        append(log, 1, timestamp=second * 1000)
    log.retain(Retention(max_age_ms=2500), now_ms=5000)
    assert log.state.first_offset == 3
    assert log.state.first_timestamp == 3000
    log.retain(Retention(max_age_ms=1), now_ms=10**6)
    assert log.state.first_offset == 4  # the newest segment stays


def test_filters_skip_chunks_by_bloom_and_records_exactly(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    append(log, 3, filter_value=b"red")
    append(log, 3, filter_value=b"blue")
    append(log, 2)
    red = read_all(log, filters=frozenset({b"red"}))
    assert [r.offset for r in red.records] == [0, 1, 2]
    assert red.next_offset == 8
    both = read_all(log, filters=frozenset({b"blue"}), match_unfiltered=True)
    assert [r.offset for r in both.records] == [3, 4, 5, 6, 7]
    assert read_all(log, filters=frozenset({b"green"})).records == []


def test_a_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    append(log, 5)
    log.close()
    segment = next(tmp_path.glob("*.segment"))
    size = segment.stat().st_size
    with segment.open("ab") as f:  # half a chunk, as a crash mid-write leaves it
        f.write(b"LSC1" + b"\x00" * 7 + b"\x05" + b"\xff" * 20)
    again = open_log(tmp_path)
    assert segment.stat().st_size == size
    assert again.next_offset == 5
    assert append(again, 1) == [5]
    assert bodies(read_all(again))[-2:] == [b"body-4", b"body-5"]


def test_a_damaged_last_chunk_fails_its_crc_and_is_cut(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    append(log, 4)  # inline: one chunk per append
    log.close()
    segment = next(tmp_path.glob("*.segment"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    again = open_log(tmp_path)
    assert again.next_offset == 3
    assert [r.offset for r in read_all(again).records] == [0, 1, 2]


def test_a_stale_index_is_rebuilt_from_the_data(tmp_path: Path) -> None:
    log = open_log(tmp_path, max_segment_bytes=200)
    append(log, 12)
    log.close()
    first_index = sorted(tmp_path.glob("*.index"))[0]
    first_index.write_bytes(first_index.read_bytes()[:-5])
    again = open_log(tmp_path, max_segment_bytes=200)
    assert bodies(read_all(again)) == [b"body-%d" % i for i in range(12)]


def test_memory_files_behave_as_disk_files() -> None:
    log = StreamLog(MemorySegmentFiles(), InlineWorker(), max_segment_bytes=200)
    append(log, 10)
    log.retain(Retention(max_bytes=300), now_ms=0)
    assert read_all(log).records[-1].offset == 9
    assert log.state.first_offset > 0


def test_the_thread_worker_commits_one_batch_per_handover_and_answers_through_notify(tmp_path: Path) -> None:
    answers: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
    scheduled: list[Callable[[], None]] = []
    log = StreamLog(DiskSegmentFiles(tmp_path), ThreadWorker(answers.put), schedule=scheduled.append)
    commits: list[LogState] = []
    log.on_commit = commits.append
    append(log, 100)
    assert len(scheduled) == 1 and log.state.committed_offset == -1 and log.pending
    done: list[bool] = []
    log.barrier(lambda: done.append(True))
    while not done:
        answers.get(timeout=5)()
    assert log.state.committed_offset == 99 and not log.pending
    assert len(commits) == 1
    read: list[ReadAnswer] = []
    log.read(50, 10, read.append)
    answers.get(timeout=5)()
    assert [r.offset for r in read[0].records] == list(range(50, 60))
    log.close()
    assert StreamLog(DiskSegmentFiles(tmp_path), InlineWorker()).next_offset == 100


def test_a_large_batch_is_cut_into_chunks(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    big = b"x" * 300_000
    for _ in range(8):
        log.append(b"", b"q", b"h", big, None, 0)
    assert log.state.committed_offset == 7
    assert len(read_all(log).records) == 8
    assert CHUNK_HEADER.size > 0


def test_destroy_removes_the_files(tmp_path: Path) -> None:
    log = open_log(tmp_path / "s")
    append(log, 3)
    log.destroy()
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("count", [1, 7])
def test_reads_stop_at_the_limit(tmp_path: Path, count: int) -> None:
    log = open_log(tmp_path)
    append(log, 20)
    assert len(read_all(log, 0, count).records) == count
