"""Streams: publish with confirms, then consumers reading the whole stream from "first".

    python bench/streams.py                          # 1M messages of 100 B, Lapine and RabbitMQ
    python bench/streams.py --messages 200000 --broker lapine
    python bench/streams.py --big 10000000           # Lapine only: disk per message and RSS

For each broker (a fresh Lapine from this tree, on a temporary data directory and a free port;
the RabbitMQ at ``--rabbitmq-url``, 5673 by default) it declares a stream and runs:

1. publish: one pika SelectConnection publishes every message with confirms on, without an
   in-flight limit (it writes as fast as the socket takes them and counts the basic.acks),
2. 1 consumer: one process consumes the stream from "first" (basic.qos ``--prefetch``, manual
   acks, one ack with multiple=true per 100 deliveries) until it has every message,
3. 10 consumers: ten processes do the same at once (each reads every message);
   ``--consumers 1,10`` is the default list of these runs.

It prints messages per second for each phase and the broker's RSS (VmRSS of its process) after
each. RabbitMQ's RSS is that of the shared reference node, whatever else it holds. ``--big``
publishes that many messages to Lapine, then prints the stream's bytes on disk per message and
the RSS, before and after one consumer has read them all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
from scenarios.brokers import lapine_env, rss_kb

SRC = str(Path(__file__).resolve().parents[1] / "src")
BODY = b"x" * 100
ACK_EVERY = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def lapine_broker() -> Iterator[tuple[str, int, Path]]:
    """A Lapine in its own process: (url, pid, data directory)."""
    port = _free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="lapine-bench-streams-"))
    process = subprocess.Popen(
        [
            sys.executable, "-m", "lapine", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--log-level", "warning",
            "--management-port", "-1", "--prometheus-port", "-1", "--mqtt-port", "-1", "--web-mqtt-port", "-1",
        ],
        env=lapine_env(SRC),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Lapine did not start") from None
                time.sleep(0.05)
        yield f"amqp://guest:guest@127.0.0.1:{port}/%2F", process.pid, data_dir
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def rabbitmq_pid() -> int | None:
    """The reference RabbitMQ's Erlang VM (beam.smp), to read its RSS."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    return int(entry.name)
            except OSError:
                continue
    return None


def rss_mb(pid: int | None) -> float | None:
    kb = rss_kb(pid) if pid is not None else None
    return kb / 1024 if kb is not None else None


def publish_all(url: str, queue: str, count: int) -> float:
    """Publish ``count`` messages with confirms, no in-flight limit; seconds until the last ack."""
    state: dict[str, Any] = {"sent": 0, "acked": 0, "began": 0.0, "ended": 0.0}
    properties = pika.BasicProperties()

    def on_open(connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Any) -> None:
        channel.confirm_delivery(lambda frame: on_confirm(channel, frame))
        state["began"] = time.perf_counter()
        send(channel)

    def send(channel: Any) -> None:
        # A slice per loop turn, so that confirms are read meanwhile; no window on what is in flight.
        end = min(state["sent"] + 2000, count)
        for _ in range(state["sent"], end):
            channel.basic_publish("", queue, BODY, properties)
        state["sent"] = end
        if end < count:
            channel.connection.ioloop.add_callback_threadsafe(lambda: send(channel))

    def on_confirm(channel: Any, frame: Any) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            raise SystemExit(f"nack for {method.delivery_tag}")
        state["acked"] = method.delivery_tag if method.multiple else max(state["acked"], method.delivery_tag)
        if state["acked"] >= count:
            state["ended"] = time.perf_counter()
            channel.connection.close()

    connection = pika.SelectConnection(
        pika.URLParameters(url), on_open_callback=on_open, on_close_callback=lambda c, reason: c.ioloop.stop()
    )
    connection.ioloop.start()
    return float(state["ended"] - state["began"])


def consume_all(url: str, queue: str, count: int, prefetch: int, ready: Any, go: Any, seconds: Any) -> None:
    """One consumer from "first" until it has ``count`` messages (run in its own process)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    got = 0
    ready.release()
    go.wait()
    began = time.perf_counter()

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        nonlocal got
        got += 1
        if got % ACK_EVERY == 0 or got == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if got >= count:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message, arguments={"x-stream-offset": "first"})
    channel.start_consuming()
    seconds.value = time.perf_counter() - began
    connection.close()


def consumers(url: str, queue: str, count: int, n: int, prefetch: int) -> float:
    """``n`` consumers at once, each reading every message: deliveries per second in total."""
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    times = [ctx.Value("d", 0.0) for _ in range(n)]
    processes = [
        ctx.Process(target=consume_all, args=(url, queue, count, prefetch, ready, go, times[i])) for i in range(n)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.acquire()
    began = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    return n * count / (time.perf_counter() - began)


def declare(url: str) -> str:
    queue = f"bench-stream-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "stream"})
    connection.close()
    return queue


def delete(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_delete(queue)
    connection.close()


def run_broker(name: str, url: str, pid: int | None, args: argparse.Namespace) -> dict[str, Any]:
    queue = declare(url)
    row: dict[str, Any] = {"broker": name}
    try:
        seconds = publish_all(url, queue, args.messages)
        row["publish"] = args.messages / seconds
        row["rss_publish"] = rss_mb(pid)
        for n in args.consumers:
            row[n] = consumers(url, queue, args.messages, n, args.prefetch)
            row[f"rss_{n}"] = rss_mb(pid)
    finally:
        delete(url, queue)
    return row


def big(args: argparse.Namespace) -> None:
    with lapine_broker() as (url, pid, data_dir):
        queue = declare(url)
        began = time.perf_counter()
        publish_all(url, queue, args.big)
        elapsed = time.perf_counter() - began
        disk = sum(f.stat().st_size for f in (data_dir / "streams").rglob("*") if f.is_file())
        print(f"published {args.big:,} messages of {len(BODY)} B in {elapsed:.1f} s ({args.big / elapsed:,.0f} msg/s)")
        print(f"stream on disk: {disk / 1e6:,.1f} MB, {disk / args.big:.1f} bytes per message")
        print(f"Lapine RSS after publishing: {rss_mb(pid):.1f} MB")
        rate = consumers(url, queue, args.big, 1, args.prefetch)
        print(f"1 consumer from first: {rate:,.0f} msg/s; Lapine RSS after: {rss_mb(pid):.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--consumers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 10])
    parser.add_argument("--broker", choices=["lapine", "rabbitmq", "both"], default="both")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@localhost:5673/%2F")
    parser.add_argument("--big", type=int, default=0, help="publish this many to Lapine only: disk and RSS")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}, {os.cpu_count()} CPUs")
    if args.big:
        big(args)
        return
    rows = []
    if args.broker in ("lapine", "both"):
        with lapine_broker() as (url, pid, _data_dir):
            rows.append(run_broker("Lapine", url, pid, args))
    if args.broker in ("rabbitmq", "both"):
        rows.append(run_broker("RabbitMQ", args.rabbitmq_url, rabbitmq_pid(), args))
    print(f"{args.messages:,} messages of {len(BODY)} B; consumers from first, prefetch {args.prefetch}, manual acks")
    header = f"{'broker':<10}{'publish msg/s':>15}{'RSS MB':>9}"
    print(header + "".join(f"{f'{n} consumers':>14}{'RSS MB':>9}" for n in args.consumers))

    def mb(value: float | None) -> str:
        return f"{value:>9.0f}" if value is not None else f"{'-':>9}"

    for row in rows:
        cells = "".join(f"{row[n]:>14,.0f}{mb(row[f'rss_{n}'])}" for n in args.consumers)
        print(f"{row['broker']:<10}{row['publish']:>15,.0f}{mb(row['rss_publish'])}{cells}")
    print(f"load average at end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
