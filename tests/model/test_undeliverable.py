"""A message whose delivery cannot be encoded harms no connection and does not jam its queue.

Every entry point refuses names and routing keys that do not fit a shortstr; these tests put one
past them anyway (a Message built by hand, a durable queue restored with arguments an older
release accepted) and check what the channel does with it: drop it with an error logged, and go on.
"""

from __future__ import annotations

import logging

import pytest

from lapine.amqp import spec
from lapine.broker.broker import Broker
from lapine.broker.message import Message
from lapine.broker.scheduler import ManualScheduler
from lapine.testing.model import Content, ModelClient

POISON_KEY = "k" * 300


@pytest.fixture
def broker() -> Broker:
    return Broker(scheduler=ManualScheduler())


def _client(broker: Broker) -> ModelClient:
    client = ModelClient(broker)
    client.handshake()
    client.open_channel(1)
    return client


def _publish_bypassing_entry_checks(broker: Broker, queue: str, routing_key: str, body: bytes) -> None:
    """Enqueue as vhost.publish does, with a routing key no entry point would let in."""
    vhost = broker.vhosts["/"]
    header = spec.encode_content_header(60, len(body), spec.BasicProperties().encode())
    exchange = vhost.exchanges["amq.topic"]
    message = Message("amq.topic", routing_key, header, body)
    assert vhost.route(exchange, message) == [vhost.queues[queue]]
    vhost.publish(exchange, message)


def _bound_queue(client: ModelClient, name: str) -> None:
    client.method(1, spec.QueueDeclare(queue=name))
    client.expect(spec.QueueDeclareOk)
    client.method(1, spec.QueueBind(queue=name, exchange="amq.topic", routing_key="#"))
    client.expect(spec.QueueBindOk)


def _open(client: ModelClient) -> bool:
    return not client.connection.finished and not any(
        isinstance(item, spec.ConnectionClose | spec.ChannelClose) for _channel, item in client.inbox
    )


@pytest.mark.parametrize("no_ack", [False, True], ids=["ack", "no-ack"])
def test_undeliverable_message_is_dropped_and_the_consumer_goes_on(
    broker: Broker, no_ack: bool, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, publisher = _client(broker), _client(broker)
    _bound_queue(consumer, "q")
    consumer.method(1, spec.BasicConsume(queue="q", consumer_tag="c1", no_ack=no_ack))
    consumer.expect(spec.BasicConsumeOk)
    with caplog.at_level(logging.ERROR, logger="lapine.channel"):
        _publish_bypassing_entry_checks(broker, "q", POISON_KEY, b"poison")
    assert "cannot be encoded" in caplog.text
    publisher.publish(1, b"good", exchange="amq.topic", routing_key="fine")
    delivered = consumer.expect(Content)
    assert (delivered.body, delivered.method.routing_key, delivered.method.delivery_tag) == (b"good", "fine", 1)
    assert _open(consumer) and _open(publisher)
    queue = broker.vhosts["/"].queues["q"]
    assert queue.message_count == 0
    assert queue.unacked_count == (0 if no_ack else 1)
    if not no_ack:
        consumer.method(1, spec.BasicAck(delivery_tag=1))
        assert queue.unacked_count == 0
        assert queue.consumers[0].unacked == 0


def test_undeliverable_message_is_skipped_by_basic_get(broker: Broker) -> None:
    client = _client(broker)
    _bound_queue(client, "q")
    _publish_bypassing_entry_checks(broker, "q", POISON_KEY, b"poison")
    client.publish(1, b"good", exchange="amq.topic", routing_key="fine")
    client.method(1, spec.BasicGet(queue="q"))
    got = client.expect(Content)
    assert (got.body, got.method.delivery_tag, got.method.message_count) == (b"good", 1, 0)
    client.method(1, spec.BasicAck(delivery_tag=1))
    client.method(1, spec.BasicGet(queue="q"))
    client.expect(spec.BasicGetEmpty)
    assert _open(client)
    assert broker.vhosts["/"].queues["q"].unacked_count == 0


def test_poison_dead_letter_routing_key_restored_from_the_store_harms_no_connection(broker: Broker) -> None:
    """A durable queue restored with a dead-letter routing key no declare would accept now."""
    vhost = broker.vhosts["/"]
    vhost.declare_exchange("dlx", "fanout")
    vhost.restore_queue(
        "work", False, {"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": POISON_KEY}
    )  # fmt: skip
    worker, reader, publisher = _client(broker), _client(broker), _client(broker)
    reader.method(1, spec.QueueDeclare(queue="dead"))
    reader.expect(spec.QueueDeclareOk)
    reader.method(1, spec.QueueBind(queue="dead", exchange="dlx"))
    reader.expect(spec.QueueBindOk)
    reader.method(1, spec.BasicConsume(queue="dead", consumer_tag="r"))
    reader.expect(spec.BasicConsumeOk)
    worker.method(1, spec.BasicConsume(queue="work", consumer_tag="w"))
    worker.expect(spec.BasicConsumeOk)
    for body in (b"one", b"two"):
        publisher.publish(1, body, routing_key="work")
        tag = worker.expect(Content).method.delivery_tag
        worker.method(1, spec.BasicReject(delivery_tag=tag, requeue=False))
    # Both dead-lettered copies were undeliverable: dropped, and everyone is still connected.
    assert not [item for _channel, item in reader.take() if isinstance(item, Content)]
    assert _open(worker) and _open(reader) and _open(publisher)
    publisher.publish(1, b"direct", routing_key="dead")
    assert reader.expect(Content).body == b"direct"
    assert vhost.queues["dead"].unacked_count == 1
    assert vhost.queues["work"].unacked_count == 0
