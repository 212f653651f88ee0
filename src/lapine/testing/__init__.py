"""Run a real Lapine broker inside your process, for tests: no Erlang, no Docker.

from lapine.testing import BrokerThread
with BrokerThread() as broker:
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from lapine.config import Config
from lapine.server.app import Server
from lapine.server.loop import new_event_loop


class BrokerThread:
    """A broker on its own event loop in a background thread, for synchronous code."""

    def __init__(self, config: Config | None = None, **settings: object) -> None:
        # Free ports for AMQP, MQTT and the management and Prometheus listeners alike.
        self.config = config or Config(
            host="127.0.0.1",
            port=0,
            management_port=0,
            prometheus_port=0,
            mqtt_port=0,
            mqtt_ssl_port=0,
            web_mqtt_port=0,
            web_mqtt_ssl_port=0,
        )
        self.config.update(settings)
        # A broker of its own gets a data directory of its own, removed when it stops.
        self._temporary_data_dir: str | None = None
        if not self.config.data_dir:
            self._temporary_data_dir = tempfile.mkdtemp(prefix="lapine-")
            self.config.data_dir = self._temporary_data_dir
        self.server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "the broker is not running"
        return self.server.url

    @property
    def port(self) -> int:
        assert self.server is not None, "the broker is not running"
        return self.server.port

    @property
    def mqtt_port(self) -> int:
        """The MQTT listener's port (paho: ``client.connect("127.0.0.1", broker.mqtt_port)``)."""
        assert self.server is not None and self.server.mqtt_port is not None, "MQTT is off"
        return self.server.mqtt_port

    @property
    def management_url(self) -> str:
        """The management API and UI's base URL, e.g. http://127.0.0.1:41234 (guest/guest)."""
        assert self.server is not None and self.server.management_port is not None, "management is off"
        return f"http://127.0.0.1:{self.server.management_port}"

    @property
    def prometheus_url(self) -> str:
        assert self.server is not None and self.server.prometheus_port is not None, "prometheus is off"
        return f"http://127.0.0.1:{self.server.prometheus_port}"

    def start(self) -> BrokerThread:
        self._thread = threading.Thread(target=self._run, name="lapine-broker", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as error:  # surfaced to the starting thread
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        self.server = Server(self.config)
        await self.server.start()
        self._ready.set()
        await self._stopped.wait()
        await self.server.stop()

    def stop(self) -> None:
        if self._loop is None or self._thread is None or self._stopped is None:
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=10)
        self._thread = None
        if self._temporary_data_dir is not None:
            shutil.rmtree(self._temporary_data_dir, ignore_errors=True)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run function(*args) on the broker's loop thread and return its result."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_call(function, *args), self._loop)
        return future.result(timeout=10)

    def __enter__(self) -> BrokerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)
