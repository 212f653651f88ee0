"""Queue types in the model: which arguments each type takes, as RabbitMQ 4.x checks them at
declare and consume, and how the type of an existing queue is compared on a redeclare."""

from __future__ import annotations

from typing import Any

import pytest

from lapine.amqp import spec
from lapine.testing.model import ModelBroker, ModelClient


def refused_declare(client: ModelClient, name: str = "q", durable: bool = True, **arguments: Any) -> str:
    client.method(1, spec.QueueDeclare(queue=name, durable=durable, arguments=arguments))
    close = client.channel_closed()
    assert close.reply_code == 406
    return close.reply_text


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("x-delivery-limit", 3),
        ("x-dead-letter-strategy", "at-least-once"),
        ("x-max-age", "1D"),
        ("x-initial-cluster-size", 3),
    ],
)
def test_a_classic_queue_refuses_an_argument_of_another_type(client: ModelClient, argument: str, value: Any) -> None:
    assert refused_declare(client, **{argument: value}) == (
        f"PRECONDITION_FAILED - invalid arg '{argument}' for queue 'q' in vhost '/' of queue type rabbit_classic_queue"
    )


def test_an_argument_no_type_knows_is_ignored(client: ModelClient) -> None:
    client.declare_queue("q", **{"x-my-own-setting": 1})
    assert client.broker.vhosts["/"].queues["q"].arguments == {"x-my-own-setting": 1}


def test_the_value_of_an_argument_of_another_type_is_not_looked_at(client: ModelClient) -> None:
    # Only the type's own arguments have their values checked; a foreign one is refused as foreign.
    assert refused_declare(client, **{"x-max-age": "never"}).endswith("of queue type rabbit_classic_queue")


def test_an_unknown_queue_type_is_refused_with_rabbitmqs_text(client: ModelClient) -> None:
    assert refused_declare(client, **{"x-queue-type": "fifo"}) == (
        "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'fifo'\""
    )


def test_x_queue_type_must_be_a_string(client: ModelClient) -> None:
    assert refused_declare(client, **{"x-queue-type": 1}) == (
        "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'q' in vhost '/': {unacceptable_type,signedint}"
    )


def test_x_queue_version_other_than_2_is_refused(client: ModelClient) -> None:
    assert refused_declare(client, **{"x-queue-version": 1}) == (
        "PRECONDITION_FAILED - invalid arg 'x-queue-version' for queue 'q' in vhost '/': "
        "\"unsupported queue version '1'\""
    )
    client.open_channel(2)
    client.declare_queue("v2", channel=2, **{"x-queue-version": 2})


def test_a_redeclare_naming_classic_matches_a_queue_declared_without_a_type(client: ModelClient) -> None:
    # RabbitMQ 4.x records every queue's type, so "classic" and no type are the same declare.
    client.declare_queue("q", durable=True)
    client.declare_queue("q", durable=True, **{"x-queue-type": "classic"})
    client.declare_queue("q", durable=True)


def test_the_vhost_default_type_classic_gives_classic_queues(model: ModelBroker) -> None:
    model.broker.vhosts["/"].metadata.default_queue_type = "classic"
    client = model.client()
    client.declare_queue("q", durable=True)
    queue = model.queue("q")
    assert queue.type_name == "classic"
    assert "x-queue-type" not in queue.arguments


def test_a_consume_argument_of_another_type_is_refused(client: ModelClient) -> None:
    client.declare_queue("q")
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="c", arguments={"x-stream-offset": "first"}))
    close = client.channel_closed()
    assert (close.reply_code, close.reply_text) == (
        406,
        "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 'q' in vhost '/' "
        "of queue type rabbit_classic_queue",
    )


def test_x_priority_must_be_an_integer(client: ModelClient) -> None:
    client.declare_queue("q")
    client.method(1, spec.BasicConsume(queue="q", consumer_tag="c", arguments={"x-priority": "high"}))
    close = client.channel_closed()
    assert close.reply_text == (
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q' in vhost '/': \"expected integer, got longstr\""
    )
