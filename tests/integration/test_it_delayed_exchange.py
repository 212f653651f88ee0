"""The x-delayed-message exchange (RabbitMQ's rabbitmq_delayed_message_exchange plugin), with pika.

These run against Lapine only: the reference RabbitMQ (Debian's package) ships without that
plugin, so with ``AMQP_URL`` set the module is skipped. What they check is the plugin's code
(rabbit_exchange_type_delayed_message.erl, rabbit_delayed_message.erl and its utils): the 406
texts for x-delayed-type, which x-delay values delay, x-delay negated on release, mandatory and
alternate exchanges seeing a held message as unroutable, confirms, and deletion.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

import pika
import pytest

from tests.helpers.amqp import Names, expect_channel_error, expect_connection_error

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("AMQP_URL")), reason="the reference RabbitMQ has no rabbitmq_delayed_message_exchange plugin"
)

DELAYED = "x-delayed-message"


def _delayed_exchange(channel: Any, names: Names, routing_type: str = "direct", **arguments: Any) -> str:
    exchange = names.exchange("delayed")
    channel.exchange_declare(exchange, DELAYED, arguments={"x-delayed-type": routing_type, **arguments})
    return exchange


def _bound_queue(channel: Any, names: Names, exchange: str, routing_key: str = "k") -> str:
    queue = names.queue()
    channel.queue_declare(queue)
    channel.queue_bind(queue, exchange, routing_key)
    return queue


def _publish(channel: Any, exchange: str, body: bytes, delay: Any, routing_key: str = "k", **props: Any) -> None:
    headers = {} if delay is None else {"x-delay": delay}
    headers.update(props.pop("headers", {}))
    channel.basic_publish(exchange, routing_key, body, pika.BasicProperties(headers=headers, **props))


def _wait_get(channel: Any, queue: str, timeout: float = 5.0) -> tuple[Any, Any, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, properties, body
        time.sleep(0.01)
    raise AssertionError(f"nothing reached {queue} in {timeout}s")


def test_declare_needs_an_existing_x_delayed_type(connection: Any, names: Names) -> None:
    for arguments in ({}, {"x-delayed-type": 5}):
        channel = connection.channel()
        with expect_channel_error(
            406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"
        ):
            channel.exchange_declare(names.exchange(), DELAYED, arguments=arguments)
    channel = connection.channel()
    with expect_channel_error(
        406, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"
    ):
        channel.exchange_declare(names.exchange(), DELAYED, arguments={"x-delayed-type": DELAYED})


def test_an_unknown_x_delayed_type_is_refused_as_an_unknown_exchange_type(connect: Any, names: Names) -> None:
    channel = connect().channel()
    with expect_connection_error(503, "COMMAND_INVALID - unknown exchange type 'no-such-type'"):
        channel.exchange_declare(names.exchange(), DELAYED, arguments={"x-delayed-type": "no-such-type"})


def test_redeclare_checks_what_the_routing_type_checks(channel: Any, names: Names) -> None:
    exchange = _delayed_exchange(channel, names)
    # The plugin hands equivalence to the routing type's, which looks at alternate-exchange only.
    channel.exchange_declare(exchange, DELAYED, arguments={"x-delayed-type": "topic"})
    with expect_channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{exchange}' in vhost '/': "
        "received 'direct' but current is 'x-delayed-message'",
    ):
        channel.exchange_declare(exchange, "direct")


def test_a_delayed_message_waits_then_routes_with_x_delay_negated(channel: Any, names: Names) -> None:
    exchange = _delayed_exchange(channel, names)
    queue = _bound_queue(channel, names, exchange)
    started = time.monotonic()
    _publish(channel, exchange, b"later", 300, headers={"b": "2", "a": 1})
    time.sleep(0.15)
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    method, properties, body = _wait_get(channel, queue)
    assert time.monotonic() - started >= 0.3
    assert body == b"later"
    assert (method.exchange, method.routing_key) == (exchange, "k")
    # As RabbitMQ 4.x renders it: -delay as a long, the headers table sorted by key.
    assert list(properties.headers.items()) == [("a", 1), ("b", "2"), ("x-delay", -300)]


def test_messages_come_in_due_order(channel: Any, names: Names) -> None:
    exchange = _delayed_exchange(channel, names)
    queue = _bound_queue(channel, names, exchange)
    for delay in (400, 100, 300, 200):
        _publish(channel, exchange, str(delay).encode(), delay)
    bodies = [_wait_get(channel, queue)[2] for _ in range(4)]
    assert bodies == [b"100", b"200", b"300", b"400"]


@pytest.mark.parametrize("delay", [None, 0, -5, True, 2**32, Decimal(5), {"a": 1}])
def test_no_usable_delay_routes_at_once(channel: Any, names: Names, delay: Any) -> None:
    exchange = _delayed_exchange(channel, names)
    queue = _bound_queue(channel, names, exchange)
    _publish(channel, exchange, b"now", delay)
    method, properties, _body = channel.basic_get(queue, auto_ack=True)
    assert method is not None
    # Unchanged: only a held message has its x-delay negated.
    assert (properties.headers or {}).get("x-delay") == delay


@pytest.mark.parametrize("delay", ["250", b"+250"])
def test_strings_are_read_as_integers(channel: Any, names: Names, delay: Any) -> None:
    exchange = _delayed_exchange(channel, names)
    queue = _bound_queue(channel, names, exchange)
    _publish(channel, exchange, b"later", delay)
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    _method, properties, _body = _wait_get(channel, queue)
    assert properties.headers["x-delay"] == -250


def test_a_string_that_is_not_an_integer_crashes_the_channel(connect: Any, names: Names) -> None:
    channel = connect().channel()
    exchange = _delayed_exchange(channel, names)
    with expect_connection_error(541, "INTERNAL_ERROR"):
        _publish(channel, exchange, b"x", "soon")
        channel.queue_declare("", exclusive=True)


@pytest.mark.parametrize("routing_type", ["topic", "fanout", "headers"])
def test_other_routing_types(channel: Any, names: Names, routing_type: str) -> None:
    exchange = _delayed_exchange(channel, names, routing_type)
    queue = names.queue()
    channel.queue_declare(queue)
    arguments = {"x-match": "all", "kind": "a"} if routing_type == "headers" else None
    channel.queue_bind(queue, exchange, "a.*" if routing_type == "topic" else "", arguments=arguments)
    _publish(channel, exchange, b"yes", 100, routing_key="a.b", headers={"kind": "a"})
    _publish(channel, exchange, b"no", 100, routing_key="b.c", headers={"kind": "b"})
    assert _wait_get(channel, queue)[2] == b"yes"
    if routing_type != "fanout":
        time.sleep(0.2)
        assert channel.basic_get(queue, auto_ack=True)[0] is None


def test_mandatory_returns_a_held_message_as_the_plugin_does(connection: Any, names: Names) -> None:
    channel = connection.channel()
    exchange = _delayed_exchange(channel, names)
    queue = _bound_queue(channel, names, exchange)
    returned: list[Any] = []
    channel.add_on_return_callback(lambda _ch, method, _props, body: returned.append((method.reply_code, body)))
    channel.basic_publish(exchange, "k", b"m", pika.BasicProperties(headers={"x-delay": 100}), mandatory=True)
    connection.process_data_events(0.2)
    assert returned == [(312, b"m")]
    # and it is delivered all the same when due
    assert _wait_get(channel, queue)[2] == b"m"


def test_an_alternate_exchange_gets_a_held_message_at_once(channel: Any, names: Names) -> None:
    alternate = names.exchange("ae")
    channel.exchange_declare(alternate, "fanout")
    spare = _bound_queue(channel, names, alternate, "")
    exchange = _delayed_exchange(channel, names, **{"alternate-exchange": alternate})
    queue = _bound_queue(channel, names, exchange)
    _publish(channel, exchange, b"m", 100)
    assert channel.basic_get(spare, auto_ack=True)[2] == b"m"
    assert _wait_get(channel, queue)[2] == b"m"


def test_confirms_come_when_stored(channel: Any, names: Names) -> None:
    channel.confirm_delivery()
    exchange = _delayed_exchange(channel, names)
    queue = _bound_queue(channel, names, exchange)
    # BlockingChannel raises on a nack; unroutable is no nack without mandatory.
    _publish(channel, exchange, b"m", 200, delivery_mode=2)
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    assert _wait_get(channel, queue)[2] == b"m"


def test_bindings_are_read_when_due(channel: Any, names: Names) -> None:
    exchange = _delayed_exchange(channel, names)
    _publish(channel, exchange, b"m", 200)
    queue = _bound_queue(channel, names, exchange)  # bound after the publish
    assert _wait_get(channel, queue)[2] == b"m"


def test_deleting_the_exchange_drops_its_delayed_messages(channel: Any, names: Names) -> None:
    exchange = _delayed_exchange(channel, names)
    _publish(channel, exchange, b"old", 200)
    channel.exchange_delete(exchange)
    channel.exchange_declare(exchange, DELAYED, arguments={"x-delayed-type": "direct"})
    queue = _bound_queue(channel, names, exchange)
    _publish(channel, exchange, b"new", 300)
    assert _wait_get(channel, queue)[2] == b"new"
    assert channel.basic_get(queue, auto_ack=True)[0] is None


def test_through_an_exchange_to_exchange_binding(channel: Any, names: Names) -> None:
    source = names.exchange("src")
    channel.exchange_declare(source, "direct")
    exchange = _delayed_exchange(channel, names)
    channel.exchange_bind(exchange, source, "k")
    queue = _bound_queue(channel, names, exchange)
    _publish(channel, source, b"m", 150)
    assert channel.basic_get(queue, auto_ack=True)[0] is None
    method, properties, _body = _wait_get(channel, queue)
    assert method.exchange == source
    assert properties.headers["x-delay"] == -150
