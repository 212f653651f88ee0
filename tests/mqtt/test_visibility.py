"""MQTT connections in the management API (protocol "MQTT 3.1.1" / "MQTT 5.0", closing one) and
in Prometheus (RabbitMQ's global counters with the protocol label)."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from lapine.mqtt import packets as p
from lapine.testing import BrokerThread
from tests.mqtt.raw import RawClient


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread() as running:
        yield running


def _request(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def test_management_lists_mqtt_connections_with_their_protocol(broker: BrokerThread) -> None:
    v3 = RawClient(broker.mqtt_port, level=p.MQTT_3_1_1)
    v3.connect("shown-v3")
    v5 = RawClient(broker.mqtt_port, level=p.MQTT_5)
    v5.connect("shown-v5")
    v5.send(p.Subscribe(1, [p.Subscription("seen/+", 1)]))
    assert isinstance(v5.read(), p.SubAck)
    _status, body = _request(broker.management_url + "/api/connections")
    rows = {row["client_properties"].get("client_id"): row for row in json.loads(body)}
    assert rows["shown-v3"]["protocol"] == "MQTT 3.1.1"
    assert rows["shown-v5"]["protocol"] == "MQTT 5.0"
    assert rows["shown-v5"]["user"] == "guest" and rows["shown-v5"]["vhost"] == "/"
    assert rows["shown-v5"]["state"] == "running"
    # Its subscription queue and consumer are there too.
    _status, body = _request(broker.management_url + "/api/queues/%2F/mqtt-subscription-shown-v5qos1")
    queue = json.loads(body)
    assert queue["consumers"] == 1
    assert queue["consumer_details"][0]["channel_details"]["connection_name"] == rows["shown-v5"]["name"]
    _status, body = _request(broker.management_url + "/api/overview")
    assert {"mqtt", "http/web-mqtt"} <= {listener["protocol"] for listener in json.loads(body)["listeners"]}
    # Closing it from the API: an MQTT 5 client hears "administrative action".
    name = urllib.parse.quote(rows["shown-v5"]["name"], safe="")
    status, _body = _request(f"{broker.management_url}/api/connections/{name}", "DELETE")
    assert status == 204
    assert v5.read() == p.Disconnect(p.ADMINISTRATIVE_ACTION)
    assert v5.closed_by_broker()
    v3.close()


def test_prometheus_counts_mqtt_messages_with_the_protocol_label(broker: BrokerThread) -> None:
    publisher = RawClient(broker.mqtt_port, level=p.MQTT_5)
    publisher.connect("counted")
    subscriber = RawClient(broker.mqtt_port, level=p.MQTT_3_1_1)
    subscriber.connect("counted-sub")
    subscriber.send(p.Subscribe(1, [p.Subscription("count/me", 0)]))
    assert isinstance(subscriber.read(), p.SubAck)
    publisher.send(p.Publish("count/me", b"1", qos=1, packet_id=1))
    assert publisher.read() == p.PubAck(1)
    publisher.send(p.Publish("nobody/listens", b"2"))
    assert isinstance(subscriber.read(), p.Publish)
    deadline = time.monotonic() + 5
    while True:
        _status, body = _request(broker.prometheus_url + "/metrics")
        text = body.decode()
        if 'rabbitmq_global_messages_unroutable_dropped_total{protocol="mqtt50"} 1' in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    assert 'rabbitmq_global_messages_received_total{protocol="mqtt50"} 2' in text
    assert 'rabbitmq_global_messages_routed_total{protocol="mqtt50"} 1' in text
    assert 'rabbitmq_global_messages_confirmed_total{protocol="mqtt50"} 1' in text
    assert 'rabbitmq_global_messages_delivered_consume_auto_ack_total{protocol="mqtt311",' in text
    assert 'rabbitmq_global_consumers{protocol="mqtt311"} 1' in text
    assert 'rabbitmq_global_messages_received_total{protocol="amqp091"}' in text
    # MQTT connections are connections: RabbitMQ's churn counters count them too.
    opened = next(line for line in text.splitlines() if line.startswith("rabbitmq_connections_opened_total"))
    assert int(float(opened.split()[-1])) >= 2
    # The per-object endpoint lists the MQTT connections among the others.
    _status, body = _request(broker.prometheus_url + "/metrics/per-object")
    assert "rabbitmq_connection_incoming_bytes_total{connection=" in body.decode()
    publisher.close()
    subscriber.close()
