"""MQTT clients (paho, 3.1.1 and 5.0) with each other and with AMQP clients (pika), both ways."""

from __future__ import annotations

import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lapine.testing import BrokerThread
from tests.mqtt.conftest import MakeClient

VERSIONS = [4, 5]


@pytest.fixture
def amqp(broker: BrokerThread):  # type: ignore[no-untyped-def]
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    yield connection.channel()
    connection.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_qos0_and_qos1_between_mqtt_clients_with_wildcards(client: MakeClient, version: int) -> None:
    subscriber = client(version)
    subscriber.connect()
    assert subscriber.subscribe("sensors/+/temp", qos=1) == [1]
    assert subscriber.subscribe("sensors/#", qos=0) == [0]
    publisher = client(version)
    publisher.connect()
    publisher.publish("sensors/kitchen/temp", b"21", qos=1)
    first, second = subscriber.message(), subscriber.message()
    assert {(first.qos, first.payload), (second.qos, second.payload)} == {(1, b"21"), (0, b"21")}
    assert first.topic == second.topic == "sensors/kitchen/temp"
    publisher.publish("sensors/hall/humidity", b"40", qos=0)
    only = subscriber.message()
    assert (only.topic, only.qos, only.payload) == ("sensors/hall/humidity", 0, b"40")


@pytest.mark.parametrize("version", VERSIONS)
def test_mqtt_publishes_reach_amqp_consumers(client: MakeClient, amqp, version: int) -> None:  # type: ignore[no-untyped-def]
    queue = amqp.queue_declare("", exclusive=True).method.queue
    amqp.queue_bind(queue, "amq.topic", f"to-amqp{version}.*.done")
    publisher = client(version)
    publisher.connect()
    publisher.publish(f"to-amqp{version}/job/done", b"persistent", qos=1)
    publisher.publish(f"to-amqp{version}/job/done", b"transient", qos=0)
    method, properties, body = _get(amqp, queue)
    assert (method.exchange, method.routing_key, body) == ("amq.topic", f"to-amqp{version}.job.done", b"persistent")
    assert properties.delivery_mode == 2
    method, properties, body = _get(amqp, queue)
    assert body == b"transient" and properties.delivery_mode == 1


def test_mqtt5_properties_become_amqp_properties(client: MakeClient, amqp) -> None:  # type: ignore[no-untyped-def]
    queue = amqp.queue_declare("", exclusive=True).method.queue
    amqp.queue_bind(queue, "amq.topic", "props.in")
    publisher = client(5)
    publisher.connect()
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "application/json"
    properties.CorrelationData = b"req-1"
    properties.ResponseTopic = "replies/me"
    properties.MessageExpiryInterval = 60
    properties.UserProperty = [("tenant", "acme")]
    publisher.publish("props/in", b"{}", qos=1, properties=properties)
    _method, amqp_properties, _body = _get(amqp, queue)
    assert amqp_properties.content_type == "application/json"
    assert amqp_properties.correlation_id == "req-1"
    assert amqp_properties.expiration == "60000"
    assert amqp_properties.headers == {"tenant": "acme", "x-reply-to-topic": "replies.me"}


@pytest.mark.parametrize("version", VERSIONS)
def test_amqp_publishes_reach_mqtt_subscribers(client: MakeClient, amqp, version: int) -> None:  # type: ignore[no-untyped-def]
    subscriber = client(version)
    subscriber.connect()
    subscriber.subscribe(f"from-amqp{version}/#", qos=1)
    amqp.basic_publish("amq.topic", f"from-amqp{version}.a.b", b"persistent", pika.BasicProperties(delivery_mode=2))
    amqp.basic_publish("amq.topic", f"from-amqp{version}.c", b"transient")
    first, second = subscriber.message(), subscriber.message()
    assert (first.topic, first.qos, first.payload) == (f"from-amqp{version}/a/b", 1, b"persistent")
    # A transient AMQP message is QoS 0, whatever the subscription's QoS.
    assert (second.topic, second.qos, second.payload) == (f"from-amqp{version}/c", 0, b"transient")


def test_amqp_properties_become_mqtt5_properties(client: MakeClient, amqp) -> None:  # type: ignore[no-untyped-def]
    subscriber = client(5)
    subscriber.connect()
    subscriber.subscribe("props/out", qos=1)
    properties = pika.BasicProperties(
        content_type="text/plain",
        correlation_id="abc",
        expiration="30000",
        delivery_mode=2,
        headers={"x-reply-to-topic": "answers.here", "count": 3, "flag": True},
    )
    amqp.basic_publish("amq.topic", "props.out", b"hi", properties)
    message = subscriber.message()
    props = message.properties
    assert props.ContentType == "text/plain"
    assert props.CorrelationData == b"abc"
    assert props.ResponseTopic == "answers/here"
    assert props.MessageExpiryInterval == 30
    assert sorted(props.UserProperty) == [("count", "3"), ("flag", "true")]


@pytest.mark.parametrize("version", VERSIONS)
def test_subscription_queues_are_named_and_bound_as_rabbitmq_does(
    client: MakeClient, broker: BrokerThread, version: int
) -> None:
    subscriber = client(version, client_id=f"named{version}")
    subscriber.connect()
    subscriber.subscribe("a/+/c", qos=1)
    subscriber.subscribe("d/#", qos=0)
    vhost = broker.server.broker.vhosts["/"]  # type: ignore[union-attr]
    qos1 = vhost.queues[f"mqtt-subscription-named{version}qos1"]
    qos0 = vhost.queues[f"mqtt-subscription-named{version}qos0"]
    keys = {(dest.name, key) for dest, key, _args in vhost.exchanges["amq.topic"].router.bindings()}
    assert (qos1.name, "a.*.c") in keys and (qos0.name, "d.#") in keys
    # A clean session's queues are exclusive to the connection and go with it.
    assert qos1.exclusive and qos0.exclusive
    subscriber.disconnect()
    assert _eventually(lambda: qos1.name not in vhost.queues and qos0.name not in vhost.queues)


def test_subscribing_with_qos2_is_granted_qos1(client: MakeClient) -> None:
    for version in VERSIONS:
        subscriber = client(version)
        subscriber.connect()
        codes = subscriber.subscribe("q2/topic", qos=2)
        assert [getattr(code, "value", code) for code in codes] == [1]


def test_unsubscribe_stops_deliveries(client: MakeClient) -> None:
    subscriber = client(5)
    subscriber.connect()
    subscriber.subscribe("unsub/x", qos=1)
    subscriber.unsubscribe("unsub/x")
    publisher = client(5)
    publisher.connect()
    assert _eventually(lambda: publisher.publish("unsub/x", b"1", qos=1).rc == 0)
    assert subscriber.no_message()


def _get(channel, queue: str):  # type: ignore[no-untyped-def]
    for _ in range(100):
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, properties, body
        channel.connection.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue}")


def _eventually(check, attempts: int = 100) -> bool:  # type: ignore[no-untyped-def]
    import time

    for _ in range(attempts):
        if check():
            return True
        time.sleep(0.05)
    return False
