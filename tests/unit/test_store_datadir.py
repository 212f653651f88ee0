"""The data directory: default location, creation, and the lock that keeps a second broker out."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lapine.store import DataDirectory, DataDirectoryInUseError, SqliteStore, default_data_dir


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "lapine"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "lapine"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "lapine"


def test_created_private_on_first_start(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "data"
    with DataDirectory(path) as data_dir:
        assert data_dir.locked
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        assert (path / "lapine.lock").read_text() == f"{os.getpid()}\n"
    assert not data_dir.locked


def test_existing_directory_made_private(tmp_path: Path) -> None:
    """A directory made beforehand (mkdir with a 022 umask) holds password hashes too."""
    path = tmp_path / "made-by-hand"
    path.mkdir(mode=0o755)
    directory = DataDirectory(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    finally:
        directory.close()


def test_data_files_are_private(tmp_path: Path) -> None:
    """The database (users' password hashes, message bodies), its WAL and the transient file are
    0600 whatever the umask; so is an existing database that a umask left readable."""
    (tmp_path / "lapine.db").touch(mode=0o644)
    old_umask = os.umask(0o022)
    try:
        store = SqliteStore(tmp_path, notify=lambda fn: fn())
        store.sync()
        files = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in os.listdir(tmp_path)}
        store.close()
    finally:
        os.umask(old_umask)
    for name in ("lapine.db", "lapine.db-wal", "transient.db"):
        assert files[name] == 0o600, (name, oct(files[name]))


def test_second_opener_fails_clearly(tmp_path: Path) -> None:
    first = DataDirectory(tmp_path)
    with pytest.raises(DataDirectoryInUseError) as raised:
        DataDirectory(tmp_path)
    assert str(raised.value) == f"data directory {tmp_path} is in use by another Lapine (pid {os.getpid()})"
    first.close()
    DataDirectory(tmp_path).close()  # free again


def test_second_store_fails_and_first_is_untouched(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path, notify=lambda fn: fn())
    with pytest.raises(DataDirectoryInUseError, match="is in use by another Lapine"):
        SqliteStore(tmp_path, notify=lambda fn: fn())
    store.sync()
    store.close()
    # A store given a DataDirectory leaves it locked for its owner.
    with DataDirectory(tmp_path) as data_dir:
        SqliteStore(data_dir, notify=lambda fn: fn()).close()
        assert data_dir.locked


def test_lock_held_by_another_process_names_its_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from lapine.store import DataDirectory
                d = DataDirectory({str(tmp_path)!r})
                print("locked", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(DataDirectoryInUseError, match=rf"\(pid {holder.pid}\)$"):
            DataDirectory(tmp_path)
    finally:
        holder.kill()  # dying, even by SIGKILL, releases the lock
        holder.wait()
    DataDirectory(tmp_path).close()
