"""Dead peers and idle resources: keepalive on accepted sockets, handshake timeouts, heartbeats.

RabbitMQ drops a client that has not finished the AMQP handshake within ``handshake_timeout``
(10 s) by closing the socket, without a connection.close; a connection whose peer went away
without a FIN is found by heartbeats (already tested in tests/integration) and, for connections
without heartbeats, by TCP keepalive (RabbitMQ's tcp_listen_options.keepalive; off by default
there, on by default here).
"""

from __future__ import annotations

import socket
import time

import pika
import pika.spec

from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.helpers.raw_amqp import PROTOCOL_HEADER, RawAMQP


def _server_socket_options(broker: BrokerThread) -> list[int]:
    """SO_KEEPALIVE of every accepted socket, read on the broker's side."""
    assert broker.server is not None

    def read() -> list[int]:
        return [
            p.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            for p in broker.server.protocols  # type: ignore[union-attr]
            if p.transport is not None
        ]

    return list(broker.call(read))


def test_accepted_sockets_have_keepalive(broker: BrokerThread) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    options = _server_socket_options(broker)
    assert options and all(options)
    connection.close()


def test_keepalive_can_be_turned_off(start_broker: StartBroker) -> None:
    broker = start_broker(tcp_keepalive=False)
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    options = _server_socket_options(broker)
    assert options and not any(options)
    connection.close()


def test_silent_socket_is_dropped_after_handshake_timeout(start_broker: StartBroker) -> None:
    broker = start_broker(handshake_timeout=0.5)
    started = time.monotonic()
    silent = socket.create_connection(("127.0.0.1", broker.port))
    silent.settimeout(5)
    assert silent.recv(100) == b""  # closed without a word
    assert 0.4 < time.monotonic() - started < 3
    silent.close()


def test_unfinished_handshake_is_dropped(start_broker: StartBroker) -> None:
    """Header sent and connection.start received, but never a start-ok: dropped at the deadline;
    a client that completes its handshake in time is not."""
    broker = start_broker(handshake_timeout=0.5)
    slow = RawAMQP(broker.url)
    slow.send(PROTOCOL_HEADER)
    slow.expect(pika.spec.Connection.Start)
    good = RawAMQP(broker.url)
    good.handshake()
    started = time.monotonic()
    assert slow.is_closed_by_broker(timeout=5)
    assert time.monotonic() - started < 3
    time.sleep(0.6)
    good.open_channel(1)  # still served, well past the deadline
    good.close_connection()
    slow.close()
    assert broker.server is not None
    deadline = time.monotonic() + 3
    while broker.call(lambda: len(broker.server.protocols)):  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_half_open_after_tune_is_dropped(start_broker: StartBroker) -> None:
    """Logged in and tuned, but connection.open never comes: the handshake timeout still applies."""
    broker = start_broker(handshake_timeout=0.5)
    client = RawAMQP(broker.url)
    client.start()
    tune = client.login()
    client.send_method(0, pika.spec.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max))
    assert client.is_closed_by_broker(timeout=5)
    client.close()
