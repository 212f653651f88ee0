"""Quorum queues (x-queue-type quorum) on one node, as a client sees them.

Every test also passes against RabbitMQ 3.10; where RabbitMQ 4.x behaves otherwise (the counts
rabbit_fifo keeps, the default delivery limit), the test asserts 4.x and is marked
rabbitmq_differs. Publishes go with confirms: a quorum queue takes a message once it is written,
so a get right after an unconfirmed publish may find nothing yet on RabbitMQ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.helpers.amqp import BlockingChannel, Names, expect_channel_error, expect_connection_error

QUORUM = {"x-queue-type": "quorum"}


def declare(channel: BlockingChannel, queue: str, **arguments: Any) -> None:
    channel.queue_declare(queue, durable=True, arguments={**QUORUM, **arguments})


def publish(channel: BlockingChannel, queue: str, *bodies: bytes, **properties: Any) -> None:
    for body in bodies:
        channel.basic_publish("", queue, body, pika.BasicProperties(**properties))


def confirmed(channel: BlockingChannel) -> BlockingChannel:
    channel.confirm_delivery()
    return channel


def get_all(channel: BlockingChannel, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def wait_for(channel: BlockingChannel, queue: str, count: int, timeout: float = 5.0) -> None:
    """RabbitMQ dead-letters asynchronously: wait until ``queue`` holds ``count`` messages."""
    deadline = time.monotonic() + timeout
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        assert time.monotonic() < deadline, f"{queue} never reached {count} messages"
        time.sleep(0.05)


def where(queue: str) -> str:
    return f"queue '{queue}' in vhost '/'"


# --- declare ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        ({"durable": False}, "non-durable"),
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
    ],
)
def test_a_quorum_queue_is_durable_shared_and_kept(
    channel: BlockingChannel, names: Names, flags: dict[str, bool], refused: str
) -> None:
    queue = names.queue("qq-props")
    with expect_channel_error(406, f"PRECONDITION_FAILED - invalid property '{refused}' for {where(queue)}"):
        channel.queue_declare(queue, arguments=QUORUM, **flags)


def test_redeclare_must_repeat_type_and_arguments(connection: pika.BlockingConnection, names: Names) -> None:
    queue = names.queue("qq-redeclare")
    declare(connection.channel(), queue)
    declare(connection.channel(), queue)  # the same declare again is fine
    with expect_channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for {where(queue)}: "
        "received the value '5' of type 'signedint' but current is none",
    ):
        declare(connection.channel(), queue, **{"x-delivery-limit": 5})


@pytest.mark.rabbitmq_differs
def test_redeclare_as_classic_is_refused(connection: pika.BlockingConnection, names: Names) -> None:
    """RabbitMQ 4.x compares queue types (3.10: the x-queue-type arguments, as values)."""
    queue = names.queue("qq-redeclare-type")
    declare(connection.channel(), queue)
    with expect_channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for {where(queue)}: "
        "received 'classic' but current is 'quorum'",
    ):
        connection.channel().queue_declare(queue, durable=True)


def test_classic_only_arguments_are_refused(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("qq-prio")
    with expect_channel_error(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for {where(queue)} of queue type rabbit_quorum_queue",
    ):
        declare(channel, queue, **{"x-max-priority": 5})


def test_transient_messages_are_confirmed_and_delivered(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("qq-basic")
    declare(channel, queue)
    confirmed(channel)
    publish(channel, queue, b"transient", delivery_mode=1)
    publish(channel, queue, b"persistent", delivery_mode=2)
    assert channel.queue_declare(queue, passive=True).method.message_count == 2
    assert get_all(channel, queue) == [b"transient", b"persistent"]


# --- returns, delivery counts and the delivery limit ------------------------------------------


def test_returned_messages_go_first_in_the_order_they_came_back(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("qq-returns")
    declare(channel, queue, **{"x-delivery-limit": 50})
    confirmed(channel)
    publish(channel, queue, b"a", b"b", b"c")
    first, _, _ = channel.basic_get(queue)
    second, _, _ = channel.basic_get(queue)
    channel.basic_nack(second.delivery_tag, requeue=True)
    channel.basic_nack(first.delivery_tag, requeue=True)
    seen = []
    for _ in range(3):
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        seen.append((body, method.redelivered))
    assert seen == [(b"b", True), (b"a", True), (b"c", False)]


def test_consumers_get_returned_messages_before_new_ones(connection: pika.BlockingConnection, names: Names) -> None:
    channel = confirmed(connection.channel())
    queue = names.queue("qq-consumer-returns")
    declare(channel, queue, **{"x-delivery-limit": 50})
    publish(channel, queue, b"a", b"b", b"c", b"d")
    got: list[tuple[int, bytes]] = []
    channel.basic_qos(prefetch_count=2)
    channel.basic_consume(queue, lambda _ch, method, _props, body: got.append((method.delivery_tag, body)))
    while len(got) < 2:
        connection.process_data_events(0.1)
    channel.basic_reject(got[1][0], requeue=True)
    channel.basic_reject(got[0][0], requeue=True)
    while len(got) < 4:
        connection.process_data_events(0.1)
    channel.basic_ack(got[3][0], multiple=True)
    while len(got) < 6:
        connection.process_data_events(0.1)
    channel.basic_ack(got[5][0], multiple=True)
    assert [body for _tag, body in got] == [b"a", b"b", b"b", b"a", b"c", b"d"]


@pytest.mark.rabbitmq_differs
def test_returns_count_acquisitions_and_failed_deliveries(
    connection: pika.BlockingConnection, names: Names
) -> None:
    """RabbitMQ 4.x: a client's requeue counts in x-acquired-count only; a delivery its channel
    left unacknowledged is a failed one and counts in x-delivery-count too."""
    channel = confirmed(connection.channel())
    queue = names.queue("qq-counts")
    declare(channel, queue)
    publish(channel, queue, b"m")
    method, props, _ = channel.basic_get(queue)
    assert not method.redelivered and not props.headers
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, props, _ = channel.basic_get(queue)
    assert method.redelivered and props.headers == {"x-acquired-count": 1}
    channel.basic_nack(method.delivery_tag, requeue=True)
    other = connection.channel()
    assert other.basic_get(queue)[2] == b"m"
    other.close()
    method, props, _ = channel.basic_get(queue, auto_ack=True)
    assert props.headers == {"x-acquired-count": 3, "x-delivery-count": 1}


def _target(channel: BlockingChannel, names: Names) -> str:
    target = names.queue("qq-dead")
    channel.queue_declare(target, durable=True)
    return target


def test_the_delivery_limit_dead_letters_what_keeps_failing(
    connection: pika.BlockingConnection, names: Names
) -> None:
    channel = confirmed(connection.channel())
    target = _target(channel, names)
    queue = names.queue("qq-limit")
    declare(
        channel, queue, **{"x-delivery-limit": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": target}
    )
    publish(channel, queue, b"poison")
    for _ in range(2):  # two deliveries whose channel went away unacknowledged
        taker = connection.channel()
        assert taker.basic_get(queue)[2] == b"poison"
        taker.close()
    wait_for(channel, target, 1)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    _method, props, body = channel.basic_get(target, auto_ack=True)
    assert body == b"poison"
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    assert props.headers["x-death"][0]["queue"] == queue


def test_the_delivery_limit_without_a_dead_letter_exchange_drops(
    connection: pika.BlockingConnection, names: Names
) -> None:
    channel = confirmed(connection.channel())
    queue = names.queue("qq-limit-drop")
    declare(channel, queue, **{"x-delivery-limit": 0})
    publish(channel, queue, b"poison", b"fine")
    taker = connection.channel()
    assert taker.basic_get(queue)[2] == b"poison"
    taker.close()
    assert get_all(channel, queue) == [b"fine"]


@pytest.mark.rabbitmq_differs
def test_requeues_by_the_client_do_not_count_towards_the_limit(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("qq-limit-requeue")
    declare(channel, queue, **{"x-delivery-limit": 0})
    confirmed(channel)
    publish(channel, queue, b"m")
    for _ in range(3):
        method, _props, body = channel.basic_get(queue)
        assert body == b"m"
        channel.basic_reject(method.delivery_tag, requeue=True)
    assert get_all(channel, queue) == [b"m"]


@pytest.mark.rabbitmq_differs
def test_the_default_delivery_limit_is_twenty(connection: pika.BlockingConnection, names: Names) -> None:
    channel = confirmed(connection.channel())
    queue = names.queue("qq-default-limit")
    declare(channel, queue)
    publish(channel, queue, b"poison")
    for _ in range(21):
        taker = connection.channel()
        assert taker.basic_get(queue)[2] == b"poison"
        taker.close()
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


@pytest.mark.rabbitmq_differs
def test_messages_go_out_by_priority(channel: BlockingChannel, names: Names) -> None:
    """RabbitMQ 4.3: strict priorities by the priority property (3.10's quorum queues have none)."""
    queue = names.queue("qq-priorities")
    declare(channel, queue)
    confirmed(channel)
    publish(channel, queue, b"low", priority=1)
    publish(channel, queue, b"plain")
    publish(channel, queue, b"high", priority=8)
    assert get_all(channel, queue) == [b"high", b"plain", b"low"]


# --- what a quorum queue refuses --------------------------------------------------------------


def test_global_qos_is_refused(connect: Callable[..., pika.BlockingConnection], names: Names) -> None:
    connection = connect()
    channel = connection.channel()
    queue = names.queue("qq-global-qos")
    declare(channel, queue)
    channel.basic_qos(prefetch_count=0, global_qos=True)  # a global limit of none is no limit
    channel.basic_consume(queue, lambda *_: None)
    channel.basic_qos(prefetch_count=10, global_qos=True)
    with expect_connection_error(540, f"NOT_IMPLEMENTED - {where(queue)} does not support global qos"):
        channel.basic_consume(queue, lambda *_: None)


@pytest.mark.parametrize("flag", ["if-unused", "if-empty"])
def test_conditional_delete_is_refused(
    connect: Callable[..., pika.BlockingConnection], names: Names, flag: str
) -> None:
    channel = connect().channel()
    queue = names.queue("qq-delete")
    declare(channel, queue)
    with expect_connection_error(
        540,
        f"NOT_IMPLEMENTED - cannot delete {where(queue)}. queue.delete operations with {flag} flag set "
        "are not supported by quorum queues",
    ):
        channel.queue_delete(queue, if_unused=flag == "if-unused", if_empty=flag == "if-empty")
    other = connect().channel()
    assert other.queue_delete(queue).method.message_count == 0


def test_basic_get_with_single_active_consumer_is_refused(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("qq-sac-get")
    declare(channel, queue, **{"x-single-active-consumer": True})
    with expect_channel_error(
        405,
        f"RESOURCE_LOCKED - cannot obtain access to locked {where(queue)}. basic.get operations are not "
        "supported by quorum queues with single active consumer",
    ):
        channel.basic_get(queue)


# --- limits and overflow ----------------------------------------------------------------------


def _publish_confirmed(channel: BlockingChannel, queue: str, count: int) -> list[str]:
    outcome = []
    for index in range(count):
        try:
            channel.basic_publish("", queue, f"m{index}".encode())
            outcome.append("ack")
        except pika.exceptions.NackError:
            outcome.append("nack")
    return outcome


def test_reject_publish_takes_the_crossing_message_then_refuses_until_drained(
    channel: BlockingChannel, names: Names
) -> None:
    queue = names.queue("qq-reject")
    declare(channel, queue, **{"x-overflow": "reject-publish", "x-max-length": 2})
    confirmed(channel)
    assert _publish_confirmed(channel, queue, 5) == ["ack", "ack", "ack", "nack", "nack"]
    assert channel.queue_declare(queue, passive=True).method.message_count == 3
    channel.basic_get(queue, auto_ack=True)
    assert _publish_confirmed(channel, queue, 1) == ["nack"]  # 2 left: above 80% of the limit
    channel.basic_get(queue, auto_ack=True)
    assert _publish_confirmed(channel, queue, 1) == ["ack"]  # 1 left: below it, publishers go on


def test_reject_publish_dlx_is_drop_head_for_quorum_queues(channel: BlockingChannel, names: Names) -> None:
    target = _target(channel, names)
    queue = names.queue("qq-reject-dlx")
    declare(
        channel,
        queue,
        **{
            "x-overflow": "reject-publish-dlx",
            "x-max-length": 1,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": target,
        },
    )
    confirmed(channel)
    assert _publish_confirmed(channel, queue, 2) == ["ack", "ack"]
    wait_for(channel, target, 1)
    assert get_all(channel, queue) == [b"m1"]
    _method, props, body = channel.basic_get(target, auto_ack=True)
    assert (body, props.headers["x-first-death-reason"]) == (b"m0", "maxlen")


def test_max_length_bytes_drops_the_oldest(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("qq-bytes")
    declare(channel, queue, **{"x-max-length-bytes": 10})
    confirmed(channel)
    publish(channel, queue, b"12345", b"67890", b"abcde")
    assert get_all(channel, queue) == [b"67890", b"abcde"]


# --- dead-lettering ---------------------------------------------------------------------------


def test_at_least_once_dead_letters_reach_their_target(channel: BlockingChannel, names: Names) -> None:
    target = _target(channel, names)
    queue = names.queue("qq-alo")
    declare(
        channel,
        queue,
        **{
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": target,
        },
    )
    confirmed(channel)
    publish(channel, queue, b"one", b"two")
    for _ in range(2):
        method, _props, _body = channel.basic_get(queue)
        channel.basic_reject(method.delivery_tag, requeue=False)
    wait_for(channel, target, 2)
    _method, props, body = channel.basic_get(target, auto_ack=True)
    assert (body, props.headers["x-first-death-reason"]) == (b"one", "rejected")
    assert get_all(channel, target) == [b"two"]
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_ttls_expire_into_the_dead_letter_exchange(channel: BlockingChannel, names: Names) -> None:
    target = _target(channel, names)
    queue = names.queue("qq-ttl")
    declare(channel, queue, **{"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": target})
    confirmed(channel)
    publish(channel, queue, b"queue-ttl")
    publish(channel, queue, b"message-ttl", expiration="10")
    wait_for(channel, target, 2)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    reasons = []
    for _ in range(2):
        _method, props, body = channel.basic_get(target, auto_ack=True)
        reasons.append((body, props.headers["x-first-death-reason"]))
    assert sorted(reasons) == [(b"message-ttl", "expired"), (b"queue-ttl", "expired")]


def test_an_unused_queue_expires(connect: Callable[..., pika.BlockingConnection], names: Names) -> None:
    channel = connect().channel()
    queue = names.queue("qq-expires")
    declare(channel, queue, **{"x-expires": 200})
    deadline = time.monotonic() + 10
    while True:
        probe = connect().channel()
        try:
            probe.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            assert error.reply_code == 404
            return
        assert time.monotonic() < deadline
        time.sleep(0.3)


# --- consumers --------------------------------------------------------------------------------


def test_consumer_priorities_and_single_active_consumer(connection: pika.BlockingConnection, names: Names) -> None:
    channel = confirmed(connection.channel())
    queue = names.queue("qq-prio-consumers")
    declare(channel, queue)
    got: dict[str, list[bytes]] = {"low": [], "high": []}
    for name, priority in (("low", 0), ("high", 5)):
        consumer_channel = connection.channel()
        consumer_channel.basic_consume(
            queue,
            lambda _ch, _m, _p, body, name=name: got[name].append(body),
            auto_ack=True,
            arguments={"x-priority": priority},
        )
    publish(channel, queue, b"1", b"2", b"3")
    deadline = time.monotonic() + 5
    while len(got["high"]) + len(got["low"]) < 3 and time.monotonic() < deadline:
        connection.process_data_events(0.1)
    assert got == {"low": [], "high": [b"1", b"2", b"3"]}

    sac = names.queue("qq-sac")
    declare(channel, sac, **{"x-single-active-consumer": True})
    taken: dict[str, list[bytes]] = {"first": [], "second": []}
    for name in ("first", "second"):
        connection.channel().basic_consume(
            sac, lambda _ch, _m, _p, body, name=name: taken[name].append(body), auto_ack=True
        )
    publish(channel, sac, b"a", b"b")
    deadline = time.monotonic() + 5
    while len(taken["first"]) + len(taken["second"]) < 2 and time.monotonic() < deadline:
        connection.process_data_events(0.1)
    assert taken == {"first": [b"a", b"b"], "second": []}


def test_purge_empties_the_ready_messages(channel: BlockingChannel, names: Names) -> None:
    queue = names.queue("qq-purge")
    declare(channel, queue)
    confirmed(channel)
    publish(channel, queue, b"1", b"2", b"3")
    held, _, _ = channel.basic_get(queue)
    assert channel.queue_purge(queue).method.message_count == 2
    channel.basic_nack(held.delivery_tag, requeue=True)
    assert get_all(channel, queue) == [b"1"]
