"""A publisher flooding one socket does not starve the other sockets: a consumer's acks are read,
and its deliveries go on, while the flood lasts."""

from __future__ import annotations

import multiprocessing
import socket
import time

import pika

from lapine.amqp import spec
from lapine.amqp.frames import encode_frame, method_frame
from lapine.testing import BrokerThread


def flood(port: int, seconds: float) -> None:
    """Publish pre-encoded 16-byte messages as fast as the socket takes them."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    connection.channel()
    raw = spec.BasicProperties().encode()
    one = (
        method_frame(1, spec.BasicPublish(routing_key="flooded"))
        + encode_frame(spec.FRAME_HEADER, 1, spec.encode_content_header(60, 16, raw))
        + encode_frame(spec.FRAME_BODY, 1, b"x" * 16)
    )
    sock: socket.socket = connection._impl._transport._sock
    sock.setblocking(True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.sendall(one * 200)


def test_a_consumer_is_served_while_a_publisher_floods() -> None:
    with BrokerThread(management_port=-1, prometheus_port=-1) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        channel.queue_declare("flooded")
        channel.basic_qos(prefetch_count=100)
        flooder = multiprocessing.get_context("spawn").Process(target=flood, args=(broker.port, 12.0))
        flooder.start()
        received = 0
        try:
            time.sleep(1.0)  # the flood is under way
            deadline = time.monotonic() + 10
            for method, _properties, _body in channel.consume("flooded", inactivity_timeout=5):
                assert method is not None and time.monotonic() < deadline, f"starved after {received} messages"
                received += 1
                if received % 50 == 0:
                    channel.basic_ack(method.delivery_tag, multiple=True)
                if received == 1000:
                    break
        finally:
            flooder.terminate()
            flooder.join()
        assert received == 1000
