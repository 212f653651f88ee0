"""What survives a restart, as in RabbitMQ: durable definitions and persistent messages in durable
queues; not transient messages, non-durable queues or exclusive ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest

from lapine.testing import BrokerThread

Restartable = Callable[[], BrokerThread]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Restartable]:
    """broker() starts a broker on tmp_path's data directory, stopping the previous one first."""
    running: list[BrokerThread] = []

    def start() -> BrokerThread:
        if running:
            running.pop().stop()
        thread = BrokerThread(data_dir=str(tmp_path / "data"), management_port=-1, prometheus_port=-1)
        running.append(thread.start())
        return thread

    yield start
    for thread in running:
        thread.stop()


def connect(thread: BrokerThread) -> pika.adapters.blocking_connection.BlockingChannel:
    return pika.BlockingConnection(pika.URLParameters(thread.url)).channel()


def persistent(body: bytes) -> tuple[bytes, pika.BasicProperties]:
    return body, pika.BasicProperties(delivery_mode=2)


def test_definitions_survive_and_transient_ones_do_not(broker: Restartable) -> None:
    channel = connect(broker())
    channel.exchange_declare("orders", "topic", durable=True, arguments={"alternate-exchange": "amq.fanout"})
    channel.exchange_declare("scratch", "fanout", durable=False)
    channel.queue_declare("kept", durable=True, arguments={"x-max-length": 10})
    channel.queue_declare("gone")
    channel.queue_bind("kept", "orders", "eu.#")
    channel.queue_bind("gone", "orders", "us.#")
    channel.exchange_bind("amq.direct", "orders", "e2e")
    channel.connection.close()

    channel = connect(broker())
    channel.exchange_declare("orders", "topic", durable=True, arguments={"alternate-exchange": "amq.fanout"})
    ok = channel.queue_declare("kept", durable=True, arguments={"x-max-length": 10}, passive=False)
    assert ok.method.message_count == 0
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as missing:
        channel.exchange_declare("scratch", passive=True)
    assert missing.value.reply_code == 404
    channel = channel.connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        channel.queue_declare("gone", passive=True)
    channel = channel.connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("orders", "eu.paris", b"routed by a recovered binding")
    assert channel.basic_get("kept", auto_ack=True)[2] == b"routed by a recovered binding"


def test_persistent_messages_survive_in_order_transient_ones_do_not(broker: Restartable) -> None:
    channel = connect(broker())
    channel.queue_declare("work", durable=True)
    channel.confirm_delivery()
    for n in range(100):
        body, properties = persistent(f"p{n}".encode())
        channel.basic_publish("", "work", body, properties)
        channel.basic_publish("", "work", f"t{n}".encode())
    channel.connection.close()

    channel = connect(broker())
    assert channel.queue_declare("work", durable=True).method.message_count == 100
    bodies = [channel.basic_get("work", auto_ack=True)[2] for _ in range(100)]
    assert bodies == [f"p{n}".encode() for n in range(100)]


def test_unacked_deliveries_come_back_redelivered(broker: Restartable) -> None:
    channel = connect(broker())
    channel.queue_declare("jobs", durable=True)
    channel.confirm_delivery()
    for n in range(3):
        channel.basic_publish("", "jobs", *persistent(str(n).encode()))
    method, _properties, body = channel.basic_get("jobs")
    assert body == b"0" and not method.redelivered
    channel.basic_ack(channel.basic_get("jobs")[0].delivery_tag)  # "1" is done; "0" stays unacked
    channel = connect(broker())  # the broker stops under the open connection, and starts again
    got = [channel.basic_get("jobs", auto_ack=True) for _ in range(2)]
    assert [(m.redelivered, b) for m, _p, b in got] == [(True, b"0"), (False, b"2")]


def test_users_vhosts_permissions_and_policies_survive(broker: Restartable) -> None:
    from lapine.broker import definitions
    from lapine.broker.policies import Policy

    thread = broker()
    server = thread.server
    assert server is not None

    def setup() -> None:
        definitions.add_vhost(server.broker, "shop")
        definitions.add_user(server.broker, "alice", "secret", "monitoring")
        definitions.set_permissions(server.broker, "alice", "shop", "^a", ".*", ".*")
        server.broker.vhosts["shop"].set_policy(Policy("shop", "limit", "^q", {"max-length": 1}))

    thread.call(setup)
    thread = broker()
    server = thread.server
    assert server is not None
    broker_model = server.broker
    assert "shop" in broker_model.vhosts and "amq.topic" in broker_model.vhosts["shop"].exchanges
    assert broker_model.users.get("alice") is not None and broker_model.users.get("alice").tags == ["monitoring"]
    assert broker_model.permissions.get("alice", "shop").configure == "^a"
    assert broker_model.vhosts["shop"].policies.for_object("q1", "queue") is not None
    url = thread.url.replace("guest:guest", "alice:secret").replace("%2F", "shop")
    channel = pika.BlockingConnection(pika.URLParameters(url)).channel()
    channel.queue_declare("a-queue", durable=True)
    channel.connection.close()


def test_a_second_broker_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    from lapine.store import DataDirectoryInUseError

    settings = {"data_dir": str(tmp_path), "management_port": -1, "prometheus_port": -1}
    with BrokerThread(**settings), pytest.raises(DataDirectoryInUseError, match="is in use by another Lapine"):
        BrokerThread(**settings).start()


def test_a_backlog_past_the_window_pages_through_disk_in_order(tmp_path: Path) -> None:
    with BrokerThread(data_dir=str(tmp_path), queue_window=50, management_port=-1, prometheus_port=-1) as thread:
        channel = connect(thread)
        channel.queue_declare("long")
        channel.confirm_delivery()
        for n in range(1000):
            channel.basic_publish("", "long", str(n).encode())
        queue = thread.call(lambda: thread.server.broker.vhosts["/"].queues["long"])
        assert thread.call(lambda: len(queue.ready)) <= 50
        assert channel.queue_declare("long", passive=True).method.message_count == 1000
        channel.basic_qos(prefetch_count=100)
        received: list[bytes] = []
        for _method, _properties, body in channel.consume("long", auto_ack=True, inactivity_timeout=5):
            if body is None:
                break
            received.append(body)
            if len(received) == 1000:
                break
        assert received == [str(n).encode() for n in range(1000)]
