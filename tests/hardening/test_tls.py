"""AMQPS: a TLS listener beside the plain one, with RabbitMQ's ssl_options semantics.

The test makes its own CA, a server certificate for localhost/127.0.0.1 and client certificates
(tests/hardening/certs.py). ``verify_peer`` asks for a client certificate and checks it against
the CA; with ``fail_if_no_peer_cert`` a client without one fails the TLS handshake, as in
RabbitMQ.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from lapine.config import Config
from lapine.server import tls
from lapine.testing import BrokerThread
from tests.hardening.certs import Certificates, Pair, make_certificates
from tests.hardening.conftest import StartBroker


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _tls_broker(start_broker: StartBroker, certs: Certificates, **settings: object) -> BrokerThread:
    return start_broker(ssl_port=0, ssl_certfile=str(certs.server.cert), ssl_keyfile=str(certs.server.key), **settings)


def _client_context(certs: Certificates, client: Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _connect_tls(broker: BrokerThread, context: ssl.SSLContext) -> pika.BlockingConnection:
    assert broker.server is not None and broker.server.ssl_port is not None
    params = pika.ConnectionParameters(
        host="localhost",
        port=broker.server.ssl_port,
        credentials=pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(context, "localhost"),
        connection_attempts=1,
        socket_timeout=5,
    )
    return pika.BlockingConnection(params)


def _round_trip(connection: pika.BlockingConnection) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"over tls" * 5000)
    assert channel.basic_get(queue, auto_ack=True)[2] == b"over tls" * 5000


@pytest.fixture
def closing() -> Iterator[list[pika.BlockingConnection]]:
    opened: list[pika.BlockingConnection] = []
    yield opened
    for connection in opened:
        if connection.is_open:
            connection.close()


def test_pika_over_tls(start_broker: StartBroker, certs: Certificates, closing: list[pika.BlockingConnection]) -> None:
    broker = _tls_broker(start_broker, certs)
    connection = _connect_tls(broker, _client_context(certs, None))
    closing.append(connection)
    _round_trip(connection)
    # The plain listener serves on as before.
    plain = pika.BlockingConnection(pika.URLParameters(broker.url))
    closing.append(plain)
    _round_trip(plain)


def test_client_certificate_verified(
    start_broker: StartBroker, certs: Certificates, closing: list[pika.BlockingConnection]
) -> None:
    broker = _tls_broker(
        start_broker, certs, ssl_cacertfile=str(certs.ca), ssl_verify="verify_peer", ssl_fail_if_no_peer_cert=True
    )
    connection = _connect_tls(broker, _client_context(certs, certs.client))
    closing.append(connection)
    _round_trip(connection)


@pytest.mark.parametrize("who", ["no certificate", "stranger"])
def test_client_refused_when_peer_cert_required(start_broker: StartBroker, certs: Certificates, who: str) -> None:
    broker = _tls_broker(
        start_broker, certs, ssl_cacertfile=str(certs.ca), ssl_verify="verify_peer", ssl_fail_if_no_peer_cert=True
    )
    client = certs.stranger if who == "stranger" else None
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        _connect_tls(broker, _client_context(certs, client))
    assert broker.server is not None
    assert not broker.call(lambda: set(broker.server.protocols))  # type: ignore[union-attr]


def test_certificate_optional_without_fail_if_no_peer_cert(
    start_broker: StartBroker, certs: Certificates, closing: list[pika.BlockingConnection]
) -> None:
    broker = _tls_broker(start_broker, certs, ssl_cacertfile=str(certs.ca), ssl_verify="verify_peer")
    connection = _connect_tls(broker, _client_context(certs, None))
    closing.append(connection)
    _round_trip(connection)
    with pytest.raises(pika.exceptions.AMQPConnectionError):  # a certificate sent must still be good
        _connect_tls(broker, _client_context(certs, certs.stranger))


def test_no_tls_listener_without_a_certificate(broker: BrokerThread) -> None:
    assert broker.server is not None and broker.server.ssl_port is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ssl_verify": "verify_sometimes"}, "ssl_verify must be one of"),
        ({"ssl_verify": "verify_peer"}, "needs ssl_cacertfile"),
    ],
)
def test_bad_settings_stop_the_start(certs: Certificates, settings: dict[str, str], message: str) -> None:
    config = Config(ssl_certfile=str(certs.server.cert), ssl_keyfile=str(certs.server.key))
    config.update(settings)
    assert tls.enabled(config)
    with pytest.raises(ValueError, match=message):
        tls.server_context(config)


def test_unreadable_certificate_stops_the_start(tmp_path: Path) -> None:
    config = Config(ssl_certfile=str(tmp_path / "missing.pem"), ssl_keyfile=str(tmp_path / "missing.key"))
    with pytest.raises(OSError):
        tls.server_context(config)
