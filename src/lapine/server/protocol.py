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
from lapine.broker import flow
from lapine.broker.connection import Connection, State
from lapine.server.read_gate import Pause, ReadGate
from lapine.server.throttle import PublisherThrottle

if TYPE_CHECKING:
    from lapine.broker.broker import Broker

log = logging.getLogger("lapine.server")

# Bytes read from one socket in one event-loop iteration before the others get their turn.
READ_PER_TICK = 64 * 1024
# After we send connection.close, how long the client has to answer close-ok.
CLOSE_OK_TIMEOUT = 3.0


class AMQPProtocol(asyncio.Protocol):
    def __init__(self, broker: Broker, registry: set[AMQPProtocol]) -> None:
        self.broker = broker
        self.registry = registry
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.connection: Connection | None = None
        self._flush_scheduled = False
        self._timers: list[asyncio.TimerHandle] = []
        self._heartbeat_started = False
        self.last_received = 0.0
        self.last_sent = 0.0
        self.throttle: PublisherThrottle | None = None
        self.gate = ReadGate(self._pause_reading, self._resume_reading)
        self._reading_paused = False
        self._read_this_tick = 0
        self._tick_scheduled = False
        self._flow_timer: asyncio.TimerHandle | None = None
        self._output_held = False

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
        if connection.held_frames is not None:
            # Out of credit (or the client does not read us): what it sent waits for next tick.
            self.gate.pause(Pause.HELD)
        if connection.published:
            connection.published = False
            assert self.throttle is not None
            self.throttle.publish_received()
        if not self._heartbeat_started and connection.state in (State.AWAIT_OPEN, State.OPEN):
            self._start_heartbeat(connection.heartbeat)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._flow_timer is not None:
            self._flow_timer.cancel()
        if self.throttle is not None:
            self.throttle.close()
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

    def _count_read(self, size: int) -> None:
        """Fairness between sockets: past READ_PER_TICK bytes, this one waits for the next loop
        iteration. uvloop would otherwise read a flooding publisher many times over before it
        looks at another socket, and its consumers' acks would wait behind the flood."""
        self._tick_soon()
        self._read_this_tick += size
        if self._read_this_tick >= READ_PER_TICK:
            self.gate.pause(Pause.TICK)

    def _tick_soon(self) -> None:
        if not self._tick_scheduled:
            self._tick_scheduled = True
            self.loop.call_soon(self._tick_over)

    def _tick_over(self) -> None:
        """The loop went round: a new read share, new credit, and held frames go on."""
        self._tick_scheduled = False
        self._read_this_tick = 0
        self.gate.resume(Pause.TICK)
        if self.connection is not None:
            self.connection.grant_credit()
            self._go_on()

    def _go_on(self) -> None:
        connection = self.connection
        if connection is None or connection.held_frames is None:
            return
        connection.release_held()
        if connection.published:
            connection.published = False
            assert self.throttle is not None
            self.throttle.publish_received()
        if connection.held_frames is None:
            self.gate.resume(Pause.HELD)
        elif connection.output_over_limit():
            pass  # the client is not reading us: resume_writing calls again once it does
        elif connection.credit.granted:
            self._tick_soon()  # out of credit: more next tick, as the queues hand out
        elif self._flow_timer is None:
            # The queues stood still: no use asking every tick.
            self._flow_timer = self.loop.call_later(flow.RETRY_SECONDS, self._flow_retry)

    def _flow_retry(self) -> None:
        self._flow_timer = None
        if self.connection is not None and self.connection.held_frames is not None:
            self.connection.grant_credit(trickle=True)
            self._go_on()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = False
            # We were not listening: silence while paused is not a missed heartbeat.
            self.last_received = self.loop.time()
            self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- output ------------------------------------------------------------------------------

    def _wakeup(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        connection = self.connection
        transport = self.transport
        if connection is None or transport is None or transport.is_closing():
            return
        if connection.output_delay:
            self._hold_output(connection.output_delay)
            connection.output_delay = 0.0
        if self._output_held:
            return
        if connection.output:
            data = connection.take_output()
            connection.bytes_sent += len(data)
            transport.write(data)
            self.last_sent = self.loop.time()
            connection.output_written()
            connection.set_output_pending(transport.get_write_buffer_size())
            if connection.held_frames is not None:
                self._go_on()
        if connection.finished:
            transport.close()
        elif connection.state is State.CLOSING:
            self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, transport.close))

    def _hold_output(self, delay: float) -> None:
        """Answer (a failed login) only after ``delay`` seconds, without blocking the loop; the
        client is not read from meanwhile."""
        self._output_held = True
        self.gate.pause(Pause.LOGIN)
        self._timers.append(self.loop.call_later(delay, self._release_output))

    def _release_output(self) -> None:
        self._output_held = False
        self.gate.resume(Pause.LOGIN)
        self._flush()

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
