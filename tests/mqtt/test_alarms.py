"""A memory or disk alarm stops reading from MQTT publishers as from AMQP ones (MQTT has no
connection.blocked: the client just waits), while subscribers go on receiving."""

from __future__ import annotations

import time
from collections.abc import Callable

from lapine.mqtt import packets as p
from lapine.testing import BrokerThread
from tests.mqtt.raw import RawClient


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_memory_alarm_pauses_mqtt_publishers_until_it_clears() -> None:
    memory = [0]
    with BrokerThread(management_port=-1, prometheus_port=-1, alarm_check_interval=0.05) as broker:
        server = broker.server
        assert server is not None
        monitor = server.alarms
        monitor.memory_sampler = lambda: memory[0]
        subscriber = RawClient(broker.mqtt_port)
        subscriber.connect("alarm-sub")
        subscriber.send(p.Subscribe(1, [p.Subscription("alarm/t", 0)]))
        assert isinstance(subscriber.read(), p.SubAck)
        publisher = RawClient(broker.mqtt_port)
        publisher.connect("alarm-pub")
        publisher.send(p.Publish("alarm/t", b"before", qos=1, packet_id=1))
        assert publisher.read() == p.PubAck(1)
        assert subscriber.read() == p.Publish("alarm/t", b"before")

        memory[0] = monitor.memory_limit + 1
        _wait_for(lambda: broker.call(lambda: set(server.broker.alarms)) == {"memory"})
        # The publish that finds the alarm is read; after it, nothing more until the alarm clears.
        publisher.send(p.Publish("alarm/t", b"during 1", qos=1, packet_id=2))
        assert publisher.read() == p.PubAck(2)
        assert subscriber.read() == p.Publish("alarm/t", b"during 1")
        publisher.send(p.Publish("alarm/t", b"during 2", qos=1, packet_id=3))
        publisher.sock.settimeout(0.5)
        try:
            publisher.read()
            raise AssertionError("a blocked publisher was read from")
        except TimeoutError:
            pass
        publisher.sock.settimeout(5)

        memory[0] = 0
        assert publisher.read() == p.PubAck(3)
        assert subscriber.read() == p.Publish("alarm/t", b"during 2")
        publisher.close()
        subscriber.close()


def test_memory_alarm_pauses_websocket_publishers_too() -> None:
    from tests.mqtt.conftest import Client

    memory = [0]
    with BrokerThread(management_port=-1, prometheus_port=-1, alarm_check_interval=0.05) as broker:
        server = broker.server
        assert server is not None
        server.alarms.memory_sampler = lambda: memory[0]
        subscriber = RawClient(broker.mqtt_port)
        subscriber.connect("ws-alarm-sub")
        subscriber.send(p.Subscribe(1, [p.Subscription("wsalarm/t", 0)]))
        assert isinstance(subscriber.read(), p.SubAck)
        publisher = Client(server.web_mqtt_port or 0, version=4, transport="websockets")
        publisher.paho.ws_set_options(path="/ws")
        publisher.connect()
        memory[0] = server.alarms.memory_limit + 1
        _wait_for(lambda: broker.call(lambda: set(server.broker.alarms)) == {"memory"})
        publisher.publish("wsalarm/t", b"during 1", qos=1)  # read, and then nothing more
        assert subscriber.read() == p.Publish("wsalarm/t", b"during 1")
        late = publisher.paho.publish("wsalarm/t", b"during 2", qos=1)
        late.wait_for_publish(0.5)
        assert not late.is_published()
        memory[0] = 0
        late.wait_for_publish(5)
        assert late.is_published()
        assert subscriber.read() == p.Publish("wsalarm/t", b"during 2")
        publisher.disconnect()
        subscriber.close()
