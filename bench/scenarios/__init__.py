"""The benchmark scenarios: what each one asks of the load generator, and which figures it reports.

Throughput, latency, backlog and connection scenarios run in the Node load generator
(bench/loadgen/loadgen.js, amqplib); the RPC scenario runs pika (bench/scenarios/rpc.py). A
scenario's ``build`` returns the load generator's JSON parameters; its ``metrics`` pick the figures
for the table out of the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenarios.brokers import Broker

BENCH = Path(__file__).resolve().parent.parent
LOADGEN = BENCH / "loadgen"


@dataclass
class Options:
    duration: float = 10.0
    warmup: float = 2.0
    window: int = 0  # no limit on what a throughput publisher has in flight, as applications publish
    backlog_count: int = 1_000_000
    connections: int = 500
    quick: bool = False


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str  # "higher" or "lower"
    pick: Callable[[dict[str, Any]], float | None]


def _get(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda result: result.get(name)


def _kb_to_mb(name: str) -> Callable[[dict[str, Any]], float | None]:
    def pick(result: dict[str, Any]) -> float | None:
        value = result.get(name)
        return None if value is None else value / 1024

    return pick


@dataclass
class Scenario:
    name: str
    title: str
    description: str
    kind: str  # a load generator kind, or "rpc"
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    footnote: str = ""


def topic_bindings() -> tuple[list[list[Any]], list[Any]]:
    """1,000 bindings over 10 queues, and the routing keys to publish: each key matches one binding.

    600 exact bindings ``ex.N.e``, 300 ``st.N.*`` and 100 ``hs.N.#``, queue N % 10. Keys are sent
    round-robin over the bindings; the wildcard part of a key carries a number that changes from one
    message to the next (``m0`` .. ``m999``), so keys are many (about 400,000 distinct ones) and the
    matcher, not a per-key cache, does the routing for the wildcard 40% of the traffic.
    """
    bindings: list[list[Any]] = []
    keys: list[Any] = []
    for n in range(600):
        bindings.append([n % 10, f"ex.{n}.e"])
        keys.append(f"ex.{n}.e")
    for n in range(300):
        bindings.append([n % 10, f"st.{n}.*"])
        keys.append([f"st.{n}.m", ""])
    for n in range(100):
        bindings.append([n % 10, f"hs.{n}.#"])
        keys.append([f"hs.{n}.m", ".tail"])
    # Interleave the kinds so that every stretch of traffic has all three.
    order = sorted(range(len(keys)), key=lambda i: (i * 7919) % len(keys))
    return bindings, [keys[i] for i in order]


def _flow(name: str, **params: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "flow",
        "name": name,
        "queues": 1,
        "size": 16,
        "ack": "auto",
        "exchange": "",
        "exchangeType": "",
        "durable": False,
        "persistent": False,
        "confirm": False,
        "fan": 1,
    }
    base.update(params)
    return base


RSS_AT_END = Metric("rss_mb", "broker RSS at the end, MB", "MB", "lower", _kb_to_mb("rssKbAtEnd"))
THROUGHPUT = [Metric("rate", "msg/s", "msg/s", "higher", _get("value")), RSS_AT_END]

SCENARIOS: list[Scenario] = [
    Scenario(
        "auto_ack",
        "1 -> 1 transient, 16 B, auto-ack",
        "One publisher connection, one consumer connection (noAck) on one transient queue through the "
        "default exchange; 16-byte bodies. Delivered messages per second.",
        "flow",
        _flow("auto_ack"),
        THROUGHPUT,
    ),
    Scenario(
        "manual_ack",
        "1 -> 1, 16 B, manual ack (prefetch 100, ack every 50)",
        "As auto_ack, but the consumer has basic.qos prefetch 100 and acknowledges with multiple=true "
        "every 50th delivery. Delivered messages per second.",
        "flow",
        _flow("manual_ack", ack="manual", prefetch=100, ackEvery=50),
        THROUGHPUT,
    ),
    Scenario(
        "manual_ack_1k",
        "1 -> 1, 1 KiB, manual ack",
        "As manual_ack with 1,024-byte bodies. Delivered messages per second.",
        "flow",
        _flow("manual_ack_1k", size=1024, ack="manual", prefetch=100, ackEvery=50),
        THROUGHPUT,
    ),
    Scenario(
        "persistent",
        "persistent 1 KiB, durable queue, confirms (500 outstanding)",
        "A durable queue, persistent (delivery-mode 2) 1 KiB messages on a confirm channel with at most "
        "500 unconfirmed messages; the consumer acks manually (prefetch 100, every 50). Confirmed "
        "messages per second.",
        "flow",
        _flow(
            "persistent",
            size=1024,
            durable=True,
            persistent=True,
            confirm=True,
            maxOutstanding=500,
            ack="manual",
            prefetch=100,
            ackEvery=50,
        ),
        THROUGHPUT,
        footnote="Lapine's persistent figure is only meaningful once durability has landed (confirms sent "
        "after the message is on disk); {durability}",
    ),
    Scenario(
        "fanout",
        "fanout to 10 queues / 10 consumers, 16 B",
        "One publisher to a fanout exchange bound to 10 transient queues, each consumed (noAck) by its "
        "own connection. Deliveries per second, all consumers together.",
        "flow",
        _flow("fanout", queues=10, exchange="bench.fanout", exchangeType="fanout", fan=10),
        THROUGHPUT,
    ),
    Scenario(
        "topic",
        "topic, 1,000 bindings (*, #, exact), 10 queues",
        "One publisher to a topic exchange with 1,000 bindings to 10 queues (600 exact, 300 with '*', "
        "100 with '#'); every routing key matches exactly one binding; 10 noAck consumers, 16 B. "
        "Deliveries per second.",
        "flow",
        _flow("topic", queues=10, exchange="bench.topic", exchangeType="topic", keyVariety=1000),
        THROUGHPUT,
    ),
    Scenario(
        "flood",
        "1 -> 1, 16 B, manual ack, publisher unthrottled",
        "As manual_ack, with the publisher never limiting what it has in flight whatever --window says "
        "(the default for every throughput scenario): it publishes as fast as the broker reads its "
        "socket, so only the broker's flow control (RabbitMQ's credit flow, Lapine's credit per queue, "
        "and TCP back-pressure) keeps the queue from growing. Deliveries per second to the consumer "
        "while the publisher floods, and the broker's RSS at the end of the measurement.",
        "flow",
        _flow("flood", ack="manual", prefetch=100, ackEvery=50, window=0),
        [Metric("rate", "delivered msg/s", "msg/s", "higher", _get("value")), RSS_AT_END],
    ),
    Scenario(
        "rpc",
        "RPC (tutorial six, pika)",
        "pika BlockingConnection client and server as in RabbitMQ's RPC tutorial (the server echoes); "
        "one call at a time; round-trip time.",
        "rpc",
        {},
        [
            Metric("p50", "p50 ms", "ms", "lower", _get("p50")),
            Metric("p99", "p99 ms", "ms", "lower", _get("p99")),
        ],
    ),
    Scenario(
        "fixed_rate",
        "fixed 10k msg/s, 16 B, publish -> deliver",
        "One publisher at a fixed 10,000 msg/s (a 1 ms timer publishes what is due), one noAck consumer "
        "in the same process; latency from the publish timestamp carried in the body to the delivery.",
        "latency",
        {"kind": "latency", "name": "fixed_rate", "size": 16, "rate": 10_000},
        [
            Metric("p50", "p50 ms", "ms", "lower", _get("p50")),
            Metric("p99", "p99 ms", "ms", "lower", _get("p99")),
        ],
    ),
    Scenario(
        "backlog",
        "1,000,000 x 100 B transient backlog",
        "1,000,000 transient 100-byte messages published into one queue with no consumer (as fast as "
        "the socket takes them), until queue.declare reports them all; then one consumer (prefetch "
        "100, ack every 50) drains it. Broker RSS growth per queued message, and the drain rate.",
        "backlog",
        {"kind": "backlog", "name": "backlog", "size": 100, "prefetch": 100, "ackEvery": 50, "settleMs": 2000},
        [
            Metric("kb_per_msg", "KB RSS per queued msg", "KB", "lower", _get("value")),
            Metric("drain", "drain msg/s", "msg/s", "higher", _get("drainRate")),
        ],
    ),
    Scenario(
        "connections",
        "500 connections with a channel each",
        "500 connections opened 10 at a time, each with one channel; broker RSS growth per connection "
        "two seconds after the last one opened.",
        "connections",
        {"kind": "connections", "name": "connections", "concurrency": 10, "settleMs": 2000},
        [Metric("kb_per_conn", "KB RSS per connection", "KB", "lower", _get("value"))],
    ),
]

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def loadgen_ready() -> None:
    """Install the load generator's packages (npm ci) if they are not there yet."""
    if not (LOADGEN / "node_modules" / "amqplib").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LOADGEN, check=True)


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON result")


def run_loadgen(params: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        done = subprocess.run(
            ["node", str(LOADGEN / "loadgen.js"), json.dumps(params)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"value": None, "fatal": f"load generator timed out after {timeout:.0f} s", "errors": []}
    try:
        result = _last_json(done.stdout)
    except ValueError:
        result = {"value": None, "fatal": f"load generator failed: {done.stderr.strip()[-500:]}", "errors": []}
    return result


def run_rpc(broker: Broker, options: Options) -> dict[str, Any]:
    script = str(Path(__file__).resolve().parent / "rpc.py")
    server = subprocess.Popen(
        [sys.executable, script, "server", "--url", broker.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        timeout = options.duration + options.warmup + 120
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    script,
                    "client",
                    "--url",
                    broker.url,
                    "--duration",
                    str(options.duration),
                    "--warmup",
                    str(options.warmup),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"value": None, "fatal": f"RPC client timed out after {timeout:.0f} s", "errors": []}
        try:
            return _last_json(done.stdout)
        except ValueError:
            return {"value": None, "fatal": f"RPC client failed: {done.stderr.strip()[-500:]}", "errors": []}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(scenario: Scenario, broker: Broker, options: Options) -> dict[str, Any]:
    """One measurement of ``scenario`` against a started ``broker``."""
    started = time.time()
    if scenario.kind == "rpc":
        result = run_rpc(broker, options)
    else:
        params: dict[str, Any] = {"window": options.window}  # a scenario may set its own
        params.update(scenario.params)
        params.update(
            url=broker.url,
            brokerPid=broker.pid,
            clkTck=os.sysconf("SC_CLK_TCK"),
            warmupMs=int(options.warmup * 1000),
            durationMs=int(options.duration * 1000),
        )
        if scenario.name == "topic":
            params["bindings"], params["keys"] = topic_bindings()
        if scenario.kind == "backlog":
            params["count"] = options.backlog_count
        if scenario.kind == "connections":
            params["count"] = options.connections
        timeout = 300 + options.duration + options.warmup + (900 if scenario.kind == "backlog" else 0)
        result = run_loadgen(params, timeout)
    result["seconds"] = time.time() - started
    return result
