"""The asyncio side of one MQTT connection (TCP or TLS): socket bytes to the sans-IO
MqttConnection and back, once per loop tick, plus the keepalive timer and publisher throttling."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, cast

from lapine.mqtt import packets as p
from lapine.mqtt.connection import MqttConnection
from lapine.server.fair_protocol import FairProtocol
from lapine.server.throttle import PublisherThrottle

if TYPE_CHECKING:
    from lapine.mqtt.node import MqttNode

log = logging.getLogger("lapine.server")


class MqttProtocol(FairProtocol):
    def __init__(self, node: MqttNode, registry: set[MqttProtocol], transport_kind: str = "tcp") -> None:
        super().__init__()
        self.node = node
        self.registry = registry
        self.transport_kind = transport_kind
        self.connection: MqttConnection | None = None
        self._keepalive: asyncio.TimerHandle | None = None

    def _reader(self) -> MqttConnection | None:
        return self.connection

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
        self._after_read()
        if not opened and connection.state.value == "open" and connection.keepalive:
            self._watch_keepalive(connection.keepalive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        self._stop_timers()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self.connection is not None:
            self.connection.connection_lost()

    def pause_writing(self) -> None:
        if self.connection is not None:
            self.connection.set_writable(False)

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.connection.set_writable(True)

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
