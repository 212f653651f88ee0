"""Credit flow in the sans-IO model: a publisher into a queue whose consumers are behind gets only
as much credit per tick as the queue hands out, the rest of what it sent waits, in order, and a
client that does not read our replies stops being served. No sockets: ticks are called by hand."""

from __future__ import annotations

import struct

import pytest

from lapine.amqp import spec
from lapine.amqp.frames import encode_frame, method_frame
from lapine.broker import flow
from lapine.broker.read_gate import Pause
from lapine.testing.model import ModelBroker, ModelClient

_RAW_PROPERTIES = spec.BasicProperties().encode()


def publishes(first: int, count: int, routing_key: str = "q", exchange: str = "") -> bytes:
    """``count`` publishes whose 8-byte bodies carry their sequence numbers, as one read."""
    method = method_frame(1, spec.BasicPublish(exchange=exchange, routing_key=routing_key))
    header = encode_frame(spec.FRAME_HEADER, 1, spec.encode_content_header(60, 8, _RAW_PROPERTIES))
    bodies = (encode_frame(spec.FRAME_BODY, 1, struct.pack(">Q", seq)) for seq in range(first, first + count))
    return b"".join(method + header + body for body in bodies)


@pytest.fixture
def publisher(model: ModelBroker) -> ModelClient:
    client = model.client()
    client.declare_queue("q")
    return client


def consume(client: ModelClient, prefetch: int) -> None:
    client.qos(prefetch)
    client.consume("q", "c")


def ready(model: ModelBroker) -> int:
    return model.queue("q").message_count


def test_a_queue_without_consumers_takes_everything(model: ModelBroker, publisher: ModelClient) -> None:
    publisher.send(publishes(0, flow.BEHIND_MESSAGES * 3))
    assert ready(model) == flow.BEHIND_MESSAGES * 3
    assert publisher.connection.held is None
    assert not publisher.connection.in_flow


def test_past_the_backlog_a_publisher_gets_little_credit_and_the_rest_waits(
    model: ModelBroker, publisher: ModelClient
) -> None:
    consumer = model.client()
    consume(consumer, prefetch=10)
    publisher.send(publishes(0, flow.BEHIND_MESSAGES * 3))
    # 10 went to the consumer; past the backlog, the first credit; the rest is held.
    assert ready(model) == flow.BEHIND_MESSAGES + flow.MIN_CREDIT
    assert publisher.connection.held
    assert publisher.connection.input_gate.reasons == {Pause.FLOW}
    assert publisher.connection.in_flow
    publisher.tick()  # the consumer took nothing meanwhile: no credit
    assert ready(model) == flow.BEHIND_MESSAGES + flow.MIN_CREDIT
    publisher.tick(trickle=True)  # but a trickle when the retry timer fires
    assert ready(model) == flow.BEHIND_MESSAGES + 2 * flow.MIN_CREDIT


def test_credit_follows_what_the_consumers_take(model: ModelBroker, publisher: ModelClient) -> None:
    publisher.send(publishes(0, 8_000))  # no consumer yet: all taken
    consumer = model.client()
    consume(consumer, prefetch=500)
    assert len(consumer.deliveries()) == 500
    flooder = model.client()
    flooder.send(publishes(10_000, 10_000))
    assert ready(model) == 7_500 + flow.MIN_CREDIT  # behind from the first: the first credit
    consumer.method(1, spec.BasicAck(delivery_tag=500, multiple=True))  # 500 more go out
    assert len(consumer.deliveries()) == 500
    flooder.tick()
    # As much as the queue handed out since the last grant: the backlog holds its level.
    assert ready(model) == 7_500 + flow.MIN_CREDIT
    flooder.tick()  # nothing handed out since: nothing more
    assert ready(model) == 7_500 + flow.MIN_CREDIT
    flooder.tick(trickle=True)
    assert ready(model) == 7_500 + 2 * flow.MIN_CREDIT
    assert flooder.connection.held


def test_a_queue_that_loses_its_consumers_holds_nobody_back(model: ModelBroker, publisher: ModelClient) -> None:
    consumer = model.client()
    consume(consumer, prefetch=10)
    publisher.send(publishes(0, 10_000))
    assert publisher.connection.held
    consumer.method(1, spec.BasicCancel(consumer_tag="c"))
    publisher.tick()
    assert ready(model) == 10_000 - 10
    assert publisher.connection.held is None


def test_the_consumers_acks_are_not_held_behind_the_publisher(model: ModelBroker, publisher: ModelClient) -> None:
    consumer = model.client()
    consume(consumer, prefetch=100)
    publisher.send(publishes(0, 50_000))
    assert publisher.connection.held
    for _ in range(5):
        got = consumer.deliveries()
        assert len(got) == 100
        last = got[-1].method.delivery_tag
        consumer.method(1, spec.BasicAck(delivery_tag=last, multiple=True))
    # Every ack was acted on at once: 100 more each time, while the publisher was still held.
    assert len(consumer.deliveries()) == 100
    assert publisher.connection.held


def test_held_publishes_arrive_all_and_in_order(model: ModelBroker, publisher: ModelClient) -> None:
    consumer = model.client()
    consume(consumer, prefetch=1000)
    total = 20_000
    publisher.send(publishes(0, total))
    publisher.send(publishes(total, 100))  # read while held: queued behind what waits
    seen: list[int] = []
    for _ in range(1000):
        got = consumer.deliveries()
        seen += [struct.unpack(">Q", item.body)[0] for item in got]
        if got:
            consumer.method(1, spec.BasicAck(delivery_tag=got[-1].method.delivery_tag, multiple=True))
        publisher.tick()
        if len(seen) == total + 100:
            break
    assert seen == list(range(total + 100))
    assert publisher.connection.held is None


def test_a_client_that_does_not_read_stops_being_served(model: ModelBroker, publisher: ModelClient) -> None:
    """basic.get after basic.get of a big message, by a client that reads nothing: we stop reading
    its requests once what waits for it is past the limit, instead of buffering without bound."""
    big = b"x" * (4 * 1024 * 1024)
    raw = spec.BasicProperties().encode()
    publisher.send(
        method_frame(1, spec.BasicPublish(routing_key="q"))
        + encode_frame(spec.FRAME_HEADER, 1, spec.encode_content_header(60, len(big), raw))
        + b"".join(encode_frame(spec.FRAME_BODY, 1, big[i : i + 100_000]) for i in range(0, len(big), 100_000))
    )
    greedy = model.client()
    connection = greedy.connection
    get = method_frame(1, spec.BasicGet(queue="q"))
    requeue_all = method_frame(1, spec.BasicNack(delivery_tag=0, multiple=True, requeue=True))
    connection.data_received((get + requeue_all) * 100)
    # Nothing was written: the output never left. Stop at the limit, one message past it at most.
    assert connection.held
    assert connection.input_gate.reasons == {Pause.UNREAD}
    assert connection.output_size <= connection.output_limit + len(big) + 1024
    connection.set_output_pending(connection.output_size)
    connection.take_output()
    connection.release_held()
    assert connection.held  # the transport still has it all: still waiting
    connection.set_output_pending(0)  # the client read everything
    connection.release_held()
    assert connection.output_size > 0  # served again


def test_the_slowest_queue_sets_the_credit(model: ModelBroker) -> None:
    """A publish that reaches several queues that are behind is paced by the one that moves least."""
    publisher = model.client()
    for name in ("fast", "stalled"):
        publisher.method(1, spec.QueueDeclare(queue=name))
        publisher.method(1, spec.QueueBind(queue=name, exchange="amq.fanout"))
    fast, stalled = model.client(), model.client()
    for client, name in ((fast, "fast"), (stalled, "stalled")):
        client.method(1, spec.BasicQos(prefetch_count=100))
        client.method(1, spec.BasicConsume(queue=name, consumer_tag=name))
    publisher.send(publishes(0, 20_000, exchange="amq.fanout"))
    queues = model.broker.vhosts["/"].queues
    assert publisher.connection.held
    level = queues["stalled"].message_count
    for _ in range(5):
        got = fast.deliveries()
        fast.method(1, spec.BasicAck(delivery_tag=got[-1].method.delivery_tag, multiple=True))
        publisher.tick()
    # The fast queue handed out 500 messages, the stalled one none: no credit came of it.
    assert queues["stalled"].message_count == level


def test_acks_behind_held_publishes_on_the_same_connection_get_through(
    model: ModelBroker, publisher: ModelClient
) -> None:
    """A connection that consumes (manual acks) from the queue it floods: its acks wait behind its
    own held publishes, so the queue cannot move; the retry timer's trickle still gets them read."""
    consume(publisher, prefetch=10)
    ack = method_frame(1, spec.BasicAck(delivery_tag=10, multiple=True))
    publisher.send(publishes(0, 10_000) + ack)
    assert publisher.connection.held
    for _ in range(10_000):
        publisher.tick()  # the tick: nothing moved, no credit
        publisher.tick(trickle=True)  # the retry timer
        if publisher.connection.held is None:
            break
    assert publisher.connection.held is None
    # The ack was read: the consumer's first ten were settled and ten more went out.
    assert model.broker.vhosts["/"].queues["q"].unacked_count == 10
