"""MQTT 5 features: topic aliases both ways, receive maximum, subscription identifiers and options,
message expiry, delayed wills and reason codes on PUBACK."""

from __future__ import annotations

import time

import pytest

from lapine.mqtt import packets as p
from lapine.testing import BrokerThread
from tests.mqtt.raw import RawClient


def v5(broker: BrokerThread, client_id: str, **fields: object) -> RawClient:
    client = RawClient(broker.mqtt_port, level=p.MQTT_5)
    assert client.connect(client_id, **fields).code == 0
    return client


def subscribe(client: RawClient, *subscriptions: p.Subscription, **properties: object) -> p.SubAck:
    client.send(p.Subscribe(1, list(subscriptions), dict(properties)))
    answer = client.read()
    assert isinstance(answer, p.SubAck)
    return answer


def read_publish(client: RawClient) -> p.Publish:
    packet = client.read()
    assert isinstance(packet, p.Publish), packet
    return packet


def nothing_more(client: RawClient, wait: float = 0.3) -> bool:
    client.sock.settimeout(wait)
    try:
        return client.read() is None
    except TimeoutError:
        return True
    finally:
        client.sock.settimeout(5)


def test_inbound_topic_alias_names_the_topic_once(broker: BrokerThread) -> None:
    watcher = v5(broker, "alias-watcher")
    subscribe(watcher, p.Subscription("alias/#"))
    publisher = v5(broker, "alias-in")
    publisher.send(p.Publish("alias/long/topic", b"1", properties={"topic_alias": 3}))
    publisher.send(p.Publish("", b"2", properties={"topic_alias": 3}))
    assert [(m.topic, m.payload) for m in (read_publish(watcher), read_publish(watcher))] == [
        ("alias/long/topic", b"1"),
        ("alias/long/topic", b"2"),
    ]


@pytest.mark.parametrize(
    ("publish", "reason"),
    [
        (p.Publish("t", b"x", properties={"topic_alias": 0}), p.TOPIC_ALIAS_INVALID),
        (p.Publish("t", b"x", properties={"topic_alias": 17}), p.TOPIC_ALIAS_INVALID),
        (p.Publish("", b"x", properties={"topic_alias": 5}), p.PROTOCOL_ERROR),
    ],
)
def test_bad_topic_aliases_disconnect(broker: BrokerThread, publish: p.Publish, reason: int) -> None:
    client = v5(broker, "bad-alias")
    client.send(publish)
    assert client.read() == p.Disconnect(reason)
    assert client.closed_by_broker()


def test_outbound_topic_alias_when_the_client_allows_them(broker: BrokerThread) -> None:
    client = v5(broker, "alias-out", properties={"topic_alias_maximum": 5})
    subscribe(client, p.Subscription("out/alias"))
    publisher = v5(broker, "alias-out-pub")
    publisher.send(p.Publish("out/alias", b"1"))
    publisher.send(p.Publish("out/alias", b"2"))
    first, second = read_publish(client), read_publish(client)
    assert (first.topic, first.properties["topic_alias"]) == ("out/alias", 1)
    assert (second.topic, second.properties["topic_alias"], second.payload) == ("", 1, b"2")


def test_receive_maximum_limits_unacknowledged_deliveries(broker: BrokerThread) -> None:
    client = v5(broker, "slow", properties={"receive_maximum": 2})
    subscribe(client, p.Subscription("slow/t", 1))
    publisher = v5(broker, "slow-pub")
    for index in range(4):
        publisher.send(p.Publish("slow/t", str(index).encode(), qos=1, packet_id=index + 1))
    first, second = read_publish(client), read_publish(client)
    assert nothing_more(client)
    client.send(p.PubAck(first.packet_id or 0))
    assert read_publish(client).payload == b"2"
    client.send(p.PubAck(second.packet_id or 0))
    assert read_publish(client).payload == b"3"


def test_subscription_identifiers_come_with_deliveries(broker: BrokerThread) -> None:
    client = v5(broker, "ids")
    subscribe(client, p.Subscription("ids/+"), subscription_identifier=[42])
    publisher = v5(broker, "ids-pub")
    publisher.send(p.Publish("ids/a", b"x"))
    assert read_publish(client).properties["subscription_identifier"] == [42]


def test_no_local_keeps_a_clients_own_messages_from_it(broker: BrokerThread) -> None:
    client = v5(broker, "selfish")
    subscribe(client, p.Subscription("local/t", 1, no_local=True))
    client.send(p.Publish("local/t", b"mine", qos=1, packet_id=1))
    assert client.read() == p.PubAck(1, p.NO_MATCHING_SUBSCRIBERS)
    other = v5(broker, "other")
    other.send(p.Publish("local/t", b"theirs"))
    assert read_publish(client).payload == b"theirs"


def test_retain_handling_options(broker: BrokerThread) -> None:
    publisher = v5(broker, "rh-pub")
    publisher.send(p.Publish("rh/t", b"kept", qos=1, retain=True, packet_id=1))
    assert isinstance(publisher.read(), p.PubAck)
    never = v5(broker, "rh-never")
    subscribe(never, p.Subscription("rh/t", retain_handling=2))
    assert nothing_more(never)
    once = v5(broker, "rh-once")
    subscribe(once, p.Subscription("rh/t", retain_handling=1))
    assert read_publish(once).retain
    subscribe(once, p.Subscription("rh/t", retain_handling=1))  # the same subscription again
    assert nothing_more(once)


def test_puback_says_no_matching_subscribers(broker: BrokerThread) -> None:
    client = v5(broker, "lonely")
    client.send(p.Publish("nobody/home", b"x", qos=1, packet_id=9))
    assert client.read() == p.PubAck(9, p.NO_MATCHING_SUBSCRIBERS)


def test_expired_messages_are_not_delivered_to_a_returning_session(broker: BrokerThread) -> None:
    session = {"session_expiry_interval": 600}
    client = v5(broker, "returns", clean_start=False, properties=session)
    subscribe(client, p.Subscription("expiring/t", 1))
    client.send(p.Disconnect())
    assert client.closed_by_broker()
    publisher = v5(broker, "expiring-pub")
    publisher.send(p.Publish("expiring/t", b"stale", qos=1, packet_id=1, properties={"message_expiry_interval": 1}))
    publisher.send(p.Publish("expiring/t", b"fresh", qos=1, packet_id=2))
    assert isinstance(publisher.read(), p.PubAck) and isinstance(publisher.read(), p.PubAck)
    time.sleep(1.2)
    again = RawClient(broker.mqtt_port, level=p.MQTT_5)
    assert again.connect("returns", clean_start=False, properties=session).session_present
    assert read_publish(again).payload == b"fresh"


def test_delayed_will_waits_and_a_quick_return_cancels_it(broker: BrokerThread) -> None:
    watcher = v5(broker, "will-watcher")
    subscribe(watcher, p.Subscription("delayed/#"))
    session = {"session_expiry_interval": 60}
    will = p.Will("delayed/will", b"late", properties={"will_delay_interval": 1})
    dying = RawClient(broker.mqtt_port, level=p.MQTT_5)
    dying.connect("delayed", clean_start=False, properties=session, will=will)
    dying.close()
    assert read_publish(watcher).payload == b"late"
    will = p.Will("delayed/will", b"cancelled", properties={"will_delay_interval": 3})
    dying = RawClient(broker.mqtt_port, level=p.MQTT_5)
    dying.connect("delayed2", clean_start=False, properties=session, will=will)
    dying.close()
    back = RawClient(broker.mqtt_port, level=p.MQTT_5)
    back.connect("delayed2", clean_start=False, properties=session)
    assert nothing_more(watcher, wait=4)


def test_retain_as_published_keeps_the_retain_flag_of_routed_messages(broker: BrokerThread) -> None:
    keeps = v5(broker, "rap-keeps")
    subscribe(keeps, p.Subscription("rap/t", retain_as_published=True))
    clears = v5(broker, "rap-clears")
    subscribe(clears, p.Subscription("rap/t"))
    publisher = v5(broker, "rap-pub")
    publisher.send(p.Publish("rap/t", b"retained", retain=True))
    publisher.send(p.Publish("rap/t", b"plain"))
    assert [(m.payload, m.retain) for m in (read_publish(keeps), read_publish(keeps))] == [
        (b"retained", True),
        (b"plain", False),
    ]
    assert [(m.payload, m.retain) for m in (read_publish(clears), read_publish(clears))] == [
        (b"retained", False),
        (b"plain", False),
    ]
