"""The MQTT session over the broker model, sans-IO: no sockets, bytes in and packets out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lapine.broker.broker import Broker
from lapine.broker.output_buffer import OUTPUT_PER_TICK
from lapine.mqtt import packets as p
from lapine.mqtt.codec import decode_packet, encode
from lapine.mqtt.connection import MqttConnection
from lapine.mqtt.node import MqttNode
from lapine.store import SqliteStore


class Session:
    """One client's end: what it sends is encoded, what the broker answers is decoded."""

    def __init__(self, node: MqttNode, client_id: str, level: int = p.MQTT_3_1_1, **fields: object) -> None:
        self.level = level
        self.connection = MqttConnection(node, ("127.0.0.1", 50000), lambda: None)
        self.send(p.Connect(level, client_id, **fields))  # type: ignore[arg-type]
        connack = self.packets()[0]
        assert isinstance(connack, p.ConnAck) and connack.code == 0, connack

    def send(self, packet: p.Packet) -> None:
        self.connection.data_received(encode(packet, self.level))

    def packets(self) -> list[p.Packet]:
        data = self.connection.take_output()
        self.connection.output_written()
        found = []
        pos = 0
        while pos < len(data):
            first = data[pos]
            length, shift, index = 0, 0, pos + 1
            while True:
                byte = data[index]
                index += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            found.append(decode_packet(first >> 4, first & 0x0F, data[index : index + length], self.level))
            pos = index + length
        return found


def node() -> MqttNode:
    return MqttNode(Broker())


def test_a_backlog_is_handed_over_one_tick_of_output_at_a_time() -> None:
    mqtt = node()
    subscriber = Session(mqtt, "backlog", clean_start=False)
    subscriber.send(p.Subscribe(1, [p.Subscription("b/t", 0)]))
    subscriber.packets()
    subscriber.send(p.Disconnect())
    subscriber.connection.connection_lost()
    publisher = Session(mqtt, "flood")
    for _ in range(600):
        publisher.send(p.Publish("b/t", b"x" * 1000))  # nobody is there: they wait in the queue
    queue = mqtt.broker.vhosts["/"].queues["mqtt-subscription-backlogqos0"]
    assert queue.message_count == 600
    back = MqttConnection(mqtt, ("127.0.0.1", 50001), lambda: None)
    back.data_received(encode(p.Connect(p.MQTT_3_1_1, "backlog", clean_start=False), p.MQTT_3_1_1))
    assert back.output_size <= OUTPUT_PER_TICK + 1100
    assert 0 < queue.message_count < 600
    received = 0
    while back.output:
        data = back.take_output()
        received += data.count(b"b/t")
        back.output_written()
    assert received == 600 and queue.message_count == 0


def test_packet_ids_wrap_and_skip_the_ones_in_use() -> None:
    mqtt = node()
    subscriber = Session(mqtt, "ids")
    subscriber.send(p.Subscribe(1, [p.Subscription("ids/t", 1)]))
    subscriber.packets()
    subscriber.connection._next_packet_id = 65535
    publisher = Session(mqtt, "ids-pub")
    for _ in range(3):
        publisher.send(p.Publish("ids/t", b"x", qos=1, packet_id=1))
    deliveries = [packet for packet in subscriber.packets() if isinstance(packet, p.Publish)]
    assert [d.packet_id for d in deliveries] == [65535, 1, 2]
    subscriber.send(p.PubAck(1))
    publisher.send(p.Publish("ids/t", b"y", qos=1, packet_id=2))
    subscriber.connection._next_packet_id = 65535  # 65535 and 2 are in use, 1 is free again
    (delivery,) = [packet for packet in subscriber.packets() if isinstance(packet, p.Publish)]
    assert delivery.packet_id == 3


def test_a_delivery_over_the_clients_maximum_packet_size_is_dropped() -> None:
    mqtt = node()
    subscriber = Session(mqtt, "small", p.MQTT_5, properties={"maximum_packet_size": 100})
    subscriber.send(p.Subscribe(1, [p.Subscription("size/t", 1)]))
    subscriber.packets()
    publisher = Session(mqtt, "big", p.MQTT_5)
    publisher.send(p.Publish("size/t", b"x" * 200, qos=1, packet_id=1))
    publisher.send(p.Publish("size/t", b"small", qos=1, packet_id=2))
    deliveries = [packet for packet in subscriber.packets() if isinstance(packet, p.Publish)]
    assert [d.payload for d in deliveries] == [b"small"]
    queue = mqtt.broker.vhosts["/"].queues["mqtt-subscription-smallqos1"]
    assert queue.unacked_count == 1 and queue.message_count == 0


def test_takeover_closes_the_first_connection_and_keeps_the_session() -> None:
    mqtt = node()
    first = Session(mqtt, "twin", p.MQTT_5, clean_start=False, properties={"session_expiry_interval": 60})
    first.send(p.Subscribe(1, [p.Subscription("twin/t", 1)]))
    first.packets()
    second = MqttConnection(mqtt, ("127.0.0.1", 50002), lambda: None)
    second.data_received(
        encode(
            p.Connect(p.MQTT_5, "twin", clean_start=False, properties={"session_expiry_interval": 60}), p.MQTT_5
        )
    )
    assert first.packets() == [p.Disconnect(p.SESSION_TAKEN_OVER)]
    assert first.connection.finished and first.connection not in mqtt.broker.connections
    assert mqtt.clients[("/", "twin")] is second
    (connack,) = [packet for packet in _wrap(second).packets() if isinstance(packet, p.ConnAck)]
    assert connack.session_present
    assert "twin/t" in second.subscriptions


def test_clean_session_queues_go_with_the_connection() -> None:
    mqtt = node()
    session = Session(mqtt, "clean")
    session.send(p.Subscribe(1, [p.Subscription("c/t", 0), p.Subscription("c/u", 1)]))
    session.packets()
    queues = mqtt.broker.vhosts["/"].queues
    assert {"mqtt-subscription-cleanqos0", "mqtt-subscription-cleanqos1"} <= set(queues)
    session.connection.connection_lost()
    assert not {"mqtt-subscription-cleanqos0", "mqtt-subscription-cleanqos1"} & set(queues)


def test_unacknowledged_deliveries_go_back_to_the_queue_when_the_connection_drops() -> None:
    mqtt = node()
    session = Session(mqtt, "drops", clean_start=False)
    session.send(p.Subscribe(1, [p.Subscription("d/t", 1)]))
    session.packets()
    publisher = Session(mqtt, "drops-pub")
    publisher.send(p.Publish("d/t", b"x", qos=1, packet_id=1))
    assert any(isinstance(packet, p.Publish) for packet in session.packets())
    queue = mqtt.broker.vhosts["/"].queues["mqtt-subscription-dropsqos1"]
    assert queue.unacked_count == 1
    session.connection.connection_lost()
    assert queue.unacked_count == 0 and queue.message_count == 1


def _wrap(connection: MqttConnection) -> Session:
    session = Session.__new__(Session)
    session.level = connection.level
    session.connection = connection
    return session


def test_deleting_a_session_queue_closes_its_connection() -> None:
    mqtt = node()
    session = Session(mqtt, "orphan", p.MQTT_5)
    session.send(p.Subscribe(1, [p.Subscription("o/t", 1)]))
    session.packets()
    vhost = mqtt.broker.vhosts["/"]
    vhost.delete_queue(vhost.queues["mqtt-subscription-orphanqos1"])
    assert session.packets() == [p.Disconnect(p.IMPLEMENTATION_SPECIFIC_ERROR)]
    assert session.connection.finished and not session.connection.subscriptions


def test_session_expiry_follows_the_last_connect_and_disconnect() -> None:
    mqtt = node()
    first = Session(mqtt, "expiry", p.MQTT_5, clean_start=False, properties={"session_expiry_interval": 60})
    first.send(p.Subscribe(1, [p.Subscription("e/t", 1)]))
    first.packets()
    queue = mqtt.broker.vhosts["/"].queues["mqtt-subscription-expiryqos1"]
    assert queue.arguments["x-expires"] == 60_000
    first.connection.connection_lost()
    again = Session(mqtt, "expiry", p.MQTT_5, clean_start=False, properties={"session_expiry_interval": 120})
    assert queue.arguments["x-expires"] == queue.expires == 120_000
    again.send(p.Disconnect(properties={"session_expiry_interval": 30}))
    assert queue.arguments["x-expires"] == queue.expires == 30_000


async def test_pubacks_keep_their_order_while_the_disk_catches_up(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    store = SqliteStore(tmp_path / "data", notify=loop.call_soon_threadsafe)
    broker = Broker()
    broker.attach_store(store)
    try:
        mqtt = MqttNode(broker)
        keeper = Session(mqtt, "durable-sub", clean_start=False)
        keeper.send(p.Subscribe(1, [p.Subscription("o/durable", 1)]))
        keeper.packets()
        publisher = Session(mqtt, "orderly")
        # Persistent, to a durable queue: acknowledged once on disk.
        publisher.send(p.Publish("o/durable", b"x", qos=1, packet_id=1))
        # Routed nowhere: nothing to wait for, but it must not overtake the first.
        publisher.send(p.Publish("o/nowhere", b"y", qos=1, packet_id=2))
        assert publisher.packets() == []
        for _ in range(500):
            if publisher.connection.output:
                break
            await asyncio.sleep(0.01)
        acks = publisher.packets()
        while len(acks) < 2:
            await asyncio.sleep(0.01)
            acks += publisher.packets()
        assert acks == [p.PubAck(1), p.PubAck(2)]
    finally:
        store.close()


def test_an_internal_error_closes_only_that_connection() -> None:
    mqtt = node()
    bystander = Session(mqtt, "bystander", p.MQTT_5)
    bystander.send(p.Subscribe(1, [p.Subscription("err/t")]))
    bystander.packets()
    unlucky = Session(mqtt, "unlucky", p.MQTT_5)

    def broken(*_args: object) -> None:
        raise RuntimeError("disk on fire")

    mqtt.retained.retain = broken  # type: ignore[method-assign]
    unlucky.send(p.Publish("err/t", b"kept?", retain=True))
    assert unlucky.packets() == [p.Disconnect(p.IMPLEMENTATION_SPECIFIC_ERROR)]
    assert unlucky.connection.finished
    assert [packet.payload for packet in bystander.packets() if isinstance(packet, p.Publish)] == [b"kept?"]
    bystander.send(p.PingReq())
    assert bystander.packets() == [p.PingResp()]
