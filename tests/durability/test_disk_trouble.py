"""A disk that fails: the failure is reported, publishers are blocked (connection.blocked) and
told nothing false (persistent messages are nacked), and what was confirmed before stays."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pika
import pytest

from lapine.testing import BrokerThread


class FailingConnection:
    """The store's SQLite connection, with every write failing as a dying disk's would."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.split(None, 1)[0] in ("INSERT", "DELETE", "UPDATE", "COMMIT"):
            raise sqlite3.OperationalError("disk I/O error")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_failing_disk_blocks_publishers_and_confirms_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = {"data_dir": str(tmp_path), "management_port": -1, "prometheus_port": -1}
    with BrokerThread(**settings) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        blocked: list[str] = []
        connection.add_on_connection_blocked_callback(lambda _c, method: blocked.append(method.method.reason))
        channel = connection.channel()
        channel.queue_declare("safe", durable=True)
        channel.confirm_delivery()
        channel.basic_publish("", "safe", b"before", pika.BasicProperties(delivery_mode=2))

        store = thread.server.store  # type: ignore[union-attr]
        assert store is not None
        thread.call(lambda: setattr(store, "_conn", FailingConnection(store._conn)))
        with caplog.at_level(logging.ERROR), pytest.raises(pika.exceptions.NackError):
            channel.basic_publish("", "safe", b"after", pika.BasicProperties(delivery_mode=2))
        assert "disk I/O error" in caplog.text
        assert thread.call(lambda: sorted(thread.server.broker.alarms)) == ["disk"]  # type: ignore[union-attr]
        # As in RabbitMQ, a connection is blocked when it next publishes under the alarm.
        connection.channel().basic_publish("", "safe", b"blocked", pika.BasicProperties(delivery_mode=2))
        connection.process_data_events(time_limit=0.5)
        assert blocked == ["low on disk"]
        # A blocked connection is not read from, so not even its close: the broker's stop ends it.
        thread.call(lambda: setattr(store, "_conn", store._conn._conn))
    with BrokerThread(**settings) as thread:
        channel = pika.BlockingConnection(pika.URLParameters(thread.url)).channel()
        assert channel.basic_get("safe", auto_ack=True)[2] == b"before"
