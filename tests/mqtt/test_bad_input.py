"""Bad input: malformed and oversized packets, QoS 2, bad topics and missing permissions get a
clear DISCONNECT reason (MQTT 5) or a closed socket (3.x), and nobody else is hurt."""

from __future__ import annotations

import random
import threading

import pytest

from lapine.auth.permissions import Permission
from lapine.mqtt import packets as p
from lapine.testing import BrokerThread
from tests.mqtt.conftest import MakeClient
from tests.mqtt.raw import RawClient


@pytest.mark.parametrize(
    "raw",
    [
        b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH with QoS 3
        b"\x30\x04\x00\x02\xc3\x28",  # topic that is not UTF-8
        b"\x62\x02\x00\x01",  # PUBREL: QoS 2 flows are not granted
        b"\x00\x00",  # reserved packet type
    ],
)
def test_malformed_packets_close_the_connection(broker: BrokerThread, raw: bytes) -> None:
    for level in (p.MQTT_3_1_1, p.MQTT_5):
        client = RawClient(broker.mqtt_port, level=level)
        client.connect("malformed")
        client.send_raw(raw)
        if level == p.MQTT_5:
            answer = client.read()
            assert isinstance(answer, p.Disconnect) and answer.reason_code in (p.MALFORMED_PACKET, p.PROTOCOL_ERROR)
        assert client.closed_by_broker()


def test_garbage_instead_of_connect_is_dropped(broker: BrokerThread) -> None:
    client = RawClient(broker.mqtt_port)
    client.send_raw(b"GET / HTTP/1.1\r\n\r\n")
    assert client.closed_by_broker()


def test_unsupported_protocol_level_gets_connack_1() -> None:
    with BrokerThread(management_port=-1, prometheus_port=-1) as broker:
        client = RawClient(broker.mqtt_port)
        client.send_raw(b"\x10\x0d\x00\x04MQTT\x09\x02\x00\x3c\x00\x01x")
        assert client.read() == p.ConnAck(False, p.CONNACK_UNACCEPTABLE_PROTOCOL_VERSION)
        assert client.closed_by_broker()


def test_oversized_packets_are_refused_with_packet_too_large() -> None:
    settings = {"management_port": -1, "prometheus_port": -1}
    with BrokerThread(mqtt_max_packet_size_authenticated=1000, **settings) as broker:  # type: ignore[arg-type]
        v5 = RawClient(broker.mqtt_port, level=p.MQTT_5)
        v5.connect("big")
        v5.send(p.Publish("big/topic", b"x" * 2000))
        assert v5.read() == p.Disconnect(p.PACKET_TOO_LARGE)
        assert v5.closed_by_broker()
        v3 = RawClient(broker.mqtt_port)
        v3.connect("big3")
        v3.send(p.Publish("big/topic", b"x" * 2000))
        assert v3.closed_by_broker()
        # Before CONNECT the (smaller) unauthenticated limit applies.
        early = RawClient(broker.mqtt_port)
        early.send_raw(b"\x10\xff\xff\x04")
        assert early.closed_by_broker()


def test_qos2_publish_is_refused_in_mqtt5_and_downgraded_in_mqtt311(client: MakeClient, broker: BrokerThread) -> None:
    watcher = client(4)
    watcher.connect()
    watcher.subscribe("q2/#", qos=1)
    v5 = RawClient(broker.mqtt_port, level=p.MQTT_5)
    v5.connect("q2-v5")
    v5.send(p.Publish("q2/v5", b"no", qos=2, packet_id=1))
    assert v5.read() == p.Disconnect(p.QOS_NOT_SUPPORTED)
    assert v5.closed_by_broker()
    v3 = RawClient(broker.mqtt_port)
    v3.connect("q2-v3")
    v3.send(p.Publish("q2/v3", b"yes", qos=2, packet_id=7))
    assert v3.read() == p.PubAck(7)
    message = watcher.message()
    assert (message.topic, message.payload, message.qos) == ("q2/v3", b"yes", 1)
    v3.close()


def test_publishing_to_a_wildcard_topic_is_refused(broker: BrokerThread) -> None:
    client = RawClient(broker.mqtt_port, level=p.MQTT_5)
    client.connect("wild")
    client.send(p.Publish("a/+/b", b"x"))
    assert client.read() == p.Disconnect(p.TOPIC_NAME_INVALID)
    assert client.closed_by_broker()


def test_invalid_and_shared_subscriptions_get_their_reason_codes(broker: BrokerThread) -> None:
    client = RawClient(broker.mqtt_port, level=p.MQTT_5)
    client.connect("filters")
    client.send(p.Subscribe(3, [p.Subscription("a/#/b"), p.Subscription("$share/g/t"), p.Subscription("ok/+", 1)]))
    assert client.read() == p.SubAck(3, [p.TOPIC_FILTER_INVALID, p.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 1])
    v3 = RawClient(broker.mqtt_port)
    v3.connect("filters3")
    v3.send(p.Subscribe(4, [p.Subscription("a/#/b"), p.Subscription("fine", 0)]))
    assert v3.read() == p.SubAck(4, [p.SUBACK_FAILURE, 0])
    client.close()
    v3.close()


def _limited_user(broker: BrokerThread) -> None:
    model = broker.server.broker  # type: ignore[union-attr]

    def setup() -> None:
        model.users.add("reader", "pw")
        # May configure and read, may not write: neither publish nor bind.
        model.permissions.set(Permission("reader", "/", configure=".*", write="^$", read=".*"))

    broker.call(setup)


def test_publishing_without_write_permission_disconnects_with_not_authorized(broker: BrokerThread) -> None:
    _limited_user(broker)
    v5 = RawClient(broker.mqtt_port, level=p.MQTT_5)
    assert v5.connect("no-write", username="reader", password=b"pw").code == 0
    v5.send(p.Publish("forbidden", b"x", qos=1, packet_id=1))
    assert v5.read() == p.Disconnect(p.NOT_AUTHORIZED)
    assert v5.closed_by_broker()
    v3 = RawClient(broker.mqtt_port)
    v3.connect("no-write3", username="reader", password=b"pw")
    v3.send(p.Publish("forbidden", b"x"))
    assert v3.closed_by_broker()


def test_subscribing_without_permission_says_which_then_disconnects(broker: BrokerThread) -> None:
    _limited_user(broker)
    v5 = RawClient(broker.mqtt_port, level=p.MQTT_5)
    v5.connect("no-bind", username="reader", password=b"pw")
    v5.send(p.Subscribe(1, [p.Subscription("t", 1)]))
    assert v5.read() == p.SubAck(1, [p.NOT_AUTHORIZED])
    assert v5.read() == p.Disconnect(p.NOT_AUTHORIZED)
    assert v5.closed_by_broker()


def test_bad_packets_from_many_sockets_do_not_disturb_good_traffic(client: MakeClient, broker: BrokerThread) -> None:
    subscriber = client(5)
    subscriber.connect()
    subscriber.subscribe("good/traffic", qos=1)
    publisher = client(4)
    publisher.connect()
    rng = random.Random(1234)
    failures: list[BaseException] = []

    def attack(seed: int) -> None:
        local = random.Random(seed)
        try:
            for _ in range(10):
                bad = RawClient(broker.mqtt_port, level=local.choice([p.MQTT_3_1_1, p.MQTT_5]), timeout=0.5)
                if local.random() < 0.5:
                    bad.connect(f"attacker-{seed}")
                bad.send_raw(bytes(local.getrandbits(8) for _ in range(local.randint(1, 200))))
                bad.closed_by_broker()
                bad.close()
        except OSError:
            pass  # the broker may reset a socket it closed while we were still writing
        except BaseException as error:
            failures.append(error)

    attackers = [threading.Thread(target=attack, args=(rng.randrange(1 << 30),)) for _ in range(8)]
    for thread in attackers:
        thread.start()
    for index in range(100):
        publisher.publish("good/traffic", str(index).encode(), qos=1)
    for thread in attackers:
        thread.join()
    assert not failures
    received = [subscriber.message().payload for _ in range(100)]
    assert received == [str(index).encode() for index in range(100)]
