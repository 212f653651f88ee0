"""MQTT throughput, Lapine against RabbitMQ with its MQTT plugin, in one run: ``python bench/mqtt.py``.

Scenarios (100-byte payloads, one publisher and one subscriber, each a process of its own):

- ``qos0``: MQTT QoS 0 publish (at most ``--window`` published and not yet received) -> MQTT QoS 0
  subscription;
- ``qos1``: MQTT QoS 1 publish (at most ``--inflight`` unacknowledged, and ``--window`` not yet
  received) -> QoS 1 subscription;
- ``mqtt_to_amqp``: MQTT QoS 1 publish -> an AMQP consumer (pika, automatic acks) of a queue bound
  to amq.topic.

Each measurement starts a fresh broker (Lapine: ``python -m lapine --mqtt-port ...``; RabbitMQ:
a private node with ``rabbitmq-plugins --offline enable rabbitmq_mqtt`` and its MQTT listener on a
free port), runs the load for ``--warmup`` then ``--duration`` seconds and counts what the
subscriber received during the measured part. The brokers alternate; the table shows medians.
The MQTT clients are raw sockets speaking MQTT 3.1.1 with packets built once, so that on a 2-core
machine the load generator's own cost stays small next to the broker's; the AMQP consumer is pika.

    python bench/mqtt.py                   # both brokers, 3 x 10 s each
    python bench/mqtt.py --quick           # 3 s, once
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scenarios.brokers import Broker, LapineBroker, RabbitBroker, snapshot_lapine

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PAYLOAD = b"x" * 100
TOPIC = "bench/mqtt/topic"
SCENARIOS = ("qos0", "qos1", "mqtt_to_amqp")


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    length, size = bytearray(), len(body)
    while True:
        byte, size = size & 0x7F, size >> 7
        length.append(byte | (0x80 if size else 0))
        if not size:
            return bytes([first]) + bytes(length) + body


def _connect(port: int, client_id: str) -> socket.socket:
    """An MQTT 3.1.1 session on a raw socket: the load generator costs little next to the broker."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_packet(0x10, _string("MQTT") + b"\x04\x02\x00\x3c" + _string(client_id)))
    if sock.recv(4)[:1] != b"\x20":
        raise SystemExit("no CONNACK")
    return sock


def _publish(qos: int, packet_id: int) -> bytes:
    ident = packet_id.to_bytes(2, "big") if qos else b""
    return _packet(0x30 | (qos << 1), _string(TOPIC) + ident + PAYLOAD)


class PacketCounter:
    """Cuts the broker's byte stream into packets, counting PUBLISH and PUBACK and collecting the
    packet ids of QoS 1 PUBLISHes (to acknowledge them)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.publishes = 0
        self.pubacks = 0
        self.to_ack: list[bytes] = []

    def feed(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos = 0
        while pos + 2 <= len(buf):
            first = buf[pos]
            length, shift, index = 0, 0, pos + 1
            while index < len(buf):
                byte = buf[index]
                index += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            else:
                break
            if index + length > len(buf):
                break
            kind = first >> 4
            if kind == 3:
                self.publishes += 1
                if first & 0x06:
                    topic_length = (buf[index] << 8) | buf[index + 1]
                    ident = index + 2 + topic_length
                    self.to_ack.append(b"\x40\x02" + bytes(buf[ident : ident + 2]))
            elif kind == 4:
                self.pubacks += 1
            pos = index + length
        del buf[:pos]


def publisher(port: int, qos: int, inflight: int, window: int, received: Any, stop_at: float) -> None:
    sock = _connect(port, f"bench-pub-{time.time_ns()}")
    if qos == 0:
        # QoS 0 has no acknowledgement to wait for: at most ``window`` messages published and not
        # yet received by the subscriber, as bench/run.py's throughput publishers.
        batch = _publish(0, 0) * 100
        sent = 0
        while time.monotonic() < stop_at:
            if window and sent - received.value >= window:
                time.sleep(0.0002)
                continue
            sock.sendall(batch)
            sent += 100
    else:
        counter = PacketCounter()
        sent = 0
        while time.monotonic() < stop_at:
            room = inflight - (sent - counter.pubacks)
            if window and received is not None:
                room = min(room, window - (sent - received.value))
            if room > 0:
                sock.sendall(b"".join(_publish(1, (sent + i) % 65535 + 1) for i in range(room)))
                sent += room
            if sent - counter.pubacks:
                counter.feed(sock.recv(65536))
            else:
                time.sleep(0.0002)  # the window is full of messages not yet received
    sock.close()


def mqtt_subscriber(
    port: int, qos: int, start_at: float, stop_at: float, ready: Any, result: Any, received: Any
) -> None:
    sock = _connect(port, f"bench-sub-{time.time_ns()}")
    sock.sendall(_packet(0x82, b"\x00\x01" + _string(TOPIC) + bytes([qos])))
    sock.settimeout(0.2)
    counter = PacketCounter()
    ready.set()
    before = 0
    while time.monotonic() < stop_at:
        try:
            data = sock.recv(262144)
        except TimeoutError:
            continue
        if not data:
            break
        counter.feed(data)
        received.value = counter.publishes
        if time.monotonic() < start_at:
            before = counter.publishes
        if counter.to_ack:
            sock.sendall(b"".join(counter.to_ack))
            counter.to_ack.clear()
    result.put(counter.publishes - before)
    sock.close()


def amqp_subscriber(url: str, start_at: float, stop_at: float, ready: Any, result: Any, received: Any) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", TOPIC.replace("/", "."))
    counted = 0

    def on_message(_channel: Any, _method: Any, _properties: Any, _body: bytes) -> None:
        nonlocal counted
        received.value += 1
        if start_at <= time.monotonic() < stop_at:
            counted += 1

    channel.basic_consume(queue, on_message, auto_ack=True)
    ready.set()
    while time.monotonic() < stop_at:
        connection.process_data_events(time_limit=0.1)
    result.put(counted)
    connection.close()


def measure(broker: Broker, scenario: str, args: argparse.Namespace) -> float:
    port = broker.mqtt_port  # type: ignore[attr-defined]
    context = multiprocessing.get_context("spawn")
    ready, result = context.Event(), context.Queue()
    # What the subscriber has received so far (kept up to date by the AMQP consumer too).
    received = context.Value("q", 0, lock=False)
    begin = time.monotonic() + 3.0  # processes start and connect meanwhile
    start_at, stop_at = begin + args.warmup, begin + args.warmup + args.duration
    qos = 0 if scenario == "qos0" else 1
    if scenario == "mqtt_to_amqp":
        subscriber = context.Process(
            target=amqp_subscriber, args=(broker.url, start_at, stop_at, ready, result, received)
        )
    else:
        subscriber = context.Process(
            target=mqtt_subscriber, args=(port, qos, start_at, stop_at, ready, result, received)
        )
    subscriber.start()
    ready.wait(30)
    sender = context.Process(target=publisher, args=(port, qos, args.inflight, args.window, received, stop_at))
    sender.start()
    count = result.get(timeout=args.warmup + args.duration + 60)
    sender.join(30)
    subscriber.join(30)
    return count / args.duration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=100, help="QoS 1 publisher's unacknowledged window")
    parser.add_argument(
        "--window", type=int, default=10_000, help="QoS 0 messages published and not yet received (0: no limit)"
    )
    parser.add_argument("--broker", choices=("lapine", "rabbitmq", "both"), default="both")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.repeat = 3.0, 1.0, 1
    chosen = [name for name in args.scenarios.split(",") if name]
    for name in chosen:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name}; choose from {', '.join(SCENARIOS)}")
    logs = Path(tempfile.mkdtemp(prefix="mqtt-bench-logs-"))
    pythonpath = str(snapshot_lapine(BENCH.parent / "src"))
    kinds = ["lapine", "rabbitmq"] if args.broker == "both" else [args.broker]
    if "rabbitmq" in kinds and not RabbitBroker.installed():
        print("RabbitMQ is not installed: Lapine alone", file=sys.stderr)
        kinds.remove("rabbitmq")
    figures: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in kinds} for name in chosen}
    for name in chosen:
        for repetition in range(args.repeat):
            order = kinds if repetition % 2 == 0 else list(reversed(kinds))
            for kind in order:
                broker: Broker
                if kind == "lapine":
                    broker = LapineBroker(5691, logs, pythonpath, mqtt_port=1893)
                else:
                    broker = RabbitBroker(5690, 25690, logs, node="rabbit-mqtt-bench@localhost", mqtt_port=1892)
                with broker:
                    rate = measure(broker, name, args)
                figures[name][kind].append(rate)
                print(f"{name:14} {kind:8} {rate:10.0f} msg/s", file=sys.stderr, flush=True)
    print(f"\n| scenario | {' | '.join(kinds)} |{' ratio |' if len(kinds) == 2 else ''}")
    print(f"|---|{'---|' * len(kinds)}{'---|' if len(kinds) == 2 else ''}")
    for name in chosen:
        medians = [statistics.median(figures[name][kind]) for kind in kinds]
        ratio = f" {medians[0] / medians[1]:.2f} |" if len(kinds) == 2 and medians[1] else ""
        print(f"| {name} | {' | '.join(f'{m:,.0f} msg/s' for m in medians)} |{ratio}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"mqtt-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "figures": figures}, indent=2))
    print(f"\nfigures in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
