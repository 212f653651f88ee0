"""RPC as in RabbitMQ's tutorial six, with pika's BlockingConnection: round-trip latency.

    python bench/scenarios/rpc.py server --url URL
    python bench/scenarios/rpc.py client --url URL --duration 10 --warmup 2

The server consumes ``rpc_queue`` with prefetch 1 and manual acks and answers each request on its
``reply_to`` queue with the request's ``correlation_id``, as the tutorial's server does, but echoes
the body instead of computing Fibonacci numbers so that only the broker and the client are measured.
The client declares an exclusive, server-named callback queue, consumes it with auto-ack, and makes
one call at a time: publish, then ``process_data_events`` until the answer with its correlation id
arrives. The client prints one JSON object: percentiles of the round trips after the warm-up.
pika sets TCP_NODELAY on its sockets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

QUEUE = "rpc_queue"


def serve(url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE)

    def on_request(ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to or "",
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=body,
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=QUEUE, on_message_callback=on_request)
    print("ready", flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        pass
    except pika.exceptions.AMQPError as error:  # the broker went away at the end of the run
        print(f"rpc server: {error!r}", file=sys.stderr)


class Client:
    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True)
        self.response: bytes | None = None
        self.corr_id = ""
        self.stray = 0

    def on_response(self, ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        if props.correlation_id == self.corr_id:
            self.response = body
        else:
            self.stray += 1

    def call(self, body: bytes, timeout: float = 30.0) -> bytes:
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=QUEUE,
            properties=pika.BasicProperties(reply_to=self.callback_queue, correlation_id=self.corr_id),
            body=body,
        )
        deadline = time.monotonic() + timeout
        while self.response is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer within {timeout} s")
            self.connection.process_data_events(time_limit=None)
        return self.response


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[index]


def run_client(url: str, duration: float, warmup: float) -> dict[str, object]:
    client = Client(url)
    # The server may still be declaring its queue: wait until a call goes through.
    body = b"x" * 16
    errors: list[str] = []
    client.call(body, timeout=30)
    start = time.perf_counter()
    while time.perf_counter() - start < warmup:
        client.call(body)
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        before = time.perf_counter()
        if before - start >= duration:
            break
        try:
            client.call(body)
        except TimeoutError as error:
            errors.append(str(error))
            break
        samples.append((time.perf_counter() - before) * 1000)
    elapsed = time.perf_counter() - start
    client.connection.close()
    samples.sort()
    return {
        "value": percentile(samples, 50),
        "unit": "ms",
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
        "p999": percentile(samples, 99.9),
        "max": samples[-1] if samples else None,
        "mean": statistics.fmean(samples) if samples else None,
        "calls": len(samples),
        "callRate": len(samples) / elapsed,
        "stray": client.stray,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    if args.role == "server":
        serve(args.url)
    else:
        print(json.dumps(run_client(args.url, args.duration, args.warmup)))


if __name__ == "__main__":
    main()
