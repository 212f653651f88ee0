"""Memory and disk alarms: publishers are blocked, consumers keep draining, as in RabbitMQ.

Verified against RabbitMQ 3.10.8 (``rabbitmqctl set_vm_memory_high_watermark absolute 1MB`` and
``rabbitmqctl set_disk_free_limit 1000000GB`` on a scratch node):

* A connection is not blocked when the alarm goes off, only when it next publishes; then a client
  with the ``connection.blocked`` capability gets connection.blocked "low on memory" (or "low on
  disk", or "low on disk & memory" when both are on as it publishes), and nothing it sends is
  read until every alarm has cleared, when connection.unblocked follows.
* A second alarm while already blocked sends nothing new; consumers on other connections go on.
* The log says "memory resource limit alarm set on node '...'." and "*** Publishers will be
  blocked until this alarm clears ***", then "... alarm cleared on node '...'".
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable

import pika
import pika.spec
import pytest

from lapine.config import Config
from lapine.server.alarms import AlarmMonitor, disk_free, memory_limit, resident_memory
from lapine.server.throttle import blocked_reason
from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.helpers.raw_amqp import FRAME_BODY, FRAME_HEADER, RawAMQP

BIG = 1 << 60


class FakeResources:
    """Memory used and disk free as the test says; the monitor samples these instead."""

    def __init__(self) -> None:
        self.memory = 0
        self.disk = BIG

    def install(self, broker: BrokerThread) -> AlarmMonitor:
        assert broker.server is not None
        monitor = broker.server.alarms
        monitor.memory_sampler = lambda: self.memory
        monitor.disk_sampler = lambda: self.disk
        broker.call(monitor.check)
        return monitor


def _alarms(broker: BrokerThread) -> set[str]:
    assert broker.server is not None
    return set(broker.call(lambda: set(broker.server.broker.alarms)))  # type: ignore[union-attr]


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _connect(broker: BrokerThread) -> pika.BlockingConnection:
    params = pika.URLParameters(broker.url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    return pika.BlockingConnection(params)


class BlockEvents:
    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.events: list[tuple[str, ...]] = []
        connection.add_on_connection_blocked_callback(
            lambda _c, frame: self.events.append(("blocked", frame.method.reason))
        )
        connection.add_on_connection_unblocked_callback(lambda _c, _frame: self.events.append(("unblocked",)))


def _pump(
    connection: pika.BlockingConnection, until: Callable[[], bool], timeout: float = 5.0, state: object = None
) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out ({state!r})"
        connection.process_data_events(0.05)


@pytest.fixture
def fake() -> FakeResources:
    return FakeResources()


def test_memory_alarm_blocks_publisher_while_consumer_drains(start_broker: StartBroker, fake: FakeResources) -> None:
    broker = start_broker(alarm_check_interval=0.05)
    monitor = fake.install(broker)
    model = broker.server.broker  # type: ignore[union-attr]
    publisher = _connect(broker)
    events = BlockEvents(publisher)
    pub_channel = publisher.channel()
    queue = pub_channel.queue_declare("alarmed").method.queue
    for n in range(100):
        pub_channel.basic_publish("", queue, f"before {n}".encode())
    # A round trip: the broker has read all of them before the alarm goes off.
    assert pub_channel.queue_declare(queue, passive=True).method.message_count == 100

    fake.memory = monitor.memory_limit + 1
    _wait_for(lambda: _alarms(broker) == {"memory"})
    publisher.process_data_events(0.2)
    assert events.events == []  # not blocked until it publishes
    pub_channel.basic_publish("", queue, b"during 1")  # its frames are the last the broker reads
    _pump(publisher, lambda: bool(events.events))
    assert events.events == [("blocked", "low on memory")]
    assert broker.call(lambda: [c.blocked for c in model.connections]) == [True]  # for the management API
    pub_channel.basic_publish("", queue, b"during 2")  # not read while blocked

    # A consumer on another connection drains the queue meanwhile. ("during 1" may or may not be
    # in it: the broker stops reading in the middle of a message whose frames came in two reads,
    # as RabbitMQ does after a content header.)
    consumer = _connect(broker)
    got: list[bytes] = []
    consumer_channel = consumer.channel()
    consumer_channel.basic_consume(queue, lambda ch, m, p, body: got.append(body), auto_ack=True)
    _pump(consumer, lambda: len(got) >= 100, state=got)
    consumer.process_data_events(0.3)
    assert got[:100] == [f"before {n}".encode() for n in range(100)]
    assert b"during 2" not in got

    fake.memory = 0
    _pump(publisher, lambda: len(events.events) == 2)
    assert events.events[1] == ("unblocked",)
    assert broker.call(lambda: [c.blocked for c in model.connections]) == [False, False]
    _pump(consumer, lambda: len(got) == 102, state=got)
    assert got[100:] == [b"during 1", b"during 2"]
    publisher.close()
    consumer.close()


def test_both_alarms_give_rabbitmq_reason(start_broker: StartBroker, fake: FakeResources) -> None:
    broker = start_broker(alarm_check_interval=0.05)
    monitor = fake.install(broker)
    fake.memory = monitor.memory_limit + 1
    fake.disk = 0
    _wait_for(lambda: _alarms(broker) == {"memory", "disk"})
    publisher = _connect(broker)
    events = BlockEvents(publisher)
    publisher.channel().basic_publish("", "nowhere", b"x")
    _pump(publisher, lambda: bool(events.events))
    assert events.events == [("blocked", "low on disk & memory")]
    fake.memory = 0  # one alarm left: still blocked, nothing new sent
    _wait_for(lambda: _alarms(broker) == {"disk"})
    publisher.process_data_events(0.2)
    assert events.events == [("blocked", "low on disk & memory")]
    fake.disk = BIG
    _pump(publisher, lambda: len(events.events) == 2)
    assert events.events[1] == ("unblocked",)
    publisher.close()


def test_disk_alarm_from_the_real_filesystem(start_broker: StartBroker) -> None:
    """A disk_free_limit above what the disk has: the alarm is on from the start."""
    broker = start_broker(disk_free_limit=BIG, alarm_check_interval=0.05)
    assert _alarms(broker) == {"disk"}
    publisher = _connect(broker)
    events = BlockEvents(publisher)
    publisher.channel().basic_publish("", "nowhere", b"x")
    _pump(publisher, lambda: bool(events.events))
    assert events.events == [("blocked", "low on disk")]
    assert broker.server is not None
    monitor = broker.server.alarms
    broker.call(setattr, monitor, "disk_free_limit", 0)
    _pump(publisher, lambda: len(events.events) == 2)
    publisher.close()


def test_tiny_absolute_watermark(start_broker: StartBroker) -> None:
    broker = start_broker(vm_memory_high_watermark_absolute=1, alarm_check_interval=0.05)
    assert _alarms(broker) == {"memory"}
    assert broker.server is not None
    assert broker.server.alarms.memory_limit == 1
    publisher = _connect(broker)
    events = BlockEvents(publisher)
    channel = publisher.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue  # not a publish: not blocked
    channel.basic_publish("", queue, b"x")
    _pump(publisher, lambda: bool(events.events))
    assert events.events == [("blocked", "low on memory")]
    broker.call(setattr, broker.server.alarms, "memory_limit", BIG)
    _pump(publisher, lambda: len(events.events) == 2)
    assert channel.queue_declare(queue, passive=True).method.message_count == 1
    publisher.close()


def _publish_raw(client: RawAMQP, routing_key: str, body: bytes) -> None:
    client.send_method(1, pika.spec.Basic.Publish(exchange="", routing_key=routing_key))
    client.send_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, len(body), 0))
    client.send_frame(FRAME_BODY, 1, body)


def test_client_without_capability_is_paused_silently(start_broker: StartBroker, fake: FakeResources) -> None:
    """No connection.blocked for a client that did not ask for it, but it is not read from either;
    and a blocked connection is not dropped for heartbeats it could not send (RabbitMQ pauses its
    heartbeat monitor too)."""
    broker = start_broker(alarm_check_interval=0.05)
    monitor = fake.install(broker)
    client = RawAMQP(broker.url)
    client.start()
    tune = client.login(client_properties={"product": "raw"})
    client.tune_and_open(tune, heartbeat=1)
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="silent"))
    client.expect(pika.spec.Queue.DeclareOk)
    fake.memory = monitor.memory_limit + 1
    _wait_for(lambda: _alarms(broker) == {"memory"})
    _publish_raw(client, "silent", b"one")
    time.sleep(0.3)
    _publish_raw(client, "silent", b"two")
    client.send_method(1, pika.spec.Queue.Declare(queue="silent", passive=True))
    time.sleep(3.0)  # three heartbeat intervals without a word from us
    with pytest.raises(TimeoutError):
        while True:  # heartbeats from the broker only: no blocked, no declare-ok
            frame = client.recv_frame(timeout=0.3)
            assert frame.type == 8, frame
    fake.memory = 0
    declare_ok = client.expect(pika.spec.Queue.DeclareOk)
    assert declare_ok.message_count == 2
    client.close()


def test_alarm_log_lines(start_broker: StartBroker, fake: FakeResources, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lapine.alarms")
    broker = start_broker(alarm_check_interval=0.05)
    monitor = fake.install(broker)
    node = broker.server.broker.cluster_name  # type: ignore[union-attr]
    fake.memory = monitor.memory_limit + 1
    _wait_for(lambda: _alarms(broker) == {"memory"})
    fake.memory = 0
    _wait_for(lambda: _alarms(broker) == set())
    messages = [record.getMessage() for record in caplog.records if record.name == "lapine.alarms"]
    assert any(m.startswith("Memory high watermark set to ") for m in messages)
    assert (
        f"vm_memory_high_watermark set. Memory used:{monitor.memory_limit + 1} allowed:{monitor.memory_limit}"
        in messages
    )
    assert (
        f"memory resource limit alarm set on node '{node}'.\n*** Publishers will be blocked until this alarm clears ***"
        in messages
    )
    assert f"memory resource limit alarm cleared on node '{node}'" in messages


def test_sampling_helpers() -> None:
    assert resident_memory() > 10 * 1024 * 1024
    assert disk_free("/nonexistent/deeper/still") > 0  # the nearest existing parent's filesystem
    config = Config(vm_memory_high_watermark=0.5)
    assert memory_limit(config, total=1000) == 500
    config.update({"vm_memory_high_watermark_absolute": "123456"})
    assert memory_limit(config, total=1000) == 123456
    assert blocked_reason({"memory"}) == "low on memory"
    assert blocked_reason({"memory", "disk"}) == "low on disk & memory"


def test_settings_from_the_environment() -> None:
    config = Config()
    config.update_from_env(
        {
            "LAPINE_VM_MEMORY_HIGH_WATERMARK": "0.25",
            "LAPINE_DISK_FREE_LIMIT": "1000000000",
            "LAPINE_CONNECTION_MAX": "100",
            "LAPINE_TCP_KEEPALIVE": "false",
            "LAPINE_SSL_FAIL_IF_NO_PEER_CERT": "true",
        }
    )
    assert config.vm_memory_high_watermark == 0.25
    assert config.disk_free_limit == 1_000_000_000
    assert config.connection_max == 100
    assert config.tcp_keepalive is False
    assert config.ssl_fail_if_no_peer_cert is True
    with pytest.raises(ValueError, match="not a boolean"):
        config.update({"tcp_keepalive": "maybe"})


def test_alarms_show_in_the_management_api_and_prometheus(start_broker: StartBroker, fake: FakeResources) -> None:
    import base64
    import json
    import urllib.error
    import urllib.request

    broker = start_broker(management_port=0, prometheus_port=0, alarm_check_interval=60)
    fake.install(broker)
    fake.memory = 10**12
    broker.call(broker.server.alarms.check)  # type: ignore[union-attr]
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    request = urllib.request.Request(broker.management_url + "/api/nodes", headers=auth)
    (node,) = json.load(urllib.request.urlopen(request, timeout=5))
    assert node["mem_alarm"] is True and node["disk_free_alarm"] is False
    health = urllib.request.Request(broker.management_url + "/api/health/checks/alarms", headers=auth)
    try:
        urllib.request.urlopen(health, timeout=5)
        raise AssertionError("the alarms health check passed under an alarm")
    except urllib.error.HTTPError as error:
        assert error.code == 503
        assert json.load(error)["alarms"][0]["resource"] == "memory"
    metrics = urllib.request.urlopen(broker.prometheus_url + "/metrics", timeout=5).read().decode()
    assert "rabbitmq_alarms_memory_used_watermark 1" in metrics
