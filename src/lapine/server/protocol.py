"""The asyncio side of one connection: socket bytes to the sans-IO Connection and back, and timers.

Output is written once per loop tick: the Connection wakes us when it has something to send and
we gather everything it produced by the time the loop comes back to us.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, cast

from lapine.amqp.frames import HEARTBEAT_FRAME
from lapine.broker.connection import Connection, State
from lapine.server.fair_protocol import FairProtocol
from lapine.server.throttle import PublisherThrottle

if TYPE_CHECKING:
    from lapine.broker.broker import Broker

log = logging.getLogger("lapine.server")

# After we send connection.close, how long the client has to answer close-ok.
CLOSE_OK_TIMEOUT = 3.0


class AMQPProtocol(FairProtocol):
    def __init__(self, broker: Broker, registry: set[AMQPProtocol]) -> None:
        super().__init__()
        self.broker = broker
        self.registry = registry
        self.connection: Connection | None = None
        self._heartbeat_started = False
        self.last_sent = 0.0

    def _reader(self) -> Connection | None:
        return self.connection

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same interface.
        self.transport = cast(asyncio.Transport, transport)
        self.registry.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.broker.config.tcp_keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        peer = transport.get_extra_info("peername") or ("unknown", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.connection = Connection(
            self.broker, (str(peer[0]), int(peer[1])), self._wakeup, local=(str(local[0]), int(local[1]))
        )
        self.throttle = PublisherThrottle(self.broker, self.connection, self.gate)
        self.last_received = self.last_sent = self.loop.time()
        timeout = self.broker.config.handshake_timeout
        self._timers.append(self.loop.call_later(timeout, self._handshake_deadline))

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        assert connection is not None
        self.last_received = self.loop.time()
        connection.bytes_received += len(data)
        self._count_read(len(data))
        connection.data_received(data)
        self._after_read()
        if not self._heartbeat_started and connection.state in (State.AWAIT_OPEN, State.OPEN):
            self._start_heartbeat(connection.heartbeat)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        self._stop_timers()
        if self.connection is not None:
            self.connection.connection_lost()

    # --- flow control ------------------------------------------------------------------------

    def pause_writing(self) -> None:
        """The socket's send buffer is full: stop delivering to this connection's consumers, so
        that messages wait in their queues rather than pile up in our memory."""
        if self.connection is not None:
            self.connection.set_writable(False)

    def resume_writing(self) -> None:
        if self.connection is not None and self.transport is not None:
            self.connection.set_writable(True)
            self.connection.set_output_pending(self.transport.get_write_buffer_size())
            self._go_on()

    # --- output ------------------------------------------------------------------------------

    def _wrote(self, transport: asyncio.Transport) -> None:
        assert self.connection is not None
        self.last_sent = self.loop.time()
        self.connection.set_output_pending(transport.get_write_buffer_size())

    def _flushed(self, transport: asyncio.Transport) -> None:
        assert self.connection is not None
        if self.connection.state is State.CLOSING:
            self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, transport.close))

    # --- timers ------------------------------------------------------------------------------

    def _handshake_deadline(self) -> None:
        connection = self.connection
        if connection is not None and connection.state not in (State.OPEN, State.CLOSED):
            log.warning("closing connection %s: handshake timeout", connection.name)
            if self.transport is not None:
                self.transport.close()

    def _start_heartbeat(self, interval: int) -> None:
        self._heartbeat_started = True
        if interval > 0:
            self._timers.append(self.loop.call_later(interval / 2, self._heartbeat, interval))

    def _heartbeat(self, interval: int) -> None:
        transport = self.transport
        connection = self.connection
        if transport is None or transport.is_closing() or connection is None:
            return
        now = self.loop.time()
        if not self._reading_paused and now - self.last_received > 2 * interval:
            log.warning(
                "closing connection %s: missed heartbeats from client, timeout: %ds",
                connection.name,
                interval,
            )
            transport.abort()
            return
        if now - self.last_sent >= interval / 2:
            connection.send(HEARTBEAT_FRAME)
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > now]
        self._timers.append(self.loop.call_later(interval / 2, self._heartbeat, interval))
