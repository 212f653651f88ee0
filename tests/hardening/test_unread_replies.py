"""A client that pipelines basic.get + basic.nack(requeue) of a 4 MiB message and never reads its
socket: each round would add 4 MiB of replies to the broker's buffers. Past max_message_size +
4 MiB of unread output, the broker stops reading that client, so what it buffers stays bounded,
and everyone else is served meanwhile."""

from __future__ import annotations

import socket
import time

import pika
import pika.spec

from lapine.testing import BrokerThread
from tests.helpers.raw_amqp import RawAMQP

MIB = 2**20


def _buffered(broker: BrokerThread) -> int:
    """Bytes the broker holds for its clients: gathered output plus what the transports hold."""
    assert broker.server is not None

    def measure() -> int:
        total = 0
        for protocol in broker.server.protocols:  # type: ignore[union-attr]
            connection = protocol.connection
            if connection is not None and protocol.transport is not None:
                total += connection.output_size + protocol.transport.get_write_buffer_size()
        return total

    return int(broker.call(measure))


def test_pipelined_gets_by_a_client_that_does_not_read_are_bounded() -> None:
    with BrokerThread(management_port=-1, prometheus_port=-1) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        channel.queue_declare("big")
        channel.basic_publish("", "big", b"x" * (4 * MIB))

        greedy = RawAMQP(broker.url)
        greedy.handshake()
        greedy.open_channel(1)
        greedy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        greedy.sock.settimeout(0.5)
        get = pika.spec.Basic.Get(queue="big")
        nack = pika.spec.Basic.Nack(delivery_tag=0, multiple=True, requeue=True)
        rounds = 0
        try:
            for _ in range(200):  # 800 MiB of replies if the broker kept answering
                greedy.send_method(1, get)
                greedy.send_method(1, nack)
                rounds += 1
        except TimeoutError:
            pass  # the broker stopped reading us: our socket is full
        time.sleep(0.5)
        limit = broker.call(lambda: broker.server.broker.config.max_message_size) + 4 * MIB  # type: ignore[union-attr]
        buffered = _buffered(broker)
        assert buffered <= limit + 2 * 4 * MIB, f"{buffered / MIB:.0f} MiB buffered after {rounds} rounds"
        # Everyone else is served.
        assert channel.queue_declare("other").method.message_count == 0
        greedy.close()
        connection.close()
