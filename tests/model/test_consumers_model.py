"""Who gets a message, in the model: priority queues, consumer priorities, single active consumer,
and the consumer timeout on the manual clock."""

from __future__ import annotations

import pytest

from lapine.amqp import spec
from lapine.testing.model import ModelBroker, ModelClient


def prioritised(priority: int | None) -> spec.BasicProperties:
    return spec.BasicProperties(priority=priority)


def test_a_priority_queue_delivers_higher_first_fifo_within_a_priority(client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-priority": 5})
    for body, priority in ((b"low1", 1), (b"none", None), (b"high1", 5), (b"low2", 1), (b"over", 9), (b"mid", 3)):
        client.publish(1, body, routing_key="q", properties=prioritised(priority))
    # Above the maximum counts as the maximum; no priority counts as 0.
    assert client.get_bodies("q") == [b"high1", b"over", b"mid", b"low1", b"low2", b"none"]


def test_a_priority_queue_requeues_into_its_priority(client: ModelClient) -> None:
    client.declare_queue("q", **{"x-max-priority": 2})
    client.publish(1, b"high", routing_key="q", properties=prioritised(2))
    client.publish(1, b"low", routing_key="q", properties=prioritised(0))
    got = client.get("q")
    assert got is not None and got.body == b"high"
    client.publish(1, b"high2", routing_key="q", properties=prioritised(2))
    client.reject(got.method.delivery_tag, requeue=True)
    assert client.get_bodies("q") == [b"high", b"high2", b"low"]


def test_a_queue_without_x_max_priority_ignores_priorities(client: ModelClient) -> None:
    client.declare_queue("q")
    client.publish(1, b"first", routing_key="q", properties=prioritised(0))
    client.publish(1, b"second", routing_key="q", properties=prioritised(9))
    assert client.get_bodies("q") == [b"first", b"second"]


def test_x_max_priority_above_255_is_refused(client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="q", arguments={"x-max-priority": 256}))
    close = client.channel_closed()
    assert close.reply_code == 406
    assert close.reply_text == (
        "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}"
    )


def test_the_highest_priority_consumer_fills_its_window_first(client: ModelClient) -> None:
    client.declare_queue("q")
    client.open_channel(2)
    client.open_channel(3)
    client.qos(2, channel=3)
    client.consume("q", "low", channel=2, no_ack=True, **{"x-priority": 1})
    client.consume("q", "high", channel=3, **{"x-priority": 10})
    for n in range(5):
        client.publish(1, str(n).encode(), routing_key="q")
    assert [d.body for d in client.deliveries(channel=3)] == [b"0", b"1"]
    assert [d.body for d in client.deliveries(channel=2)] == [b"2", b"3", b"4"]
    client.ack(2, multiple=True, channel=3)  # room again: the high one is served first once more
    client.publish(1, b"5", routing_key="q")
    assert [d.body for d in client.deliveries(channel=3)] == [b"5"]


def test_consumers_of_equal_priority_take_turns(client: ModelClient) -> None:
    client.declare_queue("q")
    client.consume("q", "a", no_ack=True, **{"x-priority": 5})
    client.consume("q", "b", no_ack=True, **{"x-priority": 5})
    for n in range(4):
        client.publish(1, str(n).encode(), routing_key="q")
    tags = [d.method.consumer_tag for d in client.deliveries()]
    assert tags == ["a", "b", "a", "b"]


def test_single_active_consumer_gets_everything_until_it_goes(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-single-active-consumer": True})
    client.consume("q", "first", no_ack=True)
    other = model.client()
    other.consume("q", "second", no_ack=True)
    for n in range(3):
        client.publish(1, str(n).encode(), routing_key="q")
    assert [d.body for d in client.deliveries()] == [b"0", b"1", b"2"]
    assert other.deliveries() == []
    client.call(1, spec.BasicCancel(consumer_tag="first"), spec.BasicCancelOk)
    client.publish(1, b"after", routing_key="q")
    assert [d.body for d in other.deliveries()] == [b"after"]


def test_single_active_consumer_passes_on_when_its_connection_goes(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", durable=False, **{"x-single-active-consumer": True})
    client.consume("q", "first")
    other = model.client()
    other.consume("q", "second")
    client.publish(1, b"unacked", routing_key="q")
    assert [d.body for d in client.deliveries()] == [b"unacked"]
    client.disconnect()
    (redelivered,) = other.deliveries()
    assert (redelivered.body, redelivered.method.redelivered) == (b"unacked", True)


def test_an_unacked_delivery_past_the_consumer_timeout_closes_the_channel(
    model: ModelBroker, client: ModelClient
) -> None:
    client.declare_queue("slow", **{"x-consumer-timeout": 1000})
    client.consume("slow", "c")
    client.publish(1, b"work", routing_key="slow")
    model.advance(0.999)
    assert client.received_of(spec.ChannelClose) == []
    model.advance(0.002)
    close = client.channel_closed()
    assert close.reply_code == 406
    assert close.reply_text == (
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1000 ms. "
        "This timeout value can be configured, see consumers doc guide to learn more"
    )
    assert model.queue("slow").message_count == 1  # back in the queue


def test_the_consumer_timeout_counts_from_each_delivery(model: ModelBroker, client: ModelClient) -> None:
    model.broker.config.consumer_timeout = 1000
    client.declare_queue("q")
    client.consume("q", "c")
    client.publish(1, b"first", routing_key="q")
    model.advance(0.6)
    client.publish(1, b"second", routing_key="q")
    first, _second = client.deliveries()
    client.ack(first.method.delivery_tag)
    model.advance(0.6)  # the first would be late now, but it is acked; the second is not late yet
    assert client.received_of(spec.ChannelClose) == []
    model.advance(0.5)
    assert client.channel_closed().reply_code == 406


def test_a_basic_get_left_unacked_times_out_too(model: ModelBroker, client: ModelClient) -> None:
    """RabbitMQ's channel watches every unacked delivery, basic.get's as well as a consumer's."""
    model.broker.config.consumer_timeout = 1000
    client.declare_queue("q")
    client.publish(1, b"got", routing_key="q")
    assert client.get("q") is not None
    model.advance(1.001)
    assert client.channel_closed().reply_code == 406
    assert model.queue("q").message_count == 1


@pytest.mark.parametrize("get", [False, True], ids=["consume", "basic.get"])
def test_acked_in_time_keeps_the_channel(model: ModelBroker, client: ModelClient, get: bool) -> None:
    model.broker.config.consumer_timeout = 1000
    client.declare_queue("q")
    client.publish(1, b"one", routing_key="q")
    if get:
        delivery = client.get("q")
        assert delivery is not None
    else:
        client.consume("q", "c")
        (delivery,) = client.deliveries()
    model.advance(0.9)
    client.ack(delivery.method.delivery_tag)
    model.advance(5)
    assert client.received_of(spec.ChannelClose) == []
