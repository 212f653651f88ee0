"""A queue on its own: driven through the interfaces of broker/ports.py by a host and a subscriber
of the test's making, with no vhost, channel or connection behind them."""

from __future__ import annotations

from lapine.broker.message import Message
from lapine.broker.queue import Queue, QueuedMessage
from lapine.broker.scheduler import ManualScheduler


class Host:
    """A QueueHost that records what the queue asks of it."""

    name = "test"

    def __init__(self) -> None:
        self.scheduler = ManualScheduler()
        self.dead: list[tuple[bytes, str]] = []
        self.unused: list[Queue] = []

    def dead_letter(self, queue: Queue, entries: list[QueuedMessage], reason: str) -> None:
        self.dead.extend((entry.message.body, reason) for entry in entries)

    def queue_unused(self, queue: Queue) -> None:
        self.unused.append(queue)


class Subscriber:
    """A Subscriber with a window of its own, that takes deliveries into a list."""

    def __init__(self, tag: str, window: int = 0) -> None:
        self.tag = tag
        self.no_ack = False
        self.exclusive = False
        self.priority = 0
        self.in_ring = False
        self.parked = False
        self.cancelled = False
        self.unacked = 0
        self.window = window
        self.got: list[QueuedMessage] = []
        self.channel = self  # it takes its deliveries itself

    def has_room(self) -> bool:
        return not self.cancelled and not self.window_full()

    def window_full(self) -> bool:
        return 0 < self.window <= self.unacked

    def deliver(self, subscriber: Subscriber, entry: QueuedMessage, queue: Queue) -> None:
        self.got.append(entry)

    def wait_for_room(self) -> None:
        self.parked = True

    def cancel(self) -> None:
        self.cancelled = True

    def queue_deleted(self) -> None:
        self.cancel()


def message(body: bytes) -> Message:
    return Message("", "q", b"\x00\x3c\x00\x00" + len(body).to_bytes(8, "big") + b"\x00\x00", body)


def test_a_queue_hands_messages_to_its_subscribers_in_turn() -> None:
    queue = Queue(Host(), "q")
    a, b = Subscriber("a"), Subscriber("b")
    queue.add_consumer(a)
    queue.add_consumer(b)
    for n in range(4):
        queue.publish(message(str(n).encode()))
    assert [e.message.body for e in a.got] == [b"0", b"2"]
    assert [e.message.body for e in b.got] == [b"1", b"3"]
    assert queue.unacked_count == 4


def test_a_full_window_stops_deliveries_until_the_queue_takes_the_subscriber_back() -> None:
    queue = Queue(Host(), "q")
    subscriber = Subscriber("a", window=1)
    queue.add_consumer(subscriber)
    queue.publish(message(b"1"))
    queue.publish(message(b"2"))
    assert len(subscriber.got) == 1
    subscriber.unacked = 0  # the subscriber's ack, as its channel would count it
    queue.settled([subscriber.got[0]])
    assert queue.take_back(subscriber)
    queue.dispatch()
    assert [e.message.body for e in subscriber.got] == [b"1", b"2"]


def test_ttl_and_x_expires_run_on_the_hosts_clock() -> None:
    host = Host()
    queue = Queue(host, "q", arguments={"x-message-ttl": 1000, "x-expires": 5000})
    queue.publish(message(b"old"))
    host.scheduler.advance(1.5)
    assert host.dead == [(b"old", "expired")]
    assert queue.message_count == 0
    host.scheduler.advance(4)
    assert host.unused == [queue]


def test_rejected_messages_go_to_the_hosts_dead_letter_routing() -> None:
    host = Host()
    queue = Queue(host, "q")
    queue.publish(message(b"bad"))
    entry = queue.get(no_ack=False)
    assert entry is not None
    queue.rejected([entry])
    assert host.dead == [(b"bad", "rejected")]


def test_an_auto_delete_queue_tells_its_host_when_its_last_subscriber_goes() -> None:
    host = Host()
    queue = Queue(host, "q", auto_delete=True)
    subscriber = Subscriber("a")
    queue.add_consumer(subscriber)
    queue.remove_consumer(subscriber)
    assert subscriber.cancelled
    assert host.unused == [queue]


def test_the_manual_clock_moves_wall_time_with_it() -> None:
    clock = ManualScheduler()
    before = clock.wall_time()
    clock.advance(60)
    assert round(clock.wall_time() - before) == 60
