"""Publisher back-pressure: a fast publisher cannot grow the broker's memory without bound.

Into a consumer that stops reading its socket: the consumer's socket fills, so its connection gets
no more deliveries (AMQPProtocol.pause_writing), the queue falls behind and credit flow holds the
publisher (broker/flow.py). Into a queue with no consumer: its backlog past ``queue_window`` lives
on disk, the publisher is paused while the store's write backlog is high (server/throttle.py), and
with everything in memory the memory alarm blocks it once memory climbs past the watermark. Either
way what the publisher sends waits in TCP buffers and in the publisher, not in the broker.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pika
import pika.spec
import pytest

from lapine.broker import flow
from lapine.server.alarms import resident_memory
from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.helpers.raw_amqp import FRAME_BODY, FRAME_HEADER, FRAME_METHOD, RawAMQP

MIB = 2**20
BODY = b"m" * 1024


def _frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def _publish_batch(queue: str, count: int) -> bytes:
    method = struct.pack(">I", pika.spec.Basic.Publish.INDEX) + b"".join(
        pika.spec.Basic.Publish(exchange="", routing_key=queue).encode()
    )
    one = (
        _frame(FRAME_METHOD, 1, method)
        + _frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, len(BODY), 0))
        + _frame(FRAME_BODY, 1, BODY)
    )
    return one * count


class RawPublisher(threading.Thread):
    """Publishes as fast as the broker reads; never reads anything back (no client-side buffer)."""

    def __init__(self, url: str, queue: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.client = RawAMQP(url)
        self.client.start()
        tune = self.client.login(client_properties={"capabilities": {"connection.blocked": True}})
        self.client.tune_and_open(tune)
        self.client.open_channel(1)
        self.client.sock.settimeout(0.2)
        self.batch = _publish_batch(queue, 200)
        self.seconds = seconds
        self.sent = 0  # messages handed to the kernel
        self.stalls = 0  # writes that could not proceed for 0.2 s: the broker stopped reading

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        view, offset = memoryview(self.batch), 0
        while time.monotonic() < deadline:
            try:
                offset += self.client.sock.send(view[offset:])
            except TimeoutError:
                self.stalls += 1
                continue
            if offset == len(view):
                self.sent += 200
                offset = 0


def _slow_consumer(broker: BrokerThread, queue: str) -> RawAMQP:
    """Consumes with no ack and no prefetch limit, then never reads its socket again."""
    client = RawAMQP(broker.url)
    client.handshake()
    client.open_channel(1)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.send_method(1, pika.spec.Basic.Consume(queue=queue, no_ack=True))
    client.expect(pika.spec.Basic.ConsumeOk)
    return client


@pytest.mark.parametrize(
    ("queue_window", "stalled_consumer"),
    [
        (10_000, True),  # credit flow holds the publisher to the stalled consumer's pace
        (10_000, False),  # no consumer: the backlog pages out to disk, memory stays low without the alarm
        (10**9, False),  # no consumer, everything in memory: the memory alarm must stop the publisher
    ],
)
def test_a_flood_keeps_memory_bounded(start_broker: StartBroker, queue_window: int, stalled_consumer: bool) -> None:
    broker = start_broker(alarm_check_interval=0.05, queue_window=queue_window)
    assert broker.server is not None
    model = broker.server.broker
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = connection.channel()
    channel.queue_declare("flood")
    consumer = _slow_consumer(broker, "flood") if stalled_consumer else None
    baseline = resident_memory()
    watermark = baseline + 48 * MIB
    broker.call(setattr, broker.server.alarms, "memory_limit", watermark)

    publisher = RawPublisher(broker.url, "flood", seconds=4.0)
    publisher.start()
    peak, alarms = baseline, set()
    while publisher.is_alive():
        peak = max(peak, resident_memory())
        alarms |= broker.call(lambda: set(model.alarms))
        time.sleep(0.05)
    publisher.join()

    queued = channel.queue_declare("flood", passive=True).method.message_count
    print(
        f"\nflood (queue_window {queue_window}): {publisher.sent} messages "
        f"({publisher.sent * len(BODY) / MIB:.0f} MiB) written in 4 s, {queued} queued, "
        f"{publisher.stalls} stalled writes; RSS {baseline / MIB:.0f} MiB -> peak {peak / MIB:.0f} MiB "
        f"(watermark {watermark / MIB:.0f} MiB); alarms: {sorted(alarms)}"
    )
    assert peak < watermark + 32 * MIB, f"RSS peaked at {peak / MIB:.0f} MiB"
    if stalled_consumer:
        assert flow.BEHIND_MESSAGES <= queued < 2 * flow.BEHIND_MESSAGES, "credit flow should hold the backlog"
        assert publisher.stalls > 0 and not alarms, "credit flow, not an alarm, should have held the publisher"
    else:
        assert queued > 10_000, "messages should wait in the queue"
    if queue_window > 10**6:
        assert alarms == {"memory"} and publisher.stalls > 0, "the memory alarm should have held the publisher"
    connection.close()
    if consumer is not None:
        consumer.close()
    publisher.client.close()
