"""The output buffer one client connection (AMQP or MQTT) gathers for the transport."""

from __future__ import annotations

from lapine.broker.output_buffer import OUTPUT_PER_TICK, OutputBuffer


class Recorder:
    def __init__(self, unread_limit: int = 0) -> None:
        self.wakeups = 0
        self.writable: list[bool] = []
        self.unread = 0
        self.buffer = OutputBuffer(self.wakeup, self.writable.append, unread_limit, self.on_unread)

    def wakeup(self) -> None:
        self.wakeups += 1

    def on_unread(self) -> None:
        self.unread += 1


def test_the_first_piece_wakes_the_transport_and_the_next_ones_do_not() -> None:
    r = Recorder()
    r.buffer.send(b"a")
    r.buffer.send(b"bc")
    assert r.wakeups == 1
    assert r.buffer.size == 3
    assert r.buffer.take() == b"abc"
    assert (r.buffer.pieces, r.buffer.size) == ([], 0)
    r.buffer.send(b"d")
    assert r.wakeups == 2


def test_past_one_ticks_share_deliveries_stop_until_the_transport_took_it() -> None:
    r = Recorder()
    r.buffer.send(b"x" * OUTPUT_PER_TICK)
    assert r.buffer.writable and r.writable == []  # exactly the share is still one write
    r.buffer.send(b"y")
    assert not r.buffer.writable and r.writable == [False]
    r.buffer.send(b"z")
    assert r.writable == [False]  # told once
    r.buffer.take()
    r.buffer.written()
    assert r.buffer.writable and r.writable == [False, True]
    r.buffer.written()
    assert r.writable == [False, True]


def test_a_full_socket_stops_deliveries_until_it_drains_and_the_tick_is_written() -> None:
    r = Recorder()
    r.buffer.set_socket_writable(False)
    assert r.writable == [False]
    r.buffer.send(b"x" * (OUTPUT_PER_TICK + 1))
    r.buffer.set_socket_writable(True)
    assert not r.buffer.writable  # this tick's share is still full
    r.buffer.take()
    r.buffer.written()
    assert r.writable == [False, True]


def test_insert_goes_ahead_of_what_was_sent_since_the_mark() -> None:
    r = Recorder()
    r.buffer.send(b"a")
    mark = len(r.buffer.pieces)
    r.buffer.send(b"c")
    r.buffer.insert(mark, b"b")
    r.buffer.insert(len(r.buffer.pieces), b"d")  # at the end: an ordinary send
    assert r.buffer.size == 4
    assert r.buffer.take() == b"abcd"


def test_insert_into_empty_output_wakes_the_transport() -> None:
    r = Recorder()
    r.buffer.insert(0, b"a")
    assert r.wakeups == 1


def test_cut_takes_back_what_was_sent_since_the_mark() -> None:
    r = Recorder()
    r.buffer.send(b"a")
    r.buffer.send(b"bb")
    r.buffer.send(b"ccc")
    assert r.buffer.cut(1) == [b"bb", b"ccc"]
    assert r.buffer.size == 1
    assert r.buffer.take() == b"a"


def test_without_a_limit_nothing_is_ever_unread() -> None:
    r = Recorder()
    r.buffer.send(b"x" * (OUTPUT_PER_TICK * 4))
    r.buffer.set_pending(10**9)
    assert not r.buffer.over_unread_limit()
    assert r.unread == 0


def test_output_unread_past_the_limit_is_reported_with_what_the_transport_holds() -> None:
    limit = OUTPUT_PER_TICK * 2
    r = Recorder(unread_limit=limit)
    r.buffer.set_pending(OUTPUT_PER_TICK)
    assert r.unread == 0
    r.buffer.send(b"x" * OUTPUT_PER_TICK)
    assert r.unread == 0 and not r.buffer.over_unread_limit()
    r.buffer.send(b"y")
    assert r.unread == 1 and r.buffer.over_unread_limit()
    r.buffer.take()
    assert not r.buffer.over_unread_limit()
    r.buffer.set_pending(limit + 1)  # the transport has it all, the client still does not read
    assert r.unread == 2 and r.buffer.over_unread_limit()
    r.buffer.set_pending(0)
    assert r.unread == 2 and not r.buffer.over_unread_limit()
