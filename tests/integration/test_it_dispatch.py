"""Which consumer gets the next message: RabbitMQ's round-robin among the consumers with room.

Observed on RabbitMQ 3.10.8, and asserted here (rabbit_queue_consumers): consumers take turns in a
ring, the one served goes to the tail; a consumer found without room when its turn comes leaves
the ring, and an ack that opens its window puts it back at the tail. So after a backlog, consumers
are served in the order their windows opened, not in the order they subscribed.
"""

from __future__ import annotations

from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from tests.helpers.amqp import Names, wait_until


class Recorder:
    """Deliveries per consumer name, not acknowledged until the test says so."""

    def __init__(self, channel: BlockingChannel, queue: str) -> None:
        self.channel = channel
        self.queue = queue
        self.got: list[tuple[str, bytes]] = []
        self.tags: dict[bytes, int] = {}

    def consume(self, name: str, **kwargs: Any) -> None:
        def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            self.got.append((name, body))
            self.tags[body] = method.delivery_tag

        self.channel.basic_consume(self.queue, callback, consumer_tag=name, **kwargs)

    def ack(self, *bodies: bytes) -> None:
        for body in bodies:
            self.channel.basic_ack(self.tags[body])
        # A synchronous round trip on the same channel: the queue has seen the acks before the
        # test publishes again (on another channel, with no ordering against this one).
        self.channel.queue_declare(self.queue, passive=True)


def test_consumers_whose_window_opened_are_served_in_that_order(
    connection: pika.BlockingConnection, names: Names
) -> None:
    publisher = connection.channel()
    queue = names.queue()
    publisher.queue_declare(queue)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    consumers = Recorder(channel, queue)
    for name in ("a", "b", "c"):
        consumers.consume(name)
    for n in range(1, 5):
        publisher.basic_publish("", queue, f"m{n}".encode())
    assert wait_until(connection, lambda: len(consumers.got) == 3)
    assert consumers.got == [("a", b"m1"), ("b", b"m2"), ("c", b"m3")]
    consumers.ack(b"m2")  # b's window opens: the waiting m4 is b's
    assert wait_until(connection, lambda: len(consumers.got) == 4)
    assert consumers.got[3] == ("b", b"m4")
    consumers.ack(b"m1", b"m3")  # a, then c, get room back while the queue is empty
    publisher.basic_publish("", queue, b"m5")
    publisher.basic_publish("", queue, b"m6")
    assert wait_until(connection, lambda: len(consumers.got) == 6)
    # b, full, is passed over; a regained room before c.
    assert consumers.got[4:] == [("a", b"m5"), ("c", b"m6")]


def test_a_higher_priority_consumer_whose_window_opens_goes_first(
    connection: pika.BlockingConnection, names: Names
) -> None:
    publisher = connection.channel()
    queue = names.queue()
    publisher.queue_declare(queue)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    consumers = Recorder(channel, queue)
    consumers.consume("low1", arguments={"x-priority": 1})
    consumers.consume("high", arguments={"x-priority": 5})
    consumers.consume("low2", arguments={"x-priority": 1})
    for n in range(1, 4):
        publisher.basic_publish("", queue, f"m{n}".encode())
    assert wait_until(connection, lambda: len(consumers.got) == 3)
    assert consumers.got == [("high", b"m1"), ("low1", b"m2"), ("low2", b"m3")]
    consumers.ack(b"m2", b"m3", b"m1")  # the high one's window opens last
    for n in range(4, 7):
        publisher.basic_publish("", queue, f"m{n}".encode())
    assert wait_until(connection, lambda: len(consumers.got) == 6)
    assert consumers.got[3:] == [("high", b"m4"), ("low1", b"m5"), ("low2", b"m6")]


def test_global_prefetch_serves_the_channels_consumers_in_turn(
    connection: pika.BlockingConnection, names: Names
) -> None:
    publisher = connection.channel()
    queue = names.queue()
    publisher.queue_declare(queue)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1, global_qos=True)
    consumers = Recorder(channel, queue)
    for name in ("a", "b", "c"):
        consumers.consume(name)
    for n in range(1, 5):
        publisher.basic_publish("", queue, f"m{n}".encode())
    expected = [("a", b"m1"), ("b", b"m2"), ("c", b"m3"), ("a", b"m4")]
    for count in range(1, 5):
        assert wait_until(connection, lambda count=count: len(consumers.got) == count)  # type: ignore[misc]
        assert consumers.got == expected[:count]
        consumers.ack(consumers.got[-1][1])
