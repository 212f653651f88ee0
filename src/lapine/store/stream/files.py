"""Where a log's segments live: files in a directory, or byte arrays for a broker with no store.

A segment is two files named by the offset of its first message: ``<offset>.segment`` (the
chunks) and ``<offset>.index`` (one entry per chunk). Only the log's own thread touches them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol

SEGMENT_SUFFIX = ".segment"
INDEX_SUFFIX = ".index"


class LogFile(Protocol):
    @property
    def size(self) -> int: ...

    def append(self, data: bytes) -> None: ...

    def read(self, position: int, size: int) -> bytes: ...

    def truncate(self, size: int) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class SegmentFiles(Protocol):
    def segments(self) -> list[int]:
        """The first offsets of the segments there, in order."""

    def open(self, first_offset: int) -> tuple[LogFile, LogFile]:
        """A segment's data and index files, made if new."""

    def delete(self, first_offset: int) -> None: ...

    def destroy(self) -> None:
        """The log is deleted: every file goes."""

    def disk_bytes(self) -> int: ...


class DiskFile:
    __slots__ = ("_fd", "_size")

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def read(self, position: int, size: int) -> bytes:
        return os.pread(self._fd, size, position)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class DiskSegmentFiles:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        # Made on the log's thread with its first segment: opening a new stream touches no disk.
        self.directory = Path(directory)

    def segments(self) -> list[int]:
        found: list[int] = []
        if not self.directory.is_dir():
            return found
        for path in self.directory.iterdir():
            if path.suffix == SEGMENT_SUFFIX and path.stem.isdigit():
                found.append(int(path.stem))
        return sorted(found)

    def _path(self, first_offset: int, suffix: str) -> Path:
        return self.directory / f"{first_offset:020d}{suffix}"

    def open(self, first_offset: int) -> tuple[LogFile, LogFile]:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True)
            _sync_directory(self.directory.parent)
        created = not self._path(first_offset, SEGMENT_SUFFIX).exists()
        files = DiskFile(self._path(first_offset, SEGMENT_SUFFIX)), DiskFile(self._path(first_offset, INDEX_SUFFIX))
        if created:
            _sync_directory(self.directory)  # the new names must survive a crash too
        return files

    def delete(self, first_offset: int) -> None:
        self._path(first_offset, SEGMENT_SUFFIX).unlink(missing_ok=True)
        self._path(first_offset, INDEX_SUFFIX).unlink(missing_ok=True)

    def destroy(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def disk_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(path.stat().st_size for path in self.directory.iterdir() if path.is_file())


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryFile:
    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def size(self) -> int:
        return len(self.data)

    def append(self, data: bytes) -> None:
        self.data += data

    def read(self, position: int, size: int) -> bytes:
        return bytes(self.data[position : position + size])

    def truncate(self, size: int) -> None:
        del self.data[size:]

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemorySegmentFiles:
    def __init__(self) -> None:
        self.files: dict[int, tuple[MemoryFile, MemoryFile]] = {}

    def segments(self) -> list[int]:
        return sorted(self.files)

    def open(self, first_offset: int) -> tuple[LogFile, LogFile]:
        if first_offset not in self.files:
            self.files[first_offset] = (MemoryFile(), MemoryFile())
        return self.files[first_offset]

    def delete(self, first_offset: int) -> None:
        self.files.pop(first_offset, None)

    def destroy(self) -> None:
        self.files.clear()

    def disk_bytes(self) -> int:
        return sum(data.size + index.size for data, index in self.files.values())
