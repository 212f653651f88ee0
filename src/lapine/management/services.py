"""Start and stop the HTTP listeners that sit beside AMQP: management (15672) and Prometheus (15692).

Both run on the broker's event loop. Port 0 picks a free port (for tests); a negative port turns
the listener off. A port that is taken is logged as an error and that listener stays off: the
broker's AMQP service matters more than its dashboard (RabbitMQ would refuse to boot instead).
"""

from __future__ import annotations

import logging

from aiohttp import web

from lapine.broker.broker import Broker
from lapine.management.app import create_app
from lapine.management.context import Node
from lapine.management.rates import Sampler
from lapine.prometheus.app import create_prometheus_app

log = logging.getLogger("lapine.management")


class HttpListener:
    """One aiohttp application on one port."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host=self.host or None, port=self.port, reuse_address=True)
        await site.start()
        # With port 0 the OS picked one: learn which.
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
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
        if config.management_port >= 0:
            app = create_app(broker, self.sampler, self.node)
            self.management = HttpListener(app, config.host, config.management_port)
        if config.prometheus_port >= 0:
            self.prometheus = HttpListener(create_prometheus_app(broker), config.host, config.prometheus_port)

    @property
    def management_port(self) -> int | None:
        return self.management.port if self.management is not None else None

    @property
    def prometheus_port(self) -> int | None:
        return self.prometheus.port if self.prometheus is not None else None

    async def start(self, amqp_port: int) -> None:
        host = self.broker.config.host or "::"
        self.node.listeners["amqp"] = (host, amqp_port)
        self.management = await self._start(self.management, "http", "management API and UI")
        if self.management is not None:
            self.sampler.start()
        self.prometheus = await self._start(self.prometheus, "http/prometheus", "Prometheus metrics (/metrics)")

    async def _start(self, listener: HttpListener | None, protocol: str, what: str) -> HttpListener | None:
        if listener is None:
            return None
        try:
            port = await listener.start()
        except OSError as error:
            log.error("%s not started: cannot listen on port %d: %s", what, listener.port, error)
            await listener.stop()
            return None
        self.node.listeners[protocol] = (self.broker.config.host or "::", port)
        log.info("%s listening on port %d", what, port)
        return listener

    async def stop(self) -> None:
        await self.sampler.stop()
        for listener in (self.management, self.prometheus):
            if listener is not None:
                await listener.stop()
