"""The asyncio side of one MQTT connection (TCP or TLS): socket bytes to the sans-IO
MqttConnection and back, once per loop tick, plus the keepalive timer and publisher throttling."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, cast

from lapine.broker import flow
from lapine.mqtt import packets as p
from lapine.mqtt.connection import MqttConnection
from lapine.server.protocol import READ_PER_TICK
from lapine.server.read_gate import Pause, ReadGate
from lapine.server.throttle import PublisherThrottle

if TYPE_CHECKING:
    from lapine.mqtt.node import MqttNode

log = logging.getLogger("lapine.server")


class MqttProtocol(asyncio.Protocol):
    def __init__(self, node: MqttNode, registry: set[MqttProtocol], transport_kind: str = "tcp") -> None:
        self.node = node
        self.registry = registry
        self.transport_kind = transport_kind
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.connection: MqttConnection | None = None
        self.throttle: PublisherThrottle | None = None
        self._flush_scheduled = False
        self._timers: list[asyncio.TimerHandle] = []
        self._keepalive: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._output_held = False
        self._read_this_tick = 0
        self._tick_scheduled = False
        self._flow_timer: asyncio.TimerHandle | None = None
        # Every reason not to read the socket (read fairness, credit, alarms, a late answer).
        self.gate = ReadGate(self._pause_reading, self._resume_reading)
        self.last_received = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.registry.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.node.config.tcp_keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        peer = transport.get_extra_info("peername") or ("unknown", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.connection = MqttConnection(
            self.node,
            (str(peer[0]), int(peer[1])),
            self._wakeup,
            (str(local[0]), int(local[1])),
            transport=self.transport_kind,
        )
        self.throttle = PublisherThrottle(self.node.broker, self.connection, self.gate)  # type: ignore[arg-type]
        self.last_received = self.loop.time()
        # A client that has not sent CONNECT in time is dropped, as an AMQP one without a handshake.
        self._timers.append(self.loop.call_later(self.node.config.handshake_timeout, self._connect_deadline))

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        assert connection is not None
        self.last_received = self.loop.time()
        self._count_read(len(data))
        opened = connection.state.value == "open"
        connection.data_received(data)
        if connection.held is not None:
            self.gate.pause(Pause.HELD)  # out of credit: what it sent waits for the next tick
        self._published()
        if not opened and connection.state.value == "open" and connection.keepalive:
            self._watch_keepalive(connection.keepalive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._flow_timer is not None:
            self._flow_timer.cancel()
        if self.throttle is not None:
            self.throttle.close()
        if self.connection is not None:
            self.connection.connection_lost()

    def pause_writing(self) -> None:
        if self.connection is not None:
            self.connection.set_writable(False)

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.connection.set_writable(True)

    def _published(self) -> None:
        connection = self.connection
        if connection is not None and connection.published:
            connection.published = False
            assert self.throttle is not None
            self.throttle.publish_received()

    def _count_read(self, size: int) -> None:
        """Fairness between sockets, as for AMQP (server/protocol.py): past READ_PER_TICK bytes in
        one loop iteration, this socket waits for the next one, so that a flooding publisher does
        not keep its subscribers' deliveries (and everyone else) waiting."""
        self._tick_soon()
        self._read_this_tick += size
        if self._read_this_tick >= READ_PER_TICK:
            self.gate.pause(Pause.TICK)

    def _tick_soon(self) -> None:
        if not self._tick_scheduled:
            self._tick_scheduled = True
            self.loop.call_soon(self._tick_over)

    def _tick_over(self) -> None:
        """The loop went round: a new read share, new credit, and held packets go on."""
        self._tick_scheduled = False
        self._read_this_tick = 0
        self.gate.resume(Pause.TICK)
        if self.connection is not None:
            self.connection.grant_credit()
            self._go_on()

    def _go_on(self) -> None:
        connection = self.connection
        if connection is None or connection.held is None:
            return
        connection.release_held()
        self._published()
        if connection.held is None:
            self.gate.resume(Pause.HELD)
        elif connection.credit.granted:
            self._tick_soon()  # more credit next tick, as the queues hand messages out
        elif self._flow_timer is None:
            self._flow_timer = self.loop.call_later(flow.RETRY_SECONDS, self._flow_retry)

    def _flow_retry(self) -> None:
        self._flow_timer = None
        if self.connection is not None and self.connection.held is not None:
            self.connection.grant_credit(trickle=True)
            self._go_on()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = False
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
            # A refused login is answered late, without holding anyone else up.
            self._output_held = True
            self.gate.pause(Pause.LOGIN)
            self._timers.append(self.loop.call_later(connection.output_delay, self._release_output))
            connection.output_delay = 0.0
        if self._output_held:
            return
        if connection.output:
            data = connection.take_output()
            connection.bytes_sent += len(data)
            transport.write(data)
            connection.output_written()
            if connection.held is not None:
                self._go_on()
        if connection.finished:
            transport.close()

    def _release_output(self) -> None:
        self._output_held = False
        self.gate.resume(Pause.LOGIN)
        self._flush()

    # --- timers ------------------------------------------------------------------------------

    def _connect_deadline(self) -> None:
        connection = self.connection
        if connection is not None and connection.state.value != "open" and self.transport is not None:
            log.warning("closing MQTT connection %s: no CONNECT in time", connection.name)
            self.transport.close()

    def _watch_keepalive(self, keepalive: int) -> None:
        # "If the Server does not receive a Control Packet from the Client within one and a half
        # times the Keep Alive time period, it MUST disconnect" [MQTT-3.1.2-24].
        self._keepalive = self.loop.call_later(keepalive * 1.5, self._check_keepalive, keepalive)

    def _check_keepalive(self, keepalive: int) -> None:
        connection = self.connection
        transport = self.transport
        if connection is None or transport is None or transport.is_closing():
            return
        silent = self.loop.time() - self.last_received
        if not self._reading_paused and silent >= keepalive * 1.5:
            log.error("closing MQTT connection %s (keepalive timeout)", connection.name)
            connection.close(p.KEEP_ALIVE_TIMEOUT)
            return
        self._keepalive = self.loop.call_later(keepalive * 1.5 - silent, self._check_keepalive, keepalive)
