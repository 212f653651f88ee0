"""Queues: naming, declare/passive/equivalence, exclusivity, auto-delete, bind, purge, delete.

Observed on RabbitMQ 3.10.8, and asserted here:

* Server-named queues are ``amq.gen-`` + 22 URL-safe base64 characters. They can be declared
  again only passively: an active redeclare of its own ``amq.gen-...`` queue, even by the owner, is
  403 "ACCESS_REFUSED - queue name 'amq.gen-...' contains reserved prefix 'amq.*'".
* The message count in a (passive) ``declare-ok`` comes from statistics that can lag behind
  publishes made just before on the same channel (it was wrong ~70% of the time in a tight loop);
  ``purge-ok``/``delete-ok`` counts and ``if-empty`` are exact. These tests therefore publish in
  confirm mode before looking at a declare-ok count.
* The count excludes unacknowledged messages; purge leaves unacked messages alone (they come back
  if rejected with requeue), and ``delete-ok`` counts only ready messages too.
* An exclusive queue is always made non-durable: redeclaring it with durable=true is *not* an
  equivalence error. Redeclaring an exclusive queue as non-exclusive (or the reverse), even on the
  owning connection, is 405 RESOURCE_LOCKED with the long "It could be originally declared on
  another connection or the exclusive property value does not match..." text.
* Argument equivalence texts: "received '2000' but current is '1000'" for two values of the same
  type, "received the value '10' of type 'signedint' but current is none" and "received none but
  current is the value '1000' of type 'signedint'" when one side is missing. Unknown ``x-``
  arguments are not compared.
* queue.declare("", passive) is 404 "no queue '' in vhost '/'", but delete/purge/bind with an
  empty name and no queue declared on the channel are 404 "NOT_FOUND - no previously declared
  queue"; once a queue was declared, "" means that queue.
* An auto-delete queue is not deleted before it has had a consumer (basic.get does not count),
  and is deleted when the last consumer goes, by cancel or by its channel closing.
* Using another connection's exclusive queue (passive declare, consume, get, purge, delete, bind)
  is 405; publishing to it works.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aio_pika
import aiormq.exceptions
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.helpers.amqp import (
    Names,
    bodies,
    exists_queue,
    expect_channel_error,
    message_count,
    reply_locked,
    reply_not_found_exchange,
    reply_not_found_queue,
    unique,
)

pytestmark = pytest.mark.timeout(10)

SERVER_NAMED = re.compile(r"^amq\.gen-[A-Za-z0-9_-]{22}$")


def inequivalent(arg: str, name: str, received: str, current: str) -> str:
    return (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in vhost '/': "
        f"received '{received}' but current is '{current}'"
    )


# -- declare ------------------------------------------------------------------------------------


def test_server_named_queue(channel: Any) -> None:
    first = channel.queue_declare("", exclusive=True).method
    second = channel.queue_declare("", exclusive=True).method
    assert SERVER_NAMED.match(first.queue), first.queue
    assert SERVER_NAMED.match(second.queue), second.queue
    assert first.queue != second.queue
    assert (first.message_count, first.consumer_count) == (0, 0)


async def test_server_named_queue_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(exclusive=True)
    assert SERVER_NAMED.match(q.name), q.name


def test_passive_declare_missing(channel: Any) -> None:
    q = unique("missing")
    with expect_channel_error(404, reply_not_found_queue(q)):
        channel.queue_declare(q, passive=True)


def test_passive_declare_empty_name(channel: Any) -> None:
    with expect_channel_error(404, reply_not_found_queue("")):
        channel.queue_declare("", passive=True)


def test_declare_ok_counts(connection: pika.BlockingConnection, names: Names) -> None:
    ch = connection.channel()
    ch.confirm_delivery()
    q = names.queue()
    ok = ch.queue_declare(q, durable=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    ok = ch.queue_declare(q, durable=True).method  # an active redeclare reports the counts too
    assert (ok.message_count, ok.consumer_count) == (5, 0)
    consumer_ch = connection.channel()
    consumer_ch.basic_qos(prefetch_count=2)
    consumer_ch.basic_consume(q, lambda *a: None)
    consumer_ch.basic_consume(q, lambda *a: None)
    connection.process_data_events(time_limit=0.2)
    ok = ch.queue_declare(q, passive=True).method
    # four are delivered and unacked: only ready messages are counted
    assert (ok.message_count, ok.consumer_count) == (1, 2)


async def test_declare_ok_counts_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel(publisher_confirms=True)
    q = await ch.declare_queue(exclusive=True)
    for i in range(3):
        await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
    result = await ch.declare_queue(q.name, passive=True)
    assert result.declaration_result.message_count == 3
    assert result.declaration_result.consumer_count == 0


def test_redeclare_equivalent(channel: Any, names: Names) -> None:
    q = names.queue()
    channel.queue_declare(q, durable=True, arguments={"x-max-length": 10})
    channel.queue_declare(q, durable=True, arguments={"x-max-length": 10})
    channel.queue_declare(q, passive=True)
    channel.queue_declare(q, durable=False, passive=True)  # passive ignores the flags


@pytest.mark.parametrize(
    ("first", "second", "arg", "received", "current"),
    [
        # the first declaration is durable: RabbitMQ 4.3 refuses to create transient non-exclusive queues
        ({"durable": True}, {"durable": False}, "durable", "false", "true"),
        ({"durable": True}, {"durable": True, "auto_delete": True}, "auto_delete", "true", "false"),
        ({"durable": True, "auto_delete": True}, {"durable": True}, "auto_delete", "false", "true"),
        ({"durable": True}, {"auto_delete": True}, "durable", "false", "true"),
    ],
)
def test_inequivalent_flags(
    connection: pika.BlockingConnection,
    names: Names,
    first: dict[str, Any],
    second: dict[str, Any],
    arg: str,
    received: str,
    current: str,
) -> None:
    q = names.queue()
    ch = connection.channel()
    ch.queue_declare(q, **first)
    with expect_channel_error(406, inequivalent(arg, q, received, current)):
        ch.queue_declare(q, **second)
    connection.channel().queue_declare(q, **first)


def test_inequivalent_argument_values(channel: Any, names: Names) -> None:
    q = names.queue()
    channel.queue_declare(q, durable=True, arguments={"x-message-ttl": 1000})
    with expect_channel_error(406, inequivalent("x-message-ttl", q, "2000", "1000")):
        channel.queue_declare(q, durable=True, arguments={"x-message-ttl": 2000})


def test_inequivalent_argument_missing_now(connection: pika.BlockingConnection, names: Names) -> None:
    q = names.queue()
    ch = connection.channel()
    ch.queue_declare(q, durable=True, arguments={"x-message-ttl": 1000})
    text = (
        f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': "
        "received none but current is the value '1000' of type 'signedint'"
    )
    with expect_channel_error(406, text):
        ch.queue_declare(q, durable=True)


def test_inequivalent_argument_missing_before(channel: Any, names: Names) -> None:
    q = names.queue()
    channel.queue_declare(q, durable=True)
    text = (
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
        "received the value '10' of type 'signedint' but current is none"
    )
    with expect_channel_error(406, text):
        channel.queue_declare(q, durable=True, arguments={"x-max-length": 10})


def test_transient_non_exclusive_queues_are_accepted(channel: Any, names: Names) -> None:
    """Queues neither durable nor exclusive, as the tutorial declares them (queue_declare('hello')).
    RabbitMQ 4.3 denies the deprecated transient_nonexcl_queues feature by default; Lapine permits
    it, as RabbitMQ does up to 4.2."""
    q = names.queue("transient")
    assert channel.queue_declare(q).method.queue == q
    channel.basic_publish("", q, b"kept")
    assert channel.basic_get(q, auto_ack=True)[2] == b"kept"


def test_durable_or_exclusive_queues_are_accepted(channel: Any, names: Names) -> None:
    """The combinations that stay allowed in every RabbitMQ version."""
    channel.queue_declare(names.queue("durable"), durable=True)
    channel.queue_declare(names.queue("durable-ad"), durable=True, auto_delete=True)
    channel.queue_declare(names.queue("excl"), exclusive=True)
    channel.queue_declare(names.queue("excl-ad"), exclusive=True, auto_delete=True)
    channel.queue_declare("", exclusive=True)
    server_named = channel.queue_declare("", durable=True, auto_delete=True).method.queue
    channel.queue_delete(server_named)  # it never had a consumer: it would stay


def test_long_reply_text_is_truncated(channel: Any) -> None:
    """Reply texts over 255 bytes are cut to 252 bytes followed by "..."."""
    q = "n" * 250
    full = reply_not_found_queue(q)
    assert len(full) > 255
    with expect_channel_error(404, full[:252] + "..."):
        channel.queue_declare(q, passive=True)


def test_invalid_argument_type(channel: Any) -> None:
    q = unique("badarg")
    text = (
        f"PRECONDITION_FAILED - invalid arg 'x-max-length' for queue '{q}' in vhost '/': "
        '"expected integer, got longstr"'
    )
    with expect_channel_error(406, text):
        channel.queue_declare(q, durable=True, arguments={"x-max-length": "ten"})


def test_unknown_arguments_not_compared(channel: Any, names: Names) -> None:
    q = names.queue()
    channel.queue_declare(q, durable=True, arguments={"x-lapine-custom": 1})
    channel.queue_declare(q, durable=True, arguments={"x-lapine-custom": 2})


def test_reserved_amq_prefix(channel: Any) -> None:
    q = unique("amq.lapine")
    with expect_channel_error(403, f"ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'"):
        channel.queue_declare(q, durable=True)


def test_server_named_queue_cannot_be_redeclared_actively(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_declare(q, passive=True)
    with expect_channel_error(403, f"ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'"):
        ch.queue_declare(q, exclusive=True)
    assert exists_queue(connection, q)


def test_passive_amq_prefix_is_404(channel: Any) -> None:
    q = unique("amq.lapine")
    with expect_channel_error(404, reply_not_found_queue(q)):
        channel.queue_declare(q, passive=True)


def test_long_and_unicode_names(channel: Any, names: Names) -> None:
    long_name = names.queue("L") + "x" * 200
    names.queues.append(long_name)
    assert channel.queue_declare(long_name, durable=True).method.queue == long_name
    uni = names.queue("ünï-кью-队列")
    assert channel.queue_declare(uni, durable=True).method.queue == uni
    channel.basic_publish("", uni, b"unicode")
    assert bodies(channel, uni) == [b"unicode"]


# -- "" means the last declared queue -------------------------------------------------------------


def test_empty_name_means_last_declared_queue(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", q, b"1")
    channel.queue_bind("", "amq.direct", q + "-rk")
    channel.basic_publish("amq.direct", q + "-rk", b"2")
    method, _, body = channel.basic_get("")
    assert body == b"1"
    assert channel.queue_purge("").method.message_count == 1
    channel.basic_reject(method.delivery_tag, requeue=False)
    channel.queue_unbind("", "amq.direct", q + "-rk")
    assert channel.queue_delete("").method.message_count == 0


@pytest.mark.parametrize("operation", ["delete", "purge", "bind"])
def test_empty_name_without_declared_queue(channel: Any, operation: str) -> None:
    with expect_channel_error(404, "NOT_FOUND - no previously declared queue"):
        if operation == "delete":
            channel.queue_delete("")
        elif operation == "purge":
            channel.queue_purge("")
        else:
            channel.queue_bind("", "amq.direct", "k")


# -- exclusive queues ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation", ["passive", "declare", "declare_exclusive", "consume", "get", "purge", "delete", "bind"]
)
def test_exclusive_queue_locked_for_other_connections(
    connect: Callable[..., pika.BlockingConnection], names: Names, operation: str
) -> None:
    owner = connect()
    q = names.queue("excl")
    owner.channel().queue_declare(q, exclusive=True)
    other = connect().channel()
    actions: dict[str, Callable[[], Any]] = {
        "passive": lambda: other.queue_declare(q, passive=True),
        "declare": lambda: other.queue_declare(q),
        "declare_exclusive": lambda: other.queue_declare(q, exclusive=True),
        "consume": lambda: other.basic_consume(q, lambda *a: None),
        "get": lambda: other.basic_get(q),
        "purge": lambda: other.queue_purge(q),
        "delete": lambda: other.queue_delete(q),
        "bind": lambda: other.queue_bind(q, "amq.direct", "k"),
    }
    with expect_channel_error(405, reply_locked(q)):
        actions[operation]()
    assert exists_queue(owner, q)


def test_other_connections_may_publish_to_exclusive_queue(
    connect: Callable[..., pika.BlockingConnection],
) -> None:
    owner = connect().channel()
    q = owner.queue_declare("", exclusive=True).method.queue
    publisher = connect().channel()
    publisher.confirm_delivery()
    publisher.basic_publish("", q, b"for you", mandatory=True)
    assert bodies(owner, q) == [b"for you"]


def test_exclusive_queue_usable_from_any_channel_of_owner(connection: pika.BlockingConnection) -> None:
    q = unique("excl")
    connection.channel().queue_declare(q, exclusive=True)
    other = connection.channel()
    other.queue_declare(q, exclusive=True)
    other.queue_declare(q, passive=True)
    other.basic_publish("", q, b"x")
    assert bodies(other, q) == [b"x"]


def test_exclusive_flag_mismatch_on_owner(connection: pika.BlockingConnection, names: Names) -> None:
    excl = names.queue("excl")
    ch = connection.channel()
    ch.queue_declare(excl, exclusive=True)
    with expect_channel_error(405, reply_locked(excl)):
        ch.queue_declare(excl)
    shared = names.queue("shared")
    ch = connection.channel()
    ch.queue_declare(shared, durable=True)
    with expect_channel_error(405, reply_locked(shared)):
        ch.queue_declare(shared, durable=True, exclusive=True)


def test_exclusive_queue_is_never_durable(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = unique("excl")
    ch.queue_declare(q, exclusive=True, durable=True)
    ch.queue_declare(q, exclusive=True, durable=False)  # no inequivalent 'durable'
    ch.queue_declare(q, exclusive=True, durable=True)


def test_exclusive_queue_deleted_with_its_connection(connect: Callable[..., pika.BlockingConnection]) -> None:
    owner = connect()
    ch = owner.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"lost")
    observer = connect()
    with expect_channel_error(405, reply_locked(q)):
        observer.channel().queue_declare(q, passive=True)
    owner.close()
    assert not exists_queue(observer, q)


async def test_exclusive_queue_aio_pika(amqp_url: str) -> None:
    owner = await aio_pika.connect(amqp_url, timeout=5)
    other = await aio_pika.connect(amqp_url, timeout=5)
    try:
        q = await (await owner.channel()).declare_queue(unique("aio-excl"), exclusive=True)
        ch = await other.channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource) as info:
            await ch.declare_queue(q.name, passive=True)
        assert info.value.args == (reply_locked(q.name),)
        await owner.close()
        ch = await other.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity) as not_found:
            await ch.declare_queue(q.name, passive=True)
        assert not_found.value.args == (reply_not_found_queue(q.name),)
    finally:
        await other.close()
        await owner.close()


# -- auto-delete --------------------------------------------------------------------------------


def test_auto_delete_queue_lives_until_first_consumer_leaves(
    connection: pika.BlockingConnection, connect: Callable[..., pika.BlockingConnection], names: Names
) -> None:
    q = names.queue("ad")
    ch = connection.channel()
    ch.queue_declare(q, durable=True, auto_delete=True)
    getter = connect().channel()
    getter.basic_get(q)  # basic.get is not a consumer
    getter.connection.close()
    assert exists_queue(connection, q)
    tag1 = ch.basic_consume(q, lambda *a: None)
    tag2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag1)
    assert exists_queue(connection, q)
    ch.basic_cancel(tag2)
    assert not exists_queue(connection, q)


def test_auto_delete_queue_deleted_when_consumer_channel_closes(
    connection: pika.BlockingConnection, names: Names
) -> None:
    q = names.queue("ad")
    connection.channel().queue_declare(q, durable=True, auto_delete=True)
    consumer = connection.channel()
    consumer.basic_consume(q, lambda *a: None)
    consumer.close()
    assert not exists_queue(connection, q)


def test_auto_delete_queue_deleted_when_consumer_connection_closes(
    connect: Callable[..., pika.BlockingConnection], names: Names
) -> None:
    q = names.queue("ad")
    observer = connect()
    observer.channel().queue_declare(q, durable=True, auto_delete=True)
    consumer = connect()
    consumer.channel().basic_consume(q, lambda *a: None)
    assert exists_queue(observer, q)
    consumer.close()
    assert not exists_queue(observer, q)


# -- bind / unbind ------------------------------------------------------------------------------


def test_bind_missing_exchange(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    x = unique("missing")
    with expect_channel_error(404, reply_not_found_exchange(x)):
        channel.queue_bind(q, x, "k")


def test_bind_missing_queue(channel: Any) -> None:
    q = unique("missing")
    with expect_channel_error(404, reply_not_found_queue(q)):
        channel.queue_bind(q, "amq.direct", "k")


def test_unbind_missing_queue_or_exchange_is_ok(channel: Any) -> None:
    channel.queue_unbind(unique("missing"), "amq.direct", "k")
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_unbind(q, unique("missing"), "k")
    assert channel.is_open


def test_bind_and_unbind_route(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    key = unique("rk")
    channel.queue_bind(q, "amq.direct", key)
    channel.basic_publish("amq.direct", key, b"bound")
    channel.queue_unbind(q, "amq.direct", key)
    channel.basic_publish("amq.direct", key, b"unbound")
    assert bodies(channel, q) == [b"bound"]


def test_bind_with_empty_routing_key(channel: Any) -> None:
    """An empty binding key is just the key '' (it does not default to the queue name)."""
    q = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(q, "amq.direct", "")
    channel.basic_publish("amq.direct", "", b"empty key")
    channel.basic_publish("amq.direct", q, b"queue name")
    assert bodies(channel, q) == [b"empty key"]


def test_deleted_queue_loses_its_bindings(channel: Any, names: Names) -> None:
    q = names.queue()
    key = unique("rk")
    channel.queue_declare(q, durable=True)
    channel.queue_bind(q, "amq.direct", key)
    channel.queue_delete(q)
    channel.queue_declare(q, durable=True)
    channel.basic_publish("amq.direct", key, b"old binding")
    assert bodies(channel, q) == []


# -- purge / delete -----------------------------------------------------------------------------


def test_purge_returns_count(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    for i in range(7):
        channel.basic_publish("", q, str(i).encode())
    assert channel.queue_purge(q).method.message_count == 7
    assert channel.queue_purge(q).method.message_count == 0
    assert channel.basic_get(q)[0] is None


def test_purge_leaves_unacked_messages(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    for body in (b"a", b"b", b"c"):
        channel.basic_publish("", q, body)
    method, _, body = channel.basic_get(q)
    assert body == b"a"
    assert channel.queue_purge(q).method.message_count == 2
    channel.basic_reject(method.delivery_tag, requeue=True)
    got = channel.basic_get(q, auto_ack=True)
    assert (got[2], got[0].redelivered) == (b"a", True)


def test_purge_missing_queue(channel: Any) -> None:
    q = unique("missing")
    with expect_channel_error(404, reply_not_found_queue(q)):
        channel.queue_purge(q)


def test_delete_returns_ready_count(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    for i in range(4):
        channel.basic_publish("", q, str(i).encode())
    channel.basic_get(q)  # one unacked, not counted
    assert channel.queue_delete(q).method.message_count == 3


def test_delete_missing_queue_is_ok(channel: Any) -> None:
    assert channel.queue_delete(unique("missing")).method.message_count == 0


def test_delete_if_empty(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    with expect_channel_error(406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"):
        ch.queue_delete(q, if_empty=True)
    ch = connection.channel()
    ch.queue_purge(q)
    assert ch.queue_delete(q, if_empty=True).method.message_count == 0
    assert not exists_queue(connection, q)


def test_delete_if_unused(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    tag = ch.basic_consume(q, lambda *a: None)
    with expect_channel_error(406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"):
        connection.channel().queue_delete(q, if_unused=True)
    ch.basic_cancel(tag)
    ch.queue_delete(q, if_unused=True)
    assert not exists_queue(connection, q)


def test_delete_if_unused_and_if_empty(channel: Any) -> None:
    q = channel.queue_declare("", exclusive=True).method.queue
    assert channel.queue_delete(q, if_unused=True, if_empty=True).method.message_count == 0


def test_message_count_via_passive_declare_after_confirms(channel: Any) -> None:
    channel.confirm_delivery()
    q = channel.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        channel.basic_publish("", q, str(i).encode())
    assert message_count(channel, q) == 3


async def test_purge_and_delete_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue(exclusive=True)
    for i in range(3):
        await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=q.name)
    purged = await q.purge()
    assert purged.message_count == 3
    await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=q.name)
    deleted = await q.delete(if_unused=False, if_empty=False)
    assert deleted.message_count == 1
