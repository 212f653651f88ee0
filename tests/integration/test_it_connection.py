"""Connection-level behaviour: handshake, tuning, authentication, protocol header, frames, heartbeats.

Observed on RabbitMQ 3.10.8, and asserted here:

* ``connection.start`` offers mechanisms ``AMQPLAIN PLAIN`` and locale ``en_US``; the capabilities
  table holds exactly nine ``true`` flags. ``cluster_name`` is the node name (``rabbit@<host>``).
* Tune: ``channel_max=2047``, ``frame_max=131072``, ``heartbeat=60``. A ``tune-ok`` with
  ``channel_max=0`` ("no limit") is *refused* because it is above 2047, and ``frame_max`` below
  4096 (or above 131072, or 0) is refused too: RabbitMQ does not answer ``connection.close`` then,
  it waits about 3 s and closes the TCP connection silently (an anti-DoS delay).
* Any wrong protocol header, even ``AMQP 0-8`` or ``AMQP 0-9-0``, is answered with
  ``AMQP\\x00\\x00\\x09\\x01`` and the socket is closed at once.
* A failed login gets ``connection.close`` 403 only if the client announced the
  ``authentication_failure_close`` capability (pika does); otherwise the socket is simply closed.
  The text names the mechanism: ``... using authentication mechanism AMQPLAIN ...``.
* ``channel_max`` limits the *number* of open channels, not the channel *numbers*: a 4th
  ``channel.open`` with channel_max=3 gets 530 "NOT_ALLOWED - number of channels opened (3) has
  reached the negotiated channel_max (3)".
* A message with an empty body is delivered as a content header frame with no body frame at all.
* After the client's ``connection.close`` RabbitMQ sends ``close-ok`` and then waits for the
  *client* to close the socket (it does not close it first).
* With heartbeat=1 the server sends a heartbeat every 0.5 s and drops a silent client after ~3 s
  without a ``connection.close`` (just a TCP close).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.helpers.amqp import bodies, unique
from tests.helpers.raw_amqp import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    PROTOCOL_HEADER,
    ConnectionClosedError,
    RawAMQP,
    amqplain_response,
)

pytestmark = pytest.mark.timeout(15)

CAPABILITIES = (
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
)

LOGIN_REFUSED_PLAIN = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
)
LOGIN_REFUSED_AMQPLAIN = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. For details see the broker logfile."
)


# -- connection.start --------------------------------------------------------------------------


def test_server_properties_as_pika_sees_them(connection: pika.BlockingConnection) -> None:
    props = connection._impl.server_properties
    for key in ("product", "version", "platform", "copyright", "information", "cluster_name"):
        assert key in props, key
        value = props[key]
        assert isinstance(value, str | bytes) and value, key
    caps = props["capabilities"]
    for cap in CAPABILITIES:
        assert caps.get(cap) is True, cap


def test_connection_start_raw(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    start = client.start()
    assert (start.version_major, start.version_minor) == (0, 9)
    mechanisms = start.mechanisms.decode() if isinstance(start.mechanisms, bytes) else start.mechanisms
    assert "PLAIN" in mechanisms.split()
    assert "AMQPLAIN" in mechanisms.split()
    locales = start.locales.decode() if isinstance(start.locales, bytes) else start.locales
    assert "en_US" in locales.split()
    assert all(start.server_properties["capabilities"][cap] is True for cap in CAPABILITIES)


def test_connection_tune_defaults_raw(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    tune = client.login()
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    client.tune_and_open(tune)
    client.open_channel(1)
    client.close_connection()


# -- tuning as pika negotiates it ---------------------------------------------------------------


def test_negotiated_defaults(connection: pika.BlockingConnection) -> None:
    p = connection._impl.params
    assert (p.frame_max, p.channel_max, p.heartbeat) == (131072, 2047, 60)


@pytest.mark.parametrize(
    ("frame_max", "channel_max", "heartbeat"),
    [(8192, 10, 5), (4096, 1, 30), (65536, 100, 0)],
)
def test_lower_client_values_win(
    connect: Callable[..., pika.BlockingConnection], frame_max: int, channel_max: int, heartbeat: int
) -> None:
    conn = connect(frame_max=frame_max, channel_max=channel_max, heartbeat=heartbeat)
    p = conn._impl.params
    assert (p.frame_max, p.channel_max, p.heartbeat) == (frame_max, channel_max, heartbeat)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = bytes(range(256)) * 100  # 25.6 kB: several frames at frame_max 4096/8192
    ch.basic_publish("", q, body)
    assert bodies(ch, q) == [body]


def test_higher_client_limits_are_capped_by_server(connect: Callable[..., pika.BlockingConnection]) -> None:
    conn = connect(frame_max=131072, channel_max=65535)
    p = conn._impl.params
    assert (p.frame_max, p.channel_max) == (131072, 2047)


def test_frame_max_below_minimum_is_refused(raw: Callable[..., RawAMQP]) -> None:
    client = raw(timeout=6)
    client.start()
    client.login()
    client.send_method(0, pika.spec.Connection.TuneOk(channel_max=2047, frame_max=1024, heartbeat=0))
    client.send_method(0, pika.spec.Connection.Open(virtual_host="/"))
    with pytest.raises((ConnectionClosedError, AssertionError)):
        # RabbitMQ closes the socket (after a ~3 s anti-DoS delay) instead of sending open-ok.
        client.expect(pika.spec.Connection.OpenOk, timeout=5.5)


# -- authentication and vhosts ------------------------------------------------------------------


@pytest.mark.parametrize(("user", "password"), [("guest", "wrong-password"), ("no-such-user", "guest")])
def test_wrong_credentials(
    connect: Callable[..., pika.BlockingConnection], url_with: Callable[..., str], user: str, password: str
) -> None:
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        connect(url_with(user=user, password=password))
    cause = info.value.args[0]
    assert isinstance(cause, str)
    assert cause == f"ConnectionClosedByBroker: (403) {LOGIN_REFUSED_PLAIN!r}"


def test_wrong_credentials_close_code_and_text(
    params: Callable[..., pika.URLParameters], url_with: Callable[..., str]
) -> None:
    """The same, seen from pika's asynchronous API: connection.close(403, text)."""
    closed: list[BaseException] = []
    p = params(url_with(password="nope"))
    conn = pika.SelectConnection(
        p,
        on_open_error_callback=lambda c, err: (closed.append(err), c.ioloop.stop()),
        on_open_callback=lambda c: c.ioloop.stop(),
    )
    timer = conn.ioloop.call_later(5, conn.ioloop.stop)
    conn.ioloop.start()
    conn.ioloop.remove_timeout(timer)
    assert len(closed) == 1
    err = closed[0]
    assert isinstance(err, pika.exceptions.ProbableAuthenticationError)
    inner = err.args[0]
    assert "(403)" in str(inner) and LOGIN_REFUSED_PLAIN in str(inner)


def test_unknown_vhost(connect: Callable[..., pika.BlockingConnection], url_with: Callable[..., str]) -> None:
    vhost = unique("nope")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        connect(url_with(vhost=vhost))
    assert info.value.args[0] == f"ConnectionClosedByBroker: (530) 'NOT_ALLOWED - vhost {vhost} not found'"


def test_unknown_vhost_raw(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    tune = client.login()
    client.send_method(0, pika.spec.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
    client.send_method(0, pika.spec.Connection.Open(virtual_host="nope"))
    close = client.expect_connection_close()
    assert tune.frame_max == 131072
    assert (close.reply_code, close.reply_text) == (530, "NOT_ALLOWED - vhost nope not found")
    assert (close.class_id, close.method_id) == (10, 40)


def test_amqplain_login(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    tune = client.login(mechanism="AMQPLAIN")
    client.tune_and_open(tune)
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    ok = client.expect(pika.spec.Queue.DeclareOk)
    assert ok.queue.startswith("amq.gen-")
    client.close_connection()


def test_amqplain_wrong_password(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    client.send_method(
        0,
        pika.spec.Connection.StartOk(
            client_properties={"capabilities": {"authentication_failure_close": True}},
            mechanism="AMQPLAIN",
            response=amqplain_response(client.user, "definitely-wrong"),  # type: ignore[arg-type]
        ),
    )
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (403, LOGIN_REFUSED_AMQPLAIN)


def test_failed_login_without_capability_just_closes(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    client.send_method(
        0,
        pika.spec.Connection.StartOk(
            client_properties={},
            mechanism="PLAIN",
            response=b"\x00guest\x00definitely-wrong",  # type: ignore[arg-type]
        ),
    )
    assert client.is_closed_by_broker(timeout=4.5)


def test_plain_login_with_capability_gets_close(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    client.send_method(
        0,
        pika.spec.Connection.StartOk(
            client_properties={"capabilities": {"authentication_failure_close": True}},
            mechanism="PLAIN",
            response=b"\x00guest\x00definitely-wrong",  # type: ignore[arg-type]
        ),
    )
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (403, LOGIN_REFUSED_PLAIN)


# -- protocol header ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"AMQP\x00\x00\x09\x02",
        b"AMQP\x00\x00\x09\x00",
        b"AMQP\x01\x01\x00\x0a",
        b"AMQP\x03\x01\x00\x00",
        b"xxxxxxxx",
    ],
)
def test_wrong_protocol_header(raw: Callable[..., RawAMQP], header: bytes) -> None:
    client = raw()
    client.send(header)
    assert client.wait_closed(timeout=3) == PROTOCOL_HEADER


# -- channels -----------------------------------------------------------------------------------


def test_many_channels_on_one_connection(connection: pika.BlockingConnection) -> None:
    channels = [connection.channel() for _ in range(60)]
    for ch in channels:
        ch.confirm_delivery()  # so that every publish is enqueued before the final basic.get
    numbers = {ch.channel_number for ch in channels}
    assert len(numbers) == 60
    q = channels[0].queue_declare("", exclusive=True).method.queue
    for i, ch in enumerate(channels):
        ch.basic_publish("", q, str(i).encode())
    assert sorted(int(b) for b in bodies(channels[-1], q)) == list(range(60))
    for ch in channels[::2]:
        ch.close()
    for ch in channels[1::2]:
        assert ch.is_open
        ch.queue_declare(q, passive=True)


def test_channel_max_limits_open_channels(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    tune = client.login()
    client.tune_and_open(tune, channel_max=3)
    for n in (1, 2, 3):
        client.open_channel(n)
    client.send_method(4, pika.spec.Channel.Open())
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (
        530,
        "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)",
    )


def test_channel_number_reuse_after_close(connection: pika.BlockingConnection) -> None:
    ch = connection.channel(channel_number=5)
    ch.close()
    ch = connection.channel(channel_number=5)
    assert ch.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")


# -- content framing ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 131064, 131065, 1024 * 1024, 5 * 1024 * 1024])
def test_bodies_arrive_intact(connection: pika.BlockingConnection, size: int) -> None:
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = (bytes(range(251)) * (size // 251 + 1))[:size]
    ch.basic_publish("", q, body)
    received: list[bytes] = []
    ch.basic_consume(q, lambda c, m, p, b: (received.append(b), c.basic_ack(m.delivery_tag)))
    deadline = time.monotonic() + 4
    while not received and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    assert len(received) == 1
    assert received[0] == body


def test_large_body_with_small_frame_max(connect: Callable[..., pika.BlockingConnection]) -> None:
    conn = connect(frame_max=4096)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = b"0123456789abcdef" * 20000  # 320 kB in ~80 frames each way
    ch.basic_publish("", q, body)
    assert bodies(ch, q) == [body]


def test_body_frames_respect_negotiated_frame_max(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    tune = client.login()
    client.tune_and_open(tune, frame_max=4096)
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    q = client.expect(pika.spec.Queue.DeclareOk).queue
    body = bytes(range(256)) * 40  # 10240 bytes -> 3 body frames of at most 4088 bytes
    client.send_method(1, pika.spec.Basic.Publish(exchange="", routing_key=q))
    client.send_content(1, body)
    client.send_method(1, pika.spec.Basic.Get(queue=q, no_ack=True))
    get_ok = client.expect(pika.spec.Basic.GetOk)
    assert get_ok.message_count == 0
    header = client.recv_frame()
    assert header.type == FRAME_HEADER
    class_id, weight, size = struct.unpack_from(">HHQ", header.payload)
    assert (class_id, weight, size) == (60, 0, len(body))
    chunks = []
    while sum(len(c) for c in chunks) < len(body):
        frame = client.recv_frame()
        assert frame.type == FRAME_BODY
        assert len(frame.payload) <= 4096 - 8
        chunks.append(frame.payload)
    assert b"".join(chunks) == body
    assert [len(c) for c in chunks] == [4088, 4088, 2064]


def test_empty_body_has_no_body_frame(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    q = client.expect(pika.spec.Queue.DeclareOk).queue
    client.send_method(1, pika.spec.Basic.Publish(exchange="", routing_key=q))
    client.send_content(1, b"")
    client.send_method(1, pika.spec.Basic.Get(queue=q, no_ack=True))
    client.expect(pika.spec.Basic.GetOk)
    header = client.recv_frame()
    assert header.type == FRAME_HEADER
    assert struct.unpack_from(">HHQ", header.payload) == (60, 0, 0)
    client.send_method(1, pika.spec.Queue.Declare(queue=q, passive=True))
    nxt = client.recv_frame()  # the very next frame is the declare-ok, no empty body frame
    assert nxt.type == 1
    assert isinstance(nxt.method(), pika.spec.Queue.DeclareOk)


async def test_large_body_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    ch = await aio_connection.channel()
    q = await ch.declare_queue("", exclusive=True)
    body = bytes(range(256)) * (5 * 4096)  # 5 MB
    await ch.default_exchange.publish(aio_pika.Message(body), routing_key=q.name)
    msg = await q.get(timeout=5, no_ack=True)
    assert msg is not None
    assert msg.body == body


# -- heartbeats ---------------------------------------------------------------------------------


def test_silent_client_is_dropped_after_missed_heartbeats(raw: Callable[..., RawAMQP]) -> None:
    client = raw(timeout=6)
    client.start()
    tune = client.login()
    client.tune_and_open(tune, heartbeat=1)
    started = time.monotonic()
    heartbeats = 0
    with pytest.raises(ConnectionClosedError):
        while True:
            frame = client.recv_frame(timeout=5.5 - (time.monotonic() - started))
            assert frame.type == FRAME_HEARTBEAT, frame
            assert frame.channel == 0
            heartbeats += 1
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed <= 4.5, elapsed
    assert heartbeats >= 1


def test_client_sending_heartbeats_stays_connected(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    tune = client.login()
    client.tune_and_open(tune, heartbeat=1)
    received = 0
    deadline = time.monotonic() + 3.2
    while time.monotonic() < deadline:
        client.send_heartbeat()
        try:
            frame = client.recv_frame(timeout=0.4)
        except TimeoutError:
            continue
        assert frame.type == FRAME_HEARTBEAT
        received += 1
    assert received >= 2  # the server heartbeats too (every half timeout on RabbitMQ)
    client.open_channel(1)
    client.close_connection()


def test_pika_heartbeats_keep_connection_alive(connect: Callable[..., pika.BlockingConnection]) -> None:
    conn = connect(heartbeat=1)
    assert conn._impl.params.heartbeat == 1
    conn.process_data_events(time_limit=2.5)
    assert conn.is_open
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)


# -- closing ------------------------------------------------------------------------------------


def test_client_close(connect: Callable[..., pika.BlockingConnection]) -> None:
    conn = connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    conn.close()
    assert conn.is_closed
    assert ch.is_closed
    # the exclusive queue went away with the connection
    other = connect()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        other.channel().queue_declare(q, passive=True)
    assert info.value.reply_code == 404


def test_client_close_raw(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.open_channel(2)
    client.send_method(0, pika.spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    channel, method = client.recv_method()
    assert channel == 0
    assert isinstance(method, pika.spec.Connection.CloseOk)


def test_client_closing_tcp_abruptly_does_not_hurt_others(
    raw: Callable[..., RawAMQP], connection: pika.BlockingConnection
) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST, no connection.close
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"still here")
    assert bodies(ch, q) == [b"still here"]


async def test_aio_pika_connect_and_close(amqp_url: str) -> None:
    conn = await aio_pika.connect(amqp_url, timeout=5)
    ch = await conn.channel()
    q = await ch.declare_queue("", exclusive=True)
    await ch.default_exchange.publish(aio_pika.Message(b"hi"), routing_key=q.name)
    msg = await q.get(timeout=5, no_ack=True)
    assert msg is not None and msg.body == b"hi"
    await conn.close()
    assert conn.is_closed


def _server_props_of(conn: Any) -> dict[str, Any]:
    props: dict[str, Any] = conn.transport.connection.server_properties
    return props


async def test_aio_pika_sees_capabilities(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    props = _server_props_of(aio_connection)
    caps = props["capabilities"]
    for cap in CAPABILITIES:
        assert caps[cap] is True, cap
