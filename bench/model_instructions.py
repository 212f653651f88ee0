"""The model's cost per message, without sockets: time, or instructions counted by valgrind.

The broker model runs sans-IO (lapine.testing.model): a client's frames go straight into a
Connection and its output is taken as the server layer takes it, one take per loop turn, without
parsing. Each scenario pushes its messages through in batches of 100 per turn, as a busy socket
delivers them. Wall-clock figures move with the machine's load; instruction counts do not (the same
binary, inputs and environment give the same count), so ``--callgrind`` compares two versions of
the model on a busy machine:

    python bench/model_instructions.py                      # µs per message, this tree
    python bench/model_instructions.py --callgrind          # instructions per message (valgrind)
    python bench/model_instructions.py --callgrind --src /tmp/old/src   # another version's src/

Instructions per message are measured as the difference between runs of N and 2N messages,
divided by N, so that Python's start-up and the set-up cancel out.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lapine.testing.model import ModelBroker

SCENARIOS = ("auto_ack", "manual_ack", "confirms", "fanout", "backlog")
BATCH = 100
BODY = b"x" * 100


def run_scenario(name: str, count: int) -> None:
    """Push ``count`` messages through the scenario ``name`` (imports the model on the path)."""
    from lapine.amqp import spec
    from lapine.amqp.frames import method_frame
    from lapine.testing.model import ModelBroker, publish_frames

    broker = ModelBroker()
    client = broker.client()
    connection = client.connection

    def drain() -> None:
        connection.grant_credit(False)
        connection.release_held()
        while connection.output:
            connection.take_output()
            connection.output_written()

    queues = ["q0"] if name != "fanout" else [f"q{i}" for i in range(4)]
    for queue in queues:
        client.declare_queue(queue)
    exchange, routing_key = "", "q0"
    if name == "fanout":
        exchange, routing_key = "amq.fanout", ""
        for queue in queues:
            client.bind(queue, "amq.fanout")
    if name == "confirms":
        client.call(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
    manual = name in ("manual_ack", "confirms", "backlog")
    if manual:
        client.qos(100)
    publish = publish_frames(1, BODY, exchange, routing_key) * BATCH

    def consume() -> None:
        for queue in queues:
            client.consume(queue, f"c-{queue}", no_ack=not manual)
        client.take()

    if name == "backlog":  # the queue fills first, then drains to a manual-ack consumer
        for _ in range(count // BATCH):
            connection.data_received(publish)
            drain()
        consume()
        sent = 0
        while sent < count:
            sent += BATCH
            connection.data_received(method_frame(1, spec.BasicAck(delivery_tag=sent, multiple=True)))
            drain()
        check_all_taken(broker, queues)
        return
    consume()
    tag = 0
    for _ in range(count // BATCH):
        connection.data_received(publish)
        drain()
        if manual:
            acks = b"".join(method_frame(1, spec.BasicAck(delivery_tag=tag + i + 1)) for i in range(BATCH))
            tag += BATCH
            connection.data_received(acks)
            drain()
    check_all_taken(broker, queues)


def check_all_taken(broker: ModelBroker, queues: list[str]) -> None:
    """Every message went out (and was acked): the figures measure the whole path."""
    for queue in queues:
        left = broker.queue(queue)
        if left.message_count or left.unacked_count:
            raise RuntimeError(f"{queue}: {left.message_count} ready, {left.unacked_count} unacked left")


def timed(name: str, count: int) -> float:
    started = time.perf_counter()
    run_scenario(name, count)
    return (time.perf_counter() - started) / count * 1e6


def instructions(name: str, count: int, src: Path) -> int:
    """Instructions valgrind counts for one run of the scenario in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--run",
        name,
        "--count",
        str(count),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--count", type=int, default=0, help="messages per run (default 20,000; 2,000 with valgrind)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions with valgrind")
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # one run, in the child valgrind starts
    args = parser.parse_args()
    if args.run:
        run_scenario(args.run, args.count)
        return
    names = [name for name in args.scenarios.split(",") if name]
    if args.callgrind:
        count = args.count or 2_000
        print(f"instructions per message (valgrind, {args.src}; difference of {count} and {2 * count} messages)")
        for name in names:
            per_message = (instructions(name, 2 * count, args.src) - instructions(name, count, args.src)) / count
            print(f"  {name:<12} {per_message:>10,.0f}")
        return
    sys.path.insert(0, str(args.src))
    count = args.count or 20_000
    measure: Callable[[str, int], float] = timed
    print(f"µs per message ({args.src}, {count} messages, best of 3; moves with the machine's load)")
    for name in names:
        print(f"  {name:<12} {min(measure(name, count) for _ in range(3)):>8.2f}")


if __name__ == "__main__":
    main()
