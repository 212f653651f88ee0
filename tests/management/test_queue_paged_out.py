"""A queue's backlog past its window is on disk only: the API says so in RabbitMQ's fields.

RabbitMQ (3.10, checked with a lazy queue) splits a queue's messages into RAM and paged out:
messages = messages_ram + messages_paged_out, messages_ready = messages_ready_ram + paged out,
and the same for bytes: message_bytes = message_bytes_ram + message_bytes_paged_out, with
message_bytes_ready counting ready messages wherever they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from lapine.broker.queue_storage import StoreQueueStorage
from lapine.testing import BrokerThread
from tests.management.client import Http
from tests.management.conftest import amqp_params

WINDOW = 10
BODY = 100


@pytest.fixture(scope="module")
def small_window_broker() -> Iterator[BrokerThread]:
    with BrokerThread(queue_window=WINDOW) as broker:
        yield broker


@pytest.mark.parametrize("durable", [True, False])
def test_paged_out_messages_and_bytes(small_window_broker: BrokerThread, durable: bool) -> None:
    name = f"paged-{durable}"
    connection = pika.BlockingConnection(amqp_params(small_window_broker.url))
    channel = connection.channel()
    channel.queue_declare(name, durable=durable)
    channel.confirm_delivery()
    for _ in range(25):
        channel.basic_publish("", name, b"p" * BODY, pika.BasicProperties(delivery_mode=2))
    method, _props, _body = channel.basic_get(name)  # one unacknowledged
    assert method is not None
    info = Http(small_window_broker.management_url).get(f"/api/queues/%2F/{name}").json
    assert (info["messages"], info["messages_ready"], info["messages_unacknowledged"]) == (25, 24, 1)
    paged = info["messages_paged_out"]
    assert paged >= 25 - 1 - WINDOW
    assert info["messages_ram"] + paged == 25
    assert info["messages_ready_ram"] + paged == 24
    assert info["messages_unacknowledged_ram"] == 1
    assert info["message_bytes_paged_out"] == paged * BODY
    assert (info["message_bytes"], info["message_bytes_ready"], info["message_bytes_unacknowledged"]) == (
        25 * BODY,
        24 * BODY,
        BODY,
    )
    assert info["message_bytes_ram"] == info["messages_ram"] * BODY
    channel.queue_delete(name)
    connection.close()


def test_get_messages_reads_a_paged_backlog_without_blocking_reads(
    small_window_broker: BrokerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's "get messages" pages the backlog in through the store's async reads, as basic.get
    does: a blocking read on the event loop would hold every connection meanwhile."""

    def blocking_read(*_args: object) -> None:
        raise AssertionError("a blocking store read on the event loop")

    monkeypatch.setattr(StoreQueueStorage, "read", blocking_read)
    name = "paged-get"
    connection = pika.BlockingConnection(amqp_params(small_window_broker.url))
    channel = connection.channel()
    channel.queue_declare(name, durable=True)
    channel.confirm_delivery()
    for number in range(3 * WINDOW):
        channel.basic_publish("", name, b"%d" % number, pika.BasicProperties(delivery_mode=2))
    request = {"count": 3 * WINDOW, "ackmode": "ack_requeue_false", "encoding": "auto"}
    reply = Http(small_window_broker.management_url).post(f"/api/queues/%2F/{name}/get", request)
    assert reply.status == 200
    assert [int(message["payload"]) for message in reply.json] == list(range(3 * WINDOW))
    assert channel.queue_declare(name, passive=True).method.message_count == 0
    channel.queue_delete(name)
    connection.close()
