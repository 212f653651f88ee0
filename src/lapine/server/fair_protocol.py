"""What every client socket's asyncio side shares, AMQP and MQTT alike: its share of each loop
tick, credit flow, the read gate, and output gathered once per tick.

The sans-IO connection behind it (broker/connection.py, mqtt/connection.py) cuts what it reads,
spends credit on queues that are behind (broker/flow.py) and holds what it cannot take yet; this
side stops reading the socket while anything is held, grants credit again each tick, and retries
after ``flow.RETRY_SECONDS`` when the queues stood still.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Protocol

from lapine.broker import flow
from lapine.broker.read_gate import Pause, ReadGate
from lapine.server.throttle import PublisherThrottle

# Bytes read from one socket in one event-loop iteration before the others get their turn.
READ_PER_TICK = 64 * 1024
# Held for these, a connection goes on when called back (the client reads, the store answers),
# not at the next tick.
_WAITS_FOR_CALLBACK = frozenset({Pause.UNREAD, Pause.ANSWER})


class HeldReader(Protocol):
    """The sans-IO connection as this side sees it."""

    held: Any  # what was read and waits (frames, packets), or None
    credit: flow.Credit
    published: bool  # set on every publish; read and cleared here (alarms, the store)
    output_delay: float  # seconds to hold the output back (a refused login); reset here
    bytes_sent: int
    finished: bool  # close the socket once the output is written

    # Why what was read waits (Pause.FLOW, UNREAD, ANSWER): what will let it go on.
    input_gate: ReadGate

    @property
    def output(self) -> list[bytes]:
        """Gathered since the last write."""

    def grant_credit(self, trickle: bool = False) -> None: ...

    def release_held(self) -> None: ...

    def take_output(self) -> bytes: ...

    def output_written(self) -> None: ...


class FairProtocol(asyncio.Protocol, ABC):
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.throttle: PublisherThrottle | None = None
        # Every reason not to read the socket (read fairness, credit, alarms, a late answer).
        self.gate = ReadGate(self._pause_reading, self._resume_reading)
        self.last_received = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        self._flush_scheduled = False
        self._reading_paused = False
        self._read_this_tick = 0
        self._tick_scheduled = False
        self._flow_timer: asyncio.TimerHandle | None = None
        self._output_held = False

    # --- what the protocol provides ----------------------------------------------------------

    @abstractmethod
    def _reader(self) -> HeldReader | None:
        """The sans-IO connection, once there is one."""

    def _wrote(self, transport: asyncio.Transport) -> None:
        """Output was just handed to the transport."""

    def _flushed(self, transport: asyncio.Transport) -> None:
        """A flush is over and the connection is not finished."""

    # --- reading -----------------------------------------------------------------------------

    def _after_read(self) -> None:
        """After the connection took a read: stop reading while it holds some of it."""
        reader = self._reader()
        if reader is not None and reader.held is not None:
            self.gate.pause(Pause.HELD)
        self._published()

    def _published(self) -> None:
        reader = self._reader()
        if reader is not None and reader.published:
            reader.published = False
            assert self.throttle is not None
            self.throttle.publish_received()

    def _count_read(self, size: int) -> None:
        """Fairness between sockets: past READ_PER_TICK bytes, this one waits for the next loop
        iteration. uvloop would otherwise read a flooding publisher many times over before it
        looks at another socket, and its consumers' acks would wait behind the flood."""
        self._tick_soon()
        self._read_this_tick += size
        if self._read_this_tick >= READ_PER_TICK:
            self.gate.pause(Pause.TICK)

    def _tick_soon(self) -> None:
        if not self._tick_scheduled:
            self._tick_scheduled = True
            self.loop.call_soon(self._tick_over)

    def _tick_over(self) -> None:
        """The loop went round: a new read share, new credit, and held frames go on."""
        self._tick_scheduled = False
        self._read_this_tick = 0
        self.gate.resume(Pause.TICK)
        reader = self._reader()
        if reader is not None:
            reader.grant_credit()
            self._go_on()

    def _go_on(self) -> None:
        reader = self._reader()
        if reader is None or reader.held is None:
            return
        reader.release_held()
        self._published()
        if reader.held is None:
            self.gate.resume(Pause.HELD)
        elif not reader.input_gate.reasons.isdisjoint(_WAITS_FOR_CALLBACK):
            pass  # resume_writing, or the flush after the store's answer, calls again
        elif reader.credit.granted:
            self._tick_soon()  # out of credit: more next tick, as the queues hand out
        elif self._flow_timer is None:
            # The queues stood still: no use asking every tick.
            self._flow_timer = self.loop.call_later(flow.RETRY_SECONDS, self._flow_retry)

    def _flow_retry(self) -> None:
        self._flow_timer = None
        reader = self._reader()
        if reader is not None and reader.held is not None:
            reader.grant_credit(trickle=True)
            self._go_on()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = False
            # We were not listening: silence while paused is not a missed heartbeat.
            self.last_received = self.loop.time()
            self.transport.resume_reading()

    # --- output ------------------------------------------------------------------------------

    def _wakeup(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what the connection gathered since the last tick, in one write."""
        self._flush_scheduled = False
        reader = self._reader()
        transport = self.transport
        if reader is None or transport is None or transport.is_closing():
            return
        if reader.output_delay:
            self._hold_output(reader.output_delay)
            reader.output_delay = 0.0
        if self._output_held:
            return
        if reader.output:
            data = reader.take_output()
            reader.bytes_sent += len(data)
            transport.write(data)
            reader.output_written()
            self._wrote(transport)
        if reader.held is not None:
            self._go_on()
        if reader.finished:
            transport.close()
        else:
            self._flushed(transport)

    def _hold_output(self, delay: float) -> None:
        """Answer (a failed login) only after ``delay`` seconds, without blocking the loop; the
        client is not read from meanwhile."""
        self._output_held = True
        self.gate.pause(Pause.LOGIN)
        self._timers.append(self.loop.call_later(delay, self._release_output))

    def _release_output(self) -> None:
        self._output_held = False
        self.gate.resume(Pause.LOGIN)
        self._flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _stop_timers(self) -> None:
        """The socket is gone: no timer of ours may fire any more."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._flow_timer is not None:
            self._flow_timer.cancel()
            self._flow_timer = None
        if self.throttle is not None:
            self.throttle.close()
