"""Delayed-message exchange figures for Lapine: a million delayed messages of 100 bytes.

    python bench/delayed.py                       # 1,000,000 messages, delays spread over 60 s
    python bench/delayed.py --count 200000 --spread 20

It starts lapine-server on a temporary data directory, declares a durable x-delayed-message
exchange (x-delayed-type direct) bound to one queue, starts a no-ack consumer process, then
publishes ``--count`` persistent 100-byte messages from ``--publishers`` pika processes (no
confirms; a queue_declare round trip every ``--sync-every`` messages and at the end), each with a
random ``x-delay`` in [1, spread] ms and its publish time in the body. Then, while the bulk is being released, a
probe publishes one message every 50 ms with x-delay 200 and waits for its confirm. It prints the
publish rate, the broker's RSS before and after (and the most seen), the disk the delayed
messages took, the release rate, and the lateness of each release (the consumer's receive time
minus publish time plus delay: p50, p99, max, and how many came early, which must be none). A
bulk message's publish time is when pika wrote it, before the broker read it; the round trips
keep a publisher at most ``--sync-every`` messages ahead (without them the socket buffers, and
the pauses of flow control, would put seconds between the two and count them as lateness). A
probe's publish time is when the broker took it, within a round trip. The consumer reads a raw
socket with Lapine's frame parser, so that it keeps up with the releases.

RabbitMQ is not measured: the reference RabbitMQ (Debian's package) has no
rabbitmq_delayed_message_exchange plugin. The machine is shared with other work, so the figures
move from run to run; read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika

EXCHANGE = "bench-delayed"
QUEUE = "bench-delayed-due"
_STAMP = struct.Struct(">cdI")  # bulk or probe, publish time, delay
PROBE_DELAY_MS = 200
PROBE_INTERVAL = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mb(data_dir: str) -> float:
    return sum(path.stat().st_size for path in Path(data_dir).glob("delayed.db*")) / 1e6


def start(data_dir: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "lapine", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir]
    quiet = ["--management-port", "-1", "--prometheus-port", "-1", "--log-level", "warning"]
    quiet += ["--mqtt-port", "-1", "--web-mqtt-port", "-1"]
    process = subprocess.Popen([*command, *quiet])
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("lapine-server exited") from None
            time.sleep(0.02)


def publish(port: int, count: int, spread_ms: int, seed: int, sync_every: int) -> None:
    rng = random.Random(seed)
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    channel = connection.channel()
    padding = b"x" * (100 - _STAMP.size)
    for index in range(count):
        if index % sync_every == 0:
            # A round trip: the broker has read everything before it, so no publish time below
            # is more than sync_every messages ahead of the broker's reading.
            channel.queue_declare(QUEUE, durable=True, passive=True)
        delay = rng.randint(1, spread_ms)
        properties = pika.BasicProperties(delivery_mode=2, headers={"x-delay": delay})
        channel.basic_publish(EXCHANGE, "k", _STAMP.pack(b"B", time.time(), delay) + padding, properties)
    channel.queue_declare(QUEUE, durable=True, passive=True)  # a round trip: everything sent arrived
    connection.close()


def probe(port: int, count: int) -> None:
    """One message now and then, each waiting for its confirm: its publish time is when the
    broker took it, give or take a round trip, so its lateness is the broker's own."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    channel = connection.channel()
    channel.confirm_delivery()
    padding = b"p" * (100 - _STAMP.size)
    properties = pika.BasicProperties(delivery_mode=2, headers={"x-delay": PROBE_DELAY_MS})
    for _ in range(count):
        channel.basic_publish(EXCHANGE, "k", _STAMP.pack(b"P", time.time(), PROBE_DELAY_MS) + padding, properties)
        time.sleep(PROBE_INTERVAL)
    connection.close()


def consume(port: int, count: int, timeout: float, results: multiprocessing.Queue[object]) -> None:
    """A no-ack consumer on a raw socket, parsed with Lapine's frame reader: pika's consumer is
    slower than the releases, and the queue's wait would then count as lateness."""
    from lapine.amqp import spec
    from lapine.amqp.frames import FrameReader, method_frame
    from lapine.testing.model import handshake_frames

    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    sock.sendall(
        handshake_frames()
        + method_frame(1, spec.ChannelOpen())
        + method_frame(1, spec.BasicConsume(queue=QUEUE, no_ack=True))
    )
    reader = FrameReader(1 << 20)
    lateness: list[tuple[bytes, float]] = []  # (bulk or probe, lateness)
    first = last = 0.0
    while len(lateness) < count:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            break
        if not data:
            break
        now = time.time()
        for frame_type, _channel, payload in reader.feed(data):
            if frame_type == spec.FRAME_BODY:
                kind, published, delay = _STAMP.unpack_from(payload)
                lateness.append((kind, now - published - delay / 1000))
                first = first or now
                last = now
    sock.close()
    results.put((len(lateness), first, last, lateness))


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return " / ".join(f"{percentile(values, share) * 1000:.1f}" for share in (0.5, 0.99, 1.0)) + " ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--spread", type=float, default=60.0, help="delays are uniform in [1 ms, spread s]")
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--sync-every", type=int, default=500, help="a publisher's round trip every N messages")
    args = parser.parse_args()
    spread_ms = int(args.spread * 1000)
    data_dir = tempfile.mkdtemp(prefix="lapine-bench-delayed-")
    port = free_port()
    broker = start(data_dir, port)
    peak = [0.0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.5):
            peak[0] = max(peak[0], rss_mb(broker.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        setup = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        channel = setup.channel()
        channel.exchange_declare(EXCHANGE, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
        channel.queue_declare(QUEUE, durable=True)
        channel.queue_bind(QUEUE, EXCHANGE, "k")
        setup.close()
        idle = rss_mb(broker.pid)
        sampler.start()
        results: multiprocessing.Queue[object] = multiprocessing.Queue()
        probes = int(args.spread / PROBE_INTERVAL / 2)
        share = args.count // args.publishers
        published = share * args.publishers
        consumer = multiprocessing.Process(
            target=consume, args=(port, published + probes, args.spread + 60, results)
        )
        consumer.start()
        began = time.monotonic()
        workers = [
            multiprocessing.Process(target=publish, args=(port, share, spread_ms, seed, args.sync_every))
            for seed in range(args.publishers)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        publish_seconds = time.monotonic() - began
        after = rss_mb(broker.pid)
        disk = disk_mb(data_dir)
        # While the bulk is released: probes whose publish time the broker saw at once.
        prober = multiprocessing.Process(target=probe, args=(port, probes))
        prober.start()
        prober.join()
        received, first, last, lateness = results.get()  # type: ignore[misc]
        consumer.join()
        after_release = rss_mb(broker.pid)
    finally:
        sampling.set()
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    bulk = sorted(value for kind, value in lateness if kind == b"B")
    probed = sorted(value for kind, value in lateness if kind == b"P")
    early = sum(1 for _kind, value in lateness if value < 0)
    rows = [
        ("messages published (100 B, persistent)", f"{published:,}"),
        ("delays", f"uniform in [1 ms, {args.spread:g} s]"),
        ("publish rate", f"{published / publish_seconds:,.0f} msg/s ({args.publishers} pika publishers)"),
        ("broker RSS before", f"{idle:.0f} MB"),
        ("broker RSS after publishing", f"{after:.0f} MB"),
        ("broker RSS most seen", f"{peak[0]:.0f} MB"),
        ("broker RSS after release", f"{after_release:.0f} MB"),
        ("delayed.db after publishing", f"{disk:.0f} MB"),
        ("released", f"{received:,} (with {probes:,} probes)"),
        ("release rate", f"{received / max(last - first, 1e-9):,.0f} msg/s over {last - first:.1f} s"),
        (f"lateness p50 / p99 / max, bulk ({len(bulk):,})", _spread(bulk)),
        (f"lateness p50 / p99 / max, probes ({len(probed):,})", _spread(probed)),
        ("released early", f"{early}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"Lapine {os.uname().nodename}, {os.cpu_count()} cores, shared with other work (figures vary)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("  RabbitMQ: not measured (no rabbitmq_delayed_message_exchange plugin installed)")
    if received != published + probes:
        raise SystemExit(f"released {received} of {published + probes}")


if __name__ == "__main__":
    main()
