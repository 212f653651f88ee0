"""The tutorial's own scripts (../shared/tutorial), run unchanged against a broker on localhost:5672.

They hard-code localhost:5672, so this module starts Lapine there (or uses AMQP_URL's broker when
it listens on 5672, to check the scripts against RabbitMQ).
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from lapine.testing import BrokerThread

# The scripts live in shared/tutorial beside the repository (LAPINE_TUTORIAL_DIR overrides).
TUTORIAL = Path(
    os.environ.get("LAPINE_TUTORIAL_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "tutorial")
)

pytestmark = pytest.mark.skipif(not TUTORIAL.is_dir(), reason="the tutorial scripts are not beside the repo")


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Broker5672:
    """Lapine on localhost:5672 with a data directory that outlives a restart."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.thread: BrokerThread | None = None

    def start(self) -> None:
        self.thread = BrokerThread(
            host="127.0.0.1", port=5672, data_dir=self.data_dir, management_port=-1, prometheus_port=-1
        ).start()

    def restart(self) -> None:
        assert self.thread is not None
        self.thread.stop()
        self.start()


@pytest.fixture(scope="module")
def broker_on_5672(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker5672 | None]:
    url = os.environ.get("AMQP_URL", "")
    if url and ":5672/" in url:
        yield None  # an outside broker (RabbitMQ): nothing here can restart it
        return
    if _port_in_use(5672):
        pytest.fail("port 5672 is taken by another process; the tutorial scripts need it")
    broker = Broker5672(str(tmp_path_factory.mktemp("tutorial-data")))
    broker.start()
    yield broker
    if broker.thread is not None:
        broker.thread.stop()


class Script:
    """A tutorial script running in a subprocess, its output lines collected as they come."""

    def __init__(self, name: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(TUTORIAL / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 10.0) -> list[str]:
        """Lines up to and including the first that contains text."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(line)
            if text in line:
                return seen
        raise AssertionError(f"{text!r} not printed within {timeout}s; got {seen}")

    def drain(self, wait: float) -> list[str]:
        time.sleep(wait)
        lines = []
        while not self.lines.empty():
            lines.append(self.lines.get())
        return lines

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def run(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(TUTORIAL / name), *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hello_world(broker_on_5672: Broker5672 | None) -> None:
    assert run("sender.py") == " [x] Sent 'Hello, World!'\n"
    receiver = Script("receiver.py")
    try:
        lines = receiver.wait_for("Received")
        assert " [x] Received 'Hello, World!'" in lines
    finally:
        receiver.stop()


def test_log_receivers_get_only_their_severities(broker_on_5672: Broker5672 | None) -> None:
    errors = Script("log_receiver.py", "error")
    infos = Script("log_receiver.py", "info", "warning")
    try:
        errors.wait_for("Waiting for logs")
        infos.wait_for("Waiting for logs")
        tag = uuid.uuid4().hex[:8]
        assert run("log_emitter.py", "error", f"disk-{tag}") == f" [x] Sent 'error':'disk-{tag}'\n"
        run("log_emitter.py", "info", f"hello-{tag}")
        run("log_emitter.py", "warning", f"careful-{tag}")
        assert errors.wait_for(f"disk-{tag}") == [f" [x] error:disk-{tag}"]
        got = infos.wait_for(f"careful-{tag}")
        assert got == [f" [x] info:hello-{tag}", f" [x] warning:careful-{tag}"]
        assert errors.drain(0.3) == []
    finally:
        errors.stop()
        infos.stop()


def test_workers_share_tasks_fairly(broker_on_5672: Broker5672 | None) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True)
    channel.queue_purge("task_queue")
    workers = [Script("worker.py"), Script("worker.py")]
    try:
        time.sleep(1.0)  # both workers consuming before the tasks arrive
        # One long task first: with prefetch 1 the other worker takes the short ones meanwhile.
        tasks = ["long...", "short1", "short2", "short3"]
        for task in tasks:
            channel.basic_publish("", "task_queue", task.encode(), pika.BasicProperties(delivery_mode=2))
        received: dict[int, list[str]] = {0: [], 1: []}
        deadline = time.monotonic() + 10
        while sum(map(len, received.values())) < len(tasks) and time.monotonic() < deadline:
            for index, worker in enumerate(workers):
                for line in worker.drain(0.05):
                    if line.startswith(" [x] Received "):
                        received[index].append(line.removeprefix(" [x] Received "))
        assert sorted(received[0] + received[1]) == sorted(tasks)
        busy, free = (0, 1) if "long..." in received[0] else (1, 0)
        assert received[busy] == ["long..."]
        assert received[free] == ["short1", "short2", "short3"]
    finally:
        for worker in workers:
            worker.stop()
        channel.queue_delete("task_queue")
        connection.close()


def test_durable_sender_message_survives_a_restart(broker_on_5672: Broker5672 | None) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    channel = connection.channel()
    channel.queue_declare(queue="durable_queue", durable=True)
    channel.queue_purge("durable_queue")
    connection.close()
    assert run("durable_sender.py") == " [x] Sent 'This message will survive a restart!'\n"
    if broker_on_5672 is not None:
        broker_on_5672.restart()
    connection = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    channel = connection.channel()
    method, properties, body = channel.basic_get("durable_queue", auto_ack=True)
    assert method is not None
    assert body == b"This message will survive a restart!"
    assert properties.delivery_mode == 2
    channel.queue_delete("durable_queue")
    connection.close()
