"""Facts about this process and machine for /api/nodes and Prometheus: memory, descriptors, disk."""

from __future__ import annotations

import os
import resource
import shutil

from lapine.config import Config
from lapine.server.alarms import memory_limit as alarm_memory_limit


def resident_memory() -> int:
    """Current resident set size in bytes (RabbitMQ's mem_used with the rss strategy)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # Elsewhere, the peak is the best the standard library offers (kilobytes on Linux, bytes on macOS).
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def memory_limit(config: Config) -> int:
    """The memory high watermark in force (the alarm monitor's own rule)."""
    return alarm_memory_limit(config)


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def max_fds() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def disk_free(path: str) -> int:
    try:
        return shutil.disk_usage(path or ".").free
    except OSError:
        return 0


def processors() -> int:
    return os.cpu_count() or 1
