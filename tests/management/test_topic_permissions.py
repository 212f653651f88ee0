"""Topic permissions: /api/topic-permissions, and their enforcement on a topic exchange's routing keys.

Recorded from RabbitMQ 3.10.8 (run these against it with MANAGEMENT_URL and AMQP_URL): a topic
permission is per user, vhost and exchange, with write and read regular expressions ({username}
and {vhost} expanded, "" meaning "^$"). A publish to that topic exchange whose routing key the
write pattern does not match closes the channel with 403; so does a queue.bind, queue.unbind or
exchange.bind from it whose routing key the read pattern does not match. Other exchanges, and
users without a topic permission there, are not affected. Current RabbitMQ words the refusal
"write access to topic ..." ("read access ..."), 3.x without the first word, and current RabbitMQ
also checks the CC and BCC routing keys of a publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.management.client import Http
from tests.management.conftest import url_for


@pytest.fixture(scope="module")
def current_rabbitmq(api: Http) -> bool:
    """Lapine follows current RabbitMQ; a RabbitMQ 3.x under test answers as 3.x did."""
    overview = api.get("/api/overview").json
    return overview.get("product_name") != "RabbitMQ" or not overview["rabbitmq_version"].startswith("3.")


@pytest.fixture
def topic_user(api: Http, unique: Callable[[str], str]) -> Iterator[str]:
    name = unique("topic-user")
    assert api.put(f"/api/users/{name}", {"password": name, "tags": ""}).status == 201
    assert api.put(f"/api/permissions/%2F/{name}", {"configure": ".*", "write": ".*", "read": ".*"}).status == 201
    yield name
    api.delete(f"/api/users/{name}")


def refusal(kind: str, key: str, exchange: str, user: str, current: bool) -> str:
    prefix = f"{kind} " if current else ""
    where = f"in exchange '{exchange}' in vhost '/'"
    return f"ACCESS_REFUSED - {prefix}access to topic '{key}' {where} refused for user '{user}'"


def test_topic_permissions_api(api: Http, topic_user: str) -> None:
    path = f"/api/topic-permissions/%2F/{topic_user}"
    assert api.get(path).status == 404
    first = {"exchange": "amq.topic", "write": "^w\\.", "read": "^r\\.{username}"}
    assert api.put(path, first).status == 201
    assert api.put(path, {"exchange": "amq.topic", "write": "", "read": ""}).status == 204
    assert api.put(path, {"exchange": "amq.direct", "write": "a", "read": "b"}).status == 204
    entries = [
        {"user": topic_user, "vhost": "/", "exchange": "amq.topic", "write": "", "read": ""},
        {"user": topic_user, "vhost": "/", "exchange": "amq.direct", "write": "a", "read": "b"},
    ]
    assert sorted(api.get(path).json, key=str) == sorted(entries, key=str)
    assert sorted(api.get(f"/api/users/{topic_user}/topic-permissions").json, key=str) == sorted(entries, key=str)
    mine = [e for e in api.get("/api/topic-permissions").json if e["user"] == topic_user]
    assert sorted(mine, key=str) == sorted(entries, key=str)
    in_vhost = [e for e in api.get("/api/vhosts/%2F/topic-permissions").json if e["user"] == topic_user]
    assert [list(e) for e in in_vhost] == [["vhost", "user", "exchange", "write", "read"]] * 2
    assert api.delete(f"{path}/amq.direct").status == 204
    assert api.delete(f"{path}/amq.direct").status == 204  # 404 only once the user has none there
    assert [e["exchange"] for e in api.get(path).json] == ["amq.topic"]
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    assert api.delete(path).status == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"exchange": "amq.topic", "write": "x"}, "[{key_missing,read}]"),
        ({"write": "x", "read": "y"}, "[{key_missing,exchange}]"),
    ],
)
def test_topic_permissions_bad_requests(api: Http, topic_user: str, body: dict[str, str], reason: str) -> None:
    reply = api.put(f"/api/topic-permissions/%2F/{topic_user}", body)
    assert (reply.status, reply.json) == (400, {"error": "bad_request", "reason": reason})


def test_topic_permissions_for_a_missing_user_or_vhost(api: Http, topic_user: str) -> None:
    body = {"exchange": "amq.topic", "write": "x", "read": "y"}
    for path in (f"/api/topic-permissions/no-such-vhost/{topic_user}", "/api/topic-permissions/%2F/no-such-user"):
        reply = api.put(path, body)
        assert (reply.status, reply.json) == (400, {"error": "bad_request", "reason": "vhost_or_user_not_found"})


def test_an_invalid_pattern_is_refused(api: Http, topic_user: str) -> None:
    reply = api.put(f"/api/topic-permissions/%2F/{topic_user}", {"exchange": "amq.topic", "write": "(", "read": ""})
    assert reply.status == 400 and reply.json["error"] == "bad_request" and "invalid_regexp" in str(reply.json)


@pytest.fixture
def limited(
    api: Http, amqp_url: str, topic_user: str, connect: Callable[..., pika.BlockingConnection]
) -> tuple[str, Any]:
    """The user with write "^allowed\\." and read "^r\\.{username}\\." on amq.topic, connected."""
    body = {"exchange": "amq.topic", "write": "^allowed\\.", "read": "^r\\.{username}\\."}
    assert api.put(f"/api/topic-permissions/%2F/{topic_user}", body).status == 201
    return topic_user, connect(url_for(amqp_url, topic_user, topic_user))


def test_publish_needs_the_write_pattern(
    limited: tuple[str, Any], unique: Callable[[str], str], current_rabbitmq: bool
) -> None:
    user, connection = limited
    channel = connection.channel()
    queue = channel.queue_declare(unique("tq"), exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"r.{user}.#")
    channel.basic_publish("amq.topic", "allowed.x", b"fine")
    channel.basic_publish("amq.direct", "denied.x", b"other exchanges are not concerned")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish("amq.topic", "denied.x", b"refused")
        channel.queue_declare(queue, passive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        refusal("write", "denied.x", "amq.topic", user, current_rabbitmq),
    )
    assert connection.is_open


def test_other_topic_exchanges_are_not_concerned(limited: tuple[str, Any], unique: Callable[[str], str]) -> None:
    _user, connection = limited
    channel = connection.channel()
    exchange = unique("tx")
    channel.exchange_declare(exchange, "topic", auto_delete=True)
    queue = channel.queue_declare(unique("tq"), exclusive=True).method.queue
    channel.queue_bind(queue, exchange, "anything.#")
    channel.basic_publish(exchange, "anything.goes", b"m")
    _method, _props, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"m"


@pytest.mark.parametrize("bind", ["queue.bind", "queue.unbind", "exchange.bind"])
def test_bindings_need_the_read_pattern(
    limited: tuple[str, Any], unique: Callable[[str], str], current_rabbitmq: bool, bind: str
) -> None:
    user, connection = limited
    channel = connection.channel()
    queue = channel.queue_declare(unique("tq"), exclusive=True).method.queue
    exchange = unique("tx")
    channel.exchange_declare(exchange, "topic", auto_delete=True)
    channel.queue_bind(queue, "amq.topic", f"r.{user}.allowed")  # {username} expanded
    attempt = {
        "queue.bind": lambda: channel.queue_bind(queue, "amq.topic", "r.someone-else.x"),
        "queue.unbind": lambda: channel.queue_unbind(queue, "amq.topic", "r.someone-else.x"),
        "exchange.bind": lambda: channel.exchange_bind(exchange, "amq.topic", "r.someone-else.x"),
    }[bind]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        attempt()
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        refusal("read", "r.someone-else.x", "amq.topic", user, current_rabbitmq),
    )


def test_cc_routing_keys_need_the_write_pattern(
    limited: tuple[str, Any], unique: Callable[[str], str], current_rabbitmq: bool
) -> None:
    if not current_rabbitmq:
        pytest.skip("RabbitMQ 3.x checks the routing key only, not CC and BCC")
    user, connection = limited
    channel = connection.channel()
    queue = channel.queue_declare(unique("tq"), exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish("amq.topic", "allowed.x", b"m", pika.BasicProperties(headers={"CC": ["denied.cc"]}))
        channel.queue_declare(queue, passive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        refusal("write", "denied.cc", "amq.topic", user, current_rabbitmq),
    )


def test_a_changed_topic_permission_applies_to_open_channels(
    api: Http, limited: tuple[str, Any], unique: Callable[[str], str]
) -> None:
    user, connection = limited
    channel = connection.channel()
    queue = channel.queue_declare(unique("tq"), exclusive=True).method.queue
    channel.basic_publish("amq.topic", "allowed.x", b"before")
    api.put(f"/api/topic-permissions/%2F/{user}", {"exchange": "amq.topic", "write": "^other\\.", "read": ".*"})
    # (RabbitMQ's channels remember the keys they allowed; a key not used before is checked anew.)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish("amq.topic", "allowed.y", b"no longer")
        channel.queue_declare(queue, passive=True)
    assert info.value.reply_code == 403
    api.delete(f"/api/topic-permissions/%2F/{user}")
    channel = connection.channel()
    channel.basic_publish("amq.topic", "anything", b"no topic permission: only vhost permissions apply")
    channel.queue_declare(queue, passive=True)



def test_http_publish_needs_the_write_pattern(
    api: Http, limited: tuple[str, Any], current_rabbitmq: bool
) -> None:
    user, _connection = limited
    api.put(f"/api/users/{user}", {"password": user, "tags": "management"})
    as_user = api.as_user(user, user)
    message = {"properties": {}, "payload": "m", "payload_encoding": "string"}
    path = "/api/exchanges/%2F/amq.topic/publish"
    assert as_user.post(path, {**message, "routing_key": "allowed.x"}).status == 200
    reply = as_user.post(path, {**message, "routing_key": "denied.x"})
    assert (reply.status, reply.json) == (
        400,
        {"error": "bad_request", "reason": "403 " + refusal("write", "denied.x", "amq.topic", user, current_rabbitmq)},
    )
