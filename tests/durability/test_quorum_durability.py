"""Quorum queues keep every confirmed message, transient ones too (RabbitMQ's Raft log), across a
clean restart and a kill -9; what was delivered and not acknowledged comes back redelivered."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pika
import pytest

from tests.durability.test_crash import free_port, start_broker

QUEUE = "quorum-kept"


def connect(port: int) -> pika.BlockingConnection:
    parameters = pika.ConnectionParameters("127.0.0.1", port, connection_attempts=1, socket_timeout=5)
    return pika.BlockingConnection(parameters)


def stop(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
    process.send_signal(how)
    process.wait(timeout=30)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "kill-9"])
def test_confirmed_messages_of_a_quorum_queue_survive(tmp_path: Path, how: signal.Signals) -> None:
    port = free_port()
    broker = start_broker(tmp_path, port)
    try:
        connection = connect(port)
        channel = connection.channel()
        channel.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 7})
        channel.confirm_delivery()
        for index in range(200):
            mode = 1 if index % 2 else 2  # transient and persistent alike
            channel.basic_publish("", QUEUE, str(index).encode(), pika.BasicProperties(delivery_mode=mode))
        method, _props, body = channel.basic_get(QUEUE)  # delivered, never acknowledged
        assert body == b"0" and method is not None
        # A confirmed publish after it: the store has then also written that it was delivered.
        channel.basic_publish("", QUEUE, b"200", pika.BasicProperties(delivery_mode=1))
        stop(broker, how)
        broker = start_broker(tmp_path, port)
        channel = connect(port).channel()
        declared = channel.queue_declare(QUEUE, passive=True)
        assert declared.method.message_count == 201
        # Still a quorum queue with its arguments: a redeclare must be equivalent.
        channel.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 7})
        seen = []
        while True:
            method, _props, body = channel.basic_get(QUEUE, auto_ack=True)
            if method is None:
                break
            seen.append((int(body), method.redelivered))
        assert [index for index, _ in seen] == list(range(201))
        assert seen[0] == (0, True)
        assert not any(redelivered for _, redelivered in seen[1:])
    finally:
        if broker.poll() is None:
            stop(broker, signal.SIGKILL)


def test_at_least_once_dead_letters_are_never_lost_to_a_kill_9(tmp_path: Path) -> None:
    """Rejected messages of an at-least-once queue are in the source or in the target after a
    crash (never in neither): the source lets one go only after the target's copy is written."""
    port = free_port()
    broker = start_broker(tmp_path, port)
    quorum = {"x-queue-type": "quorum"}
    source_arguments = {
        **quorum,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "dead",
    }
    try:
        channel = connect(port).channel()
        channel.queue_declare("dead", durable=True, arguments=quorum)
        channel.queue_declare("source", durable=True, arguments=source_arguments)
        channel.confirm_delivery()
        for index in range(300):
            channel.basic_publish("", "source", str(index).encode())
        rejecter = connect(port).channel()
        for _ in range(300):
            method, _props, _body = rejecter.basic_get("source")
            rejecter.basic_reject(method.delivery_tag, requeue=False)
        stop(broker, signal.SIGKILL)  # the last rejections may not have reached the disk yet
        broker = start_broker(tmp_path, port)
        channel = connect(port).channel()
        found = []
        for queue in ("source", "dead"):
            while True:
                method, _props, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                found.append(int(body))
        assert sorted(set(found)) == list(range(300))
    finally:
        if broker.poll() is None:
            stop(broker, signal.SIGKILL)
