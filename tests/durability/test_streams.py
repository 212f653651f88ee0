"""Streams across restarts and kill -9: the stream, its messages and their offsets stay; every
message confirmed before a kill -9 is there after it, in order, and the stream goes on from there."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from lapine.testing import BrokerThread
from tests.durability.test_crash import free_port, start_broker

Restartable = Callable[[], BrokerThread]
STREAM = {"x-queue-type": "stream"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Restartable]:
    running: list[BrokerThread] = []

    def start() -> BrokerThread:
        if running:
            running.pop().stop()
        thread = BrokerThread(data_dir=str(tmp_path / "data"), management_port=-1, prometheus_port=-1)
        running.append(thread.start())
        return thread

    yield start
    for thread in running:
        thread.stop()


def channel_of(url: str) -> Any:
    return pika.BlockingConnection(pika.URLParameters(url)).channel()


def read_all(url: str, queue: str, expected: int, timeout: float = 10.0) -> list[tuple[int, bytes]]:
    """(x-stream-offset, body) of the stream's messages from the first, until ``expected`` came."""
    channel = channel_of(url)
    channel.basic_qos(prefetch_count=500)
    got: list[tuple[int, bytes]] = []

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        got.append((properties.headers["x-stream-offset"], body))
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_message, arguments={"x-stream-offset": "first"})
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        channel.connection.process_data_events(time_limit=0.1)
    channel.connection.process_data_events(time_limit=0.2)
    channel.connection.close()
    return got


def test_a_restart_keeps_the_stream_its_messages_and_their_offsets(broker: Restartable) -> None:
    channel = channel_of(broker().url)
    channel.queue_declare("events", durable=True, arguments={**STREAM, "x-max-age": "7D"})
    channel.confirm_delivery()
    for i in range(200):
        # Transient or persistent, a stream keeps every message.
        channel.basic_publish("", "events", b"e%d" % i, pika.BasicProperties(delivery_mode=1 + i % 2))
    channel.connection.close()

    url = broker().url
    channel = channel_of(url)
    declared = channel.queue_declare("events", durable=True, arguments={**STREAM, "x-max-age": "7D"})
    assert declared.method.message_count == 200
    channel.confirm_delivery()
    channel.basic_publish("", "events", b"after")
    channel.connection.close()
    got = read_all(url, "events", 201)
    assert got == [(i, b"e%d" % i) for i in range(200)] + [(200, b"after")]


def test_a_deleted_stream_is_gone_after_a_restart_with_its_files(broker: Restartable, tmp_path: Path) -> None:
    channel = channel_of(broker().url)
    channel.queue_declare("old", durable=True, arguments=STREAM)
    channel.confirm_delivery()
    channel.basic_publish("", "old", b"x")
    channel.queue_delete("old")
    channel.queue_declare("old", durable=True, arguments=STREAM)
    channel.basic_publish("", "old", b"fresh")
    channel.connection.close()
    url = broker().url
    assert read_all(url, "old", 1) == [(0, b"fresh")]
    assert len(list((tmp_path / "data" / "streams").iterdir())) == 1


class Publisher(threading.Thread):
    """Publishes with confirms until the broker dies; ``confirmed`` is what the broker confirmed."""

    def __init__(self, port: int, first: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.next = first
        self.confirmed = first

    def run(self) -> None:
        try:
            params = pika.ConnectionParameters("127.0.0.1", self.port, socket_timeout=2)
            channel = pika.BlockingConnection(params).channel()
            channel.confirm_delivery()
            while True:
                channel.basic_publish("", "s", b"m%d" % self.next)
                self.next += 1
                self.confirmed = self.next
        except Exception:  # the broker was killed
            return


def test_kill_9_loses_no_confirmed_message(tmp_path: Path) -> None:
    rng = random.Random(3)
    data = tmp_path / "data"
    port = free_port()
    process = start_broker(data, port)
    try:
        channel = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)).channel()
        channel.queue_declare("s", durable=True, arguments={**STREAM, "x-stream-max-segment-size-bytes": 20_000})
        channel.connection.close()
        confirmed = 0
        for _round in range(2):
            publisher = Publisher(port, confirmed)
            publisher.start()
            time.sleep(rng.uniform(0.5, 1.5))
            process.send_signal(signal.SIGKILL)
            process.wait()
            publisher.join(5)
            confirmed = publisher.confirmed
            port = free_port()
            process = start_broker(data, port)
            got = read_all(f"amqp://guest:guest@127.0.0.1:{port}/%2F", "s", confirmed)
            assert len(got) >= confirmed > 0
            assert [offset for offset, _body in got] == list(range(len(got)))
            assert [body for _offset, body in got] == [b"m%d" % i for i in range(len(got))]
            confirmed = len(got)
    finally:
        process.kill()
        process.wait()
