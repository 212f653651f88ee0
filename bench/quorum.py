"""Quorum queue throughput: Lapine against the RabbitMQ at localhost:5673, in the same run.

    python bench/quorum.py                    # 10 s per figure, 3 rounds alternating the brokers
    python bench/quorum.py --duration 5 --repeat 1 --size 16

One publisher on a confirm channel, with no limit on unconfirmed messages (as bench/run.py's
throughput scenarios), into one quorum queue; one consumer with manual acks (prefetch 100, a
multiple ack every 50). The figure is confirms per second over the measured window, with the
delivery rate beside it; the load generator is bench/loadgen (Node, amqplib). Lapine runs from this
tree on a fresh data directory; RabbitMQ is the one already running at --rabbitmq-url (its queue is
deleted afterwards; its node also serves others). Both brokers share the machine with whatever else
runs on it: the CPU that other processes used during each window is printed, so that a loaded
machine shows in the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
from scenarios import loadgen_ready, run_loadgen

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_lapine(data_dir: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "lapine", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir]
    command += ["--management-port", "-1", "--prometheus-port", "-1", "--mqtt-port", "-1", "--web-mqtt-port", "-1"]
    command += ["--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("lapine-server exited") from None
            time.sleep(0.05)
    process.kill()
    raise SystemExit("lapine-server did not start")


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (the shared RabbitMQ's beam.smp), from ss."""
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    except OSError:
        return None
    match = re.search(r"pid=(\d+)", out)
    return int(match[1]) if match else None


def delete_queue(url: str, name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_delete(name)
    connection.close()


def measure(url: str, pid: int | None, args: argparse.Namespace) -> dict[str, Any]:
    name = f"quorum-{uuid.uuid4().hex[:8]}"
    params = {
        "kind": "flow",
        "name": name,
        "queues": 1,
        "size": args.size,
        "ack": "manual",
        "prefetch": 100,
        "ackEvery": 50,
        "exchange": "",
        "exchangeType": "",
        "durable": True,
        "persistent": True,
        "confirm": True,
        "fan": 1,
        "window": 0,
        "queueArguments": {"x-queue-type": "quorum"},
        "url": url,
        "brokerPid": pid,
        "clkTck": os.sysconf("SC_CLK_TCK"),
        "warmupMs": int(args.warmup * 1000),
        "durationMs": int(args.duration * 1000),
    }
    try:
        return run_loadgen(params, timeout=300 + args.duration + args.warmup)
    finally:
        delete_queue(url, f"bench.{name}.0")


def cell(results: list[dict[str, Any]], key: str, digits: int = 0) -> str:
    values = [r[key] for r in results if r.get(key) is not None]
    return f"{statistics.median(values):,.{digits}f}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024, help="message body bytes")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@localhost:5673/%2F")
    args = parser.parse_args(argv)
    loadgen_ready()
    figures: dict[str, list[dict[str, Any]]] = {"Lapine": [], "RabbitMQ": []}
    for round_ in range(args.repeat):
        order = ["Lapine", "RabbitMQ"] if round_ % 2 == 0 else ["RabbitMQ", "Lapine"]
        for broker in order:
            if broker == "Lapine":
                port = free_port()
                with tempfile.TemporaryDirectory(prefix="lapine-quorum-bench-") as data_dir:
                    process = start_lapine(data_dir, port)
                    try:
                        result = measure(f"amqp://guest:guest@127.0.0.1:{port}/%2F", process.pid, args)
                    finally:
                        process.send_signal(signal.SIGTERM)
                        process.wait(timeout=60)
            else:
                rabbit_port = urlsplit(args.rabbitmq_url).port or 5672
                result = measure(args.rabbitmq_url, listening_pid(rabbit_port), args)
            if result.get("fatal") or result.get("errors"):
                print(f"{broker}: {result.get('fatal') or result.get('errors')}", file=sys.stderr)
            figures[broker].append(result)
            print(
                f"round {round_ + 1} {broker}: {result.get('value') or 0:,.0f} confirms/s, "
                f"{result.get('deliverRate') or 0:,.0f} deliveries/s, other processes "
                f"{(result.get('otherCpu') or 0):.2f} cores",
                file=sys.stderr,
            )
    cores = os.cpu_count()
    print(f"\nquorum queue, {args.size}-byte messages, confirms without an in-flight limit, manual acks")
    print(f"median of {args.repeat} x {args.duration:.0f} s; machine: {cores} cores, shared with other work\n")
    print("| broker | confirms/s | deliveries/s | broker CPU (cores) | other processes (cores) | lost |")
    print("|---|---|---|---|---|---|")
    for broker, results in figures.items():
        lost = sum(r.get("lost") or 0 for r in results)
        print(
            f"| {broker} | {cell(results, 'value')} | {cell(results, 'deliverRate')} | "
            f"{cell(results, 'brokerCpu', 2)} | {cell(results, 'otherCpu', 2)} | {lost} |"
        )
    print("\nBroker CPU is read from /proc for Lapine's process and the beam.smp listening on RabbitMQ's port;")
    print("'other processes' is the rest of the machine's CPU use in the window, load generator excluded.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
