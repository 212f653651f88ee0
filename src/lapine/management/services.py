"""Start and stop the HTTP listeners that sit beside AMQP: management (15672) and Prometheus (15692).

Both run on the broker's event loop. Port 0 picks a free port (for tests); a negative port turns
the listener off. With management_ssl_certfile and management_ssl_keyfile set, the management API
is also served over HTTPS on management_ssl_port (RabbitMQ's management.ssl.*). A port that is
taken is logged as an error and that listener stays off: the broker's AMQP service matters more
than its dashboard (RabbitMQ would refuse to boot instead). Every socket is guarded by
connection_gate (a deadline for request heads, a cap before login).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web

from lapine.broker.broker import Broker
from lapine.config import Config
from lapine.management.app import create_app
from lapine.management.connection_gate import GATE
from lapine.management.context import Node
from lapine.management.rates import Sampler
from lapine.prometheus.app import create_prometheus_app
from lapine.server import tls

log = logging.getLogger("lapine.management")


class HttpListener:
    """One aiohttp application on one or more ports (plain HTTP, and HTTPS when configured)."""

    def __init__(self, app: web.Application, host: str, request_timeout: float) -> None:
        self.app = app
        self.host = host
        self.request_timeout = request_timeout
        self._runner: web.AppRunner | None = None
        self._servers: list[asyncio.Server] = []

    async def listen(self, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Serve on ``port`` (0: a free one) and say which port it is."""
        if self._runner is None:
            # aiohttp's own idle timeout also closes a socket that never sends a whole request.
            self._runner = web.AppRunner(
                self.app, access_log=None, handle_signals=False, keepalive_timeout=self.request_timeout
            )
            await self._runner.setup()
        assert self._runner.server is not None
        gate = self.app[GATE]
        server = await asyncio.get_running_loop().create_server(
            gate.protocol_factory(self._runner.server),
            host=self.host or None,
            port=port,
            ssl=ssl_context,
            ssl_handshake_timeout=self.request_timeout if ssl_context is not None else None,
            reuse_address=True,
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self._servers = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class HttpServices:
    """The management API and UI, the rate sampler behind them, and the Prometheus endpoint."""

    def __init__(self, broker: Broker) -> None:
        config = broker.config
        self.broker = broker
        self.node = Node(name=broker.cluster_name)
        self.sampler = Sampler(broker, config.management_sample_interval)
        self.management: HttpListener | None = None
        self.prometheus: HttpListener | None = None
        self.management_port: int | None = None
        self.management_ssl_port: int | None = None
        self.prometheus_port: int | None = None
        # HTTPS for the management API: a broken certificate setting stops the start, as for AMQPS.
        self._management_tls = management_tls_context(config)
        if config.management_port >= 0 or self._management_tls is not None:
            app = create_app(broker, self.sampler, self.node)
            self.management = HttpListener(app, config.host, config.http_request_timeout)
        if config.prometheus_port >= 0:
            app = create_prometheus_app(broker)
            self.prometheus = HttpListener(app, config.host, config.http_request_timeout)

    async def start(self, amqp_port: int) -> None:
        config = self.broker.config
        host = config.host or "::"
        self.node.listeners["amqp"] = (host, amqp_port)
        if self.management is not None:
            if config.management_port >= 0:
                self.management_port = await self._listen(self.management, config.management_port, None, "http")
            if self._management_tls is not None:
                self.management_ssl_port = await self._listen(
                    self.management, config.management_ssl_port, self._management_tls, "https"
                )
            if self.management_port is not None or self.management_ssl_port is not None:
                self.sampler.start()
        if self.prometheus is not None:
            self.prometheus_port = await self._listen(self.prometheus, config.prometheus_port, None, "http/prometheus")

    async def _listen(
        self, listener: HttpListener, port: int, context: ssl.SSLContext | None, protocol: str
    ) -> int | None:
        what = DESCRIPTIONS[protocol]
        try:
            port = await listener.listen(port, context)
        except OSError as error:
            log.error("%s not started: cannot listen on port %d: %s", what, port, error)
            return None
        self.node.listeners[protocol] = (self.broker.config.host or "::", port)
        log.info("%s listening on port %d", what, port)
        return port

    async def stop(self) -> None:
        await self.sampler.stop()
        for listener in (self.management, self.prometheus):
            if listener is not None:
                await listener.stop()


DESCRIPTIONS = {
    "http": "management API and UI",
    "https": "management API and UI over TLS",
    "http/prometheus": "Prometheus metrics (/metrics)",
}


def management_tls_context(config: Config) -> ssl.SSLContext | None:
    """RabbitMQ's management.ssl.*: an HTTPS listener when a certificate and its key are set."""
    if not (config.management_ssl_certfile and config.management_ssl_keyfile):
        return None
    return tls.context_for(
        config.management_ssl_certfile,
        config.management_ssl_keyfile,
        config.management_ssl_cacertfile,
        config.management_ssl_verify,
        config.management_ssl_fail_if_no_peer_cert,
        prefix="management_ssl_",
    )
