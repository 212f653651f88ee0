"""lapine.testing.model itself: what its clients read and how they tell answers apart."""

from __future__ import annotations

import pytest

from lapine.amqp import spec
from lapine.amqp.frames import PROTOCOL_HEADER
from lapine.testing.model import ModelBroker, ModelClient, handshake_frames


def test_get_takes_its_answer_not_a_delivery_on_the_same_channel(client: ModelClient) -> None:
    client.declare_queue("consumed")
    client.declare_queue("polled")
    client.consume("consumed", "c", no_ack=True)
    client.publish(1, b"delivered", routing_key="consumed")
    client.publish(1, b"got", routing_key="polled")
    got = client.get("polled", no_ack=True)
    assert got is not None and got.body == b"got"
    assert [delivery.body for delivery in client.deliveries()] == [b"delivered"]
    assert client.get("polled") is None


def test_every_byte_the_broker_wrote_is_kept(model: ModelBroker) -> None:
    client = model.connect()
    client.send(handshake_frames())
    methods = [type(item) for _channel, item in client.take()]
    assert methods == [spec.ConnectionStart, spec.ConnectionTune, spec.ConnectionOpenOk]
    assert client.received.startswith(b"\x01\x00\x00")  # a method frame on channel 0
    assert client.received.endswith(b"\xce")


def test_a_protocol_header_back_is_an_item_of_its_own(model: ModelBroker) -> None:
    client = model.connect()
    client.send(b"AMQP\x01\x01\x00\x0a")
    assert client.take() == [(0, ("protocol-header", PROTOCOL_HEADER))]
    assert client.connection.finished


def test_expect_says_what_it_did_not_find(client: ModelClient) -> None:
    with pytest.raises(AssertionError, match="QueueDeclareOk"):
        client.expect(spec.QueueDeclareOk)


def test_clients_of_one_broker_are_told_apart(model: ModelBroker) -> None:
    first, second = model.client(), model.client()
    assert first.connection.name != second.connection.name
    assert model.broker.connections == {first.connection, second.connection}
    first.disconnect()
    assert model.broker.connections == {second.connection}


def test_the_clock_moves_only_when_told(model: ModelBroker, client: ModelClient) -> None:
    client.declare_queue("q", **{"x-message-ttl": 1000})
    client.publish(1, b"x", routing_key="q")
    started = model.clock.time()
    model.advance(0.999)
    assert model.queue("q").message_count == 1
    model.advance(0.001)
    assert model.queue("q").message_count == 0
    assert model.clock.time() == pytest.approx(started + 1)
