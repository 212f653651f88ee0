"""A running Lapine: the broker model plus its listeners, as an async context manager.

async with Server(Config(port=0)) as server:
    print(server.url)
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from types import TracebackType

from lapine import __version__
from lapine.broker.broker import Broker
from lapine.config import Config
from lapine.management.services import HttpServices
from lapine.server import tls
from lapine.server.alarms import AlarmMonitor
from lapine.server.mqtt_listeners import MqttListeners
from lapine.server.mqtt_protocol import MqttProtocol
from lapine.server.protocol import AMQPProtocol
from lapine.server.timers import LoopScheduler
from lapine.store import SqliteStore, default_data_dir
from lapine.store.delayed_sqlite import SqliteDelayStore
from lapine.store.stream import StreamHome

log = logging.getLogger("lapine")


class Server:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.scheduler = LoopScheduler()
        self.broker = Broker(self.config, self.scheduler)
        self._listener: asyncio.Server | None = None
        self.protocols: set[AMQPProtocol] = set()
        self.port = self.config.port
        # The management API/UI and Prometheus listeners, on this same event loop.
        self.http = HttpServices(self.broker)
        self.store: SqliteStore | None = None
        self.delay_store: SqliteDelayStore | None = None
        self.streams: StreamHome | None = None
        # AMQPS, when a certificate is configured: its listener and port once started.
        self._tls_listener: asyncio.Server | None = None
        self.ssl_port: int | None = None
        # Memory and disk alarms; broker.alarms holds the ones in effect.
        self.alarms = AlarmMonitor(self.broker, self._alarms_changed)
        # MQTT, MQTT over TLS and MQTT over WebSocket (RabbitMQ's MQTT and Web MQTT plugins).
        self.mqtt = MqttListeners(self.broker)

    @property
    def mqtt_port(self) -> int | None:
        return self.mqtt.port

    @property
    def mqtt_ssl_port(self) -> int | None:
        return self.mqtt.ssl_port

    @property
    def web_mqtt_port(self) -> int | None:
        return self.mqtt.web_port

    @property
    def web_mqtt_ssl_port(self) -> int | None:
        return self.mqtt.web_ssl_port

    @property
    def url(self) -> str:
        host = self.config.host or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        user, password = self.config.default_user, self.config.default_pass
        return f"amqp://{user}:{password}@{host}:{self.port}/%2F"

    @property
    def management_port(self) -> int | None:
        """The management API's port once started (None when it is turned off)."""
        return self.http.management_port

    @property
    def prometheus_port(self) -> int | None:
        return self.http.prometheus_port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.scheduler.bind(loop)
        # A broken TLS setup stops the start before anything is opened.
        ssl_context = tls.server_context(self.config) if tls.enabled(self.config) else None
        self._open_store(loop)
        self._listener = await loop.create_server(
            lambda: AMQPProtocol(self.broker, self.protocols),
            host=self.config.host or None,
            port=self.config.port,
            reuse_address=True,
        )
        sockets = self._listener.sockets
        self.port = sockets[0].getsockname()[1]
        addresses = ", ".join(_address(sock.getsockname()) for sock in sockets)
        log.info("Lapine %s started; AMQP 0-9-1 listening on %s", __version__, addresses)
        if ssl_context is not None:
            await self._start_tls(loop, ssl_context)
        self.alarms.start(loop)
        await self.http.start(self.port)
        data_dir = Path(self.config.data_dir or default_data_dir())
        await self.mqtt.start(data_dir, ssl_context, self.http.node.listeners)

    async def _start_tls(self, loop: asyncio.AbstractEventLoop, context: ssl.SSLContext) -> None:
        self._tls_listener = await loop.create_server(
            lambda: AMQPProtocol(self.broker, self.protocols),
            host=self.config.host or None,
            port=self.config.ssl_port,
            reuse_address=True,
            ssl=context,
            # A client that never finishes the TLS handshake is dropped like one that never
            # finishes AMQP's.
            ssl_handshake_timeout=self.config.handshake_timeout,
        )
        sockets = self._tls_listener.sockets
        self.ssl_port = sockets[0].getsockname()[1]
        addresses = ", ".join(_address(sock.getsockname()) for sock in sockets)
        log.info("AMQP 0-9-1 over TLS listening on %s", addresses)

    def _store_failed(self, error: BaseException) -> None:
        """A failed write: publishers are blocked by the disk alarm rather than told a lie."""
        self.broker.store_failed(error)
        self.alarms.check()

    def _store_recovered(self) -> None:
        """Writes succeed again: the disk alarm the failure raised clears (if there is room)."""
        self.broker.store_recovered()
        self.alarms.check()

    def _alarms_changed(self) -> None:
        """An alarm was set or cleared: blocked publishers may go on."""
        protocols: list[AMQPProtocol | MqttProtocol] = [*self.protocols, *self.mqtt.protocols]
        for protocol in protocols:
            if protocol.throttle is not None:
                protocol.throttle.alarms_changed()

    def _open_store(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open (and lock) the data directory, then recover what it holds, before listening."""
        path = self.config.data_dir or default_data_dir()
        self.store = SqliteStore(
            path, notify=loop.call_soon_threadsafe, on_error=self._store_failed, on_recover=self._store_recovered
        )
        log.info("data in %s", self.store.path)
        # Streams keep their logs beside the database, each log writing from its own thread.
        self.streams = StreamHome(self.store.path.parent / "streams", loop.call_soon_threadsafe, loop.call_soon)
        try:
            self.broker.attach_store(self.store, self.streams)
            # Delayed messages (x-delayed-message exchanges) in delayed.db beside it.
            self.delay_store = SqliteDelayStore(
                self.store.path.parent, notify=loop.call_soon_threadsafe, on_error=self.broker.delay_store_failed
            )
            self.broker.attach_delay_store(self.delay_store)
        except BaseException:
            if self.delay_store is not None:
                self.delay_store.close()
                self.delay_store = None
            self.streams.close()
            self.streams = None
            self.store.close()
            raise

    async def stop(self) -> None:
        if self._listener is None:
            return
        self._listener.close()
        if self._tls_listener is not None:
            self._tls_listener.close()
            self._tls_listener = None
        self.alarms.stop()
        await self.http.stop()
        await self.mqtt.stop()
        # Nothing is released while the broker closes: it would go to queues nobody reads, and
        # the stores close under it.
        self.broker.delayed.stop()
        self.broker.close_all("shutdown")
        # Let the close frames reach the clients and their close-ok come back.
        for _ in range(50):
            if not self.protocols and not self.mqtt.protocols:
                break
            await asyncio.sleep(0.02)
        for protocol in list(self.protocols):
            protocol.abort()
        self.mqtt.abort_all()
        self.mqtt.close()
        self._listener = None
        if self.delay_store is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.delay_store.close)
            self.delay_store = None
        if self.streams is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.streams.close)
            self.streams = None
        if self.store is not None:
            # Commits what was submitted and releases the data directory's lock.
            await asyncio.get_running_loop().run_in_executor(None, self.store.close)
            self.store = None
        log.info("Lapine stopped")

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _address(sockname: tuple[object, ...]) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
