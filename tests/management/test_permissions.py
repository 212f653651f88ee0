"""Configure, write and read permissions as RabbitMQ checks them, for users made through the API.

Runs against Lapine, or against a real RabbitMQ with MANAGEMENT_URL and AMQP_URL (see conftest).
Each case grants a user patterns on "/" and checks one AMQP operation refused or allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from tests.management.client import Http, q
from tests.management.conftest import url_for

REFUSED = 403


@pytest.fixture
def user(api: Http, unique: Callable[[str], str]) -> Iterator[str]:
    name = unique("perm-user")
    assert api.put(f"/api/users/{q(name)}", {"password": "pw", "tags": ""}).status == 201
    yield name
    api.delete(f"/api/users/{q(name)}")


@pytest.fixture
def names(api: Http, unique: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
    """names(prefix) -> a fresh "allowed-..." or "denied-..." name, deleted afterwards by guest."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    for name in made:
        api.delete(f"/api/queues/%2F/{q(name)}")
        api.delete(f"/api/exchanges/%2F/{q(name)}")


def grant(api: Http, user: str, configure: str, write: str, read: str) -> None:
    body = {"configure": configure, "write": write, "read": read}
    assert api.put(f"/api/permissions/%2F/{q(user)}", body).status in (201, 204)


def channel_as(connect: Callable[..., Any], amqp_url: str, user: str) -> Any:
    return connect(url_for(amqp_url, user, "pw")).channel()


def refused(action: Callable[[], Any]) -> str:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        action()
    assert closed.value.reply_code == REFUSED
    return str(closed.value.reply_text)


def test_no_permissions_no_vhost(api: Http, amqp_url: str, user: str) -> None:
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(pika.URLParameters(url_for(amqp_url, user, "pw")))


def test_configure_decides_declare_and_delete(api: Http, amqp_url: str, connect: Any, user: str, names: Any) -> None:
    grant(api, user, "^allowed-", ".*", ".*")
    channel = channel_as(connect, amqp_url, user)
    allowed = names("allowed-q")
    channel.queue_declare(allowed)
    channel.exchange_declare(names("allowed-x"), "direct")
    denied = names("denied-q")
    text = refused(lambda: channel.queue_declare(denied))
    assert f"queue '{denied}' in vhost '/' refused for user '{user}'" in text
    channel = channel_as(connect, amqp_url, user)
    refused(lambda: channel.exchange_declare(names("denied-x"), "direct"))
    channel = channel_as(connect, amqp_url, user)
    channel.queue_delete(allowed)
    api.put(f"/api/queues/%2F/{q(denied)}", {"durable": False})
    refused(lambda: channel.queue_delete(denied))


def test_write_decides_publish_and_bind(api: Http, amqp_url: str, connect: Any, user: str, names: Any) -> None:
    queue = names("allowed-q")
    api.put(f"/api/queues/%2F/{q(queue)}", {"durable": False})
    grant(api, user, ".*", "^amq\\.direct$", ".*")
    channel = channel_as(connect, amqp_url, user)
    channel.basic_publish("amq.direct", "anything", b"ok")
    # The queue is the destination of a binding: binding needs write on it.
    text = refused(lambda: channel.queue_bind(queue, "amq.direct", "rk"))
    assert f"queue '{queue}' in vhost '/' refused for user '{user}'" in text
    channel = channel_as(connect, amqp_url, user)
    channel.basic_publish("amq.fanout", "", b"refused")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.queue_declare(queue, passive=True)
    assert closed.value.reply_code == REFUSED
    grant(api, user, ".*", f"^{queue}$", ".*")
    channel = channel_as(connect, amqp_url, user)
    channel.queue_bind(queue, "amq.direct", "rk")


def test_read_decides_get_consume_purge_and_bind_source(
    api: Http, amqp_url: str, connect: Any, user: str, names: Any
) -> None:
    readable, hidden = names("allowed-q"), names("denied-q")
    for queue in (readable, hidden):
        api.put(f"/api/queues/%2F/{q(queue)}", {"durable": False})
    grant(api, user, ".*", ".*", "^allowed-")
    channel = channel_as(connect, amqp_url, user)
    channel.basic_get(readable)
    channel.queue_purge(readable)
    channel.basic_consume(readable, lambda *args: None)
    refused(lambda: channel.basic_get(hidden))
    channel = channel_as(connect, amqp_url, user)
    refused(lambda: channel.basic_consume(hidden, lambda *args: None))
    channel = channel_as(connect, amqp_url, user)
    refused(lambda: channel.queue_purge(hidden))
    channel = channel_as(connect, amqp_url, user)
    # Binding reads from the source exchange: amq.direct does not match ^allowed-.
    text = refused(lambda: channel.queue_bind(readable, "amq.direct", "rk"))
    assert "exchange 'amq.direct' in vhost '/' refused" in text


def test_permissions_change_at_runtime(api: Http, amqp_url: str, connect: Any, user: str, names: Any) -> None:
    grant(api, user, ".*", ".*", ".*")
    channel = channel_as(connect, amqp_url, user)
    channel.basic_publish("amq.direct", "rk", b"before")
    grant(api, user, ".*", "^$", ".*")
    channel = channel_as(connect, amqp_url, user)
    channel.basic_publish("amq.direct", "rk", b"after")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.queue_declare(names("allowed-q"))
    assert closed.value.reply_code == REFUSED
