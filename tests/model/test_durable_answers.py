"""Answers that need the store wait for its callback, not on it: durable declares, deletes and
binds for its barrier, a basic.get whose message is on disk for the page read. The connection's
input waits meanwhile (answers keep their order), and nothing blocks the loop."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lapine.amqp import spec
from lapine.amqp.frames import method_frame
from lapine.broker import definitions
from lapine.broker.broker import Broker
from lapine.broker.read_gate import Pause
from lapine.broker.scheduler import ManualScheduler
from lapine.config import Config
from lapine.store import SqliteStore
from lapine.testing.model import Content, ModelClient


class StoreHeldBroker:
    """A broker on a real store whose callbacks run only when the test says so."""

    def __init__(self, path: Path) -> None:
        self.callbacks: collections.deque[Callable[[], None]] = collections.deque()
        self.store = SqliteStore(path, notify=self.callbacks.append, fsync=False)
        self.broker = Broker(Config(queue_window=4), scheduler=ManualScheduler())
        self.broker.attach_store(self.store)
        self.client = ModelClient(self.broker)
        self.client.handshake()
        self.client.open_channel(1)
        self.client.open_channel(2)

    def store_calls_back(self) -> None:
        self.store.sync()
        while self.callbacks:
            self.callbacks.popleft()()
        self.client.tick()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[StoreHeldBroker]:
    broker = StoreHeldBroker(tmp_path)
    yield broker
    broker.store.close()


def replies(client: ModelClient) -> list[tuple[int, type]]:
    return [(channel, type(item)) for channel, item in client.take()]


def test_a_durable_declare_is_answered_once_the_store_has_it(held: StoreHeldBroker) -> None:
    held.client.method(1, spec.QueueDeclare(queue="q", durable=True))
    assert replies(held.client) == []
    assert "q" in held.broker.vhosts["/"].queues  # the model has it at once; only the answer waits
    held.store_calls_back()
    assert replies(held.client) == [(1, spec.QueueDeclareOk)]


def test_what_follows_a_durable_declare_is_answered_after_it(held: StoreHeldBroker) -> None:
    frames = method_frame(1, spec.ExchangeDeclare(exchange="x", type="fanout", durable=True))
    frames += method_frame(2, spec.BasicQos(prefetch_count=5))
    frames += method_frame(2, spec.QueueDeclare(queue="transient"))
    held.client.send(frames)
    assert replies(held.client) == []
    assert held.client.connection.held
    assert held.client.connection.input_gate.reasons == {Pause.ANSWER}
    held.store_calls_back()
    assert replies(held.client) == [(1, spec.ExchangeDeclareOk), (2, spec.BasicQosOk), (2, spec.QueueDeclareOk)]
    assert not held.client.connection.input_gate.reasons


def test_a_transient_declare_is_answered_at_once(held: StoreHeldBroker) -> None:
    held.client.method(1, spec.QueueDeclare(queue="t"))
    assert replies(held.client) == [(1, spec.QueueDeclareOk)]


def test_binds_and_deletes_of_durable_things_wait_for_the_store(held: StoreHeldBroker) -> None:
    held.client.method(1, spec.QueueDeclare(queue="q", durable=True))
    held.store_calls_back()
    held.client.take()
    for method, answer in (
        (spec.QueueBind(queue="q", exchange="amq.fanout"), spec.QueueBindOk),
        (spec.QueueUnbind(queue="q", exchange="amq.fanout"), spec.QueueUnbindOk),
        (spec.QueueDelete(queue="q"), spec.QueueDeleteOk),
    ):
        held.client.method(1, method)
        assert replies(held.client) == []
        held.store_calls_back()
        assert replies(held.client) == [(1, answer)]


def test_a_redeclare_of_an_existing_durable_queue_writes_nothing_and_is_answered_at_once(held: StoreHeldBroker) -> None:
    held.client.method(1, spec.QueueDeclare(queue="q", durable=True))
    held.store_calls_back()
    held.client.take()
    held.client.method(1, spec.QueueDeclare(queue="q", durable=True))
    assert replies(held.client) == [(1, spec.QueueDeclareOk)]


def test_a_get_whose_message_is_on_disk_is_answered_when_the_page_read_lands(held: StoreHeldBroker) -> None:
    client = held.client
    client.method(1, spec.QueueDeclare(queue="paged"))
    for n in range(12):
        client.publish(1, str(n).encode(), routing_key="paged")
    client.take()
    queue = held.broker.vhosts["/"].queues["paged"]
    assert queue.paged == 8  # past the window of 4, on disk only
    got = []
    while (content := client.get("paged", no_ack=True)) is not None:
        got.append(content.body)
        if len(queue.ready) == 0:
            break
    assert got == [b"0", b"1", b"2", b"3"]
    client.method(1, spec.BasicGet(queue="paged", no_ack=True))
    client.method(2, spec.BasicQos(prefetch_count=1))
    assert replies(client) == []  # the get waits for the disk, and the qos after it waits too
    held.store_calls_back()
    answers = client.take()
    assert [(channel, type(item)) for channel, item in answers] == [(1, Content), (2, spec.BasicQosOk)]
    assert answers[0][1].body == b"4"


def test_operator_writes_are_submitted_not_waited_for(held: StoreHeldBroker) -> None:
    """Vhosts, users, permissions and policies are written the way declares are: the writer thread
    takes them and the model goes on; the HTTP answer then waits for a barrier (the writes count)."""
    broker = held.broker
    assert broker.persistence is not None
    before = broker.persistence.writes
    definitions.add_vhost(broker, "v2")
    definitions.add_user(broker, "alice", "secret")
    definitions.set_permissions(broker, "alice", "v2", ".*", ".*", ".*")
    definitions.set_policy(broker, "v2", "ttl", pattern="^q", definition={"message-ttl": 1000})
    definitions.clear_permissions(broker, "alice", "v2")
    definitions.delete_user(broker, "alice")
    assert broker.persistence.writes - before >= 6  # each one counted for the answer to wait on
    held.store_calls_back()
    stored = held.store.load_definitions()
    assert "v2" in {vhost.name for vhost in stored.vhosts}
    assert [policy.name for policy in stored.policies] == ["ttl"]
    assert "alice" not in {user.name for user in stored.users}
