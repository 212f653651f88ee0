"""A disk that fails: the failure is reported, publishers are blocked (connection.blocked) and
told nothing false (persistent messages are nacked), and what was confirmed before stays. When
the disk works again the broker does too: the alarm clears and nothing it took is lost. A
damaged database file stops the start with one clear line."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pytest

from lapine.store import QueueDef, SqliteStore
from lapine.store.sqlite import DB_FILE, PAGE_SIZE
from lapine.testing import BrokerThread

Channel = pika.adapters.blocking_connection.BlockingChannel


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


def settings_for(tmp_path: Path, **more: object) -> dict[str, object]:
    return {"data_dir": str(tmp_path / "data"), "management_port": -1, "prometheus_port": -1, **more}


def fail_writes(thread: BrokerThread) -> Callable[[], None]:
    """Make the broker's disk fail; returns the function that heals it."""
    store = thread.server.store  # type: ignore[union-attr]
    assert store is not None
    real = store._writer.conn
    thread.call(lambda: setattr(store._writer, "conn", FailingConnection(real)))
    return lambda: thread.call(lambda: setattr(store._writer, "conn", real))


def alarms(thread: BrokerThread) -> list[str]:
    return thread.call(lambda: sorted(thread.server.broker.alarms))  # type: ignore[union-attr, no-any-return]


def wait_for(condition: Callable[[], bool], connection: pika.BlockingConnection | None = None) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        if connection is not None:
            connection.process_data_events(time_limit=0.05)
        else:
            time.sleep(0.05)


def drain(channel: Channel, queue: str) -> list[bytes]:
    bodies = []
    while (got := channel.basic_get(queue, auto_ack=True))[0] is not None:
        bodies.append(got[2])
    return bodies


def test_failing_disk_blocks_publishers_until_it_works_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path)
    caplog.set_level(logging.INFO)
    with BrokerThread(**settings) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        blocked: list[str] = []
        connection.add_on_connection_blocked_callback(lambda _c, method: blocked.append(method.method.reason))
        connection.add_on_connection_unblocked_callback(lambda _c, _method: blocked.append("unblocked"))
        channel = connection.channel()
        channel.queue_declare("safe", durable=True)
        channel.confirm_delivery()
        channel.basic_publish("", "safe", b"before", pika.BasicProperties(delivery_mode=2))

        heal = fail_writes(thread)
        with pytest.raises(pika.exceptions.NackError):
            channel.basic_publish("", "safe", b"after", pika.BasicProperties(delivery_mode=2))
        assert "disk I/O error" in caplog.text
        assert alarms(thread) == ["disk"]
        # The log says why, and what statvfs says: the space is not what is short.
        assert "Disk writes are failing: disk I/O error. Free bytes: " in caplog.text
        assert "Free disk space is insufficient" not in caplog.text
        assert "disk resource limit alarm set on node" in caplog.text
        # As in RabbitMQ, a connection is blocked when it next publishes under the alarm.
        other = connection.channel()
        other.basic_publish("", "safe", b"blocked", pika.BasicProperties(delivery_mode=2))
        connection.process_data_events(time_limit=0.5)
        assert blocked == ["low on disk"]

        heal()
        wait_for(lambda: "unblocked" in blocked, connection)
        assert alarms(thread) == []
        assert "disk resource limit alarm cleared on node" in caplog.text
        assert "Free disk space is sufficient. Free bytes: " in caplog.text
        channel.basic_publish("", "safe", b"healed", pika.BasicProperties(delivery_mode=2))
        connection.close()
    with BrokerThread(**settings) as thread:
        channel = pika.BlockingConnection(pika.URLParameters(thread.url)).channel()
        # The nacked "after" was kept and written once the disk worked: a nack promises nothing.
        assert drain(channel, "safe") == [b"before", b"after", b"blocked", b"healed"]


def test_declares_while_the_disk_fails(tmp_path: Path) -> None:
    with BrokerThread(**settings_for(tmp_path)) as thread:
        channel = pika.BlockingConnection(pika.URLParameters(thread.url)).channel()
        channel.queue_declare("kept", durable=True)
        heal = fail_writes(thread)
        channel.basic_publish("", "kept", b"m", pika.BasicProperties(delivery_mode=2))
        wait_for(lambda: alarms(thread) == ["disk"])
        # Nothing to write for an exclusive queue: it is declared as ever.
        assert channel.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
        # A durable one cannot be made durable: the connection is closed, and no queue is left.
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            channel.queue_declare("doomed", durable=True)
        assert closed.value.reply_code == 541
        assert "cannot declare queue 'doomed' in vhost '/'" in closed.value.reply_text
        vhost = thread.server.broker.vhosts["/"]  # type: ignore[union-attr]
        assert "doomed" not in thread.call(lambda: list(vhost.queues))
        heal()
        channel = pika.BlockingConnection(pika.URLParameters(thread.url)).channel()
        wait_for(lambda: alarms(thread) == [])
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as missing:
            channel.queue_declare("doomed", passive=True)
        assert missing.value.reply_code == 404
        channel = channel.connection.channel()
        channel.queue_declare("doomed", durable=True)


def test_paged_messages_survive_a_failing_disk(tmp_path: Path) -> None:
    """Past the window a message lives on disk only, transient ones included: its confirm waits
    for the write, a failed write is nacked, and the backlog pages in once the disk works."""
    with BrokerThread(**settings_for(tmp_path, queue_window=2)) as thread:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("backlog", durable=True)
        for body in (b"m0", b"m1"):
            channel.basic_publish("", "backlog", body)
        heal = fail_writes(thread)
        with pytest.raises(pika.exceptions.NackError):
            channel.basic_publish("", "backlog", b"m2")
        assert channel.queue_declare("backlog", passive=True).method.message_count == 3
        heal()
        wait_for(lambda: alarms(thread) == [])
        channel.basic_publish("", "backlog", b"m3")
        assert drain(channel, "backlog") == [b"m0", b"m1", b"m2", b"m3"]


def run_server(data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lapine.cli.server", "--data-dir", str(data_dir), "--port", "0"]
    command += ["--management-port", "-1", "--prometheus-port", "-1"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_file_that_is_not_a_database_stops_the_start_clearly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / DB_FILE).write_bytes(b"this is not SQLite\n" * 1000)
    result = run_server(data_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"lapine-server: cannot start: {data_dir / DB_FILE} is damaged or not a Lapine database")


def test_a_damaged_database_is_found_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = SqliteStore(data_dir, notify=lambda fn: fn())
    queue_id = store.put_queue(QueueDef("/", "q"))
    for seq in range(2000):
        store.enqueue(queue_id, seq, b"", b"q", b"h", b"small body %d" % seq)
    sql = "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' ORDER BY pageno"
    leaves = store._query(lambda conn: [row[0] for row in conn.execute(sql)])
    store.close()
    # A page in the middle of the queue: not one that opening the file reads on its way.
    with open(data_dir / DB_FILE, "r+b") as db:
        db.seek((leaves[len(leaves) // 2] - 1) * PAGE_SIZE)
        db.write(b"\xee" * PAGE_SIZE)
    result = run_server(data_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{data_dir / DB_FILE} is damaged or not a Lapine database" in result.stderr.strip().splitlines()[-1]
