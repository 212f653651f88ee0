"""The data directory: where it is by default, creating it, and the lock that keeps it ours.

Default location, for a user running ``lapine-server`` by hand: ``$XDG_DATA_HOME/lapine`` when
XDG_DATA_HOME is set to an absolute path, else ``~/.local/share/lapine`` (the XDG Base Directory
default). A service installation sets ``data_dir`` (or LAPINE_DATA_DIR) instead.

Two brokers writing one database would corrupt each other's view of it, so the directory is
locked with ``flock`` on ``lapine.lock`` for as long as it is open. The kernel drops the lock when
the process dies, so a crash never leaves a stale lock behind; the pid written into the file is
only there to name the holder in the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from lapine.store.base import DataDirectoryInUseError

LOCK_FILE = "lapine.lock"


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "lapine"


class DataDirectory:
    """An open, locked data directory. Created (mode 0700: it holds password hashes) if missing."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.chmod(0o700)  # also when it existed, or a umask loosened it: nobody else may look in
        lock_path = self.path / LOCK_FILE
        # No O_TRUNC: the holder's pid must still be readable if the lock turns out to be taken.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise DataDirectoryInUseError(f"data directory {self.path} is in use by another Lapine{who}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def file(self, name: str) -> Path:
        return self.path / name

    def private_file(self, name: str) -> Path:
        """A file of the directory that only we may read or write (0600), created empty if
        missing. SQLite gives a database's -wal and -shm files the database file's mode."""
        return private_file(self.path / name)

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # The lock file stays: removing it would race with a starting broker that has
            # opened it but not locked it yet.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> DataDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DataDirectory {str(self.path)!r}{'' if self.locked else ' (closed)'}>"


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def private_file(path: Path) -> Path:
    """``path``, created empty if missing, readable and writable by us alone (0600)."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    path.chmod(0o600)
    return path
