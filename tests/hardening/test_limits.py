"""Limits, with RabbitMQ's defaults, settings and error texts.

Verified against RabbitMQ 3.10.8 (a node configured with ``max_message_size = 1048576``, and vhost
limits set with ``rabbitmqctl set_vhost_limits -p / '{"max-queues": 2, "max-connections": 2}'``):

* A message over max_message_size closes its *channel* with 406 "PRECONDITION_FAILED - message
  size N is larger than configured max size M"; the connection goes on.
* Vhost ``max-queues``: 406 "PRECONDITION_FAILED - cannot declare queue 'q': queue limit in vhost
  '/' (N) is reached", also for a server-named queue (with its generated name); redeclaring an
  existing queue at the limit is fine; 0 allows no queue at all.
* Vhost ``max-connections``: connection.open gets 530 "NOT_ALLOWED - access to vhost '/' refused
  for user 'guest': connection limit (N) is reached"; 0 allows no connection.
* Node ``connection_max``: current RabbitMQ (3.11.14+, rabbitmq-server#7753) answers connection.open
  with 530 "NOT_ALLOWED - connection refused: node connection limit (N) is reached". 3.10 left it
  to ranch, which stops accepting: clients then hang in the TCP backlog until their handshake
  times out, and nothing is logged. Lapine does what current RabbitMQ does.
* ``consumer_max_per_channel`` (current RabbitMQ; 3.10 has no such setting): a basic.consume past
  the limit closes the connection with 530 "NOT_ALLOWED - reached maximum (N) of consumers per
  channel" (rabbit_channel, per_node_limit_SUITE); other channels have their own count.
* Names: a shortstr holds at most 255 octets, so a 255-octet queue or exchange name is accepted;
  invalid UTF-8 in a name closes the connection with 501 "FRAME_ERROR - Malformed UTF-8 in
  shortstr"; an empty exchange name is 403 "operation not permitted on the default exchange".
"""

from __future__ import annotations

import struct

import pika
import pika.exceptions
import pika.spec
import pytest

from lapine.amqp.codec import MAX_TABLE_DEPTH
from lapine.config import Config
from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.helpers.raw_amqp import FRAME_BODY, FRAME_HEADER, FRAME_METHOD, RawAMQP


def _connect(broker: BrokerThread, **overrides: object) -> pika.BlockingConnection:
    params = pika.URLParameters(broker.url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    for key, value in overrides.items():
        setattr(params, key, value)
    return pika.BlockingConnection(params)


def _set_vhost_limit(broker: BrokerThread, name: str, value: int) -> None:
    assert broker.server is not None
    vhost = broker.server.broker.vhosts["/"]
    broker.call(vhost.limits.__setitem__, name, value)


# --- max message size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_size", "body_size"),
    [
        (1024, 1025),  # one body frame: method, header and body handled together
        (16 * 1024 * 1024, 16 * 1024 * 1024 + 1),  # the default; many body frames after the refusal
    ],
)
def test_message_over_max_size_closes_only_its_channel(
    start_broker: StartBroker, max_size: int, body_size: int
) -> None:
    settings = {} if max_size == 16 * 1024 * 1024 else {"max_message_size": max_size}
    broker = start_broker(**settings)
    connection = _connect(broker)
    channel = connection.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish("", "nowhere", b"x" * body_size)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - message size {body_size} is larger than configured max size {max_size}"
    )
    # The connection survives, and a message of exactly the maximum goes through.
    channel = connection.channel()
    channel.confirm_delivery()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"y" * max_size)
    assert channel.queue_declare(queue, passive=True).method.message_count == 1
    connection.close()


def test_raised_max_message_size_takes_the_20_mib_messages_3x_took(start_broker: StartBroker) -> None:
    """The README's way to raise the limit: LAPINE_MAX_MESSAGE_SIZE (or the TOML key)."""
    config = Config()
    config.update_from_env({"LAPINE_MAX_MESSAGE_SIZE": str(128 * 1024 * 1024)})
    broker = start_broker(max_message_size=config.max_message_size)
    connection = _connect(broker)
    channel = connection.channel()
    channel.confirm_delivery()
    queue = channel.queue_declare("", exclusive=True).method.queue
    body = b"m" * (20 * 1024 * 1024)
    channel.basic_publish("", queue, body)
    method, _properties, received = channel.basic_get(queue, auto_ack=True)
    assert method is not None and received == body
    connection.close()


def test_rest_of_a_refused_message_is_dropped_raw(start_broker: StartBroker) -> None:
    """The body frames after a refused content header are dropped; other channels carry on."""
    broker = start_broker(max_message_size=100)
    client = RawAMQP(broker.url)
    client.handshake()
    client.open_channel(1)
    client.open_channel(2)
    client.send_method(1, pika.spec.Basic.Publish(exchange="", routing_key="nowhere"))
    client.send_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 300, 0))
    channel, close = client.recv_method()
    assert channel == 1 and isinstance(close, pika.spec.Channel.Close)
    assert close.reply_code == 406
    for _ in range(3):
        client.send_frame(FRAME_BODY, 1, b"z" * 100)
    client.send_method(1, pika.spec.Channel.CloseOk())
    client.send_method(2, pika.spec.Queue.Declare(queue="", exclusive=True))
    assert isinstance(client.recv_method()[1], pika.spec.Queue.DeclareOk)
    client.close()


# --- frame_max and channel_max settings -----------------------------------------------------------


def test_frame_max_setting(start_broker: StartBroker) -> None:
    broker = start_broker(frame_max=8192)
    client = RawAMQP(broker.url)
    client.start()
    tune = client.login()
    assert tune.frame_max == 8192
    client.tune_and_open(tune)
    client.send(struct.pack(">BHI", FRAME_METHOD, 1, 9000))
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (
        501,
        "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,9000,8184}",
    )
    client.close()
    # pika negotiates the lower value and splits a large body to fit.
    connection = _connect(broker)
    assert connection._impl.params.frame_max == 8192
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, bytes(range(256)) * 200)
    assert channel.basic_get(queue, auto_ack=True)[2] == bytes(range(256)) * 200
    connection.close()


def test_channel_max_setting(start_broker: StartBroker) -> None:
    broker = start_broker(channel_max=3)
    connection = _connect(broker)
    assert connection._impl.params.channel_max == 3  # pika itself then refuses a 4th channel
    connection.close()
    client = RawAMQP(broker.url)
    client.start()
    tune = client.login()
    assert tune.channel_max == 3
    client.tune_and_open(tune)
    for number in (1, 2, 3):
        client.open_channel(number)
    client.send_method(4, pika.spec.Channel.Open())
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (
        530,
        "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)",
    )
    client.close()


# --- connections --------------------------------------------------------------------------------


def test_node_connection_max(start_broker: StartBroker) -> None:
    broker = start_broker(connection_max=2)
    first, second = _connect(broker), _connect(broker)
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        _connect(broker)
    assert "(530) 'NOT_ALLOWED - connection refused: node connection limit (2) is reached'" in str(info.value)
    # A freed slot can be taken again.
    first.close()
    third = _connect(broker)
    assert third.is_open and second.is_open
    third.close()
    second.close()


def test_vhost_max_connections(start_broker: StartBroker) -> None:
    broker = start_broker()
    _set_vhost_limit(broker, "max-connections", 1)
    first = _connect(broker)
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        _connect(broker)
    expected = "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (1) is reached"
    assert expected in str(info.value)
    first.close()
    _set_vhost_limit(broker, "max-connections", 0)
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        _connect(broker)
    assert "connection limit (0) is reached" in str(info.value)
    _set_vhost_limit(broker, "max-connections", -1)
    _connect(broker).close()


def test_node_limit_is_checked_at_connection_open_raw(start_broker: StartBroker) -> None:
    broker = start_broker(connection_max=1)
    holder = _connect(broker)
    client = RawAMQP(broker.url)
    client.start()
    tune = client.login()
    client.send_method(0, pika.spec.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max))
    client.send_method(0, pika.spec.Connection.Open(virtual_host="/"))
    close = client.expect_connection_close()
    assert (close.reply_code, close.class_id, close.method_id) == (530, 10, 40)
    assert client.is_closed_by_broker()
    holder.close()


# --- consumers per channel ----------------------------------------------------------------------


def test_consumer_max_per_channel(start_broker: StartBroker) -> None:
    broker = start_broker(consumer_max_per_channel=2)
    connection = _connect(broker)
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    for _ in range(2):
        channel.basic_consume(queue, lambda *args: None)
    # Another channel counts its own consumers; a cancelled consumer frees its place.
    other = connection.channel()
    tag = other.basic_consume(queue, lambda *args: None)
    other.basic_cancel(tag)
    for _ in range(2):
        other.basic_consume(queue, lambda *args: None)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.basic_consume(queue, lambda *args: None)
    assert (info.value.reply_code, info.value.reply_text) == (
        530,
        "NOT_ALLOWED - reached maximum (2) of consumers per channel",
    )


def test_consumers_per_channel_are_unlimited_by_default(start_broker: StartBroker) -> None:
    connection = _connect(start_broker())
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    for _ in range(300):
        channel.basic_consume(queue, lambda *args: None)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 300
    connection.close()


# --- queues per vhost ---------------------------------------------------------------------------


def test_vhost_max_queues(start_broker: StartBroker) -> None:
    broker = start_broker()
    _set_vhost_limit(broker, "max-queues", 2)
    connection = _connect(broker)
    channel = connection.channel()
    channel.queue_declare("q1", auto_delete=True)
    channel.queue_declare("q2", auto_delete=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("q3", auto_delete=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) is reached",
    )
    channel = connection.channel()
    channel.queue_declare("q1", auto_delete=True)  # an existing queue: fine at the limit
    channel.queue_declare("q1", passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)
    assert info.value.reply_text.startswith("PRECONDITION_FAILED - cannot declare queue 'amq.gen-")
    assert info.value.reply_text.endswith("': queue limit in vhost '/' (2) is reached")
    channel = connection.channel()
    channel.queue_delete("q2")
    channel.queue_declare("q3", auto_delete=True)
    connection.close()


def test_vhost_max_queues_zero(start_broker: StartBroker) -> None:
    broker = start_broker()
    _set_vhost_limit(broker, "max-queues", 0)
    connection = _connect(broker)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        connection.channel().queue_declare("zz")
    assert (
        info.value.reply_text
        == "PRECONDITION_FAILED - cannot declare queue 'zz': queue limit in vhost '/' (0) is reached"
    )
    connection.close()


# --- names ---------------------------------------------------------------------------------------


def _declare_raw(client: RawAMQP, class_method: tuple[int, int], name: bytes, rest: bytes) -> object:
    payload = struct.pack(">HHH", *class_method, 0) + bytes([len(name)]) + name + rest
    client.send_frame(FRAME_METHOD, 1, payload)
    return client.recv_method()[1]


_QUEUE = ((50, 10), bytes([0b01000]) + struct.pack(">I", 0))  # auto-delete, no arguments
_EXCHANGE = ((40, 10), b"\x06direct" + bytes([0b00100]) + struct.pack(">I", 0))


@pytest.mark.parametrize(
    ("kind", "name"), [(_QUEUE, b"q" * 255), (_EXCHANGE, b"x" * 255), (_QUEUE, b"q" * 253 + "é".encode())]
)
def test_longest_names_are_accepted(broker: BrokerThread, kind: tuple[tuple[int, int], bytes], name: bytes) -> None:
    client = RawAMQP(broker.url)
    client.handshake()
    client.open_channel(1)
    reply = _declare_raw(client, kind[0], name, kind[1])
    assert isinstance(reply, pika.spec.Queue.DeclareOk | pika.spec.Exchange.DeclareOk)
    if isinstance(reply, pika.spec.Queue.DeclareOk):
        assert reply.queue.encode() == name
    client.close()


@pytest.mark.parametrize("kind", [_QUEUE, _EXCHANGE])
def test_invalid_utf8_name(broker: BrokerThread, kind: tuple[tuple[int, int], bytes]) -> None:
    client = RawAMQP(broker.url)
    client.handshake()
    client.open_channel(1)
    reply = _declare_raw(client, kind[0], b"\xff\xfeq", kind[1])
    assert isinstance(reply, pika.spec.Connection.Close)
    assert (reply.reply_code, reply.reply_text) == (501, "FRAME_ERROR - Malformed UTF-8 in shortstr")
    client.close()


def test_name_length_octet_past_the_frame(broker: BrokerThread) -> None:
    """A shortstr whose length octet promises more than the frame holds: a decode error, no crash."""
    client = RawAMQP(broker.url)
    client.handshake()
    client.open_channel(1)
    client.send_frame(FRAME_METHOD, 1, struct.pack(">HHH", 50, 10, 0) + b"\xffabc")
    close = client.expect_connection_close()
    assert close.reply_code == 501 and close.reply_text.startswith("FRAME_ERROR - cannot decode")
    client.close()


def test_empty_and_odd_names(broker: BrokerThread) -> None:
    connection = _connect(broker)
    channel = connection.channel()
    assert channel.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
    for name in ("  ", "a\x00b", "ünï cödé"):
        assert channel.queue_declare(name, auto_delete=True).method.queue == name
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.exchange_declare("", "direct")
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    )
    connection.close()


# --- table nesting ------------------------------------------------------------------------------


def _nested_table(depth: int) -> bytes:
    """{"a": {"a": ... {}}}, ``depth`` tables deep, as a field table with its size prefix."""
    inner = struct.pack(">I", 0)
    for _ in range(depth):
        entry = b"\x01aF" + inner
        inner = struct.pack(">I", len(entry)) + entry
    return inner


@pytest.mark.parametrize(("depth", "accepted"), [(MAX_TABLE_DEPTH - 1, True), (MAX_TABLE_DEPTH, False), (5000, False)])
def test_table_nesting_depth(broker: BrokerThread, depth: int, accepted: bool) -> None:
    """RabbitMQ recurses without a limit; Python cannot, so tables nest at most MAX_TABLE_DEPTH
    deep (far beyond what clients send) and deeper ones are refused as undecodable, never a crash."""
    client = RawAMQP(broker.url)
    client.handshake()
    client.open_channel(1)
    payload = struct.pack(">HHH", 50, 10, 0) + b"\x05nestq" + bytes([0b01000]) + _nested_table(depth)
    client.send_frame(FRAME_METHOD, 1, payload)
    reply = client.recv_method()[1]
    if accepted:
        assert isinstance(reply, pika.spec.Queue.DeclareOk)
    else:
        assert isinstance(reply, pika.spec.Connection.Close)
        assert (reply.reply_code, reply.class_id, reply.method_id) == (501, 50, 10)
        assert reply.reply_text.startswith("FRAME_ERROR - cannot decode <<")
    client.close()
