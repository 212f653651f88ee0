"""Queue arguments that become shortstrs on the wire must fit one: 255 octets of UTF-8.

x-dead-letter-exchange and x-dead-letter-routing-key arrive as longstrs, but the dead-lettered
copy is delivered with them as its exchange and routing key. RabbitMQ accepts longer ones and
then cannot deliver what dies in the queue; Lapine refuses them at declare, in the words
RabbitMQ uses for its other bad arguments.
"""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from tests.helpers.amqp import BlockingChannel, Names, expect_channel_error

PRECONDITION_FAILED = 406


@pytest.fixture(autouse=True)
def _lapine_only(against_rabbitmq: bool) -> None:
    if against_rabbitmq:
        pytest.skip("RabbitMQ accepts these arguments, and then cannot deliver the dead-lettered copies")


@pytest.mark.parametrize(
    ("key", "value", "octets"),
    [
        ("x-dead-letter-routing-key", "k" * 300, 300),
        ("x-dead-letter-routing-key", "é" * 128, 256),
        ("x-dead-letter-exchange", "x" * 256, 256),
    ],
    ids=["routing-key-300", "routing-key-multibyte-256", "exchange-256"],
)
def test_dead_letter_names_longer_than_a_shortstr_are_refused(
    channel: BlockingChannel, names: Names, key: str, value: str, octets: int
) -> None:
    queue = names.queue("dlx-args")
    arguments = {"x-dead-letter-exchange": "dlx", key: value}
    text = f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{queue}' in vhost '/': {{too_long,{octets}}}"
    with expect_channel_error(PRECONDITION_FAILED, text):
        channel.queue_declare(queue, arguments=arguments)


def test_dead_letter_names_of_255_octets_are_accepted(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("dlx-args")
    exchange = (names.exchange("d") + "x" * 255)[:255]
    key = "é" * 127 + "k"  # 255 octets
    channel.exchange_declare(exchange, "fanout", auto_delete=True)
    dead = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(dead, exchange)
    channel.queue_declare(queue, arguments={"x-dead-letter-exchange": exchange, "x-dead-letter-routing-key": key})
    channel.basic_publish("", queue, b"dies")
    method, _props, _body = channel.basic_get(queue)
    channel.basic_reject(method.delivery_tag, requeue=False)
    for _ in range(50):
        method, _props, body = channel.basic_get(dead, auto_ack=True)
        if method is not None:
            break
        channel.connection.sleep(0.1)
    assert (method.exchange, method.routing_key, body) == (exchange, key, b"dies")


def test_pika_consumer_unharmed_after_a_refused_declare(
    connection: pika.BlockingConnection, channel: BlockingChannel, names: Names
) -> None:
    queue = names.queue("dlx-args")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        connection.channel().queue_declare(
            queue, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "k" * 300}
        )
    channel.queue_declare(queue)
    channel.basic_publish("", queue, b"fine")
    assert channel.basic_get(queue, auto_ack=True)[2] == b"fine"
