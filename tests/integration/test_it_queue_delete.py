"""Deleting a queue that has consumers: what each connection sees, and in which order.

Recorded from RabbitMQ 3.10 with the raw frames below: the deleting channel gets queue.delete-ok
and then each consumer of the queue gets basic.cancel (when its client announced
consumer_cancel_notify), on the deleting channel itself, on another channel of the same connection
(where RabbitMQ's order varies) or on another connection. py-amqp (and so kombu) depends on that
order: a basic.cancel that comes before delete-ok is raised from queue_delete as ConsumerCancelled.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
import kombu
import pika.spec
import pytest

from tests.helpers.amqp import Names
from tests.helpers.raw_amqp import RawAMQP

CAPABILITIES = {"product": "raw_amqp", "capabilities": {"consumer_cancel_notify": True}}


def open_raw(raw: Callable[..., RawAMQP], channels: int) -> RawAMQP:
    client = raw()
    client.start()
    client.tune_and_open(client.login(client_properties=CAPABILITIES))
    for channel in range(1, channels + 1):
        client.open_channel(channel)
    return client


def methods_until_quiet(client: RawAMQP) -> list[tuple[int, str]]:
    """Every method the broker sends until it has been silent for a moment."""
    seen: list[tuple[int, str]] = []
    while True:
        try:
            channel, method = client.recv_method(timeout=0.5)
        except TimeoutError:
            return seen
        seen.append((channel, method.NAME))


def consume(client: RawAMQP, queue: str) -> None:
    client.send_method(1, pika.spec.Queue.Declare(queue=queue))
    client.expect(pika.spec.Queue.DeclareOk)
    client.send_method(1, pika.spec.Basic.Consume(queue=queue, consumer_tag="ctag"))
    client.expect(pika.spec.Basic.ConsumeOk)


def test_delete_on_the_consuming_channel_answers_before_cancelling(
    raw: Callable[..., RawAMQP], names: Names
) -> None:
    queue = names.queue("del-same")
    consumer = open_raw(raw, 1)
    consume(consumer, queue)
    consumer.send_method(1, pika.spec.Queue.Delete(queue=queue))
    assert methods_until_quiet(consumer) == [(1, "Queue.DeleteOk"), (1, "Basic.Cancel")]


def test_delete_on_another_channel_answers_and_cancels(raw: Callable[..., RawAMQP], names: Names) -> None:
    queue = names.queue("del-other-channel")
    consumer = open_raw(raw, 2)
    consume(consumer, queue)
    consumer.send_method(2, pika.spec.Queue.Delete(queue=queue))
    # Two channels are two processes in RabbitMQ: mostly delete-ok comes first (Lapine's order),
    # but not always, so only the frames are checked here.
    assert sorted(methods_until_quiet(consumer)) == [(1, "Basic.Cancel"), (2, "Queue.DeleteOk")]


def test_delete_from_another_connection_cancels_the_consumer(raw: Callable[..., RawAMQP], names: Names) -> None:
    queue = names.queue("del-other-connection")
    consumer = open_raw(raw, 1)
    deleter = open_raw(raw, 1)
    consume(consumer, queue)
    deleter.send_method(1, pika.spec.Queue.Delete(queue=queue))
    assert methods_until_quiet(deleter) == [(1, "Queue.DeleteOk")]
    assert methods_until_quiet(consumer) == [(1, "Basic.Cancel")]


def test_delete_without_cancel_notify_sends_no_cancel(raw: Callable[..., RawAMQP], names: Names) -> None:
    queue = names.queue("del-no-notify")
    consumer = raw()
    consumer.handshake()  # client properties without capabilities
    consumer.open_channel(1)
    consume(consumer, queue)
    consumer.send_method(1, pika.spec.Queue.Delete(queue=queue))
    assert methods_until_quiet(consumer) == [(1, "Queue.DeleteOk")]


@pytest.fixture
def py_amqp(amqp_url: str) -> Iterator[amqp.Connection]:
    parts = urlsplit(amqp_url)
    connection = amqp.Connection(
        f"{parts.hostname}:{parts.port}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=unquote(parts.path[1:]) or "/",
    )
    connection.connect()
    yield connection
    with contextlib.suppress(Exception):
        connection.close()


def test_py_amqp_queue_delete_on_the_consuming_channel_returns(py_amqp: amqp.Connection, names: Names) -> None:
    queue = names.queue("del-py-amqp")
    channel = py_amqp.channel()
    channel.queue_declare(queue)
    channel.basic_publish(amqp.Message(b"ready"), routing_key=queue)
    channel.basic_publish(amqp.Message(b"ready"), routing_key=queue)
    channel.basic_qos(0, 1, False)
    tag = channel.basic_consume(queue, callback=lambda message: None)
    py_amqp.drain_events(timeout=2)  # one delivery; the other message stays ready
    assert channel.queue_delete(queue) == 1  # raised ConsumerCancelled when basic.cancel came first
    cancelled: list[str] = []
    channel.cancel_callbacks[tag] = cancelled.append
    with pytest.raises(socket.timeout):
        while True:
            py_amqp.drain_events(timeout=0.5)
    assert cancelled == [tag]


def test_kombu_consumer_deleting_its_own_queue_is_cancelled_after(amqp_url: str, names: Names) -> None:
    name = names.queue("del-kombu")
    with kombu.Connection(amqp_url, transport="pyamqp") as connection:
        channel = connection.channel()
        queue = kombu.Queue(name, channel=channel)
        queue.declare()
        received: list[Any] = []
        with kombu.Consumer(channel, queues=[queue], callbacks=[lambda body, message: received.append(body)]):
            queue.delete()  # raised ConsumerCancelled when basic.cancel came before delete-ok
            with pytest.raises(amqp.exceptions.ConsumerCancelled):
                connection.drain_events(timeout=2)
