"""A stream's log: an append-only sequence of messages on disk, read by offset or by time.

Messages are numbered from 0 (their offset) and written in *chunks*, one per batch the owner hands
over (a loop turn's publishes), each with a CRC and a bloom filter of its filter values
(chunk.py, bloom.py). Chunks go into segment files with an index of chunk offsets, timestamps and
positions (segment.py, files.py); retention drops whole old segments (retention.py). One I/O
thread per log writes, fsyncs, reads and deletes in the order asked (log.py), so the owner never
waits on the disk; a log may also run inline on in-memory files, for the model with no store.
"""

from lapine.store.stream.files import DiskSegmentFiles, MemorySegmentFiles, SegmentFiles
from lapine.store.stream.home import StreamHome
from lapine.store.stream.log import InlineWorker, LogState, ReadAnswer, StreamLog, ThreadWorker
from lapine.store.stream.record import StreamRecord
from lapine.store.stream.retention import Retention

__all__ = [
    "DiskSegmentFiles",
    "InlineWorker",
    "LogState",
    "MemorySegmentFiles",
    "ReadAnswer",
    "Retention",
    "SegmentFiles",
    "StreamHome",
    "StreamLog",
    "StreamRecord",
    "ThreadWorker",
]
