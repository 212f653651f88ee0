"""Message TTLs and queue expiry on the manual clock, as RabbitMQ has them (the same behaviours
tests/integration/test_it_extensions.py checks over sockets, here with no sleeps)."""

from __future__ import annotations

import pytest

from lapine.amqp import spec
from lapine.testing.model import ModelBroker, ModelClient


def expiring(milliseconds: int) -> spec.BasicProperties:
    return spec.BasicProperties(expiration=str(milliseconds))


def test_queue_ttl_expires_messages_and_a_longer_message_ttl_does_not_extend_it(
    model: ModelBroker, client: ModelClient
) -> None:
    client.declare_queue("q", **{"x-message-ttl": 100})
    client.publish(1, b"queue ttl", routing_key="q")
    client.publish(1, b"message ttl longer", routing_key="q", properties=expiring(60_000))
    model.advance(0.099)
    assert model.queue("q").message_count == 2
    model.advance(0.002)
    assert model.queue("q").message_count == 0


def test_a_shorter_message_ttl_wins_over_the_queue_ttl(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-message-ttl": 60_000})
    client.publish(1, b"short", routing_key="q", properties=expiring(50))
    client.publish(1, b"long", routing_key="q")
    model.advance(0.051)
    assert client.get_bodies("q") == [b"long"]


def test_message_ttl_counts_from_the_publish(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-message-ttl": 100})
    client.publish(1, b"old", routing_key="q")
    model.advance(0.05)
    client.publish(1, b"new", routing_key="q")
    model.advance(0.06)
    assert [entry.message.body for entry in model.queue("q").ready] == [b"new"]
    model.advance(0.05)
    assert model.queue("q").message_count == 0


def test_ttl_zero_without_a_consumer_expires_at_once(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q")
    client.publish(1, b"now or never", routing_key="q", properties=expiring(0))
    assert model.queue("q").message_count == 0


def test_ttl_zero_is_delivered_to_a_consumer_that_can_take_it_at_once(client: ModelClient) -> None:
    client.declare_queue("q")
    client.consume("q", "c", no_ack=True)
    client.publish(1, b"taken at once", routing_key="q", properties=expiring(0))
    assert [d.body for d in client.deliveries()] == [b"taken at once"]


def test_an_expired_message_behind_a_live_one_waits_for_the_head_then_is_never_delivered(
    model: ModelBroker, client: ModelClient
) -> None:
    """RabbitMQ drops expired messages only at the head of the queue: one stuck behind a longer
    TTL still counts, but it is dropped, not delivered, once it reaches the head."""
    client.declare_queue("q")
    client.publish(1, b"long", routing_key="q", properties=expiring(60_000))
    client.publish(1, b"short", routing_key="q", properties=expiring(10))
    model.advance(1)
    assert model.queue("q").message_count == 2
    assert client.get_bodies("q") == [b"long"]
    assert model.queue("q").message_count == 0


def test_the_expiration_is_delivered_unchanged(client: ModelClient) -> None:
    client.declare_queue("q")
    client.publish(1, b"stays", routing_key="q", properties=expiring(60_000))
    got = client.get("q", no_ack=True)
    assert got is not None
    assert got.properties.expiration == "60000"


def test_an_invalid_expiration_closes_the_channel(client: ModelClient) -> None:
    client.declare_queue("q")
    client.publish(1, b"x", routing_key="q", properties=spec.BasicProperties(expiration="-1"))
    close = client.channel_closed()
    assert close.reply_code == 406
    assert close.reply_text == "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}"


def test_an_unused_queue_expires_after_x_expires(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-expires": 200})
    model.advance(0.199)
    assert model.has_queue("q")
    model.advance(0.002)
    assert not model.has_queue("q")
    client.method(1, spec.QueueDeclare(queue="q", passive=True))
    close = client.channel_closed()
    assert (close.reply_code, close.reply_text) == (404, "NOT_FOUND - no queue 'q' in vhost '/'")


def test_a_queue_with_a_consumer_does_not_expire(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-expires": 100})
    client.consume("q", "c")
    model.advance(10)
    assert model.has_queue("q")
    client.call(1, spec.BasicCancel(consumer_tag="c"), spec.BasicCancelOk)
    model.advance(0.099)
    assert model.has_queue("q")
    model.advance(0.002)
    assert not model.has_queue("q")


def test_basic_get_is_a_use_of_the_queue(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-expires": 100})
    model.advance(0.08)
    assert client.get("q") is None
    model.advance(0.08)
    assert model.has_queue("q")
    model.advance(0.03)
    assert not model.has_queue("q")


@pytest.mark.parametrize("passive", [False, True], ids=["redeclare", "passive"])
def test_a_declare_renews_the_lease_of_an_unused_queue(model: ModelBroker, client: ModelClient, passive: bool) -> None:
    client.declare_queue("q", **{"x-expires": 200})
    model.advance(0.15)
    arguments = {} if passive else {"x-expires": 200}
    client.call(1, spec.QueueDeclare(queue="q", passive=passive, arguments=arguments), spec.QueueDeclareOk)
    model.advance(0.15)
    assert model.has_queue("q")
    model.advance(0.06)
    assert not model.has_queue("q")
