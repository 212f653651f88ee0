"""Micro-benchmark of the per-message codec hot paths: ns per call.

    PYTHONPATH=src python bench/micro_codec.py [--seconds 0.5]

basic.publish decode (decode_publish), the property-list check (properties_are_valid) and
basic.deliver encode (encode_deliver_frames) run once per message; FrameReader.feed, the generic
decode_method and the full properties decode are shown for scale.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from lapine.amqp import spec
from lapine.amqp.frames import FrameReader, decode_publish, encode_deliver_frames, method_frame
from lapine.amqp.properties import properties_are_valid


def measure(func: Callable[[], object], seconds: float) -> float:
    """Best-of-5 nanoseconds per call, each round sized to take about ``seconds`` / 5."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 50:
            break
        loops *= 4
    loops = max(1, int(loops * (seconds / 5) / elapsed))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loops):
            func()
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per case")
    args = parser.parse_args()

    publish = spec.BasicPublish(exchange="amq.topic", routing_key="orders.eu.created").encode()
    properties = spec.BasicProperties(content_type="application/json", delivery_mode=2).encode()
    header = spec.encode_content_header(60, 100, properties)
    body = b"x" * 100
    tag, exchange, routing_key = b"ctag-1.2.3", b"amq.topic", b"orders.eu.created"
    stream = (
        method_frame(1, spec.BasicPublish(exchange="amq.topic", routing_key="orders.eu.created"))
        + b"\x02\x00\x01"
        + len(header).to_bytes(4, "big")
        + header
        + b"\xce"
        + b"\x03\x00\x01"
        + len(body).to_bytes(4, "big")
        + body
        + b"\xce"
    ) * 100
    reader = FrameReader()
    ack = spec.BasicAck(delivery_tag=42).encode()

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("decode_publish (basic.publish payload)", lambda: decode_publish(publish), 1),
        (
            "encode_deliver_frames (100-octet body)",
            lambda: encode_deliver_frames(1, tag, 123456, False, exchange, routing_key, header, body, 131072),
            1,
        ),
        ("FrameReader.feed, per frame (3 frames per message)", lambda: reader.feed(stream), 300),
        ("spec.decode_method (basic.ack)", lambda: spec.decode_method(ack), 1),
        ("properties_are_valid (2 properties)", lambda: properties_are_valid(header), 1),
        ("BasicProperties.decode (2 properties)", lambda: spec.BasicProperties.decode(properties), 1),
    ]
    for name, func, per_call in cases:
        print(f"{measure(func, args.seconds) / per_call:9.0f} ns  {name}")


if __name__ == "__main__":
    main()
