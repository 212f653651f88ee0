"""Credit flow holds back an MQTT publisher that outruns its subscriber, as an AMQP one: the
backlog stays bounded instead of growing to disk, and nothing is lost."""

from __future__ import annotations

import threading
import time

from lapine.broker import flow
from lapine.mqtt import packets as p
from lapine.mqtt.codec import encode
from lapine.testing import BrokerThread
from tests.mqtt.raw import RawClient

COUNT = 40_000


def test_a_flooding_publisher_waits_for_a_slow_subscriber() -> None:
    with BrokerThread(management_port=-1, prometheus_port=-1) as broker:
        subscriber = RawClient(broker.mqtt_port, timeout=10)
        subscriber.connect("slow-reader")
        subscriber.send(p.Subscribe(1, [p.Subscription("flood/t", 0)]))
        assert isinstance(subscriber.read(), p.SubAck)
        publisher = RawClient(broker.mqtt_port, timeout=30)
        publisher.connect("flooder")
        # 1 KB each: far more than the sockets' buffers hold, so the subscriber does fall behind.
        packets = [encode(p.Publish("flood/t", str(n).encode().ljust(1000)), p.MQTT_3_1_1) for n in range(COUNT)]
        sender = threading.Thread(target=lambda: publisher.send_raw(b"".join(packets)))
        sender.start()
        model = broker.server.broker  # type: ignore[union-attr]
        flooder = next(c for c in model.connections if getattr(c, "client_id", None) == "flooder")
        deadline = time.monotonic() + 10
        while not broker.call(lambda: flooder.in_flow):
            assert time.monotonic() < deadline, "the publisher was never held"
            time.sleep(0.02)
        queue = model.vhosts["/"].queues["mqtt-subscription-slow-readerqos0"]
        # Held: the backlog stays near the flow threshold, far from everything published.
        assert broker.call(lambda: queue.message_count) < flow.BEHIND_MESSAGES * 2
        received = []
        while len(received) < COUNT:
            packet = subscriber.read()
            assert isinstance(packet, p.Publish)
            received.append(int(packet.payload))
        assert received == list(range(COUNT))
        sender.join()
        publisher.close()
        subscriber.close()
