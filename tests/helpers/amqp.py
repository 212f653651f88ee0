"""Shared helpers for the integration tests: unique names, error assertions, draining queues."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.adapters.blocking_connection
import pika.exceptions
import pytest

BlockingChannel = pika.adapters.blocking_connection.BlockingChannel


def unique(prefix: str = "lapine-test") -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Names:
    """Unique queue and exchange names, deleted (on a fresh connection) when the test ends."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, prefix: str = "q") -> str:
        name = unique(prefix)
        self.queues.append(name)
        return name

    def exchange(self, prefix: str = "x") -> str:
        name = unique(prefix)
        self.exchanges.append(name)
        return name


@contextlib.contextmanager
def expect_channel_error(code: int, text: str) -> Iterator[None]:
    """The block must end with the broker closing the channel with exactly (code, text)."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        yield
    assert (info.value.reply_code, info.value.reply_text) == (code, text)


@contextlib.contextmanager
def expect_connection_error(code: int, text: str) -> Iterator[None]:
    """The block must end with the broker closing the connection with exactly (code, text)."""
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        yield
    assert (info.value.reply_code, info.value.reply_text) == (code, text)


def drain(channel: BlockingChannel, queue: str, limit: int = 10_000) -> list[tuple[Any, Any, bytes]]:
    """basic.get with auto-ack until get-empty; returns (method, properties, body) triples."""
    out: list[tuple[Any, Any, bytes]] = []
    for _ in range(limit):
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append((method, props, body))
    return out


def bodies(channel: BlockingChannel, queue: str) -> list[bytes]:
    return [body for _, _, body in drain(channel, queue)]


def message_count(channel: BlockingChannel, queue: str) -> int:
    """Ready messages, as a passive queue.declare reports them.

    RabbitMQ answers a passive declare from statistics that may lag behind publishes made just
    before on the same channel: publish in confirm mode (or make another round trip through the
    queue, e.g. basic.get) before relying on this count.
    """
    count: int = channel.queue_declare(queue, passive=True).method.message_count
    return count


def consumer_count(channel: BlockingChannel, queue: str) -> int:
    count: int = channel.queue_declare(queue, passive=True).method.consumer_count
    return count


def wait_until(
    connection: pika.BlockingConnection,
    predicate: Callable[[], bool],
    timeout: float = 3.0,
    step: float = 0.02,
) -> bool:
    """Process I/O on a blocking connection until predicate() is true (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        connection.process_data_events(time_limit=step)
    return True


def pump(connection: pika.BlockingConnection, seconds: float) -> None:
    """Process I/O (and dispatch callbacks) for the whole duration.

    ``process_data_events(time_limit=...)`` returns as soon as it has dispatched something, so a
    single call does not mean "nothing more arrived within the time limit".
    """
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        connection.process_data_events(time_limit=remaining)


def exists_queue(connection: pika.BlockingConnection, queue: str) -> bool:
    """Passive declare on a throwaway channel: does the queue exist (for this connection)?"""
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return False
        raise
    channel.close()
    return True


def exists_exchange(connection: pika.BlockingConnection, exchange: str) -> bool:
    channel = connection.channel()
    try:
        channel.exchange_declare(exchange, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return False
        raise
    channel.close()
    return True


def reply_not_found_queue(name: str, vhost: str = "/") -> str:
    return f"NOT_FOUND - no queue '{name}' in vhost '{vhost}'"


def reply_not_found_exchange(name: str, vhost: str = "/") -> str:
    return f"NOT_FOUND - no exchange '{name}' in vhost '{vhost}'"


def reply_locked(name: str, vhost: str = "/") -> str:
    return (
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'."
        " It could be originally declared on another connection or the exclusive property value does not"
        " match that of the original declaration."
    )
