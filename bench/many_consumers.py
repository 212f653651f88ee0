"""Another connection's round trip while many consumers on one channel are acking.

    python bench/many_consumers.py                         # N = 100, 1000, 2000; 5 s each
    python bench/many_consumers.py --consumers 2000 --seconds 10
    python bench/many_consumers.py --url amqp://guest:guest@localhost:5673/%2F   # any broker

For each N it starts a fresh Lapine (``python -m lapine`` from this tree, in its own process, on a
free port) unless ``--url`` names a broker. A load process opens one channel with prefetch 1,
starts N consumers on one queue, fills the queue with a backlog of N messages and then, for each
delivery, acks it and publishes one more, so that every ack opens one consumer's window while the
queue holds messages. Meanwhile this process times a passive queue.declare on its own connection,
back to back. It prints the round trip's median and 99th percentile and the acks per second the
load got through.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
from scenarios.brokers import lapine_env

SRC = str(Path(__file__).resolve().parents[1] / "src")
QUEUE = "bench-many-consumers"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the broker exited while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def lapine_broker() -> Iterator[str]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="lapine-many-consumers-") as data_dir:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "lapine", "--host", "127.0.0.1", "--port", str(port),
                "--data-dir", data_dir, "--log-level", "warning",
                "--management-port", "-1", "--prometheus-port", "-1",
            ],
            env=lapine_env(SRC),
        )  # fmt: skip
        try:
            _wait_listening(port, process)
            yield f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:  # too busy to stop in time
                process.kill()
                process.wait()


def load(url: str, consumers: int, ready: Any, stop: Any, acks: Any) -> None:
    """N consumers with prefetch 1 on one channel; each delivery is acked and replaced."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(QUEUE, auto_delete=True)
    channel.basic_qos(prefetch_count=1)
    body = b"x" * 16

    def on_message(ch: Any, method: Any, properties: Any, payload: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        if not stop.is_set():
            ch.basic_publish("", QUEUE, body)
        acks.value += 1

    for _ in range(consumers):
        channel.basic_consume(QUEUE, on_message)
    for _ in range(2 * consumers):  # N held by the consumers, N waiting
        channel.basic_publish("", QUEUE, body)
    ready.set()
    while not stop.is_set():
        connection.process_data_events(time_limit=0.1)
    connection.close()


def measure(url: str, consumers: int, seconds: float) -> tuple[float, float, float]:
    context = multiprocessing.get_context("spawn")
    ready, stop, acks = context.Event(), context.Event(), context.Value("q", 0, lock=False)
    # Connected before the load starts: a broker that the load stalls still gets measured.
    probe = pika.BlockingConnection(pika.URLParameters(url))
    channel = probe.channel()
    worker = context.Process(target=load, args=(url, consumers, ready, stop, acks), daemon=True)
    worker.start()
    if not ready.wait(300):
        raise RuntimeError("the load did not start")
    time.sleep(1.0)  # let the acking reach its pace
    round_trips: list[float] = []
    acks_before = acks.value
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        began = time.perf_counter()
        channel.queue_declare(QUEUE, passive=True)
        round_trips.append((time.perf_counter() - began) * 1000)
    elapsed = time.monotonic() - started
    acked = acks.value - acks_before
    stop.set()
    worker.join(30)
    if worker.is_alive():
        worker.kill()
    probe.close()
    round_trips.sort()
    return statistics.median(round_trips), round_trips[int(len(round_trips) * 0.99)], acked / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--consumers", default="100,1000,2000", help="comma-separated N (default 100,1000,2000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="probe time per N (default 5)")
    parser.add_argument("--url", default="", help="an AMQP URL to measure instead of a fresh Lapine per N")
    args = parser.parse_args()
    counts = [int(n) for n in args.consumers.split(",")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=SRC)
    where = args.url or f"Lapine from {SRC} ({commit.stdout.strip() or 'no git'})"
    print(f"{where}; prefetch 1, one channel; {args.seconds:g} s per figure; load avg {os.getloadavg()[0]:.2f}")
    print("consumers  rtt_median_ms  rtt_p99_ms  acks/s", flush=True)
    for count in counts:
        if args.url:
            median, p99, rate = measure(args.url, count, args.seconds)
        else:
            with lapine_broker() as url:
                median, p99, rate = measure(url, count, args.seconds)
        print(f"{count:9d}  {median:13.2f}  {p99:10.2f}  {rate:6.0f}", flush=True)


if __name__ == "__main__":
    main()
