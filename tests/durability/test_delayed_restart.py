"""Delayed messages across a restart and a kill -9 (a lapine-server process on delayed.db).

As RabbitMQ's delayed-message plugin, whose Mnesia table keeps every delayed message whatever its
delivery mode: those of a durable exchange wait again after a restart and are released late, in
due order, when they fell due while the broker was down; those of a non-durable exchange are gone
with it. A confirmed message is on disk, so a kill -9 loses none. Lapine only: the reference
RabbitMQ has no such plugin.
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pika
import pytest

LAPINE = [sys.executable, "-m", "lapine", "--host", "127.0.0.1", "--log-level", "warning"]
LAPINE += ["--management-port", "-1", "--prometheus-port", "-1", "--mqtt-port", "-1", "--web-mqtt-port", "-1"]
DELAYED = {"x-delayed-type": "direct"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*LAPINE, "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the broker did not start")


def channel_to(port: int) -> Any:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, socket_timeout=5))
    return connection.channel()


def declare(channel: Any) -> None:
    channel.exchange_declare("later", "x-delayed-message", durable=True, arguments=DELAYED)
    channel.exchange_declare("later-transient", "x-delayed-message", durable=False, arguments=DELAYED)
    channel.queue_declare("due", durable=True)
    channel.queue_bind("due", "later", "k")
    channel.queue_bind("due", "later-transient", "k")


def publish(channel: Any, exchange: str, body: str, delay: int, delivery_mode: int = 2) -> None:
    properties = pika.BasicProperties(headers={"x-delay": delay}, delivery_mode=delivery_mode)
    channel.basic_publish(exchange, "k", body.encode(), properties)


def collect(channel: Any, count: int, timeout: float = 10) -> list[tuple[str, int]]:
    got: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        method, properties, body = channel.basic_get("due", auto_ack=True)
        if method is None:
            time.sleep(0.02)
            continue
        got.append((body.decode(), properties.headers["x-delay"]))
    return got


@pytest.fixture
def port() -> int:
    return free_port()


def test_a_restart_keeps_what_a_durable_exchange_holds(tmp_path: Path, port: int) -> None:
    broker = start_broker(tmp_path, port)
    try:
        channel = channel_to(port)
        channel.confirm_delivery()
        declare(channel)
        # Due well after the shutdown begins (from then on nothing is released), however slow
        # the machine.
        publish(channel, "later", "p-2500", 2500)
        publish(channel, "later", "t-2200", 2200, delivery_mode=1)
        publish(channel, "later", "p-2000", 2000)
        publish(channel, "later-transient", "gone", 2100)
        assert channel.basic_get("due")[0] is None
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=15)
    broker = start_broker(tmp_path, port)
    try:
        channel = channel_to(port)
        got = collect(channel, 3)
        assert got == [("p-2000", -2000), ("t-2200", -2200), ("p-2500", -2500)]
        time.sleep(0.3)
        assert channel.basic_get("due")[0] is None  # the non-durable exchange's is gone
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.exchange_declare("later-transient", passive=True)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=15)


def test_after_kill_9_confirmed_messages_come_late_in_due_order(tmp_path: Path, port: int) -> None:
    broker = start_broker(tmp_path, port)
    delays = [700, 300, 500, 400, 600] * 40
    published: list[float] = []
    try:
        channel = channel_to(port)
        declare(channel)
        channel.confirm_delivery()
        for index, delay in enumerate(delays):
            published.append(time.time())
            publish(channel, "later", f"{index}", delay)  # returns once confirmed
    finally:
        broker.kill()  # SIGKILL: nothing is flushed on the way out
        broker.wait(timeout=15)
    time.sleep(1.0)  # every one falls due while the broker is down
    broker = start_broker(tmp_path, port)
    try:
        channel = channel_to(port)
        got = collect(channel, len(delays))
        assert sorted(int(body) for body, _delay in got) == list(range(len(delays)))
        assert all(delay == -delays[int(body)] for body, delay in got)
        # In due order: each one's due time (as the client saw its publish) is not after the next
        # one's, but for the time a publish takes to reach the broker.
        due = [published[int(body)] + delays[int(body)] / 1000 for body, _delay in got]
        assert all(first <= second + 0.05 for first, second in itertools.pairwise(due))
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=15)
