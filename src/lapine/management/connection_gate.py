"""The sockets of one HTTP listener (management or Prometheus) before anyone has logged in on them.

* A socket must deliver a complete request head within ``http_request_timeout`` seconds of
  connecting or of its previous answer, or it is closed (cowboy's request_timeout in RabbitMQ):
  a client that sends its headers a byte at a time cannot hold a socket for ever.
* Sockets on which no request has logged in yet are limited to ``http_max_unauthenticated`` per
  source address (an IPv6 /64), and to ``TOTAL_FACTOR`` times that in all: a new one past the limit
  is closed at once. A socket that has logged in once no longer counts (Prometheus has no login:
  every socket counts).

Each accepted socket's protocol is aiohttp's request handler wrapped in ``GuardedConnection``,
which passes everything through and keeps the timer and the count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lapine.management.login_throttle import source_of

log = logging.getLogger("lapine.management")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOTAL_FACTOR = 16


class ConnectionGate:
    def __init__(self, request_timeout: float, per_source: int) -> None:
        self.request_timeout = request_timeout
        self.per_source = per_source
        self.total_limit = per_source * TOTAL_FACTOR
        self._unauthenticated: dict[str, int] = {}
        self._total = 0
        self._connections: dict[Any, GuardedConnection] = {}

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: GuardedConnection(self, inner)

    def unauthenticated(self) -> int:
        """Sockets open on which nobody has logged in yet."""
        return self._total

    # --- called by GuardedConnection -----------------------------------------------------------

    def admit(self, connection: GuardedConnection, transport: Any, source: str) -> bool:
        if self._unauthenticated.get(source, 0) >= self.per_source or self._total >= self.total_limit:
            return False
        self._unauthenticated[source] = self._unauthenticated.get(source, 0) + 1
        self._total += 1
        self._connections[transport] = connection
        return True

    def release(self, connection: GuardedConnection) -> None:
        self._connections.pop(connection.transport, None)
        self._uncount(connection)

    def _uncount(self, connection: GuardedConnection) -> None:
        if connection.counted:
            connection.counted = False
            self._total -= 1
            left = self._unauthenticated[connection.source] - 1
            if left:
                self._unauthenticated[connection.source] = left
            else:
                del self._unauthenticated[connection.source]

    # --- called from the request's side ------------------------------------------------------------

    def connection_of(self, request: web.Request) -> GuardedConnection | None:
        return self._connections.get(request.transport)

    def logged_in(self, request: web.Request) -> None:
        connection = self.connection_of(request)
        if connection is not None:
            self._uncount(connection)


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one socket, with a deadline for each request head and a place in the count."""

    def __init__(self, gate: ConnectionGate, inner: Callable[[], asyncio.Protocol]) -> None:
        self.gate = gate
        self._make_inner = inner
        self.inner: Any = None
        self.transport: Any = None
        self.source = ""
        self.counted = False
        self._timer: asyncio.TimerHandle | None = None
        self._requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.source = source_of(str(peer[0])) if peer else ""
        if not self.gate.admit(self, transport, self.source):
            log.warning("HTTP connection from %s refused: too many connections before login", self.source)
            self.transport.abort()
            return
        self.counted = True
        self._arm()
        self.inner = self._make_inner()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.gate.release(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def request_started(self) -> None:
        self._requests += 1
        self._disarm()

    def request_done(self) -> None:
        self._requests -= 1
        if not self._requests:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        if self.gate.request_timeout > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.gate.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size():
            # Still sending the last answer to a slow reader: that is not a slow request.
            self._arm()
            return
        self.transport.close()


GATE = web.AppKey("connection_gate", ConnectionGate)


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request whose head has arrived stops its socket's deadline; its answer starts the next one."""
    connection = request.app[GATE].connection_of(request)
    if connection is None:
        return await handler(request)
    connection.request_started()
    try:
        return await handler(request)
    finally:
        connection.request_done()
