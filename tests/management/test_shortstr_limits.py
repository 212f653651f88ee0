"""Names, routing keys and policy values that come in over HTTP must fit a shortstr (255 octets).

They all end up on the wire as shortstrs (a routing key and an exchange name in every
basic.deliver, a vhost name in connection.open), where AMQP clients can never send a longer one.
Taken in over HTTP, a longer one used to make every delivery of the message fail, closing
consumers' connections one after another. Each is now refused where it comes in, with 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pika
import pytest

from lapine.testing import BrokerThread
from tests.management.client import Http, q
from tests.management.conftest import amqp_params

LONG = "n" * 300
MULTIBYTE = "é" * 128  # 128 characters, 256 octets


@pytest.fixture
def consumer(broker: BrokerThread, unique: Callable[[str], str]) -> Iterator[tuple[pika.BlockingConnection, str]]:
    """A pika connection consuming (manual acks) from a queue bound to amq.topic with '#'."""
    connection = pika.BlockingConnection(amqp_params(broker.url))
    channel = connection.channel()
    queue = channel.queue_declare(unique("sink"), exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", "#")
    yield connection, queue
    if connection.is_open:
        connection.close()


def _next_body(connection: pika.BlockingConnection, queue: str) -> tuple[str, bytes]:
    channel = connection.channel()
    for method, _props, body in channel.consume(queue, inactivity_timeout=5):
        assert method is not None, "nothing delivered"
        channel.basic_ack(method.delivery_tag)
        channel.cancel()
        return method.routing_key, body
    raise AssertionError("unreachable")


def _publish(http: Http, routing_key: str, payload: str) -> tuple[int, object]:
    message = {"routing_key": routing_key, "payload": payload, "payload_encoding": "string", "properties": {}}
    reply = http.post("/api/exchanges/%2F/amq.topic/publish", message)
    return reply.status, reply.json


def test_http_publish_with_a_300_byte_routing_key_is_refused(
    http: Http, consumer: tuple[pika.BlockingConnection, str]
) -> None:
    connection, queue = consumer
    assert _publish(http, "k" * 300, "poison") == (
        400,
        {"error": "bad_request", "reason": "routing_key should be less than 255 bytes, actually was 300"},
    )
    assert _publish(http, MULTIBYTE, "poison")[0] == 400
    # JSON can carry a lone surrogate, which has no UTF-8 form at all.
    assert _publish(http, "\ud800", "poison") == (
        400,
        {"error": "bad_request", "reason": "routing_key should be valid UTF-8"},
    )
    # The consumer bound with '#' got neither, and goes on with the next message.
    assert _publish(http, "k" * 255, "fine") == (200, {"routed": True})
    assert _next_body(connection, queue) == ("k" * 255, b"fine")
    assert connection.is_open


@pytest.mark.parametrize(
    ("path", "body", "what"),
    [
        ("/api/queues/%2F/{}", {"durable": False}, "queue name"),
        ("/api/exchanges/%2F/{}", {"type": "direct", "durable": False}, "exchange name"),
        ("/api/vhosts/{}", {}, "vhost name"),
        ("/api/users/{}", {"password": "secret", "tags": ""}, "user name"),
    ],
    ids=["queue", "exchange", "vhost", "user"],
)
@pytest.mark.parametrize(("name", "octets"), [(LONG, 300), (MULTIBYTE, 256)], ids=["300-chars", "multibyte"])
def test_names_too_long_for_a_shortstr_are_not_created(
    http: Http, path: str, body: dict[str, object], what: str, name: str, octets: int
) -> None:
    reply = http.put(path.format(q(name)), body)
    assert (reply.status, reply.json) == (
        400,
        {"error": "bad_request", "reason": f"{what} should be less than 255 bytes, actually was {octets}"},
    )
    assert http.get(path.format(q(name))).status == 404


def test_names_of_255_octets_are_created(http: Http, unique: Callable[[str], str]) -> None:
    name = (unique("q") + "x" * 255)[:255]
    assert http.put(f"/api/queues/%2F/{q(name)}", {"durable": False}).status == 201
    assert http.get(f"/api/queues/%2F/{q(name)}").json["name"] == name
    assert http.delete(f"/api/queues/%2F/{q(name)}").status == 204


def test_a_queue_argument_too_long_for_a_shortstr_is_refused_over_http(
    http: Http, unique: Callable[[str], str]
) -> None:
    name = unique("dlq")
    arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": LONG}
    reply = http.put(f"/api/queues/%2F/{q(name)}", {"durable": False, "arguments": arguments})
    assert reply.status == 400
    assert reply.json["reason"] == (
        f"invalid arg 'x-dead-letter-routing-key' for queue '{name}' in vhost '/': {{too_long,300}}"
    )


@pytest.mark.parametrize("key", ["dead-letter-routing-key", "dead-letter-exchange", "alternate-exchange"])
def test_policy_values_too_long_for_a_shortstr_are_refused(http: Http, unique: Callable[[str], str], key: str) -> None:
    name = unique("policy")
    policy = {"pattern": "^never-matches-anything$", "definition": {key: LONG}, "apply-to": "all"}
    reply = http.put(f"/api/policies/%2F/{q(name)}", policy)
    assert (reply.status, reply.json["reason"]) == (
        400,
        f"Validation failed\n\n{key} should be less than 255 bytes, actually was 300\n",
    )
    assert http.get(f"/api/policies/%2F/{q(name)}").status == 404


def test_policy_values_that_are_not_strings_are_refused_in_rabbitmqs_words(
    http: Http, unique: Callable[[str], str]
) -> None:
    policy = {"pattern": "^x$", "definition": {"dead-letter-exchange": 5}}
    reply = http.put(f"/api/policies/%2F/{q(unique('policy'))}", policy)
    assert (reply.status, reply.json["reason"]) == (
        400,
        "Validation failed\n\n5 is not a valid dead letter exchange name\n",
    )


def test_poison_dead_letter_routing_key_by_policy_never_reaches_a_consumer(
    http: Http, broker: BrokerThread, unique: Callable[[str], str], consumer: tuple[pika.BlockingConnection, str]
) -> None:
    """The issue's probe: a dead-letter routing key set by policy, a rejection, a DLX consumer."""
    connection, sink = consumer
    work = unique("work")
    policy = {"pattern": f"^{work}$", "definition": {"dead-letter-exchange": "amq.topic",
              "dead-letter-routing-key": "k" * 300}, "apply-to": "queues"}  # fmt: skip
    assert http.put(f"/api/policies/%2F/{q(work)}", policy).status == 400
    worker = pika.BlockingConnection(amqp_params(broker.url))
    try:
        channel = worker.channel()
        channel.queue_declare(work, exclusive=True)
        channel.basic_publish("", work, b"dies")
        method, _props, _body = channel.basic_get(work)
        channel.basic_reject(method.delivery_tag, requeue=False)
        channel.basic_publish("amq.topic", "after", b"next")
        assert _next_body(connection, sink) == ("after", b"next")
        assert worker.is_open and connection.is_open
    finally:
        worker.close()


@pytest.mark.parametrize(
    "properties",
    [{"content_type": "c" * 300}, {"headers": {"k" * 300: 1}}, {"message_id": "\ud800"}, {"headers": {"big": 2**70}}],
    ids=["content-type-300", "header-key-300", "lone-surrogate", "integer-past-64-bits"],
)
def test_http_publish_with_properties_amqp_cannot_carry_is_a_bad_request(
    http: Http, properties: dict[str, object]
) -> None:
    message = {"routing_key": "x", "payload": "p", "payload_encoding": "string", "properties": properties}
    reply = http.post("/api/exchanges/%2F/amq.topic/publish", message)
    assert reply.status == 400
    assert reply.json["reason"].startswith("properties cannot be encoded: ")


def test_a_binding_key_too_long_for_a_shortstr_is_refused(http: Http, unique: Callable[[str], str]) -> None:
    queue = unique("bound")
    assert http.put(f"/api/queues/%2F/{q(queue)}", {"durable": False}).status == 201
    try:
        reply = http.post(f"/api/bindings/%2F/e/amq.direct/q/{q(queue)}", {"routing_key": LONG, "arguments": {}})
        reason = "routing_key should be less than 255 bytes, actually was 300"
        assert (reply.status, reply.json["reason"]) == (400, reason)
        bindings = http.get(f"/api/queues/%2F/{q(queue)}/bindings").json
        assert [b for b in bindings if b["source"] == "amq.direct"] == []
    finally:
        http.delete(f"/api/queues/%2F/{q(queue)}")
