"""The sans-IO connection and channel, driven frame by frame with no sockets."""

from __future__ import annotations

import pytest

from lapine.amqp import spec
from lapine.amqp.frames import PROTOCOL_HEADER
from lapine.broker.broker import Broker
from lapine.broker.scheduler import ManualScheduler
from lapine.testing.model import Content, ModelClient


@pytest.fixture
def broker() -> Broker:
    return Broker(scheduler=ManualScheduler())


@pytest.fixture
def client(broker: Broker) -> ModelClient:
    client = ModelClient(broker)
    client.handshake()
    client.open_channel(1)
    return client


def test_wrong_protocol_header_gets_ours_back(broker: Broker) -> None:
    client = ModelClient(broker)
    client.send(b"AMQP\x00\x00\x08\x00")
    assert client.take() == [(0, ("protocol-header", PROTOCOL_HEADER))]
    assert client.connection.finished


def test_server_properties_advertise_rabbitmq_capabilities(broker: Broker) -> None:
    client = ModelClient(broker)
    client.send(PROTOCOL_HEADER)
    start = client.expect(spec.ConnectionStart)
    capabilities = start.server_properties["capabilities"]
    for name in (
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ):
        assert capabilities[name] is True
    assert set(start.mechanisms.split()) == {b"PLAIN", b"AMQPLAIN"}


def test_guest_is_refused_from_another_host(broker: Broker) -> None:
    client = ModelClient(broker, peer=("10.1.2.3", 5000))
    client.send(PROTOCOL_HEADER)
    client.expect(spec.ConnectionStart)
    client.method(
        0,
        spec.ConnectionStartOk(
            client_properties={"capabilities": {"authentication_failure_close": True}},
            mechanism="PLAIN",
            response=b"\0guest\0guest",
        ),
    )
    close = client.expect(spec.ConnectionClose)
    assert close.reply_code == 403
    assert close.reply_text.startswith("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN")


def test_publish_and_get_round_trip(client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="q"))
    client.expect(spec.QueueDeclareOk)
    client.publish(1, b"hello", routing_key="q", properties=spec.BasicProperties(content_type="text/plain"))
    client.method(1, spec.BasicGet(queue="q", no_ack=True))
    got = client.expect(Content)
    assert got.body == b"hello"
    assert got.properties.content_type == "text/plain"
    assert got.method.message_count == 0


def test_body_split_across_frames_is_reassembled(broker: Broker, client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="big"))
    body = bytes(range(256)) * 2000  # 512 KB, several frames at frame_max 131072
    client.publish(1, b"", routing_key="big")  # an empty body has no body frame
    from lapine.amqp.frames import content_frames

    client.send(
        content_frames(1, spec.BasicPublish(routing_key="big"), spec.BasicProperties().encode(), body, 4096)
    )
    queue = broker.vhosts["/"].queues["big"]
    assert [entry.message.body for entry in queue.ready] == [b"", body]


def test_requeued_messages_return_in_original_order_flagged(client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="q"))
    for n in range(5):
        client.publish(1, str(n).encode(), routing_key="q")
    for _ in range(3):
        client.method(1, spec.BasicGet(queue="q"))
    tags = [client.expect(Content).method.delivery_tag for _ in range(3)]
    client.method(1, spec.BasicNack(delivery_tag=tags[-1], multiple=True, requeue=True))
    bodies = []
    for _ in range(5):
        client.method(1, spec.BasicGet(queue="q", no_ack=True))
        got = client.expect(Content)
        bodies.append((got.body, got.method.redelivered))
    assert bodies == [(b"0", True), (b"1", True), (b"2", True), (b"3", False), (b"4", False)]


def test_prefetch_limits_each_consumer(broker: Broker, client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.BasicQos(prefetch_count=2))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="a"))
    for n in range(5):
        client.publish(1, str(n).encode(), routing_key="q")
    delivered = [item for _ch, item in client.take() if isinstance(item, Content)]
    assert [d.body for d in delivered] == [b"0", b"1"]
    client.method(1, spec.BasicAck(delivery_tag=delivered[0].method.delivery_tag))
    delivered = [item for _ch, item in client.take() if isinstance(item, Content)]
    assert [d.body for d in delivered] == [b"2"]
    assert broker.vhosts["/"].queues["q"].message_count == 2


def test_unknown_delivery_tag_closes_the_channel_only(client: ModelClient) -> None:
    client.method(1, spec.BasicAck(delivery_tag=42))
    close = client.expect(spec.ChannelClose)
    assert (close.reply_code, close.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 42")
    client.method(1, spec.ChannelCloseOk())
    client.open_channel(1)


def test_confirms_are_batched_into_one_multiple_ack(client: ModelClient) -> None:
    from lapine.amqp.frames import encode_frame, method_frame

    client.method(1, spec.ConfirmSelect())
    client.expect(spec.ConfirmSelectOk)
    raw = spec.BasicProperties().encode()
    one = (
        method_frame(1, spec.BasicPublish(routing_key="nowhere"))
        + encode_frame(spec.FRAME_HEADER, 1, spec.encode_content_header(60, 1, raw))
        + encode_frame(spec.FRAME_BODY, 1, b"x")
    )
    client.send(one * 3)
    acks = [item for _ch, item in client.take() if isinstance(item, spec.BasicAck)]
    assert [(a.delivery_tag, a.multiple) for a in acks] == [(3, True)]


def test_transaction_publishes_only_on_commit(broker: Broker, client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.TxSelect())
    client.publish(1, b"a", routing_key="q")
    queue = broker.vhosts["/"].queues["q"]
    assert queue.message_count == 0
    client.method(1, spec.TxRollback())
    client.method(1, spec.TxCommit())
    assert queue.message_count == 0
    client.publish(1, b"b", routing_key="q")
    client.method(1, spec.TxCommit())
    assert [e.message.body for e in queue.ready] == [b"b"]


def test_message_ttl_expires_at_the_head(broker: Broker, client: ModelClient) -> None:
    scheduler = broker.scheduler
    assert isinstance(scheduler, ManualScheduler)
    client.method(1, spec.QueueDeclare(queue="ttl", arguments={"x-message-ttl": 100}))
    client.publish(1, b"old", routing_key="ttl")
    scheduler.advance(0.05)
    client.publish(1, b"new", routing_key="ttl")
    queue = broker.vhosts["/"].queues["ttl"]
    scheduler.advance(0.06)
    assert [e.message.body for e in queue.ready] == [b"new"]
    scheduler.advance(0.1)
    assert queue.message_count == 0


def test_exclusive_queue_goes_with_its_connection(broker: Broker, client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="mine", exclusive=True))
    other = ModelClient(broker, peer=("127.0.0.1", 40001))
    other.handshake()
    other.open_channel(1)
    other.method(1, spec.QueueDeclare(queue="mine", passive=True))
    assert other.expect(spec.ChannelClose).reply_code == 405
    client.method(0, spec.ConnectionClose(reply_code=200))
    assert "mine" not in broker.vhosts["/"].queues


def test_unacked_delivery_past_the_consumer_timeout_closes_the_channel(broker: Broker, client: ModelClient) -> None:
    scheduler = broker.scheduler
    assert isinstance(scheduler, ManualScheduler)
    client.method(1, spec.QueueDeclare(queue="slow", arguments={"x-consumer-timeout": 1000}))
    client.method(1, spec.BasicConsume(queue="slow", consumer_tag="c"))
    client.publish(1, b"work", routing_key="slow")
    scheduler.advance(0.9)
    assert not [item for _ch, item in client.take() if isinstance(item, spec.ChannelClose)]
    scheduler.advance(0.2)
    close = client.expect(spec.ChannelClose)
    assert close.reply_code == 406
    assert close.reply_text == (
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1000 ms. "
        "This timeout value can be configured, see consumers doc guide to learn more"
    )
    # The message went back to the queue when the channel closed.
    assert broker.vhosts["/"].queues["slow"].message_count == 1


def test_acked_in_time_keeps_the_channel(broker: Broker, client: ModelClient) -> None:
    scheduler = broker.scheduler
    assert isinstance(scheduler, ManualScheduler)
    broker.config.consumer_timeout = 1000
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="c"))
    client.publish(1, b"one", routing_key="q")
    scheduler.advance(0.5)
    tag = client.expect(Content).method.delivery_tag
    client.method(1, spec.BasicAck(delivery_tag=tag))
    scheduler.advance(2)
    assert not [item for _ch, item in client.take() if isinstance(item, spec.ChannelClose)]


def test_a_full_socket_pauses_deliveries_until_it_drains(broker: Broker, client: ModelClient) -> None:
    client.method(1, spec.QueueDeclare(queue="q"))
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="c", no_ack=True))
    client.take()
    client.connection.set_writable(False)
    for n in range(3):
        client.publish(1, str(n).encode(), routing_key="q")
    assert not [item for _ch, item in client.take() if isinstance(item, Content)]
    assert broker.vhosts["/"].queues["q"].message_count == 3
    client.connection.set_writable(True)
    assert [item.body for _ch, item in client.take() if isinstance(item, Content)] == [b"0", b"1", b"2"]


def test_one_tick_writes_a_bounded_amount_then_delivery_goes_on(broker: Broker, client: ModelClient) -> None:
    from lapine.broker.output_buffer import OUTPUT_PER_TICK

    client.method(1, spec.QueueDeclare(queue="backlog"))
    for n in range(1000):
        client.publish(1, n.to_bytes(2, "big") * 512, routing_key="backlog")  # 1 KiB each
    client.take()
    connection = client.connection
    from lapine.amqp.frames import method_frame

    connection.data_received(method_frame(1, spec.BasicConsume(queue="backlog", consumer_tag="c", no_ack=True)))
    # The consume delivered one tick's worth and stopped; the rest waits in the queue.
    first_tick = connection.take_output()
    assert OUTPUT_PER_TICK < len(first_tick) < OUTPUT_PER_TICK + 4096
    assert 0 < broker.vhosts["/"].queues["backlog"].message_count < 1000
    connection.output_written()
    client.take()
    assert broker.vhosts["/"].queues["backlog"].message_count == 0
