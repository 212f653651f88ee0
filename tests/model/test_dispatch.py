"""Dispatch in the sans-IO model: what an ack costs with many consumers, and where consumers wait.

An ack looks only at the consumer whose window it opened (and its queue), never at every consumer
of the channel or of the queue: the number of room checks per ack must not grow with the number
of consumers. Which consumer is served in which order is asserted against RabbitMQ in
tests/integration/test_it_dispatch.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lapine.amqp import spec
from lapine.broker.broker import Broker
from lapine.broker.consumer import Consumer
from lapine.broker.scheduler import ManualScheduler
from lapine.config import Config
from lapine.testing.model import Content, ModelClient


@pytest.fixture
def broker() -> Broker:
    return Broker(scheduler=ManualScheduler())


@pytest.fixture
def room_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts Consumer.has_room calls: ``room_checks[0]``."""
    counter = [0]
    has_room = Consumer.has_room

    def counting(self: Consumer) -> bool:
        counter[0] += 1
        return has_room(self)

    monkeypatch.setattr(Consumer, "has_room", counting)
    yield counter


def _client(broker: Broker) -> ModelClient:
    client = ModelClient(broker)
    client.handshake()
    client.open_channel(1)
    return client


def _deliveries(client: ModelClient) -> list[Content]:
    return [item for _channel, item in client.take() if isinstance(item, Content)]


def _consumers_with_backlog(broker: Broker, count: int, backlog: int, **qos: int) -> tuple[ModelClient, list[Content]]:
    """``count`` consumers with prefetch 1 on one channel, each holding one message, and a backlog."""
    client = _client(broker)
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.BasicQos(prefetch_count=qos.get("prefetch", 1), global_=bool(qos.get("global_"))))
    for n in range(count):
        client.method(1, spec.BasicConsume(queue="q", consumer_tag=f"c{n}"))
    for n in range(count + backlog):
        client.publish(1, str(n).encode(), routing_key="q")
    return client, _deliveries(client)


def _room_checks_per_ack(broker: Broker, room_checks: list[int], count: int) -> float:
    client, held = _consumers_with_backlog(broker, count, backlog=50)
    assert len(held) == count
    checks_before = room_checks[0]
    for _ in range(20):
        delivery = held.pop(0)
        client.method(1, spec.BasicAck(delivery_tag=delivery.method.delivery_tag))
        got = _deliveries(client)
        assert [d.method.consumer_tag for d in got] == [delivery.method.consumer_tag]  # its window refilled
        held.extend(got)
    return (room_checks[0] - checks_before) / 20


def test_an_ack_checks_room_a_constant_number_of_times_whatever_the_consumers(room_checks: list[int]) -> None:
    few = _room_checks_per_ack(Broker(scheduler=ManualScheduler()), room_checks, 10)
    many = _room_checks_per_ack(Broker(scheduler=ManualScheduler()), room_checks, 300)
    assert few <= 3
    assert many == few


def test_publish_to_full_consumers_checks_each_once(broker: Broker, room_checks: list[int]) -> None:
    client, held = _consumers_with_backlog(broker, 300, backlog=0)
    assert len(held) == 300
    checks_before = room_checks[0]
    for n in range(50):
        client.publish(1, f"more {n}".encode(), routing_key="q")
    # The first publish finds every consumer full (they leave the ring); the others find nobody.
    assert room_checks[0] - checks_before == 300
    assert broker.vhosts["/"].queues["q"].message_count == 50


def test_a_global_prefetch_serves_the_consumers_in_turn(broker: Broker) -> None:
    client, held = _consumers_with_backlog(broker, 3, backlog=6, prefetch=2, global_=1)
    served = [d.method.consumer_tag for d in held]
    for _ in range(6):
        for delivery in held:
            client.method(1, spec.BasicAck(delivery_tag=delivery.method.delivery_tag))
        held = _deliveries(client)
        served += [d.method.consumer_tag for d in held]
    assert served == ["c0", "c1", "c2"] * 3


def test_a_full_socket_parks_the_consumers_and_draining_resumes_the_turns(broker: Broker) -> None:
    client = _client(broker)
    client.method(1, spec.QueueDeclare(queue="q"))
    for n in range(3):
        client.method(1, spec.BasicConsume(queue="q", consumer_tag=f"c{n}", no_ack=True))
    client.publish(1, b"0", routing_key="q")
    assert [d.method.consumer_tag for d in _deliveries(client)] == ["c0"]
    client.connection.set_writable(False)
    for n in range(1, 6):
        client.publish(1, str(n).encode(), routing_key="q")
    assert not _deliveries(client)
    client.connection.set_writable(True)
    got = _deliveries(client)
    assert [(d.method.consumer_tag, d.body) for d in got] == [
        ("c1", b"1"),
        ("c2", b"2"),
        ("c0", b"3"),
        ("c1", b"4"),
        ("c2", b"5"),
    ]


def test_consumers_that_come_and_go_on_an_idle_queue_leave_nothing_behind(broker: Broker) -> None:
    client = _client(broker)
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="stays"))
    for n in range(1000):
        client.method(1, spec.BasicConsume(queue="q", consumer_tag=f"c{n}"))
        client.method(1, spec.BasicCancel(consumer_tag=f"c{n}"))
    queue = broker.vhosts["/"].queues["q"]
    assert sum(len(level) for level in queue._ring.levels) <= 20
    client.publish(1, b"m", routing_key="q")
    assert [d.method.consumer_tag for d in _deliveries(client)] == ["stays"]


def test_a_cancelled_consumer_gets_nothing_more(broker: Broker) -> None:
    client = _client(broker)
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="a", no_ack=True))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="b", no_ack=True))
    client.method(1, spec.BasicCancel(consumer_tag="a"))
    for n in range(3):
        client.publish(1, str(n).encode(), routing_key="q")
    assert [d.method.consumer_tag for d in _deliveries(client)] == ["b", "b", "b"]


def test_consumer_max_per_channel_closes_the_connection_as_rabbitmq() -> None:
    broker = Broker(Config(consumer_max_per_channel=2), ManualScheduler())
    client = _client(broker)
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="a"))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="b"))
    client.take()
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="c"))
    close = client.expect(spec.ConnectionClose)
    assert (close.reply_code, close.reply_text) == (530, "NOT_ALLOWED - reached maximum (2) of consumers per channel")
    assert (close.class_id, close.method_id) == (60, 20)
