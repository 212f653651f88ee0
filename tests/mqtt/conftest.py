"""Fixtures for the MQTT tests: a broker with its MQTT listeners on free ports, and paho clients
that are connected, waited for and stopped for the test."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from lapine.testing import BrokerThread

TIMEOUT = 5.0
_ids = itertools.count(1)


class Client:
    """A paho client whose connection, messages and acknowledgements tests can wait for."""

    def __init__(self, port: int, *, version: int, client_id: str | None = None, **options: Any) -> None:
        self.port = port
        self.version = version
        self.client_id = client_id or f"client-{next(_ids)}"
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol, **options)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue[tuple[Any, Any, Any]] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.unsubacks: queue.Queue[Any] = queue.Queue()
        self.paho.on_message = lambda _c, _u, message: self.messages.put(message)
        self.paho.on_connect = lambda _c, _u, flags, code, properties: self.connack.put((flags, code, properties))
        self.paho.on_disconnect = lambda _c, _u, _f, code, _p: self.disconnects.put(code)
        self.paho.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put(list(codes))
        self.paho.on_unsubscribe = lambda _c, _u, mid, _codes, _p: self.unsubacks.put(mid)

    def connect(self, *, clean: bool = True, properties: Properties | None = None, keepalive: int = 60) -> Any:
        """Connect and return the CONNACK's (flags, reason code, properties)."""
        if self.version == 5:
            self.paho.connect("127.0.0.1", self.port, keepalive, clean_start=clean, properties=properties)
        else:
            self.paho._clean_session = clean
            self.paho.connect("127.0.0.1", self.port, keepalive)
        self.paho.loop_start()
        return self.connack.get(timeout=TIMEOUT)

    def subscribe(self, topic: str, qos: int = 0, **options: Any) -> list[Any]:
        if self.version == 5:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            self.paho.subscribe(
                topic, options=SubscribeOptions(qos=qos, **options), properties=options.pop("props", None)
            )
        else:
            self.paho.subscribe(topic, qos)
        return self.subacks.get(timeout=TIMEOUT)

    def unsubscribe(self, topic: str) -> Any:
        """Unsubscribe and wait for the UNSUBACK: only then is the subscription gone."""
        self.paho.unsubscribe(topic)
        return self.unsubacks.get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **kwargs: Any) -> Any:
        info = self.paho.publish(topic, payload, qos, retain, **kwargs)
        if qos:
            info.wait_for_publish(TIMEOUT)
        return info

    def message(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def no_message(self, wait: float = 0.3) -> bool:
        try:
            self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def disconnect(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def stop(self) -> None:
        self.paho.loop_stop()
        self.paho.socket() and self.paho.socket().close()


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread(management_port=-1, prometheus_port=-1) as running:
        yield running


MakeClient = Callable[..., Client]


@pytest.fixture
def client(broker: BrokerThread) -> Iterator[MakeClient]:
    """client(version=4 | 5, client_id=..., ...) -> a Client, stopped at teardown."""
    made: list[Client] = []
    lock = threading.Lock()

    def make(version: int = 4, port: int | None = None, **options: Any) -> Client:
        created = Client(port or broker.mqtt_port, version=version, **options)
        with lock:
            made.append(created)
        return created

    yield make
    for created in made:
        created.paho.loop_stop()
        created.paho.disconnect()
