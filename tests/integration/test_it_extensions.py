"""RabbitMQ's queue and routing extensions, end to end with pika: TTLs, dead-lettering, length
limits, priorities, consumer priorities, single active consumer, x-expires, CC/BCC, alternate
exchanges and exchange-to-exchange loops. Each test passes against RabbitMQ as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
import pytest

from tests.helpers.amqp import bodies, drain, expect_channel_error, message_count, pump, unique, wait_until

BlockingChannel = Any


def declare(channel: BlockingChannel, **arguments: Any) -> str:
    return channel.queue_declare(unique("ext"), exclusive=True, arguments=arguments or None).method.queue


def dead_letter_queue(channel: BlockingChannel) -> tuple[str, str]:
    """A fanout dead-letter exchange with one queue behind it: (exchange, queue)."""
    exchange = unique("dlx")
    channel.exchange_declare(exchange, "fanout", auto_delete=True)
    queue = declare(channel)
    channel.queue_bind(queue, exchange)
    return exchange, queue


# -- TTL ------------------------------------------------------------------------------------------


def test_queue_ttl_and_message_ttl_lower_wins(channel: BlockingChannel) -> None:
    q = declare(channel, **{"x-message-ttl": 100})
    channel.basic_publish("", q, b"queue ttl")
    channel.basic_publish("", q, b"message ttl longer", pika.BasicProperties(expiration="60000"))
    time.sleep(0.3)
    assert message_count(channel, q) == 0
    q2 = declare(channel, **{"x-message-ttl": 60000})
    channel.basic_publish("", q2, b"short", pika.BasicProperties(expiration="50"))
    channel.basic_publish("", q2, b"long")
    time.sleep(0.2)
    assert bodies(channel, q2) == [b"long"]


def test_expired_messages_are_dead_lettered_with_x_death(channel: BlockingChannel) -> None:
    dlx, dead = dead_letter_queue(channel)
    q = declare(channel, **{"x-message-ttl": 50, "x-dead-letter-exchange": dlx})
    channel.basic_publish("", q, b"late", pika.BasicProperties(expiration="20", headers={"app": "x"}))
    assert wait_until(channel.connection, lambda: message_count(channel, dead) == 1)
    ((method, properties, body),) = drain(channel, dead)
    assert body == b"late"
    assert properties.expiration is None
    headers = properties.headers
    assert headers["app"] == "x"
    (death,) = headers["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "expired"
    assert death["queue"] == q
    assert death["exchange"] == ""
    assert death["routing-keys"] == [q]
    assert death["original-expiration"] == "20"
    assert headers["x-first-death-reason"] == "expired"
    assert headers["x-first-death-queue"] == q
    assert headers["x-first-death-exchange"] == ""
    assert method.exchange == dlx
    assert method.routing_key == q


def test_rejected_messages_are_dead_lettered_with_routing_key(channel: BlockingChannel) -> None:
    dlx = unique("dlx")
    channel.exchange_declare(dlx, "direct", auto_delete=True)
    dead = declare(channel)
    channel.queue_bind(dead, dlx, "failed")
    q = declare(channel, **{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "failed"})
    for body in (b"a", b"b", b"c"):
        channel.basic_publish("", q, body)
    tags = [channel.basic_get(q)[0].delivery_tag for _ in range(3)]
    channel.basic_reject(tags[0], requeue=False)
    channel.basic_nack(tags[2], multiple=True, requeue=False)
    assert wait_until(channel.connection, lambda: message_count(channel, dead) == 3)
    got = drain(channel, dead)
    assert [b for _, _, b in got] == [b"a", b"b", b"c"]
    assert all(p.headers["x-death"][0]["reason"] == "rejected" for _, p, _ in got)
    assert all(m.routing_key == "failed" for m, _, _ in got)


def test_max_length_drops_head_into_the_dead_letter_exchange(channel: BlockingChannel) -> None:
    dlx, dead = dead_letter_queue(channel)
    q = declare(channel, **{"x-max-length": 2, "x-dead-letter-exchange": dlx})
    for n in range(5):
        channel.basic_publish("", q, str(n).encode())
    assert bodies(channel, q) == [b"3", b"4"]
    got = drain(channel, dead)
    assert [b for _, _, b in got] == [b"0", b"1", b"2"]
    assert got[0][1].headers["x-death"][0]["reason"] == "maxlen"


def test_max_length_bytes(channel: BlockingChannel) -> None:
    q = declare(channel, **{"x-max-length-bytes": 10})
    for body in (b"12345", b"678", b"90ab"):
        channel.basic_publish("", q, body)
    assert bodies(channel, q) == [b"678", b"90ab"]


def test_reject_publish_nacks_confirmed_publishes(channel: BlockingChannel) -> None:
    q = declare(channel, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    channel.basic_publish("", q, b"fits")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", q, b"refused")
    assert bodies(channel, q) == [b"fits"]


def test_reject_publish_dlx_dead_letters_the_refused(channel: BlockingChannel) -> None:
    dlx, dead = dead_letter_queue(channel)
    q = declare(channel, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": dlx})
    channel.basic_publish("", q, b"kept")
    channel.basic_publish("", q, b"refused")
    assert bodies(channel, q) == [b"kept"]
    assert wait_until(channel.connection, lambda: message_count(channel, dead) == 1)
    assert bodies(channel, dead) == [b"refused"]


def test_expiry_dead_letter_cycle_is_dropped(channel: BlockingChannel) -> None:
    """A queue that dead-letters expired messages back to itself: the message is dropped."""
    q = unique("cycle")
    channel.queue_declare(
        q, exclusive=True, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": q}
    )
    channel.basic_publish("", q, b"round and round")
    time.sleep(0.3)
    assert message_count(channel, q) == 0


def test_retry_through_a_delay_queue_counts_deaths(channel: BlockingChannel) -> None:
    """work --reject--> DLX --> delay (TTL) --expire--> back to work: x-death counts each lap."""
    work, delay = unique("work"), unique("delay")
    channel.queue_declare(
        work, exclusive=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": delay}
    )
    channel.queue_declare(
        delay,
        exclusive=True,
        arguments={"x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work},
    )
    count = 1000
    for n in range(count):
        channel.basic_publish("", work, str(n).encode())
    laps: dict[bytes, int] = {}
    deadline = time.monotonic() + 20
    while len([b for b, lap in laps.items() if lap == 3]) < count and time.monotonic() < deadline:
        method, properties, body = channel.basic_get(work)
        if method is None:
            pump(channel.connection, 0.01)
            continue
        deaths = (properties.headers or {}).get("x-death", [])
        lap = next((d["count"] for d in deaths if d["queue"] == work and d["reason"] == "rejected"), 0)
        expired = next((d["count"] for d in deaths if d["queue"] == delay and d["reason"] == "expired"), 0)
        assert lap == expired == laps.get(body, 0)
        laps[body] = lap + 1
        if lap + 1 < 3:
            channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(method.delivery_tag)
    assert sorted(laps) == sorted(str(n).encode() for n in range(count))
    assert set(laps.values()) == {3}


# -- priorities -----------------------------------------------------------------------------------


def test_priority_queue_delivers_higher_first_fifo_within(channel: BlockingChannel) -> None:
    q = declare(channel, **{"x-max-priority": 5})
    for body, priority in ((b"low1", 1), (b"none", None), (b"high1", 5), (b"low2", 1), (b"over", 9), (b"mid", 3)):
        channel.basic_publish("", q, body, pika.BasicProperties(priority=priority))
    assert bodies(channel, q) == [b"high1", b"over", b"mid", b"low1", b"low2", b"none"]


def test_invalid_max_priority(channel: BlockingChannel) -> None:
    q = unique("prio")
    with expect_channel_error(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': {{max_value_exceeded,256}}",
    ):
        channel.queue_declare(q, arguments={"x-max-priority": 256})


# -- consumers ------------------------------------------------------------------------------------


def consume(channel: BlockingChannel, queue: str, into: list[str], name: str, **kwargs: Any) -> str:
    def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        into.append(name)

    return channel.basic_consume(queue, callback, **kwargs)


def test_consumer_priorities(connection: pika.BlockingConnection) -> None:
    channel = connection.channel()
    q = declare(channel)
    got: list[str] = []
    low_channel, high_channel = connection.channel(), connection.channel()
    high_channel.basic_qos(prefetch_count=2)
    consume(low_channel, q, got, "low", auto_ack=True, arguments={"x-priority": 1})
    consume(high_channel, q, got, "high", arguments={"x-priority": 10})
    for n in range(5):
        channel.basic_publish("", q, str(n).encode())
    pump(connection, 0.3)
    # The high-priority consumer fills its window first; only then does the low one get any.
    assert sorted(got) == ["high", "high", "low", "low", "low"]


def test_single_active_consumer(connection: pika.BlockingConnection) -> None:
    channel = connection.channel()
    q = declare(channel, **{"x-single-active-consumer": True})
    got: list[str] = []
    first = consume(channel, q, got, "first", auto_ack=True)
    consume(channel, q, got, "second", auto_ack=True)
    for n in range(3):
        channel.basic_publish("", q, str(n).encode())
    pump(connection, 0.2)
    assert got == ["first"] * 3
    channel.basic_cancel(first)
    channel.basic_publish("", q, b"after")
    pump(connection, 0.2)
    assert got[3:] == ["second"]


def test_queue_expires_when_unused(connect: Callable[..., pika.BlockingConnection]) -> None:
    connection = connect()
    channel = connection.channel()
    q = unique("expires")
    channel.queue_declare(q, arguments={"x-expires": 200})
    channel.queue_declare(q, passive=True)
    time.sleep(0.6)
    with expect_channel_error(404, f"NOT_FOUND - no queue '{q}' in vhost '/'"):
        channel.queue_declare(q, passive=True)


# -- routing --------------------------------------------------------------------------------------


def test_cc_and_bcc(channel: BlockingChannel) -> None:
    main, cc, bcc = declare(channel), declare(channel), declare(channel)
    channel.basic_publish("", main, b"hi", pika.BasicProperties(headers={"CC": [cc], "BCC": [bcc], "keep": 1}))
    got = {q: drain(channel, q) for q in (main, cc, bcc)}
    assert all(len(messages) == 1 for messages in got.values())
    for messages in got.values():
        headers = messages[0][1].headers
        assert headers["CC"] == [cc]
        assert "BCC" not in headers
        assert headers["keep"] == 1
    assert got[cc][0][0].routing_key == main


def test_alternate_exchange_chain_and_loop(channel: BlockingChannel) -> None:
    first, second = unique("ae1"), unique("ae2")
    channel.exchange_declare(second, "direct", auto_delete=False, arguments={"alternate-exchange": first})
    channel.exchange_declare(first, "direct", auto_delete=False, arguments={"alternate-exchange": second})
    q = declare(channel)
    channel.queue_bind(q, second, "only-here")
    channel.basic_publish(first, "only-here", b"via alternate")
    channel.basic_publish(first, "nowhere", b"loops, then dropped")
    assert bodies(channel, q) == [b"via alternate"]
    channel.exchange_delete(first)
    channel.exchange_delete(second)


def test_exchange_to_exchange_loop_delivers_once(channel: BlockingChannel) -> None:
    a, b = unique("e2e-a"), unique("e2e-b")
    channel.exchange_declare(a, "fanout", auto_delete=True)
    channel.exchange_declare(b, "fanout", auto_delete=True)
    channel.exchange_bind(b, a)
    channel.exchange_bind(a, b)
    q = declare(channel)
    channel.queue_bind(q, a)
    channel.queue_bind(q, b)
    channel.basic_publish(a, "", b"once")
    assert bodies(channel, q) == [b"once"]
    channel.exchange_delete(a)
    channel.exchange_delete(b)
