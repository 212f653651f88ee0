"""Credit flow over real sockets: a publisher that never waits, into a queue with a manual-ack
consumer. The consumer keeps its pace, the queue does not grow without bound, the publisher's
connection shows the state "flow" in the management API, and nothing is lost or reordered."""

from __future__ import annotations

import json
import multiprocessing
import struct
import time
import urllib.request
from base64 import b64encode
from typing import Any

import pika

from lapine.amqp import spec
from lapine.amqp.frames import encode_frame, method_frame
from lapine.broker import flow
from lapine.testing import BrokerThread

QUEUE = "credit-flow"
BATCH = 500
WORK = 2_000


def _batch_template() -> tuple[bytearray, list[int]]:
    """One batch of publishes, and where each body's sequence number goes."""
    method = method_frame(1, spec.BasicPublish(routing_key=QUEUE))
    header = encode_frame(spec.FRAME_HEADER, 1, spec.encode_content_header(60, 8, spec.BasicProperties().encode()))
    one = method + header + encode_frame(spec.FRAME_BODY, 1, bytes(8))
    body_at = len(one) - 1 - 8  # the body, before the frame-end octet
    return bytearray(one * BATCH), [n * len(one) + body_at for n in range(BATCH)]


def flood(port: int, seconds: float, sent: Any) -> None:
    """Publish numbered 8-byte messages as fast as the socket takes them, then close cleanly."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    connection.channel()
    sock = connection._impl._transport._sock
    sock.setblocking(True)
    batch, offsets = _batch_template()
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for offset in offsets:
            struct.pack_into(">Q", batch, offset, count)
            count += 1
        sock.sendall(batch)
    sent.value = count
    sock.setblocking(False)
    connection.close()


def _api(url: str, path: str) -> Any:
    authorization = "Basic " + b64encode(b"guest:guest").decode()
    request = urllib.request.Request(url + path, headers={"Authorization": authorization})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _work() -> None:
    """What a consumer does with a message: a little CPU, so that it, not the broker, sets the pace."""
    sum(range(WORK))


def _consume(channel: Any, seen: list[int], seconds: float = 3600.0, count: int = 0) -> float:
    """Consume with prefetch 100 and an ack every 50, for ``seconds`` or ``count`` messages;
    the rate it got."""
    received = 0
    started = time.monotonic()
    for method, _properties, body in channel.consume(QUEUE, inactivity_timeout=5):
        assert method is not None, f"starved after {received} messages"
        seen.append(struct.unpack(">Q", body)[0])
        received += 1
        _work()
        if received % 50 == 0:
            channel.basic_ack(method.delivery_tag, multiple=True)
            if received == count or time.monotonic() - started >= seconds:
                break
    return received / (time.monotonic() - started)


def test_a_flooding_publisher_is_held_to_its_consumer_pace() -> None:
    with BrokerThread() as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        channel.queue_declare(QUEUE)
        channel.basic_qos(prefetch_count=100)

        # What the consumer takes with no publisher: a backlog it drains for two seconds.
        backlog = connection.channel()
        for n in range(40_000):
            backlog.basic_publish("", QUEUE, struct.pack(">Q", n))
        rate_alone = _consume(channel, [], count=10_000)
        channel.cancel()
        channel.queue_purge(QUEUE)

        sent = multiprocessing.get_context("spawn").Value("q", -1)
        flooder = multiprocessing.get_context("spawn").Process(target=flood, args=(broker.port, 5.0, sent))
        flooder.start()
        seen: list[int] = []
        try:
            _consume(channel, seen, seconds=1.0)  # the flood is under way
            flooded = _consume(channel, seen, seconds=2.0)
            states = {c["state"] for c in _api(broker.management_url, "/api/connections")}
            channel_states = {c["state"] for c in _api(broker.management_url, "/api/channels")}
            with urllib.request.urlopen(broker.prometheus_url + "/metrics", timeout=10) as response:
                metrics = response.read().decode()
            depth = _api(broker.management_url, f"/api/queues/%2F/{QUEUE}")["messages_ready"]
            # All of it, in order, once the flood is over.
            for method, _properties, body in channel.consume(QUEUE, inactivity_timeout=10):
                assert method is not None, f"lost messages: {len(seen)} of {sent.value}"
                seen.append(struct.unpack(">Q", body)[0])
                if len(seen) % 50 == 0 or len(seen) == sent.value:
                    channel.basic_ack(method.delivery_tag, multiple=True)
                if len(seen) == sent.value:
                    break
        finally:
            flooder.join(timeout=30)
        # The consumer kept most of its pace; the publisher was held ("flow") to the queue's,
        # and the backlog stayed near the credit threshold, not what the publisher could send.
        assert flooded >= rate_alone / 3, (flooded, rate_alone)
        assert "flow" in states and "flow" in channel_states
        assert "\nlapine_connections_flow 1\n" in metrics
        assert depth <= flow.BEHIND_MESSAGES + 10_000
        assert flooder.exitcode == 0
        assert seen == list(range(sent.value))
        connection.close()
