"""One AMQP connection, sans-IO: bytes in through ``data_received``, bytes out in ``output``.

The connection runs the handshake (header, start, tune, open), splits frames among its channels,
and turns the model's exceptions into channel.close or connection.close as RabbitMQ does. The
asyncio layer (lapine.server.protocol) only moves bytes and runs timers: it is woken through
``wakeup`` when output appears, writes ``output`` once per loop tick, and closes the socket once
``finished`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lapine.amqp import spec
from lapine.amqp.codec import frame_description
from lapine.amqp.constants import (
    ACCESS_REFUSED,
    CHANNEL_ERROR,
    CONNECTION_FORCED,
    INTERNAL_ERROR,
    NOT_ALLOWED,
    UNEXPECTED_FRAME,
)
from lapine.amqp.errors import AMQPError, ChannelError, ConnectionError
from lapine.amqp.frames import PROTOCOL_HEADER, FrameReader, FrameReaderError, decode_publish, method_frame
from lapine.auth import sasl
from lapine.broker import flow, handshake
from lapine.broker.channel import Channel
from lapine.broker.content_assembly import NO_METHOD
from lapine.broker.handshake import State
from lapine.broker.output_buffer import OutputBuffer
from lapine.broker.read_gate import Pause, ReadGate
from lapine.broker.server_identity import connection_start
from lapine.log_text import one_line

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.broker.queue import Queue
    from lapine.broker.vhost import VirtualHost

log = logging.getLogger("lapine.connection")


_PUBLISH_IDS = b"\x00\x3c\x00\x28"  # basic.publish: class 60, method 40
# Output a client may leave unread beyond one message of the largest size, before its requests wait.
OUTPUT_SLACK = 4 * 1024 * 1024
_HANDSHAKE_FRAME_MAX = 131072


class Connection:
    # As the management API names the protocol (an MQTT connection says "MQTT 3.1.1", ...).
    protocol_label = "AMQP 0-9-1"

    def __init__(
        self,
        broker: Broker,
        peer: tuple[str, int],
        wakeup: Callable[[], None],
        local: tuple[str, int] = ("127.0.0.1", 5672),
    ) -> None:
        self.broker = broker
        self.peer_host, self.peer_port = peer[0], peer[1]
        self.wakeup = wakeup
        self.state = State.AWAIT_HEADER
        self.finished = False  # the transport should close once output is written
        self._header = b""
        self.reader = FrameReader(_HANDSHAKE_FRAME_MAX)
        config = broker.config
        self.frame_max = config.frame_max
        self.channel_max = config.channel_max
        self.heartbeat = config.heartbeat
        self.channels: dict[int, Channel] = {}
        self.client_properties: dict[str, Any] = {}
        self.username = ""
        self.vhost: VirtualHost = None  # type: ignore[assignment]  # set by connection.open
        self.exclusive_queues: set[Queue] = set()
        self._confirming: set[Channel] = set()
        self.local_host, self.local_port = local[0], local[1]
        # RabbitMQ names a connection "peer -> local"; a client's connection_name is shown apart.
        self.name = f"{_address(self.peer_host, self.peer_port)} -> {_address(self.local_host, self.local_port)}"
        self.auth_mechanism = ""
        self.connected_at = broker.scheduler.wall_time()
        self.bytes_received = 0
        self.bytes_sent = 0
        # Set on every publish; the asyncio layer reads and clears it to block publishers (alarms).
        self.published = False
        # Not read from because of a resource alarm (RabbitMQ's connection state "blocked").
        self.blocked = False
        # Seconds the transport should hold the output it has now before writing it (a failed
        # login is answered late, to slow down password guessing); the transport resets it.
        self.output_delay = 0.0
        # Credit flow (broker/flow.py), and the frames read that wait for the next tick once the
        # credit is used up (or the output is over its limit, below).
        self.credit = flow.Credit()
        self.held: list[tuple[int, int, Any]] | None = None
        # Shut while the next frame must wait: out of credit (FLOW), too much output unread
        # (UNREAD), an answer waiting for the store (ANSWER).
        self.input_gate = ReadGate()
        # What we send; past its unread limit, requests wait (the client does not read us).
        self.out = OutputBuffer(
            wakeup, self._writable_changed, config.max_message_size + OUTPUT_SLACK, self._unread_output
        )
        # The hot path calls the buffer's own method, with no call of ours in between.
        self.send: Callable[[bytes], None] = self.out.send
        # Answers waiting for the store (answer_when_durable, a page read): ANSWER while any.
        self._store_waits = 0
        # What runs each method the handshake's table lets through on channel 0.
        self._connection_handlers: dict[type[spec.Method], Callable[[Any], None]] = {
            spec.ConnectionStartOk: self._start_ok,
            spec.ConnectionTuneOk: self._tune_ok,
            spec.ConnectionOpen: self._open,
            spec.ConnectionUpdateSecret: self._update_secret,
            spec.ConnectionBlocked: self._ignored,
            spec.ConnectionUnblocked: self._ignored,
            spec.ConnectionClose: self._close_received,
            spec.ConnectionCloseOk: self._close_ok_received,
        }

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self.state.value}>"

    # --- output ------------------------------------------------------------------------------

    def send_method(self, channel_id: int, method: spec.Method) -> None:
        self.send(method_frame(channel_id, method))

    def send_method_at(self, position: int, channel_id: int, method: spec.Method) -> None:
        """A method sent ahead of what was output since ``len(self.output)`` was ``position``."""
        self.out.insert(position, method_frame(channel_id, method))

    @property
    def output(self) -> list[bytes]:
        """The pieces gathered for the next write."""
        return self.out.pieces

    @property
    def output_size(self) -> int:
        return self.out.size

    @property
    def writable(self) -> bool:
        return self.out.writable

    def take_output(self) -> bytes:
        return self.out.take()

    def output_written(self) -> None:
        """The transport took our output: deliveries held back for this tick may go on."""
        self.out.written()

    def set_writable(self, writable: bool) -> None:
        """Back-pressure from the socket: consumers on this connection get no more deliveries
        until it drains; then each of their queues dispatches again."""
        self.out.set_socket_writable(writable)

    def _writable_changed(self, writable: bool) -> None:
        for channel in list(self.channels.values()):
            channel.active = writable
        if writable:
            for channel in list(self.channels.values()):
                channel.refill()

    def _unread_output(self) -> None:
        """The client leaves too much of our output unread: the next frame waits."""
        self.input_gate.pause(Pause.UNREAD)

    def send_blocked(self, reason: str) -> None:
        """Tell the client it is blocked by a resource alarm (only if it understands it)."""
        if self.client_capability("connection.blocked") and self.state is State.OPEN:
            self.send_method(0, spec.ConnectionBlocked(reason=reason))

    def send_unblocked(self) -> None:
        if self.client_capability("connection.blocked") and self.state is State.OPEN:
            self.send_method(0, spec.ConnectionUnblocked())

    def client_capability(self, name: str) -> bool:
        capabilities = self.client_properties.get("capabilities")
        return isinstance(capabilities, dict) and bool(capabilities.get(name))

    def confirm_pending(self, channel: Channel) -> None:
        self._confirming.add(channel)

    # --- input -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        if self.state is State.AWAIT_HEADER:
            data = self._protocol_header(data)
            if not data:
                return
        self._guarded(self._read, data)

    def _read(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameReaderError as error:
            # RabbitMQ acts on the good frames that came before the bad one, then closes.
            self._take_frames(error.frames)
            raise
        self._take_frames(frames)

    def _guarded(self, act: Callable[[Any], None], what: Any) -> None:
        """Act on input; a protocol error closes the connection as the spec says, anything else
        as an internal error, and the confirms it earned are sent either way."""
        try:
            act(what)
        except ConnectionError as error:
            self.close_with_error(error)
        except Exception:
            log.exception("internal error on connection %s", self.name)
            self.close_with_error(ConnectionError(INTERNAL_ERROR, "internal error"))
        finally:
            self._flush_confirms()

    def _take_frames(self, frames: list[tuple[int, int, Any]]) -> None:
        if self.held is not None:
            # Still waiting for credit: new frames queue up behind the held ones, in order.
            self.held.extend(frames)
        else:
            self._frames_received(frames)

    def set_output_pending(self, size: int) -> None:
        """What the transport still has to write; below the limit, held requests may go on."""
        self.out.set_pending(size)

    def output_over_limit(self) -> bool:
        return self.out.over_unread_limit()

    @property
    def output_limit(self) -> int:
        return self.out.unread_limit

    def grant_credit(self, trickle: bool = False) -> None:
        """A new event-loop tick (or, with ``trickle``, the retry timer): credit again."""
        self.credit.grant(trickle)

    def answer_when_durable(self, position: int) -> None:
        """What was sent since the output held ``position`` pieces answers a definition change:
        it goes out once the store has the change, and input waits until then, so that later
        answers keep their order (RabbitMQ's channel, too, answers a durable declare only then).
        The event loop goes on meanwhile: the store's barrier calls back."""
        store = self.broker.store
        assert store is not None
        answers = self.out.cut(position)
        self.hold_input()
        store.submit_barrier(lambda: self._durable(answers))

    def hold_input(self) -> None:
        """An answer waits for the store: input after it waits too, until resume_input."""
        self._store_waits += 1
        self.input_gate.pause(Pause.ANSWER)

    def resume_input(self) -> None:
        self._store_waits -= 1
        if not self._store_waits and self.state is not State.CLOSED:
            self.input_gate.resume(Pause.ANSWER)
            self._recheck_input()
            # The transport side flushes, and then lets what input waited go on.
            self.wakeup()

    def run_guarded(self, act: Callable[[], None]) -> None:
        """Act for this connection outside its input (a store's callback), with input's guard."""
        if self.state is not State.CLOSED:
            self._guarded(lambda _: act(), None)

    def _durable(self, answers: list[bytes]) -> None:
        if self.state is not State.CLOSED:
            for data in answers:
                self.send(data)
        self.resume_input()

    def release_held(self) -> None:
        """Held frames go on, if there is credit, our output is under its limit and no answer
        waits for the store."""
        self._recheck_input()
        held = self.held
        if held is None or self.input_gate.reasons or self.state is State.CLOSED:
            return
        self.held = None
        self._guarded(self._frames_received, held)

    def charge(self, queue: Queue) -> None:
        """A message of ours went into ``queue``, which is behind (broker/flow.py)."""
        if self.credit.charge(queue):
            self.input_gate.pause(Pause.FLOW)

    @property
    def in_flow(self) -> bool:
        """Held by credit flow within the last few seconds: RabbitMQ's state "flow"."""
        return self.broker.scheduler.time() - self.credit.held_at < flow.FLOW_STATE_SECONDS

    def _recheck_input(self) -> None:
        """The input gate's FLOW and UNREAD as the credit and the output stand now (ANSWER
        goes with the store's answers)."""
        gate = self.input_gate
        gate.pause_while(Pause.FLOW, self.credit.exhausted)
        gate.pause_while(Pause.UNREAD, self.out.over_unread_limit())

    def _hold(self, frames: list[tuple[int, int, Any]], index: int) -> None:
        """Out of credit or output room: the rest of this read waits for the next tick."""
        self.held = frames[index:]
        self._recheck_input()  # what the server side reads to know what will open the gate
        if self.credit.exhausted:
            self.credit.held_at = self.broker.scheduler.time()
            self.broker.flow_holds += 1

    def _flush_confirms(self) -> None:
        if self._confirming:
            for channel in self._confirming:
                if not channel.closed:
                    channel.flush_confirms()
            self._confirming.clear()

    def _protocol_header(self, data: bytes) -> bytes:
        needed = 8 - len(self._header)
        self._header += data[:needed]
        if len(self._header) < 8:
            return b""
        if self._header != PROTOCOL_HEADER:
            # The spec's answer to a header we do not speak: ours, then close.
            self.send(PROTOCOL_HEADER)
            self._finish()
            return b""
        self.state = handshake.header_received(self.state)
        self.send_method(0, connection_start(self.broker.server_properties()))
        return data[needed:]

    def _frames_received(self, frames: list[tuple[int, int, Any]]) -> None:
        channels = self.channels
        waits = self.input_gate.reasons
        index = 0
        count = len(frames)
        while index < count:
            if waits:
                self._hold(frames, index)
                return
            frame_type, channel_id, payload = frames[index]
            index += 1
            if self.state is State.CLOSED:
                return
            channel = channels.get(channel_id) if channel_id else None
            if channel is not None and not channel.closing:
                try:
                    if frame_type == 1:
                        if payload[:4] == _PUBLISH_IDS:
                            self.published = True
                            taken = _whole_message(frames, index, channel_id)
                            if taken:
                                # The usual case: method, header and body arrived together.
                                header = frames[index][2]
                                body = frames[index + 1][2] if taken == 2 else b""
                                index += taken
                                channel.publish_whole(payload, header, body)
                            else:
                                channel.start_publish(*decode_publish(payload))
                        else:
                            channel.handle_method(spec.decode_method(payload))
                    elif frame_type == 2:
                        channel.on_header(payload)
                    elif frame_type == 3:
                        channel.on_body(payload)
                    else:
                        self._unexpected_frame(frame_type, channel_id, payload)
                except ChannelError as error:
                    self.close_channel_with_error(channel, error)
                continue
            self._other_frame(frame_type, channel_id, payload)

    def _other_frame(self, frame_type: int, channel_id: int, payload: Any) -> None:
        """Frames off the hot path: channel 0, heartbeats, unknown or closing channels."""
        if frame_type == spec.FRAME_HEARTBEAT:
            if channel_id:
                raise ConnectionError(UNEXPECTED_FRAME, frame_description(frame_type, payload))
            return
        if self.state is State.CLOSING:
            if channel_id == 0 and frame_type == spec.FRAME_METHOD:
                method = spec.decode_method(payload)
                if isinstance(method, spec.ConnectionCloseOk | spec.ConnectionClose):
                    if isinstance(method, spec.ConnectionClose):
                        self.send_method(0, spec.ConnectionCloseOk())
                    self._finish()
            return
        if frame_type != spec.FRAME_METHOD:
            if channel_id in self.channels:
                # The rest of a message on a channel we are closing (e.g. the body frames of one
                # refused as too large): dropped, as RabbitMQ does, not a connection error.
                return
            self._unexpected_frame(frame_type, channel_id, payload)
        method = spec.decode_method(payload)
        if channel_id == 0:
            self._connection_method(method)
            return
        handshake.check_channel_method(self.state, method)
        channel = self.channels.get(channel_id)
        if channel is None:
            self._open_channel(channel_id, method)
        elif isinstance(method, spec.ChannelCloseOk):
            del self.channels[channel_id]
        elif isinstance(method, spec.ChannelClose):
            self.send_method(channel_id, spec.ChannelCloseOk())
            del self.channels[channel_id]
        # Anything else on a channel we are closing is dropped, as the spec asks.

    def _unexpected_frame(self, frame_type: int, channel_id: int, payload: bytes) -> None:
        if frame_type in (spec.FRAME_HEADER, spec.FRAME_BODY) and channel_id:
            raise ConnectionError(UNEXPECTED_FRAME, NO_METHOD)
        raise ConnectionError(UNEXPECTED_FRAME, frame_description(frame_type, payload))

    def _open_channel(self, channel_id: int, method: spec.Method) -> None:
        if not isinstance(method, spec.ChannelOpen):
            raise ConnectionError(CHANNEL_ERROR, "expected 'channel.open'", method.CLASS_ID, method.METHOD_ID)
        if len(self.channels) >= self.channel_max:
            raise ConnectionError(
                NOT_ALLOWED,
                f"number of channels opened ({len(self.channels)}) has reached the negotiated "
                f"channel_max ({self.channel_max})",
                *spec.ChannelOpen.IDS,
            )
        channel = Channel(self, channel_id)
        self.broker.churn.channel_created += 1
        channel.active = self.writable
        self.channels[channel_id] = channel
        channel.handlers[spec.ChannelClose.INDEX] = lambda m: self._channel_close(channel)
        channel.handlers[spec.ChannelOpen.INDEX] = lambda m: self._second_open(channel_id)
        self.send_method(channel_id, spec.ChannelOpenOk())

    def _second_open(self, channel_id: int) -> None:
        raise ConnectionError(CHANNEL_ERROR, "second 'channel.open' seen", *spec.ChannelOpen.IDS)

    def _channel_close(self, channel: Channel) -> None:
        channel.shutdown()
        self.channels.pop(channel.id, None)
        self.send_method(channel.id, spec.ChannelCloseOk())

    def close_channel_with_error(self, channel: Channel, error: AMQPError) -> None:
        log.info("channel %d of %s closed: %s", channel.id, self.name, one_line(error.reply_text))
        channel.shutdown()
        channel.closing = True
        self.send_method(
            channel.id,
            spec.ChannelClose(
                reply_code=error.reply_code,
                reply_text=error.reply_text,
                class_id=error.class_id,
                method_id=error.method_id,
            ),
        )

    # --- connection class (channel 0) --------------------------------------------------------

    def _connection_method(self, method: spec.Method) -> None:
        """A method on channel 0: the handshake's table says whether it may come now and which
        state it leads to once it succeeded (one that fails has closed the connection)."""
        state = self.state
        target = handshake.next_state(state, method)
        self._connection_handlers[type(method)](method)
        if self.state is state:
            self.state = target

    def _close_received(self, method: spec.Method) -> None:
        self._shutdown_channels()
        self.send_method(0, spec.ConnectionCloseOk())
        self._finish()

    def _close_ok_received(self, method: spec.Method) -> None:
        self._finish()

    def _update_secret(self, method: spec.Method) -> None:
        self.send_method(0, spec.ConnectionUpdateSecretOk())

    def _ignored(self, method: spec.Method) -> None:
        """connection.blocked and unblocked are the server's to send: from a client, ignored."""

    def _start_ok(self, method: spec.ConnectionStartOk) -> None:
        self.client_properties = method.client_properties or {}
        mechanism = method.mechanism
        if mechanism not in ("PLAIN", "AMQPLAIN"):
            text = f"unsupported authentication mechanism '{mechanism}'"
            raise ConnectionError(ACCESS_REFUSED, text, *spec.ConnectionStartOk.IDS)
        credentials = sasl.parse_response(mechanism, bytes(method.response))
        user = None
        if credentials is not None:
            user = self.broker.users.authenticate(credentials[0], credentials[1], self.peer_host)
        if user is None:
            log.warning(
                "login refused for user %r from %s (mechanism %s)",
                credentials[0] if credentials else "",
                self.peer_host,
                mechanism,
            )
            self.output_delay = self.broker.config.login_failure_delay
            error = ConnectionError(
                ACCESS_REFUSED,
                f"Login was refused using authentication mechanism {mechanism}. For details see the broker logfile.",
                *spec.ConnectionStartOk.IDS,
            )
            if self.client_capability("authentication_failure_close"):
                self.close_with_error(error)
            else:
                self._finish()
            return
        self.username = user.name
        self.auth_mechanism = mechanism
        config = self.broker.config
        self.send_method(
            0,
            spec.ConnectionTune(channel_max=config.channel_max, frame_max=config.frame_max, heartbeat=config.heartbeat),
        )

    def _tune_ok(self, method: spec.ConnectionTuneOk) -> None:
        config = self.broker.config
        self.frame_max = _negotiate("frame_max", method.frame_max, config.frame_max, spec.FRAME_MIN_SIZE)
        self.channel_max = _negotiate("channel_max", method.channel_max, config.channel_max, 1)
        self.heartbeat = method.heartbeat
        self.reader.frame_max = self.frame_max

    def _open(self, method: spec.ConnectionOpen) -> None:
        node_limit = self.broker.config.connection_max
        if 0 < node_limit <= len(self.broker.connections):
            text = f"connection refused: node connection limit ({node_limit}) is reached"
            raise ConnectionError(NOT_ALLOWED, text, *spec.ConnectionOpen.IDS)
        vhost = self.broker.vhosts.get(method.virtual_host)
        if vhost is None:
            raise ConnectionError(NOT_ALLOWED, f"vhost {method.virtual_host} not found", *spec.ConnectionOpen.IDS)
        self._check_vhost_connection_limit(vhost)
        if not self.broker.permissions.can_access(self.username, vhost.name):
            text = f"access to vhost '{vhost.name}' refused for user '{self.username}'"
            raise ConnectionError(NOT_ALLOWED, text, *spec.ConnectionOpen.IDS)
        self.vhost = vhost
        self.broker.connections.add(self)
        self.broker.churn.connection_created += 1
        self.send_method(0, spec.ConnectionOpenOk())

    def _check_vhost_connection_limit(self, vhost: VirtualHost) -> None:
        """The vhost's max-connections limit (negative or absent: none; 0: no connection at all)."""
        limit = vhost.limits.get("max-connections", -1)
        if limit >= 0 and sum(1 for c in self.broker.connections if c.vhost is vhost) >= limit:
            raise ConnectionError(
                NOT_ALLOWED,
                f"access to vhost '{vhost.name}' refused for user '{self.username}': "
                f"connection limit ({limit}) is reached",
                *spec.ConnectionOpen.IDS,
            )

    # --- closing -----------------------------------------------------------------------------

    def close_with_error(self, error: AMQPError) -> None:
        """A hard error (or a forced close): connection.close, then wait for close-ok."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        if error.reply_code != CONNECTION_FORCED:
            log.warning("closing connection %s: %s", self.name, one_line(error.reply_text))
        self._shutdown_channels()
        if self.state is State.AWAIT_HEADER:
            self._finish()
            return
        self.state = State.CLOSING
        self.send_method(
            0,
            spec.ConnectionClose(
                reply_code=error.reply_code,
                reply_text=error.reply_text,
                class_id=error.class_id,
                method_id=error.method_id,
            ),
        )

    def _finish(self) -> None:
        self._shutdown_channels()
        self.state = State.CLOSED
        self.finished = True
        self.wakeup()

    def connection_lost(self) -> None:
        """The socket is gone: release everything the connection held."""
        self.held = None
        self.credit.forget()
        self._shutdown_channels()
        self.state = State.CLOSED
        self.finished = True
        self._delete_exclusive_queues()
        if self in self.broker.connections:
            self.broker.connections.discard(self)
            self.broker.churn.connection_closed += 1

    def _shutdown_channels(self) -> None:
        channels = list(self.channels.values())
        self.channels.clear()
        for channel in channels:
            channel.shutdown()
        if self.state not in (State.CLOSING, State.CLOSED):
            # Exclusive queues go with the connection, as soon as it starts closing.
            self._delete_exclusive_queues()

    def _delete_exclusive_queues(self) -> None:
        for queue in list(self.exclusive_queues):
            if not queue.deleted:
                self.vhost.delete_queue(queue)
        self.exclusive_queues.clear()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _whole_message(frames: list[tuple[int, int, Any]], index: int, channel_id: int) -> int:
    """How many frames after a publish complete its message (1: header, empty body; 2: header
    and one body frame), or 0 when the message spans more frames or reads."""
    if index >= len(frames):
        return 0
    header_type, header_channel, header = frames[index]
    if header_type != 2 or header_channel != channel_id or len(header) < 14 or header[:2] != b"\x00\x3c":
        return 0
    size = int.from_bytes(header[4:12], "big")
    if size == 0:
        return 1
    if index + 1 < len(frames):
        body_type, body_channel, body = frames[index + 1]
        if body_type == 3 and body_channel == channel_id and len(body) == size:
            return 2
    return 0


def _negotiate(field: str, client: int, server: int, minimum: int) -> int:
    """RabbitMQ's rule: the client may lower a limit, never raise it or go under the minimum."""
    if client and client < minimum:
        raise ConnectionError(
            NOT_ALLOWED,
            f"negotiated {field} = {client} is lower than the minimum allowed value ({minimum})",
            *spec.ConnectionTuneOk.IDS,
        )
    if server and (client == 0 or client > server):
        raise ConnectionError(
            NOT_ALLOWED,
            f"negotiated {field} = {client} is higher than the maximum allowed value ({server})",
            *spec.ConnectionTuneOk.IDS,
        )
    return client or server

