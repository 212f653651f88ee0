"""Memory and disk alarms, as RabbitMQ raises them.

Every ``alarm_check_interval`` seconds the monitor samples the broker's resident memory
(/proc/self/status VmRSS) and the free space of the data directory's filesystem (statvfs). Memory
above the high watermark, or free disk below ``disk_free_limit``, sets an alarm: its name ("memory",
"disk") goes into ``broker.alarms``, which the management API and Prometheus read, and the server
blocks every connection that publishes until the alarm clears (server/throttle.py). The log lines
are RabbitMQ's, so that log watchers written for it keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lapine.config import Config
from lapine.store import default_data_dir

if TYPE_CHECKING:
    from lapine.broker.broker import Broker

log = logging.getLogger("lapine.alarms")

MEMORY = "memory"
DISK = "disk"
_MIB = 1024 * 1024

Sampler = Callable[[], int]


# --- what the machine says ----------------------------------------------------------------------


def resident_memory() -> int:
    """This process's resident set size in bytes (RabbitMQ's "rss" memory calculation strategy)."""
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def total_memory() -> int:
    """RAM available to us: MemTotal, or a cgroup v2 memory limit when it is lower (containers)."""
    total = _meminfo_total()
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max" and 0 < int(limit) < (total or int(limit) + 1):
            total = int(limit)
    return total


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo", "rb") as handle:
            for line in handle:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def disk_free(path: str | os.PathLike[str]) -> int:
    """Free bytes (for unprivileged users) on the filesystem holding ``path``, or its nearest
    existing parent: the data directory may not exist yet."""
    target = Path(path).expanduser().absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    stats = os.statvfs(target)
    return stats.f_bavail * stats.f_frsize


def memory_limit(config: Config, total: int | None = None) -> int:
    """The memory high watermark in bytes: absolute when set, else a share of RAM."""
    if config.vm_memory_high_watermark_absolute > 0:
        return config.vm_memory_high_watermark_absolute
    return int((total_memory() if total is None else total) * config.vm_memory_high_watermark)


def data_directory(config: Config) -> str:
    return config.data_dir or str(default_data_dir())


@functools.cache
def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim, which hands freed heap back to the OS. Python frees memory to its
    allocator, not always to the OS: without this an alarm could outlive the backlog that set it.
    Looked up once: find_library runs ldconfig."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return lambda: None
    return lambda: trim(0)


# --- the monitor --------------------------------------------------------------------------------


class AlarmMonitor:
    """Samples memory and disk, keeps ``broker.alarms`` up to date and calls ``on_change`` when an
    alarm is set or cleared. The samplers can be replaced (tests use fakes)."""

    def __init__(
        self,
        broker: Broker,
        on_change: Callable[[], None],
        *,
        memory_sampler: Sampler = resident_memory,
        disk_sampler: Sampler | None = None,
    ) -> None:
        self.broker = broker
        self.config = broker.config
        self.on_change = on_change
        self.memory_sampler = memory_sampler
        path = data_directory(self.config)
        self.disk_sampler: Sampler = disk_sampler or (lambda: disk_free(path))
        self.memory_limit = memory_limit(self.config)
        self.disk_free_limit = self.config.disk_free_limit
        self.memory_used = 0
        self.disk_free = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._trim = _malloc_trim()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        total = total_memory()
        log.info(
            "Memory high watermark set to %d MiB (%d bytes) of %d MiB (%d bytes) total",
            self.memory_limit // _MIB,
            self.memory_limit,
            total // _MIB,
            total,
        )
        log.info("Disk free limit set to %dMB", self.disk_free_limit // 1_000_000)
        self._loop = loop
        self.check()
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.config.alarm_check_interval, self._tick)

    def _tick(self) -> None:
        try:
            self.check()
        except Exception:  # a failing sampler must not stop the monitor
            log.exception("resource monitor: sampling failed")
        self._schedule()

    def check(self) -> None:
        """Sample now; set or clear the alarms; tell the server when something changed."""
        if MEMORY in self.broker.alarms:
            self._trim()
        self.memory_used = self.memory_sampler()
        self.disk_free = self.disk_sampler()
        changed = self._memory_changed() | self._disk_changed()
        if changed:
            self.on_change()

    def _memory_changed(self) -> bool:
        over = self.memory_used > self.memory_limit
        if over == (MEMORY in self.broker.alarms):
            return False
        word = "set" if over else "clear"
        log.info("vm_memory_high_watermark %s. Memory used:%d allowed:%d", word, self.memory_used, self.memory_limit)
        self._switch(MEMORY, over)
        return True

    def _disk_changed(self) -> bool:
        # A store whose writes fail keeps the disk alarm on until a retry succeeds, whatever
        # statvfs says: nothing more could be made durable meanwhile.
        error = self.broker.store_error
        short = self.disk_free < self.disk_free_limit
        low = short or error is not None
        if low == (DISK in self.broker.alarms):
            return False
        if low and not short:
            log.info(
                "Disk writes are failing: %s. Free bytes: %d. Limit: %d", error, self.disk_free, self.disk_free_limit
            )
        else:
            word = "insufficient" if low else "sufficient"
            log.info("Free disk space is %s. Free bytes: %d. Limit: %d", word, self.disk_free, self.disk_free_limit)
        self._switch(DISK, low)
        return True

    def _switch(self, resource: str, on: bool) -> None:
        node = self.broker.cluster_name
        if on:
            self.broker.alarms.add(resource)
            log.warning(
                "%s resource limit alarm set on node '%s'.\n*** Publishers will be blocked until this alarm clears ***",
                resource,
                node,
            )
        else:
            self.broker.alarms.discard(resource)
            log.warning("%s resource limit alarm cleared on node '%s'", resource, node)
