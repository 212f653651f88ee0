"""Delayed messages on a manual clock: due order, never early, one timer, the window and its refill,
reads that land late, deletion, and x-delay values the pika tests cannot send."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest

from lapine.amqp import spec
from lapine.broker.delayed import DelayedMessages
from lapine.store.delayed import DelayedRow, MemoryDelayStore
from lapine.testing.model import ModelBroker, ModelClient

DELAYED = "x-delayed-message"


class LateReads(MemoryDelayStore):
    """Reads answered when the test says, with what the store held when they were asked (as the
    SQLite store's writer thread answers them)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Callable[[], None]] = []

    def read_after(self, after: tuple[int, int], limit: int, callback: Callable[[list[DelayedRow]], None]) -> None:
        found: list[list[DelayedRow]] = []
        super().read_after(after, limit, found.append)
        self.pending.append(lambda: callback(found[0]))

    def land(self) -> None:
        pending, self.pending = self.pending, []
        for answer in pending:
            answer()


def setup(model: ModelBroker, routing_type: str = "direct", window: int | None = None) -> ModelClient:
    if window is not None:
        model.broker.delayed.window = window
    client = model.client()
    client.declare_exchange("dx", DELAYED, **{"x-delayed-type": routing_type})
    client.declare_queue("q")
    client.bind("q", "dx", "k")
    return client


def publish(client: ModelClient, body: bytes, delay: object, exchange: str = "dx", **headers: object) -> None:
    client.publish(1, body, exchange, "k", spec.BasicProperties(headers={"x-delay": delay, **headers}))


def live_timers(model: ModelBroker, delayed: DelayedMessages) -> int:
    return sum(1 for _when, _n, timer in model.clock._timers if not timer.cancelled and timer.callback == delayed._fire)


def test_released_in_due_order_and_never_early(lapine_model: ModelBroker) -> None:
    client = setup(lapine_model)
    delays = [500, 100, 300, 100, 200]
    for index, delay in enumerate(delays):
        publish(client, f"{index}".encode(), delay)
    got = []
    for _ in range(600):
        lapine_model.advance(0.001)
        got.extend((round(lapine_model.clock.now, 3), body) for body in client.get_bodies("q"))
    start = got[0][0] - 0.1
    assert [body for _t, body in got] == [b"1", b"3", b"4", b"2", b"0"]
    for (at, body) in got:
        assert at - start >= delays[int(body)] / 1000 - 1e-6


def test_many_messages_one_timer_and_a_bounded_window(lapine_model: ModelBroker) -> None:
    client = setup(lapine_model, window=50)
    delayed = lapine_model.broker.delayed
    rng = random.Random(7)
    delays = [rng.randrange(1, 5000) for _ in range(2000)]
    for index, delay in enumerate(delays):
        publish(client, str(index).encode(), delay)
        assert delayed.in_memory <= 2 * delayed.window
        assert live_timers(lapine_model, delayed) == 1
    assert len(delayed) == 2000
    released = []
    while len(released) < 2000:
        lapine_model.advance(0.05)
        released.extend(int(body) for body in client.get_bodies("q"))
        assert delayed.in_memory <= 2 * delayed.window
        assert live_timers(lapine_model, delayed) <= 1
    order = sorted(range(2000), key=lambda i: (delays[i], i))
    assert released == order
    assert len(delayed) == 0


def test_reads_that_land_late_lose_nothing(lapine_model: ModelBroker) -> None:
    store = LateReads()
    lapine_model.broker.delayed.store = store
    client = setup(lapine_model, window=4)
    delayed = lapine_model.broker.delayed
    expected = []
    for index in range(20):  # beyond the window: in the store only
        publish(client, str(index).encode(), 1000 + index * 10)
        expected.append((1000 + index * 10, index))
    lapine_model.advance(1.025)  # three of them go; the window runs low and a refill is asked for
    released = [int(body) for body in client.get_bodies("q")]
    assert released == [0, 1, 2]
    assert store.pending
    # While the read is out, messages come that it cannot see: one due before the rest, some after.
    for index, delay in [(20, 1), (21, 55), (22, 500)]:
        publish(client, str(index).encode(), delay)
        expected.append((1025 + delay, index))
    store.land()
    for _ in range(100):
        lapine_model.advance(0.01)
        store.land()
        released.extend(int(body) for body in client.get_bodies("q"))
    assert sorted(released) == list(range(23))
    assert released == [index for _due, index in sorted(expected)]
    assert len(delayed) == 0


def test_deleting_the_exchange_drops_its_messages_only(lapine_model: ModelBroker) -> None:
    client = setup(lapine_model, window=3)
    client.declare_exchange("other", DELAYED, **{"x-delayed-type": "fanout"})
    client.bind("q", "other")
    delayed = lapine_model.broker.delayed
    for index in range(10):
        publish(client, f"dx{index}".encode(), 100 + index)
        publish(client, f"other{index}".encode(), 100 + index, exchange="other")
    dx, other = (lapine_model.broker.vhosts["/"].exchanges[name] for name in ("dx", "other"))
    assert (delayed.messages_delayed(dx), delayed.messages_delayed(other)) == (10, 10)
    client.call(1, spec.ExchangeDelete(exchange="dx"), spec.ExchangeDeleteOk)
    assert delayed.messages_delayed(other) == 10
    lapine_model.advance(1)
    assert client.get_bodies("q") == [f"other{index}".encode() for index in range(10)]
    assert len(delayed) == 0


def test_a_deleted_vhost_takes_its_delayed_messages(lapine_model: ModelBroker) -> None:
    from lapine.broker.definitions import add_vhost, delete_vhost, set_permissions

    add_vhost(lapine_model.broker, "v")
    set_permissions(lapine_model.broker, "guest", "v", ".*", ".*", ".*")
    client = lapine_model.client(vhost="v")
    client.declare_exchange("dx", DELAYED, **{"x-delayed-type": "direct"})
    publish(client, b"m", 100)
    assert len(lapine_model.broker.delayed) == 1
    delete_vhost(lapine_model.broker, "v")
    assert len(lapine_model.broker.delayed) == 0


@pytest.mark.parametrize(("delay", "held"), [(250.9, -250), (-0.5, None), (1.5, -1)])
def test_floats_are_truncated(lapine_model: ModelBroker, delay: float, held: int | None) -> None:
    client = setup(lapine_model)
    publish(client, b"m", delay)
    got = client.get("q")
    if held is None:
        assert got is not None and got.properties.headers == {"x-delay": delay}
        return
    assert got is None
    lapine_model.advance(0.3)
    got = client.get("q")
    assert got is not None and got.properties.headers == {"x-delay": held}


def _header_with(raw_field: bytes) -> bytes:
    """A content header whose headers table is x-delay with the given type letter and value."""
    table = b"\x07x-delay" + raw_field
    return b"\x00\x3c\x00\x00" + struct.pack(">Q", 1) + b"\x20\x00" + struct.pack(">I", len(table)) + table


@pytest.mark.parametrize(
    ("raw_field", "held"),
    [(b"b\x05", False), (b"B\x05", True), (b"s\x00\x05", True), (b"u\x00\x05", True), (b"i\x00\x00\x00\x05", True),
     (b"T" + struct.pack(">Q", 5), False), (b"D\x00\x00\x00\x00\x05", False), (b"x\x00\x00\x00\x015", True)],
)
def test_which_field_types_delay(lapine_model: ModelBroker, raw_field: bytes, held: bool) -> None:
    """The plugin's integer types and strings delay; a signed byte, a timestamp or a decimal do not."""
    from lapine.amqp.frames import encode_frame, method_frame

    client = setup(lapine_model)
    client.send(
        method_frame(1, spec.BasicPublish(exchange="dx", routing_key="k"))
        + encode_frame(spec.FRAME_HEADER, 1, _header_with(raw_field))
        + encode_frame(spec.FRAME_BODY, 1, b"m")
    )
    assert (client.get("q") is None) == held
    if held:
        lapine_model.advance(0.01)
        got = client.get("q")
        assert got is not None and got.properties.headers == {"x-delay": -5}


def test_confirms_and_counts(lapine_model: ModelBroker) -> None:
    client = setup(lapine_model)
    client.call(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
    publish(client, b"m", 100)
    assert client.confirms() == [("ack", 1, False)]
    exchange = lapine_model.broker.vhosts["/"].exchanges["dx"]
    queue = lapine_model.queue("q")
    assert (exchange.stats.publish_in, exchange.stats.publish_out, queue.stats.publish) == (1, 0, 0)
    lapine_model.advance(0.11)
    assert (exchange.stats.publish_in, exchange.stats.publish_out, queue.stats.publish) == (1, 1, 1)


def test_cc_keys_go_with_the_message(lapine_model: ModelBroker) -> None:
    client = setup(lapine_model)
    client.declare_queue("q2")
    client.bind("q2", "dx", "other")
    publish(client, b"m", 100, BCC=["other"])
    lapine_model.advance(0.11)
    assert client.get_bodies("q") == [b"m"]
    got = client.get("q2")
    assert got is not None and got.properties.headers == {"x-delay": -100}


def test_a_stopping_broker_releases_nothing_more(lapine_model: ModelBroker) -> None:
    """At shutdown the timer goes: what falls due meanwhile stays held (for the next start)."""
    client = setup(lapine_model)
    delayed = lapine_model.broker.delayed
    publish(client, b"held", 100)
    delayed.stop()
    assert live_timers(lapine_model, delayed) == 0
    publish(client, b"after", 50)
    lapine_model.advance(1)
    assert client.get_bodies("q") == []
    assert len(delayed) == 2
