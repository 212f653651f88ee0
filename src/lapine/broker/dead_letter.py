"""Dead-lettering: messages that die in a queue are republished to its dead-letter exchange.

A message dies when it is rejected or nacked without requeue (reason ``rejected``), when its
TTL runs out (``expired``) or when a length limit pushes it out (``maxlen``). The copy that goes
on carries the ``x-death`` history RabbitMQ writes, newest first, one entry per queue and
reason with a count, and the ``x-first-death-*`` / ``x-last-death-*`` headers. A message that
would come back to a queue it already died in, with no rejection anywhere in between, is in a
cycle and is dropped, as RabbitMQ does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lapine.amqp.codec import Timestamp
from lapine.amqp.spec import BasicProperties, encode_basic_header
from lapine.broker.message import Message

if TYPE_CHECKING:
    from lapine.broker.queue import Queue, QueuedMessage
    from lapine.broker.vhost import VirtualHost


def dead_letter(vhost: VirtualHost, queue: Queue, entries: list[QueuedMessage], reason: str) -> None:
    """Messages died in ``queue`` (of ``vhost``): each goes on as a copy to the queues its
    dead-letter exchange routes it to."""
    if not entries:
        return
    exchange_name = queue.dead_letter_exchange
    exchange = vhost.exchanges.get(exchange_name) if exchange_name is not None else None
    # Counted as RabbitMQ counts them (messages_dead_lettered_*): "disabled" when the message is
    # dropped for want of a dead-letter exchange, as it is when that exchange is missing.
    strategy = "at_most_once" if exchange is not None else "disabled"
    vhost.dead_lettered[(vhost.queue_type_of(queue).module, reason, strategy)] += len(entries)
    if exchange is None or exchange_name is None:
        return
    for entry in entries:
        original = entry.message
        copy, deaths = _dead_lettered_copy(original, queue, reason, exchange_name, vhost.scheduler.wall_time())
        keys = [queue.dead_letter_routing_key] if queue.dead_letter_routing_key is not None else original_keys(original)
        targets: dict[Queue, None] = {}
        for key in keys:
            copy.routing_key = key
            for target in vhost.route(exchange, copy):
                targets[target] = None
        copy.routing_key = keys[0]
        copy.cc = original.cc
        exchange.stats.publish_in += 1
        for target in targets:
            if not _is_cycle(target.name, deaths):
                exchange.stats.publish_out += 1
                target.stats.publish += 1
                target.publish(copy)


def forward_at_least_once(
    vhost: VirtualHost, queue: Queue, entry: QueuedMessage, reason: str, settled: set[str]
) -> bool:
    """At-least-once dead-lettering (a quorum queue's x-dead-letter-strategy): one attempt to
    hand a dead message to every queue its dead-letter exchange routes it to. ``settled`` names
    the queues that have it already (kept by the caller between attempts). True once every target
    took it: only then may the source let it go. A target that refuses it (overflow
    reject-publish), a missing exchange or no route leave it with the source for the next try."""
    exchange_name = queue.dead_letter_exchange
    exchange = vhost.exchanges.get(exchange_name) if exchange_name is not None else None
    if exchange is None or exchange_name is None:
        return False
    original = entry.message
    copy, deaths = _dead_lettered_copy(original, queue, reason, exchange_name, vhost.scheduler.wall_time())
    keys = [queue.dead_letter_routing_key] if queue.dead_letter_routing_key is not None else original_keys(original)
    targets: dict[Queue, None] = {}
    for key in keys:
        copy.routing_key = key
        for target in vhost.route(exchange, copy):
            targets[target] = None
    copy.routing_key = keys[0]
    copy.cc = original.cc
    if not targets:
        return False
    done = True
    for target in targets:
        if target.name in settled or _is_cycle(target.name, deaths):
            continue
        exchange.stats.publish_out += 1
        target.stats.publish += 1
        if target.publish(copy):
            settled.add(target.name)
        else:
            done = False
    if done:
        exchange.stats.publish_in += 1
        vhost.dead_lettered[(vhost.queue_type_of(queue).module, "confirmed", "at_least_once")] += 1
    return done


def original_keys(message: Message) -> list[str]:
    """The routing key and CC keys a message was published with (never its BCC keys)."""
    return [message.routing_key, *(message.cc or ())]


def _dead_lettered_copy(
    message: Message, queue: Queue, reason: str, exchange_name: str, now: float
) -> tuple[Message, list[dict[str, Any]]]:
    # A fresh decode: the original Message may still sit in other queues, unchanged.
    properties = BasicProperties.decode(message.header_payload, 12)
    headers = dict(properties.headers or {})
    deaths = [dict(d) for d in headers.get("x-death") or [] if isinstance(d, dict)]
    count = 1
    for index, death in enumerate(deaths):
        if death.get("queue") == queue.name and death.get("reason") == reason:
            previous = death.get("count")
            count = (previous if isinstance(previous, int) else 0) + 1
            del deaths[index]
            break
    death = {
        "count": count,
        "reason": reason,
        "queue": queue.name,
        "time": Timestamp(int(now)),
        "exchange": message.exchange,
        "routing-keys": original_keys(message),
    }
    if properties.expiration is not None:
        # The per-message TTL is taken off so the message does not expire again where it goes.
        death["original-expiration"] = properties.expiration
        properties.expiration = None
    deaths.insert(0, death)
    headers["x-death"] = deaths
    if "x-first-death-reason" not in headers:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue.name
        headers["x-first-death-exchange"] = message.exchange
    headers["x-last-death-reason"] = reason
    headers["x-last-death-queue"] = queue.name
    headers["x-last-death-exchange"] = message.exchange
    properties.headers = headers
    header_payload = encode_basic_header(len(message.body), properties.encode())
    return Message(exchange_name, message.routing_key, header_payload, message.body), deaths


def _is_cycle(target: str, deaths: list[dict[str, Any]]) -> bool:
    """Would the message reach ``target`` again with only automatic deaths on the way?"""
    for death in deaths:
        if death.get("reason") == "rejected":
            return False
        if death.get("queue") == target:
            return True
    return False
