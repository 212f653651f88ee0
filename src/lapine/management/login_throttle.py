"""Failed HTTP logins are answered late, one at a time per source address: password guessing from
one address is slowed to one guess per ``login_failure_delay``, however many requests it sends at
once, and nobody else waits (the delay is an asyncio sleep, not a blocked loop).

A source is an IPv4 address or an IPv6 /64, the block one host usually holds. Its entry lives only
while requests from it are in flight, so the table cannot grow with past traffic.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def source_of(peer: str) -> str:
    """The address block a peer's attempts are counted against."""
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginThrottle:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_flight: dict[str, int] = {}

    async def attempt(self, peer: str, check: Callable[[], Awaitable[T | None]]) -> T | None:
        """Run ``check`` after the source's earlier attempts; a failure (None) holds the source's
        turn for ``delay`` seconds before it is answered."""
        source = source_of(peer)
        lock = self._locks.setdefault(source, asyncio.Lock())
        self._in_flight[source] = self._in_flight.get(source, 0) + 1
        try:
            async with lock:
                result = await check()
                if result is None and self.delay > 0:
                    await asyncio.sleep(self.delay)
                return result
        finally:
            self._in_flight[source] -= 1
            if not self._in_flight[source]:
                del self._in_flight[source]
                del self._locks[source]

    def sources(self) -> int:
        """Sources with attempts in flight (for tests and metrics)."""
        return len(self._locks)
