"""A backlog past the queue's window lives on disk: persistent messages in lapine.db, transient
ones in transient.db. Paging it back in must give every message, once, in publish order,
whichever file each one is in and however large it is."""

from __future__ import annotations

from pathlib import Path

import pika

from lapine.testing import BrokerThread


def drain(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def test_a_mixed_backlog_pages_in_whole_and_in_order(tmp_path: Path) -> None:
    # One large message makes the store size its pages by it: fewer rows per read than asked.
    settings = {"data_dir": str(tmp_path), "management_port": -1, "prometheus_port": -1, "queue_window": 100}
    with BrokerThread(**settings) as thread:
        channel = pika.BlockingConnection(pika.URLParameters(thread.url)).channel()
        channel.confirm_delivery()
        channel.queue_declare("big", durable=True)
        channel.basic_publish("", "big", b"x" * (6 << 20), pika.BasicProperties(delivery_mode=2))
        channel.queue_declare("mixed", durable=True)
        expected = []
        for n in range(220):
            body = b"m%d" % n
            channel.basic_publish("", "mixed", body, pika.BasicProperties(delivery_mode=2 if n >= 160 else 1))
            expected.append(body)
        assert channel.queue_declare("mixed", passive=True).method.message_count == 220
        assert drain(channel, "mixed") == expected
        assert len(drain(channel, "big")) == 1
