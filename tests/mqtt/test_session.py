"""Sessions: retained messages, wills, client-id takeover, clean and resumed sessions (across a
broker restart), logins and keepalive."""

from __future__ import annotations

import time
from pathlib import Path

import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lapine.auth.permissions import Permission
from lapine.mqtt import packets as p
from lapine.testing import BrokerThread
from tests.mqtt.conftest import Client, MakeClient
from tests.mqtt.raw import RawClient

VERSIONS = [4, 5]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_goes_to_later_subscribers_of_its_exact_topic(client: MakeClient, version: int) -> None:
    topic = f"retained{version}/state"
    publisher = client(version)
    publisher.connect()
    publisher.publish(topic, b"on", qos=1, retain=True)
    late = client(version)
    late.connect()
    late.subscribe(topic, qos=1)
    message = late.message()
    assert (message.topic, message.payload, message.retain, message.qos) == (topic, b"on", True, 1)
    # RabbitMQ looks retained messages up by exact topic: a wildcard filter does not find them.
    wildcard = client(version)
    wildcard.connect()
    wildcard.subscribe(f"retained{version}/#", qos=1)
    assert wildcard.no_message()
    # An empty retained payload clears the topic.
    publisher.publish(topic, b"", qos=1, retain=True)
    cleared = client(version)
    cleared.connect()
    cleared.subscribe(topic, qos=1)
    assert cleared.no_message()


def test_retained_messages_survive_a_restart(tmp_path: Path) -> None:
    with BrokerThread(data_dir=str(tmp_path), management_port=-1, prometheus_port=-1) as broker:
        publisher = Client(broker.mqtt_port, version=5)
        publisher.connect()
        publisher.publish("kept/topic", b"value", qos=1, retain=True)
        publisher.disconnect()
    with BrokerThread(data_dir=str(tmp_path), management_port=-1, prometheus_port=-1) as broker:
        subscriber = Client(broker.mqtt_port, version=4)
        subscriber.connect()
        subscriber.subscribe("kept/topic", qos=0)
        message = subscriber.message()
        assert (message.payload, message.retain) == (b"value", True)
        subscriber.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_will_is_published_when_the_connection_dies_not_on_disconnect(client: MakeClient, version: int) -> None:
    watcher = client(version)
    watcher.connect()
    watcher.subscribe(f"wills{version}/#", qos=1)
    polite = client(version)
    polite.paho.will_set(f"wills{version}/polite", b"unexpected", qos=1)
    polite.connect()
    polite.disconnect()
    assert watcher.no_message()
    dying = RawClient(_port(client), level=version)
    dying.connect("dying", will=p.Will(f"wills{version}/dying", b"gone", 1))
    dying.close()  # no DISCONNECT
    message = watcher.message()
    assert (message.topic, message.payload) == (f"wills{version}/dying", b"gone")


def test_mqtt5_disconnect_with_will_message_sends_the_will(client: MakeClient) -> None:
    watcher = client(5)
    watcher.connect()
    watcher.subscribe("wills5b/#", qos=1)
    raw = RawClient(_port(client), level=p.MQTT_5)
    raw.connect("asks-for-will", will=p.Will("wills5b/asked", b"bye", 0))
    raw.send(p.Disconnect(p.DISCONNECT_WITH_WILL))
    assert raw.closed_by_broker()
    assert watcher.message().payload == b"bye"


@pytest.mark.parametrize("version", VERSIONS)
def test_second_connection_with_the_same_client_id_takes_over(client: MakeClient, version: int) -> None:
    first = RawClient(_port(client), level=version)
    assert first.connect(f"twin{version}").code == 0
    second = RawClient(_port(client), level=version)
    assert second.connect(f"twin{version}").code == 0
    if version == 5:
        assert first.read() == p.Disconnect(p.SESSION_TAKEN_OVER)
    assert first.closed_by_broker()
    second.send(p.PingReq())
    assert second.read() == p.PingResp()
    second.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_session_resumes_with_qos1_messages_queued_while_offline_across_a_restart(
    tmp_path: Path, version: int
) -> None:
    settings = {"data_dir": str(tmp_path), "management_port": -1, "prometheus_port": -1}
    expiry = Properties(PacketTypes.CONNECT)
    expiry.SessionExpiryInterval = 3600
    connect_properties = expiry if version == 5 else None
    with BrokerThread(**settings) as broker:  # type: ignore[arg-type]
        subscriber = Client(broker.mqtt_port, version=version, client_id="keeper")
        flags, _code, _props = subscriber.connect(clean=False, properties=connect_properties)
        assert not flags.session_present
        subscriber.subscribe("offline/#", qos=1)
        subscriber.disconnect()
        queue = broker.server.broker.vhosts["/"].queues["mqtt-subscription-keeperqos1"]  # type: ignore[union-attr]
        assert queue.durable and not queue.exclusive
        expected = 3600_000 if version == 5 else 86_400_000
        assert queue.arguments["x-expires"] == expected
        publisher = Client(broker.mqtt_port, version=version)
        publisher.connect()
        for index in range(3):
            publisher.publish(f"offline/{index}", str(index).encode(), qos=1)
        publisher.disconnect()
        # An AMQP publisher's persistent message waits in the session too.
        amqp = pika.BlockingConnection(pika.URLParameters(broker.url))
        amqp.channel().basic_publish("amq.topic", "offline.amqp", b"A", pika.BasicProperties(delivery_mode=2))
        amqp.close()
    with BrokerThread(**settings) as broker:  # type: ignore[arg-type]
        subscriber = Client(broker.mqtt_port, version=version, client_id="keeper")
        flags, _code, _props = subscriber.connect(clean=False, properties=connect_properties)
        assert flags.session_present
        received = [subscriber.message() for _ in range(4)]
        assert [(m.topic, m.payload, m.qos) for m in received] == [
            ("offline/0", b"0", 1),
            ("offline/1", b"1", 1),
            ("offline/2", b"2", 1),
            ("offline/amqp", b"A", 1),
        ]
        # The resumed session still has its subscription.
        publisher = Client(broker.mqtt_port, version=version)
        publisher.connect()
        publisher.publish("offline/after", b"x", qos=1)
        assert subscriber.message().payload == b"x"
        publisher.disconnect()
        # Clean start ends the session: its queues are gone.
        subscriber.disconnect()
        again = Client(broker.mqtt_port, version=version, client_id="keeper")
        flags, _code, _props = again.connect(clean=True)
        assert not flags.session_present
        assert "mqtt-subscription-keeperqos1" not in broker.server.broker.vhosts["/"].queues  # type: ignore[union-attr]
        again.disconnect()


def test_unacknowledged_qos1_delivery_is_sent_again_with_dup_on_resume(client: MakeClient) -> None:
    raw = RawClient(_port(client), level=p.MQTT_3_1_1)
    raw.connect("forgetful", clean_start=False)
    raw.send(p.Subscribe(1, [p.Subscription("dup/t", 1)]))
    assert isinstance(raw.read(), p.SubAck)
    publisher = client(4)
    publisher.connect()
    publisher.publish("dup/t", b"once", qos=1)
    first = raw.read()
    assert isinstance(first, p.Publish) and not first.dup
    raw.close()  # no PUBACK
    again = RawClient(_port(client), level=p.MQTT_3_1_1)
    assert again.connect("forgetful", clean_start=False).session_present
    second = again.read()
    assert isinstance(second, p.Publish) and second.dup and second.payload == b"once"
    again.send(p.PubAck(second.packet_id or 0))
    again.send(p.Disconnect())
    again.close()


@pytest.mark.parametrize(("version", "refused"), [(4, p.CONNACK_BAD_USERNAME_OR_PASSWORD), (5, 0x86)])
def test_bad_password_is_refused(client: MakeClient, version: int, refused: int) -> None:
    raw = RawClient(_port(client), level=version)
    assert raw.connect("bad", username="guest", password=b"wrong").code == refused
    assert raw.closed_by_broker()


def test_vhost_is_chosen_with_vhost_colon_user(client: MakeClient, broker: BrokerThread) -> None:
    model = broker.server.broker  # type: ignore[union-attr]

    def setup() -> None:
        model.add_vhost("iot")
        model.users.add("device", "pw")
        model.permissions.set(Permission("device", "iot"))

    broker.call(setup)
    raw = RawClient(_port(client))
    assert raw.connect("in-iot", username="iot:device", password=b"pw").code == 0
    raw.send(p.Subscribe(1, [p.Subscription("x", 1)]))
    assert isinstance(raw.read(), p.SubAck)
    assert "mqtt-subscription-in-iotqos1" in model.vhosts["iot"].queues
    raw.close()
    # Without a vhost in the name, mqtt_vhost (/) is used, where the user may not go.
    other = RawClient(_port(client))
    assert other.connect("not-in-root", username="device", password=b"pw").code == p.CONNACK_NOT_AUTHORIZED


def test_anonymous_login_can_be_turned_off() -> None:
    with BrokerThread(management_port=-1, prometheus_port=-1, mqtt_allow_anonymous=False) as broker:
        raw = RawClient(broker.mqtt_port)
        assert raw.connect("anon").code == p.CONNACK_BAD_USERNAME_OR_PASSWORD
        raw = RawClient(broker.mqtt_port)
        assert raw.connect("named", username="guest", password=b"guest").code == 0
        raw.close()


def test_mqtt5_assigns_a_client_id_and_tells_its_limits(client: MakeClient) -> None:
    raw = RawClient(_port(client), level=p.MQTT_5)
    connack = raw.connect("", properties={"session_expiry_interval": 0xFFFFFFFF})
    assert connack.code == 0
    assert connack.properties["assigned_client_identifier"]
    assert connack.properties["maximum_qos"] == 1
    assert connack.properties["topic_alias_maximum"] == 16
    assert connack.properties["maximum_packet_size"] == 16 * 1024 * 1024
    assert connack.properties["session_expiry_interval"] == 86400
    raw.close()


def test_mqtt311_empty_client_id_needs_a_clean_session(client: MakeClient) -> None:
    raw = RawClient(_port(client))
    assert raw.connect("", clean_start=False).code == p.CONNACK_IDENTIFIER_REJECTED


@pytest.mark.parametrize("version", VERSIONS)
def test_silent_client_is_dropped_after_one_and_a_half_keepalives(client: MakeClient, version: int) -> None:
    raw = RawClient(_port(client), level=version)
    raw.connect("sleepy", keepalive=1)
    started = time.monotonic()
    if version == 5:
        assert raw.read() == p.Disconnect(p.KEEP_ALIVE_TIMEOUT)
    assert raw.closed_by_broker()
    assert time.monotonic() - started >= 1.0


def _port(make: MakeClient) -> int:
    return make().port


def test_session_expiry_changed_at_disconnect_survives_a_restart(tmp_path: Path) -> None:
    settings = {"data_dir": str(tmp_path), "management_port": -1, "prometheus_port": -1}
    with BrokerThread(**settings) as broker:  # type: ignore[arg-type]
        raw = RawClient(broker.mqtt_port, level=p.MQTT_5)
        raw.connect("changes", clean_start=False, properties={"session_expiry_interval": 3600})
        raw.send(p.Subscribe(1, [p.Subscription("changes/t", 1)]))
        assert isinstance(raw.read(), p.SubAck)
        raw.send(p.Disconnect(properties={"session_expiry_interval": 7200}))
        assert raw.closed_by_broker()
    with BrokerThread(**settings) as broker:  # type: ignore[arg-type]
        queue = broker.server.broker.vhosts["/"].queues["mqtt-subscription-changesqos1"]  # type: ignore[union-attr]
        assert queue.arguments["x-expires"] == 7_200_000


def test_a_delayed_will_survives_a_restart(tmp_path: Path) -> None:
    settings = {"data_dir": str(tmp_path), "management_port": -1, "prometheus_port": -1}
    watch = {"session_expiry_interval": 600}
    with BrokerThread(**settings) as broker:  # type: ignore[arg-type]
        watcher = RawClient(broker.mqtt_port, level=p.MQTT_5)
        watcher.connect("will-watcher", clean_start=False, properties=watch)
        watcher.send(p.Subscribe(1, [p.Subscription("restart-will/#", 1)]))
        assert isinstance(watcher.read(), p.SubAck)
        watcher.send(p.Disconnect())
        assert watcher.closed_by_broker()
        dying = RawClient(broker.mqtt_port, level=p.MQTT_5)
        will = p.Will("restart-will/gone", b"after restart", 1, properties={"will_delay_interval": 2})
        dying.connect("dies-before-restart", clean_start=False, properties={"session_expiry_interval": 60}, will=will)
        dying.close()
        queues = broker.server.broker.vhosts["/"].queues  # type: ignore[union-attr]
        _wait_until(lambda: "mqtt-will-dies-before-restart" in queues)
    with BrokerThread(**settings) as broker:  # type: ignore[arg-type]
        watcher = RawClient(broker.mqtt_port, level=p.MQTT_5)
        assert watcher.connect("will-watcher", clean_start=False, properties=watch).session_present
        message = watcher.read()
        assert isinstance(message, p.Publish)
        assert (message.topic, message.payload) == ("restart-will/gone", b"after restart")


def _wait_until(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
