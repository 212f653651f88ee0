"""A stateful property test of a durable queue whose backlog pages through the store.

After RabbitMQ's classic_queue_prop_SUITE: a publisher with confirms sends persistent and
transient messages of mixed sizes into one durable queue with a tiny window, so that most of the
backlog lives on disk, in lapine.db or transient.db by persistence; a client takes them (basic.get
and a consumer), acks, rejects with and without requeue, purges; the broker restarts cleanly and
dirtily (the store abandoned as a crash would leave it). The real Broker, Connection and
SqliteStore run with no sockets: the store's callbacks queue up and the test runs them, as the
event loop would. Checked throughout:

- while the broker runs, every message comes out exactly once per delivery, in publish order
  (requeued ones back in their place, flagged redelivered), persistent or not, and the queue
  counts what the model holds;
- after a clean restart, every persistent message still in the queue is back, in order;
- after a dirty restart, every *confirmed* persistent message still in the queue is back, in
  order, and nothing comes back that was not a persistent message of the queue.

The store's cap on the bytes of one read is lowered, so that pages of a few kilobytes stop short
of their count, as pages of large messages do at the real cap.
"""

from __future__ import annotations

import collections
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lapine.amqp import spec
from lapine.broker.broker import Broker
from lapine.broker.queue import Queue
from lapine.broker.scheduler import ManualScheduler
from lapine.config import Config
from lapine.store import SqliteStore
from lapine.store.sqlite import pages as store_pages
from lapine.testing.model import Content, ModelClient

QUEUE = "q"
WINDOW = 6
SIZES = (0, 10, 700, 1500, 5000)  # bodies of 1024 bytes and more are stored out of line
PUBLISHER, TAKER, ADMIN = 1, 2, 3
EXPECTED_REPLIES = (spec.BasicGetEmpty, spec.BasicConsumeOk, spec.BasicCancelOk, spec.QueuePurgeOk)


READ_CAP_BYTES = 2500


def body_of(number: int, size: int) -> bytes:
    label = b"%d:" % number
    return label + b"." * max(size - len(label), 0)


def number_of(body: bytes) -> int:
    return int(body.split(b":", 1)[0])


class PagingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="lapine-paging-model-"))
        self.real_cap, store_pages.READ_CAP_BYTES = store_pages.READ_CAP_BYTES, READ_CAP_BYTES
        self.pending: collections.deque[Callable[[], object]] = collections.deque()
        self.next_number = 0
        self.persistent: dict[int, bool] = {}
        self.bodies: dict[int, bytes] = {}
        # The queue as the model sees it: ready messages by number (= publish order), and those
        # delivered and awaiting settlement, by delivery tag.
        self.ready: list[int] = []
        self.unacked: dict[int, int] = {}
        self.delivered_once: set[int] = set()  # handed out at least once with an ack to come
        self.confirmed: set[int] = set()
        self.in_flight: dict[int, int] = {}  # publisher's delivery tag -> message number
        self.consuming = False
        self.taking_for_good = False
        self.taken_for_good: list[int] = []
        self.start()

    # --- the broker ----------------------------------------------------------------------------

    def start(self) -> None:
        self.store = SqliteStore(self.dir, notify=self.pending.append, fsync=False)
        self.broker = Broker(Config(queue_window=WINDOW), scheduler=ManualScheduler())
        self.broker.attach_store(self.store)
        self.client = ModelClient(self.broker)
        self.client.handshake()
        for channel in (PUBLISHER, TAKER, ADMIN):
            self.client.open_channel(channel)
        self.client.method(PUBLISHER, spec.ConfirmSelect())
        self.client.expect(spec.ConfirmSelectOk)
        self.client.method(TAKER, spec.BasicQos(prefetch_count=3))
        self.client.expect(spec.BasicQosOk)
        self.client.method(ADMIN, spec.QueueDeclare(queue=QUEUE, durable=True))
        # The declare-ok comes once the store has the queue: its barrier calls back.
        self.store.sync()
        while self.pending:
            self.pending.popleft()()
        self.client.tick()
        self.client.expect(spec.QueueDeclareOk)
        self.consuming = False
        self.in_flight.clear()
        self.settle()

    @property
    def queue(self) -> Queue:
        return self.broker.vhosts["/"].queues[QUEUE]

    def settle(self) -> None:
        """Run the store's callbacks until nothing more comes, taking what the client gets."""
        while True:
            self.take_inbox()
            if not self.pending:
                self.store.sync()
                self.store.sync()  # the callbacks of the batch before a sync are posted before its end
                if not self.pending:
                    self.take_inbox()
                    return
            while self.pending:
                self.pending.popleft()()

    def take_inbox(self) -> None:
        for _channel, item in self.client.take():
            if isinstance(item, spec.BasicAck):
                self.confirm(item.delivery_tag, item.multiple)
            elif isinstance(item, spec.BasicNack):
                raise AssertionError(f"the broker nacked a publish with a healthy store: {item}")
            elif isinstance(item, Content):
                self.received(item)
            elif not isinstance(item, EXPECTED_REPLIES):
                raise AssertionError(f"unexpected {item!r}")

    def confirm(self, tag: int, multiple: bool) -> None:
        tags = [t for t in self.in_flight if t <= tag] if multiple else [tag]
        for t in tags:
            self.confirmed.add(self.in_flight.pop(t))

    def received(self, content: Content) -> None:
        number = number_of(content.body)
        assert self.ready, f"got message {number} from a queue the model holds empty"
        assert number == self.ready[0], f"got message {number}, expected {self.ready[0]}"
        assert content.body == self.bodies[number]
        assert content.properties.delivery_mode == (2 if self.persistent[number] else 1)
        assert content.method.redelivered == (number in self.delivered_once)
        self.ready.pop(0)
        if self.taking_for_good:
            self.taken_for_good.append(number)
            return
        self.unacked[content.method.delivery_tag] = number
        self.delivered_once.add(number)

    # --- rules -------------------------------------------------------------------------------

    @rule(
        persistent=st.booleans(),
        sizes=st.lists(st.sampled_from(SIZES), min_size=1, max_size=10),
        alternate=st.booleans(),
        wait=st.booleans(),
    )
    def publish(self, persistent: bool, sizes: list[int], alternate: bool, wait: bool) -> None:
        """A run of persistent or transient messages (or alternating ones): runs are what put a
        page's messages in one file and the next ones in the other."""
        for size in sizes:
            if alternate:
                persistent = not persistent
            number = self.next_number
            self.next_number += 1
            self.persistent[number] = persistent
            body = body_of(number, size)
            self.bodies[number] = body
            properties = spec.BasicProperties(delivery_mode=2 if persistent else 1)
            self.client.publish(PUBLISHER, body, routing_key=QUEUE, properties=properties)
            self.in_flight[self.broker_publish_seq()] = number
            self.ready.append(number)
        self.take_inbox()
        if wait:
            self.settle()

    def broker_publish_seq(self) -> int:
        return self.client.connection.channels[PUBLISHER].publish_seq

    @rule()
    def get(self) -> None:
        self.client.method(TAKER, spec.BasicGet(queue=QUEUE, no_ack=False))
        self.settle()

    @precondition(lambda self: not self.consuming)
    @rule()
    def drain(self) -> None:
        """basic.get with no-ack until the queue is empty: all of it, in order, once."""
        expected = len(self.ready)
        self.taking_for_good, self.taken_for_good = True, []
        try:
            while True:
                before = len(self.taken_for_good)
                self.client.method(TAKER, spec.BasicGet(queue=QUEUE, no_ack=True))
                self.settle()
                if len(self.taken_for_good) == before:
                    break
        finally:
            self.taking_for_good = False
        assert len(self.taken_for_good) == expected
        assert self.ready == []

    @precondition(lambda self: not self.consuming)
    @rule()
    def consume(self) -> None:
        self.client.method(TAKER, spec.BasicConsume(queue=QUEUE, consumer_tag="c"))
        self.consuming = True
        self.settle()

    @precondition(lambda self: self.consuming)
    @rule()
    def cancel(self) -> None:
        self.client.method(TAKER, spec.BasicCancel(consumer_tag="c"))
        self.consuming = False
        self.settle()

    @precondition(lambda self: self.unacked)
    @rule(data=st.data(), how=st.sampled_from(("ack", "requeue", "drop")))
    def settle_some(self, data: st.DataObject, how: str) -> None:
        tags = data.draw(st.lists(st.sampled_from(sorted(self.unacked)), min_size=1, unique=True))
        for tag in tags:
            number = self.unacked.pop(tag)
            if how == "ack":
                self.client.method(TAKER, spec.BasicAck(delivery_tag=tag))
                continue
            if how == "requeue":  # back in its place, and at once to a consumer with room
                self.ready.append(number)
                self.ready.sort()
            self.client.method(TAKER, spec.BasicReject(delivery_tag=tag, requeue=how == "requeue"))
            self.take_inbox()
        self.settle()

    @rule()
    def purge(self) -> None:
        self.client.method(ADMIN, spec.QueuePurge(queue=QUEUE))
        self.ready.clear()
        self.settle()

    @rule()
    def restart_cleanly(self) -> None:
        """A stop: the connection goes (its unacked messages return), the store commits all."""
        self.settle()
        self.client.connection.connection_lost()
        self.settle()
        self.store.close()
        self.back_from_restart(everything_kept=True)

    @rule()
    def restart_dirtily(self) -> None:
        """A crash: whatever the store had not committed is gone, and nobody heard more."""
        self.store.abandon()
        self.back_from_restart(everything_kept=False)

    def back_from_restart(self, everything_kept: bool) -> None:
        held = sorted(self.ready + list(self.unacked.values()))
        self.pending.clear()
        self.start()
        recovered = self.on_disk()
        numbers = [number for number, _ in recovered]
        assert numbers == sorted(numbers), "recovered out of order"
        assert all(self.persistent[n] for n in numbers), "a transient message survived a restart"
        if everything_kept:
            assert numbers == [n for n in held if self.persistent[n]]
            assert all(flag == (n in self.delivered_once) for n, flag in recovered)
        else:
            must = {n for n in held if self.persistent[n] and n in self.confirmed}
            assert must <= set(numbers), f"confirmed and lost: {sorted(must - set(numbers))}"
            assert all(n in self.delivered_once for n, flag in recovered if flag)
        self.ready = numbers
        self.unacked = {}
        self.delivered_once = {n for n, flag in recovered if flag}

    def on_disk(self) -> list[tuple[int, bool]]:
        """The restarted queue's messages as the store holds them: number and delivered flag."""
        found: list[tuple[int, bool]] = []
        after = -1
        while page := self.store.read_messages(self.queue.storage.queue_id, after, 50):
            for stored in page:
                number = number_of(stored.body)
                assert stored.body == self.bodies[number]
                found.append((number, stored.delivered))
            after = page[-1].seq
        return found

    # --- checks ------------------------------------------------------------------------------

    @invariant()
    def counts_agree(self) -> None:
        assert self.queue.message_count == len(self.ready)
        assert self.queue.unacked_count == len(self.unacked)
        assert self.store.failed is None

    def teardown(self) -> None:
        store_pages.READ_CAP_BYTES = self.real_cap
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


PagingMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
test_paging_model = PagingMachine.TestCase
