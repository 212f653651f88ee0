"""Backlog and recovery figures for Lapine: RSS with a large queued backlog, drain rate, and the
start-up time with persistent messages on disk.

    python bench/durability.py --messages 1000000
    python bench/durability.py --messages 10000000 --transient   # the backlog-larger-than-RAM case

It starts lapine-server on a temporary data directory, fills one durable queue with 100-byte
messages from several publisher processes (pika, no confirms, one queue_declare round trip at the
end as a barrier), reads the broker's RSS from /proc, restarts the broker (SIGTERM, then a fresh
start on the same directory) and times how long until the queue answers with its full count, then
drains it with a no-ack consumer. Figures are printed as a table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika

QUEUE = "bench-backlog"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(data_dir: str, port: int) -> tuple[subprocess.Popen[bytes], float]:
    began = time.monotonic()
    command = [sys.executable, "-m", "lapine", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir]
    quiet = ["--management-port", "-1", "--prometheus-port", "-1", "--log-level", "warning"]
    quiet += ["--mqtt-port", "-1", "--web-mqtt-port", "-1"]
    process = subprocess.Popen([*command, *quiet])
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, time.monotonic() - began
        except OSError:
            if process.poll() is not None:
                raise SystemExit("lapine-server exited") from None
            time.sleep(0.02)


def publish(port: int, count: int, persistent: bool) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    channel = connection.channel()
    properties = pika.BasicProperties(delivery_mode=2 if persistent else 1)
    body = b"x" * 100
    for _ in range(count):
        channel.basic_publish("", QUEUE, body, properties)
    channel.queue_declare(QUEUE, durable=True, passive=True)  # a round trip: everything sent arrived
    connection.close()


def count(port: int) -> int:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ok = connection.channel().queue_declare(QUEUE, durable=True, passive=True)
    connection.close()
    return int(ok.method.message_count)


def drain(port: int, expected: int) -> float:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    channel = connection.channel()
    received = 0
    began = time.monotonic()
    for method, _properties, _body in channel.consume(QUEUE, auto_ack=True, inactivity_timeout=10):
        if method is None:
            break
        received += 1
        if received == expected:
            break
    seconds = time.monotonic() - began
    connection.close()
    if received != expected:
        raise SystemExit(f"drained {received} of {expected}")
    return received / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--transient", action="store_true", help="transient messages (no restart figure)")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="lapine-bench-")
    port = free_port()
    rows: list[tuple[str, str]] = []
    try:
        broker, _ = start(data_dir, port)
        idle = rss_mb(broker.pid)
        setup = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        setup.channel().queue_declare(QUEUE, durable=True)
        setup.close()
        share = args.messages // args.publishers
        began = time.monotonic()
        workers = [
            multiprocessing.Process(target=publish, args=(port, share, not args.transient))
            for _ in range(args.publishers)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        total = share * args.publishers
        rows.append(("messages queued", f"{count(port):,} ({'transient' if args.transient else 'persistent'}, 100 B)"))
        rows.append(("publish rate", f"{total / (time.monotonic() - began):,.0f} msg/s"))
        full = rss_mb(broker.pid)
        rows.append(("broker RSS idle / with the backlog", f"{idle:.0f} MB / {full:.0f} MB"))
        rows.append(("RSS per queued message", f"{(full - idle) * 1024 * 1024 / total:.1f} B"))
        if not args.transient:
            broker.send_signal(signal.SIGTERM)
            broker.wait(timeout=120)
            broker, listening = start(data_dir, port)
            began = time.monotonic()
            recovered = count(port)
            rows.append(("restart: listening after", f"{listening:.2f} s"))
            answered = listening + time.monotonic() - began
            rows.append(("restart: queue answers with its count after", f"{answered:.2f} s"))
            rows.append(("messages recovered", f"{recovered:,}"))
            rows.append(("broker RSS after restart", f"{rss_mb(broker.pid):.0f} MB"))
        rows.append(("drain rate (pika, no-ack)", f"{drain(port, total):,.0f} msg/s"))
        rows.append(("broker RSS after draining", f"{rss_mb(broker.pid):.0f} MB"))
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=60)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"Lapine backlog figures ({os.cpu_count()} cores)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
