"""MQTT over TLS (the AMQPS certificate settings, mqtt_ssl_port) and over WebSocket (web_mqtt_port,
path /ws), with paho's own TLS and WebSocket transports."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from lapine.testing import BrokerThread
from tests.hardening.certs import Certificates, make_certificates
from tests.mqtt.conftest import Client


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("mqtt-certs"))


@pytest.fixture(scope="module")
def broker(certs: Certificates) -> Iterator[BrokerThread]:
    settings = {"ssl_port": 0, "ssl_certfile": str(certs.server.cert), "ssl_keyfile": str(certs.server.key)}
    with BrokerThread(management_port=-1, prometheus_port=-1, **settings) as running:  # type: ignore[arg-type]
        yield running


def _round_trip(publisher: Client, subscriber: Client, topic: str) -> None:
    subscriber.subscribe(topic, qos=1)
    publisher.publish(topic, b"over the wire", qos=1)
    message = subscriber.message()
    assert (message.topic, message.payload) == (topic, b"over the wire")


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_over_tls(broker: BrokerThread, certs: Certificates, version: int) -> None:
    port = broker.server.mqtt_ssl_port  # type: ignore[union-attr]
    assert port is not None
    secure = Client(port, version=version)
    secure.paho.tls_set_context(ssl.create_default_context(cafile=str(certs.ca)))
    secure.connect()
    plain = Client(broker.mqtt_port, version=version)
    plain.connect()
    _round_trip(plain, secure, f"tls{version}/t")
    transports = {getattr(c, "transport", None) for c in broker.server.broker.connections}  # type: ignore[union-attr]
    assert "tls" in transports
    secure.disconnect()
    plain.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_over_websocket(broker: BrokerThread, version: int) -> None:
    port = broker.server.web_mqtt_port  # type: ignore[union-attr]
    assert port is not None
    web = Client(port, version=version, transport="websockets")
    web.paho.ws_set_options(path="/ws")
    _flags, code, _props = web.connect()
    assert code == 0
    plain = Client(broker.mqtt_port, version=version)
    plain.connect()
    _round_trip(plain, web, f"ws{version}/in")
    _round_trip(web, plain, f"ws{version}/out")
    web.disconnect()
    plain.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_over_secure_websocket(broker: BrokerThread, certs: Certificates, version: int) -> None:
    port = broker.server.web_mqtt_ssl_port  # type: ignore[union-attr]
    assert port is not None
    web = Client(port, version=version, transport="websockets")
    web.paho.ws_set_options(path="/ws")
    web.paho.tls_set_context(ssl.create_default_context(cafile=str(certs.ca)))
    _flags, code, _props = web.connect()
    assert code == 0
    plain = Client(broker.mqtt_port, version=version)
    plain.connect()
    _round_trip(plain, web, f"wss{version}/in")
    transports = {getattr(c, "transport", None) for c in broker.server.broker.connections}  # type: ignore[union-attr]
    assert "secure websocket" in transports
    web.disconnect()
    plain.disconnect()


def test_tls_listener_is_off_without_a_certificate(tmp_path: Path) -> None:
    with BrokerThread(management_port=-1, prometheus_port=-1, data_dir=str(tmp_path)) as broker:
        assert broker.server.mqtt_ssl_port is None  # type: ignore[union-attr]
        assert broker.server.web_mqtt_ssl_port is None  # type: ignore[union-attr]
        assert broker.mqtt_port > 0
