"""The MQTT listeners: plain (mqtt_port, 1883), TLS (mqtt_ssl_port, 8883, with the AMQPS
certificate settings), WebSocket (web_mqtt_port, 15675, path /ws) and secure WebSocket
(web_mqtt_ssl_port, 15676, as RabbitMQ's web_mqtt.ssl).

As for the HTTP listeners, a port that is taken is logged as an error and that listener stays
off: AMQP is served regardless.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from aiohttp import web

from lapine.broker.broker import Broker
from lapine.mqtt.node import MqttNode
from lapine.server.mqtt_protocol import MqttProtocol
from lapine.server.web_mqtt import PATH, create_web_mqtt_app

log = logging.getLogger("lapine")


class MqttListeners:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config
        self.node: MqttNode | None = None
        self.protocols: set[MqttProtocol] = set()
        self._servers: list[asyncio.Server] = []
        self._web: web.AppRunner | None = None
        # The ports in use once started (None: off).
        self.port: int | None = None
        self.ssl_port: int | None = None
        self.web_port: int | None = None
        self.web_ssl_port: int | None = None

    @property
    def enabled(self) -> bool:
        config = self.config
        return config.mqtt_port >= 0 or config.web_mqtt_port >= 0

    async def start(self, data_dir: Path | None, ssl_context: ssl.SSLContext | None, listeners: dict) -> None:
        if not self.enabled and ssl_context is None:
            return
        self.node = MqttNode(self.broker, data_dir)
        config = self.config
        if config.mqtt_port >= 0:
            self.port = await self._listen(config.mqtt_port, None, "MQTT")
            if self.port is not None:
                listeners["mqtt"] = (config.host or "::", self.port)
        if ssl_context is not None and config.mqtt_ssl_port >= 0:
            self.ssl_port = await self._listen(config.mqtt_ssl_port, ssl_context, "MQTT over TLS")
            if self.ssl_port is not None:
                listeners["mqtt/ssl"] = (config.host or "::", self.ssl_port)
        if config.web_mqtt_port >= 0:
            self.web_port = await self._listen_web(config.web_mqtt_port, None)
            if self.web_port is not None:
                listeners["http/web-mqtt"] = (config.host or "::", self.web_port)
        if ssl_context is not None and config.web_mqtt_ssl_port >= 0:
            self.web_ssl_port = await self._listen_web(config.web_mqtt_ssl_port, ssl_context)
            if self.web_ssl_port is not None:
                listeners["https/web-mqtt"] = (config.host or "::", self.web_ssl_port)

    async def _listen_web(self, port: int, context: ssl.SSLContext | None) -> int | None:
        assert self.node is not None
        what = "MQTT over secure WebSocket" if context is not None else "MQTT over WebSocket"
        if self._web is None:
            self._web = web.AppRunner(create_web_mqtt_app(self.node), access_log=None, handle_signals=False)
            await self._web.setup()
        host = self.config.host or None
        site = web.TCPSite(self._web, host=host, port=port, reuse_address=True, ssl_context=context)
        try:
            await site.start()
        except OSError as error:
            log.error("%s not started: cannot listen on port %d: %s", what, port, error)
            return None
        bound = self._web.addresses[-1][1]  # the site just started is the runner's last
        log.info("%s listening on port %d (path %s)", what, bound, PATH)
        return bound

    async def _listen(self, port: int, context: ssl.SSLContext | None, what: str) -> int | None:
        assert self.node is not None
        node = self.node
        kind = "tls" if context is not None else "tcp"
        try:
            server = await asyncio.get_running_loop().create_server(
                lambda: MqttProtocol(node, self.protocols, kind),
                host=self.config.host or None,
                port=port,
                reuse_address=True,
                ssl=context,
                ssl_handshake_timeout=self.config.handshake_timeout if context is not None else None,
            )
        except OSError as error:
            log.error("%s not started: cannot listen on port %d: %s", what, port, error)
            return None
        self._servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        log.info("%s listening on port %d", what, bound)
        return bound

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        if self._web is not None:
            await self._web.cleanup()
            self._web = None

    def abort_all(self) -> None:
        for protocol in list(self.protocols):
            protocol.abort()

    def close(self) -> None:
        if self.node is not None:
            self.node.close()
            self.node = None
