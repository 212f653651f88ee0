"""Queue length limits in the model: x-max-length and x-max-length-bytes with drop-head,
reject-publish (a nack under confirms), and reject-publish-dlx."""

from __future__ import annotations

from lapine.amqp import spec
from lapine.testing.model import ModelBroker, ModelClient


def test_max_length_drops_the_oldest(client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-length": 2})
    for n in range(5):
        client.publish(1, str(n).encode(), routing_key="q")
    assert client.get_bodies("q") == [b"3", b"4"]


def test_max_length_bytes_counts_bodies_only(client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-length-bytes": 10})
    for body in (b"12345", b"678", b"90ab"):
        client.publish(1, body, routing_key="q", properties=spec.BasicProperties(headers={"big": "x" * 100}))
    assert client.get_bodies("q") == [b"678", b"90ab"]


def test_max_length_zero_keeps_nothing(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-length": 0})
    client.publish(1, b"gone", routing_key="q")
    assert model.queue("q").message_count == 0


def test_a_consumer_with_room_takes_what_a_full_queue_would_drop(client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-length": 1})
    client.consume("q", "c", no_ack=True)
    for n in range(3):
        client.publish(1, str(n).encode(), routing_key="q")
    assert [d.body for d in client.deliveries()] == [b"0", b"1", b"2"]


def test_unacked_messages_do_not_count_against_the_limit(client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-length": 1})
    client.publish(1, b"taken", routing_key="q")
    got = client.get("q")
    assert got is not None
    client.publish(1, b"ready", routing_key="q")
    assert client.get_bodies("q") == [b"ready"]


def test_reject_publish_nacks_the_refused_publish_under_confirms(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-length": 1, "x-overflow": "reject-publish"})
    client.call(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
    client.publish(1, b"fits", routing_key="q")
    client.publish(1, b"refused", routing_key="q")
    assert client.confirms() == [("ack", 1, False), ("nack", 2, False)]
    assert client.get_bodies("q") == [b"fits"]
    client.publish(1, b"room again", routing_key="q")
    assert client.confirms() == [("ack", 3, False)]


def test_reject_publish_without_confirms_drops_silently(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-length-bytes": 4, "x-overflow": "reject-publish"})
    client.publish(1, b"1234", routing_key="q")
    client.publish(1, b"5", routing_key="q")
    assert client.take() == []
    assert client.get_bodies("q") == [b"1234"]


def test_reject_publish_to_one_queue_of_two_nacks_the_publish(model: ModelBroker, client: ModelClient) -> None:
    """A message routed to several queues is confirmed only if every one took it."""
    client.declare_queue("full", **{"x-max-length": 0, "x-overflow": "reject-publish"})
    client.declare_queue("open")
    client.bind("full", "amq.fanout")
    client.bind("open", "amq.fanout")
    client.call(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
    client.publish(1, b"half", exchange="amq.fanout")
    assert client.confirms() == [("nack", 1, False)]
    assert model.queue("open").message_count == 1
