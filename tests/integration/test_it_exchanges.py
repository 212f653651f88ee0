"""Exchanges: declaration rules, equivalence, the default exchange, deletion, bindings and routing.

Observed on RabbitMQ 3.10.8, and asserted here:

* Every operation on the default exchange, even a *passive* declare of ``""``, is refused with
  403 "ACCESS_REFUSED - operation not permitted on the default exchange"; so is using it as the
  source or destination of an exchange-to-exchange binding.
* An unknown exchange type is a *connection* error: 503 "COMMAND_INVALID - unknown exchange type
  'x'" (not a channel error).
* A passive declare never compares type/flags: ``exchange.declare(passive, type=fanout)`` of a
  direct exchange succeeds.
* Exchange arguments: only ``alternate-exchange`` takes part in the equivalence check, and its
  text is "inequivalent arg 'alternate-exchange' for exchange 'x' in vhost '/': received the value
  'foo' of type 'longstr' but current is none". Other arguments are ignored on redeclare.
* Redeclaring ``amq.direct`` with durable=true is fine (the built-ins are durable); with
  durable=false it is the usual 406 inequivalent arg 'durable'.
* Deleting a missing exchange returns delete-ok (no 404), ``amq.*`` names cannot be declared
  (403 "... exchange name 'amq.x' contains reserved prefix 'amq.*'") nor deleted (403 "deletion of
  system exchange 'amq.direct' in vhost '/' not allowed").
* Unbinding something that was never bound, or from a missing exchange/queue, returns unbind-ok.
* Headers exchange: a binding value of void (None) matches any value, even void, as long as the
  header is present; ``x-``-prefixed binding arguments are ignored, so ``x-match=all`` with no other
  argument matches every message and ``x-match=any`` with none matches nothing. A bad x-match is
  406 "PRECONDITION_FAILED - Invalid x-match field value <<"bogus">>; expected all, any,
  all-with-x, or any-with-x" (an Erlang binary in the text).
* Topic keys are split on ".", and the empty key has *zero* words: ``*`` does not match "" (but
  ``#`` does), while "a..b" has an empty middle word, which ``*`` matches.
* An auto-delete exchange goes away when its last binding is removed, including when the bound
  queue is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aio_pika
import pika
import pika.exceptions
import pytest

from tests.helpers.amqp import (
    Names,
    bodies,
    exists_exchange,
    expect_channel_error,
    expect_connection_error,
    reply_not_found_exchange,
    unique,
)

pytestmark = pytest.mark.timeout(10)

DEFAULT_EXCHANGE_REFUSED = "ACCESS_REFUSED - operation not permitted on the default exchange"


def inequivalent(arg: str, name: str, received: str, current: str) -> str:
    return (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{name}' in vhost '/': "
        f"received '{received}' but current is '{current}'"
    )


# -- the default exchange -----------------------------------------------------------------------


def test_default_exchange_routes_by_queue_name(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"hello")
    channel.basic_publish("", q + "-not", b"lost")
    method, _, body = channel.basic_get(q, auto_ack=True)
    assert body == b"hello"
    assert method.exchange == ""
    assert method.routing_key == q
    assert channel.basic_get(q)[0] is None


@pytest.mark.parametrize(
    "operation",
    ["bind", "unbind", "delete", "declare", "declare_passive", "e2e_source", "e2e_destination"],
)
def test_default_exchange_is_untouchable(connection: pika.BlockingConnection, operation: str) -> None:
    setup = connection.channel()
    q = setup.queue_declare("", exclusive=True).method.queue
    ch = connection.channel()
    actions: dict[str, Callable[[], Any]] = {
        "bind": lambda: ch.queue_bind(q, "", routing_key="k"),
        "unbind": lambda: ch.queue_unbind(q, "", routing_key="k"),
        "delete": lambda: ch.exchange_delete(""),
        "declare": lambda: ch.exchange_declare("", "direct"),
        "declare_passive": lambda: ch.exchange_declare("", passive=True),
        "e2e_source": lambda: ch.exchange_bind("amq.fanout", "", "k"),
        "e2e_destination": lambda: ch.exchange_bind("", "amq.fanout", "k"),
    }
    with expect_channel_error(403, DEFAULT_EXCHANGE_REFUSED):
        actions[operation]()
    assert setup.is_open


# -- built-in exchanges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("amq.direct", "direct"),
        ("amq.fanout", "fanout"),
        ("amq.topic", "topic"),
        ("amq.headers", "headers"),
        ("amq.match", "headers"),
    ],
)
def test_builtin_exchanges_exist(channel: Any, name: str, kind: str) -> None:
    channel.exchange_declare(name, passive=True)
    channel.exchange_declare(name, kind, durable=True)  # equivalent redeclare is fine


def test_redeclare_builtin_with_other_durability(channel: Any) -> None:
    with expect_channel_error(406, inequivalent("durable", "amq.direct", "false", "true")):
        channel.exchange_declare("amq.direct", "direct", durable=False)


def test_reserved_amq_prefix(channel: Any) -> None:
    name = unique("amq.lapine")
    with expect_channel_error(403, f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"):
        channel.exchange_declare(name, "direct")


def test_passive_declare_of_missing_amq_name_is_404(channel: Any) -> None:
    name = unique("amq.lapine")
    with expect_channel_error(404, reply_not_found_exchange(name)):
        channel.exchange_declare(name, passive=True)


def test_cannot_delete_builtin(channel: Any) -> None:
    with expect_channel_error(
        403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    ):
        channel.exchange_delete("amq.direct")


# -- declare ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_and_redeclare(channel: Any, names: Names, kind: str) -> None:
    x = names.exchange()
    channel.exchange_declare(x, kind)
    channel.exchange_declare(x, kind)
    channel.exchange_declare(x, passive=True)
    channel.exchange_declare(x, "fanout" if kind != "fanout" else "direct", passive=True)  # passive ignores type


def test_passive_declare_missing(channel: Any) -> None:
    x = unique("missing")
    with expect_channel_error(404, reply_not_found_exchange(x)):
        channel.exchange_declare(x, passive=True)


def test_unknown_exchange_type_is_a_connection_error(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    with expect_connection_error(503, "COMMAND_INVALID - unknown exchange type 'no-such-type'"):
        ch.exchange_declare(unique("x"), "no-such-type")
    assert connection.is_closed


@pytest.mark.parametrize(
    ("first", "second", "arg", "received", "current"),
    [
        ({"exchange_type": "direct"}, {"exchange_type": "fanout"}, "type", "fanout", "direct"),
        ({"exchange_type": "topic"}, {"exchange_type": "headers"}, "type", "headers", "topic"),
        ({}, {"durable": True}, "durable", "true", "false"),
        ({"durable": True}, {"durable": False}, "durable", "false", "true"),
        ({}, {"auto_delete": True}, "auto_delete", "true", "false"),
        ({"auto_delete": True}, {"auto_delete": False}, "auto_delete", "false", "true"),
        ({}, {"internal": True}, "internal", "true", "false"),
    ],
)
def test_inequivalent_redeclare(
    connection: pika.BlockingConnection,
    names: Names,
    first: dict[str, Any],
    second: dict[str, Any],
    arg: str,
    received: str,
    current: str,
) -> None:
    x = names.exchange()
    ch = connection.channel()
    ch.exchange_declare(x, **{"exchange_type": "direct", **first})
    with expect_channel_error(406, inequivalent(arg, x, received, current)):
        ch.exchange_declare(x, **{"exchange_type": "direct", **second})
    # the exchange is unchanged and another channel carries on
    connection.channel().exchange_declare(x, **{"exchange_type": "direct", **first})


def test_inequivalent_alternate_exchange(channel: Any, names: Names) -> None:
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    text = (
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '/': "
        "received the value 'foo' of type 'longstr' but current is none"
    )
    with expect_channel_error(406, text):
        channel.exchange_declare(x, "direct", arguments={"alternate-exchange": "foo"})


def test_other_exchange_arguments_are_not_compared(channel: Any, names: Names) -> None:
    x = names.exchange()
    channel.exchange_declare(x, "direct", arguments={"x-custom": 1})
    channel.exchange_declare(x, "direct", arguments={"x-custom": 2})
    channel.exchange_declare(x, "direct")


# -- delete -------------------------------------------------------------------------------------


def test_delete(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    x = names.exchange()
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x)
    assert not exists_exchange(connection, x)


def test_delete_missing_exchange_is_ok(channel: Any) -> None:
    channel.exchange_delete(unique("missing"))
    assert channel.is_open


def test_delete_if_unused(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    with expect_channel_error(406, f"PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"):
        ch.exchange_delete(x, if_unused=True)
    ch = connection.channel()
    ch.queue_unbind(q, x, "k")
    ch.exchange_delete(x, if_unused=True)
    assert not exists_exchange(connection, x)


def test_delete_if_unused_counts_exchange_bindings_as_source(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    src, dst = names.exchange("src"), names.exchange("dst")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    with expect_channel_error(406, f"PRECONDITION_FAILED - exchange '{src}' in vhost '/' in use"):
        ch.exchange_delete(src, if_unused=True)
    # as a destination it is not "in use"
    connection.channel().exchange_delete(dst, if_unused=True)


def test_deleting_exchange_removes_its_bindings(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    x = names.exchange()
    ch.exchange_declare(x, "fanout")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")
    ch.basic_publish(x, "", b"after recreate")
    assert bodies(ch, q) == []


# -- bindings -----------------------------------------------------------------------------------


def test_unbind_is_idempotent(channel: Any, names: Names) -> None:
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_unbind(q, x, "never-bound")
    channel.queue_bind(q, x, "k")
    channel.queue_unbind(q, x, "k")
    channel.queue_unbind(q, x, "k")
    channel.exchange_unbind(x, "amq.fanout", "never-bound")
    channel.basic_publish(x, "k", b"x")
    assert bodies(channel, q) == []


def test_bind_is_idempotent(channel: Any, names: Names) -> None:
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q, x, "k")
    channel.queue_bind(q, x, "k")
    channel.basic_publish(x, "k", b"once")
    assert bodies(channel, q) == [b"once"]


def test_exchange_to_exchange_binding(channel: Any, names: Names) -> None:
    src, dst = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(src, "topic")
    channel.exchange_declare(dst, "direct")
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q, dst, "a.b")
    channel.exchange_bind(dst, src, "a.*")
    channel.basic_publish(src, "a.b", b"routed")
    channel.basic_publish(src, "a.c", b"dropped at dst")
    channel.basic_publish(src, "x.b", b"dropped at src")
    method, _, body = channel.basic_get(q, auto_ack=True)
    assert body == b"routed"
    assert (method.exchange, method.routing_key) == (src, "a.b")  # the exchange published to
    assert channel.basic_get(q)[0] is None
    channel.exchange_unbind(dst, src, "a.*")
    channel.basic_publish(src, "a.b", b"unbound")
    assert bodies(channel, q) == []


def test_exchange_binding_chain_delivers_once(channel: Any, names: Names) -> None:
    a, b, c = names.exchange("a"), names.exchange("b"), names.exchange("c")
    for x in (a, b, c):
        channel.exchange_declare(x, "fanout")
    channel.exchange_bind(b, a)
    channel.exchange_bind(c, a)
    channel.exchange_bind(c, b)  # two paths a->c; a->b->c
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q, c)
    channel.queue_bind(q, b)
    channel.basic_publish(a, "", b"one copy")
    assert bodies(channel, q) == [b"one copy"]


def test_exchange_binding_cycle_is_safe(channel: Any, names: Names) -> None:
    a, b = names.exchange("a"), names.exchange("b")
    channel.exchange_declare(a, "fanout")
    channel.exchange_declare(b, "fanout")
    channel.exchange_bind(b, a)
    channel.exchange_bind(a, b)
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q, b)
    channel.basic_publish(a, "", b"no loop")
    assert bodies(channel, q) == [b"no loop"]


def test_internal_exchange(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    internal, front = names.exchange("internal"), names.exchange("front")
    ch.exchange_declare(internal, "fanout", internal=True)
    ch.exchange_declare(front, "fanout")
    ch.exchange_bind(internal, front)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, internal)
    ch.basic_publish(front, "", b"via binding")
    assert bodies(ch, q) == [b"via binding"]
    with expect_channel_error(403, f"ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"):
        ch.basic_publish(internal, "", b"direct")
        ch.queue_declare(q, passive=True)  # a round trip, so the asynchronous error arrives


def test_auto_delete_exchange_goes_with_last_binding(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    x = names.exchange("ad")
    ch.exchange_declare(x, "direct", auto_delete=True)
    assert exists_exchange(connection, x)  # not deleted before it ever had a binding
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "a")
    ch.queue_bind(q, x, "b")
    ch.queue_unbind(q, x, "a")
    assert exists_exchange(connection, x)
    ch.queue_unbind(q, x, "b")
    assert not exists_exchange(connection, x)


def test_auto_delete_exchange_goes_when_bound_queue_is_deleted(
    connection: pika.BlockingConnection, names: Names
) -> None:
    ch = connection.channel()
    x = names.exchange("ad")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    assert not exists_exchange(connection, x)


def test_auto_delete_exchange_goes_when_e2e_binding_removed(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    src, dst = names.exchange("src"), names.exchange("dst")
    ch.exchange_declare(src, "fanout", auto_delete=True)
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    ch.exchange_unbind(dst, src)
    assert not exists_exchange(connection, src)
    assert exists_exchange(connection, dst)


@pytest.mark.parametrize(("missing_side"), ["source", "destination"])
def test_exchange_bind_missing(channel: Any, missing_side: str) -> None:
    missing = unique("missing")
    with expect_channel_error(404, reply_not_found_exchange(missing)):
        if missing_side == "source":
            channel.exchange_bind("amq.fanout", missing, "k")
        else:
            channel.exchange_bind(missing, "amq.fanout", "k")


# -- routing ------------------------------------------------------------------------------------


def test_direct_routing(channel: Any, names: Names) -> None:
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q1 = channel.queue_declare("", exclusive=True).method.queue
    q2 = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q1, x, "red")
    channel.queue_bind(q1, x, "green")
    channel.queue_bind(q2, x, "green")
    for key in ("red", "green", "blue", "Red", ""):
        channel.basic_publish(x, key, key.encode())
    assert bodies(channel, q1) == [b"red", b"green"]
    assert bodies(channel, q2) == [b"green"]


def test_fanout_routing_ignores_key(channel: Any, names: Names) -> None:
    x = names.exchange()
    channel.exchange_declare(x, "fanout")
    queues = [channel.queue_declare("", exclusive=True).method.queue for _ in range(3)]
    for i, q in enumerate(queues):
        channel.queue_bind(q, x, f"key-{i}")
    channel.basic_publish(x, "whatever", b"all")
    for q in queues:
        assert bodies(channel, q) == [b"all"]


@pytest.mark.parametrize(
    ("binding", "key", "matches"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*.c", "a.b.b.c", False),
        ("*", "a", True),
        ("*", "", False),  # the empty key has zero words
        ("*", "a.b", False),
        ("a.*", "a", False),
        ("a.*", "a.", True),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.#", "b.a", False),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.c.d", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.x.c", True),
        ("a.#.c", "a.b.x.d", False),
        ("#.#", "a", True),
        ("*.#", "", False),
        ("*.#", "a", True),
        ("#.*", "a.b", True),
        ("*.*", "a", False),
        ("a.#.#.b", "a.b", True),
        ("a..b", "a..b", True),
        ("a..b", "a.x.b", False),
        ("a.*.b", "a..b", True),
        ("*", ".", False),
        ("*.*", ".", True),
    ],
)
def test_topic_routing(channel: Any, names: Names, binding: str, key: str, matches: bool) -> None:
    x = names.exchange("topic")
    channel.exchange_declare(x, "topic")
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q, x, binding)
    channel.basic_publish(x, key, b"m")
    assert bodies(channel, q) == ([b"m"] if matches else [])


def test_topic_multiple_bindings_one_copy(channel: Any, names: Names) -> None:
    x = names.exchange("topic")
    channel.exchange_declare(x, "topic")
    q = channel.queue_declare("", exclusive=True).method.queue
    for binding in ("stock.#", "*.usd.*", "#"):
        channel.queue_bind(q, x, binding)
    channel.basic_publish(x, "stock.usd.nyse", b"once")
    assert bodies(channel, q) == [b"once"]


def test_headers_routing(channel: Any, names: Names) -> None:
    x = names.exchange("headers")
    channel.exchange_declare(x, "headers")
    bindings: dict[str, dict[str, Any]] = {
        "all": {"x-match": "all", "a": 1, "b": "two"},
        "any": {"x-match": "any", "a": 1, "b": "two"},
        "default": {"a": 1, "b": "two"},
        "void": {"x-match": "all", "c": None},
        "x_only": {"x-match": "all", "x-foo": "bar"},
        "empty_all": {"x-match": "all"},
        "empty_any": {"x-match": "any"},
    }
    queues: dict[str, str] = {}
    for name, args in bindings.items():
        queues[name] = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queues[name], x, arguments=args)
    messages: list[dict[str, Any] | None] = [
        {"a": 1, "b": "two"},
        {"a": 1},
        {"b": "two", "z": 3},
        {"a": "1", "b": "two"},
        {"c": None},
        {"c": 5},
        {"x-foo": "bar"},
        {},
        None,
        {"a": 1, "b": "two", "c": 1},
    ]
    for i, headers in enumerate(messages):
        channel.basic_publish(x, "ignored", str(i).encode(), pika.BasicProperties(headers=headers))
    got = {name: [int(b) for b in bodies(channel, q)] for name, q in queues.items()}
    assert got == {
        "all": [0, 9],
        "any": [0, 1, 2, 3, 9],
        "default": [0, 9],
        "void": [4, 5, 9],
        "x_only": list(range(10)),
        "empty_all": list(range(10)),
        "empty_any": [],
    }


def test_headers_invalid_x_match(channel: Any, names: Names) -> None:
    x = names.exchange("headers")
    channel.exchange_declare(x, "headers")
    q = channel.queue_declare("", exclusive=True).method.queue
    text = 'PRECONDITION_FAILED - Invalid x-match field value <<"bogus">>; expected all, any, all-with-x, or any-with-x'
    with expect_channel_error(406, text):
        channel.queue_bind(q, x, arguments={"x-match": "bogus"})


def test_headers_unbind_needs_same_arguments(channel: Any, names: Names) -> None:
    x = names.exchange("headers")
    channel.exchange_declare(x, "headers")
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q, x, arguments={"x-match": "any", "k": "v"})
    channel.queue_unbind(q, x, arguments={"x-match": "any", "k": "other"})  # a different binding
    channel.basic_publish(x, "", b"1", pika.BasicProperties(headers={"k": "v"}))
    channel.queue_unbind(q, x, arguments={"x-match": "any", "k": "v"})
    channel.basic_publish(x, "", b"2", pika.BasicProperties(headers={"k": "v"}))
    assert bodies(channel, q) == [b"1"]


def test_alternate_exchange(channel: Any, names: Names) -> None:
    main, alt = names.exchange("main"), names.exchange("alt")
    channel.exchange_declare(alt, "fanout")
    channel.exchange_declare(main, "direct", arguments={"alternate-exchange": alt})
    routed = channel.queue_declare("", exclusive=True).method.queue
    fallback = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(routed, main, "known")
    channel.queue_bind(fallback, alt)
    channel.basic_publish(main, "known", b"k")
    channel.basic_publish(main, "unknown", b"u")
    assert bodies(channel, routed) == [b"k"]
    assert bodies(channel, fallback) == [b"u"]


# -- aio-pika -----------------------------------------------------------------------------------


async def test_aio_pika_topic_and_fanout(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    topic = await ch.declare_exchange(unique("aio-topic"), aio_pika.ExchangeType.TOPIC, auto_delete=True)
    fanout = await ch.declare_exchange(unique("aio-fanout"), aio_pika.ExchangeType.FANOUT, auto_delete=True)
    q1 = await ch.declare_queue("", exclusive=True)
    q2 = await ch.declare_queue("", exclusive=True)
    await q1.bind(topic, "logs.*.error")
    await fanout.bind(topic, "logs.#")
    await q2.bind(fanout)
    await topic.publish(aio_pika.Message(b"e"), routing_key="logs.db.error")
    await topic.publish(aio_pika.Message(b"i"), routing_key="logs.db.info")
    await topic.publish(aio_pika.Message(b"x"), routing_key="metrics.db.error")
    got1 = []
    while (msg := await q1.get(no_ack=True, fail=False)) is not None:
        got1.append(msg.body)
    got2 = []
    while (msg := await q2.get(no_ack=True, fail=False)) is not None:
        got2.append(msg.body)
    assert got1 == [b"e"]
    assert got2 == [b"e", b"i"]
    await q1.unbind(topic, "logs.*.error")
    await q2.unbind(fanout)  # the fanout exchange is auto-delete; its e2e binding from topic still holds it
    await fanout.unbind(topic, "logs.#")
    await topic.delete()


async def test_aio_pika_inequivalent_exchange(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    name = unique("aio-x")
    ch = await aio_connection.channel()
    await ch.declare_exchange(name, aio_pika.ExchangeType.DIRECT, auto_delete=True)
    q = await ch.declare_queue("", exclusive=True)
    await q.bind(name, "k")  # keeps the auto-delete exchange alive
    other = await aio_connection.channel()
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed) as info:
        await other.declare_exchange(name, aio_pika.ExchangeType.FANOUT, auto_delete=True)
    assert info.value.args == (inequivalent("type", name, "fanout", "direct"),)  # aiormq: 406 is the class
    await ch.get_exchange(name)  # passive declare still works on the healthy channel
    await q.unbind(name, "k")
