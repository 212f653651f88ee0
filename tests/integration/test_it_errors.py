"""Error handling: channel errors stay on their channel; protocol violations close the connection.

Observed on RabbitMQ 3.10.8, and asserted here (reply code, text, class id, method id):

* Frame-level errors carry class/method 0/0 and Erlang-formatted detail, e.g.
  501 "FRAME_ERROR - type 9, all octets = <<"hello">>: unknown_frame",
  501 "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}",
  501 "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}" (the limit shown
  is frame_max - 8, although RabbitMQ actually lets payloads up to frame_max through: it allows
  clients to be "off by 8"; not asserted). A heartbeat with a payload is "type 8, all octets =
  <<"xx">>: unknown_frame"; a heartbeat on channel 1 is 505 "UNEXPECTED_FRAME - type 8, all octets
  = <<>>". (Long payloads are pretty-printed by Erlang with line breaks inside the text.)
* A truncated method is 501 (not 502) "FRAME_ERROR - cannot decode <<0>>" with the method's ids.
* Content out of sequence is 505 UNEXPECTED_FRAME with "expected method frame, got non method frame
  instead", "expected content header for class 60, got non content header frame instead", "...got
  one for class 50 instead" or "expected content body, got non content body frame instead".
* A method on a closed or never-opened channel is 504 "CHANNEL_ERROR - expected 'channel.open'",
  a second channel.open is 504 "CHANNEL_ERROR - second 'channel.open' seen", a non-connection
  method on channel 0 is 504 "CHANNEL_ERROR - unexpected method in connection state running", a
  connection method on channel 1 or an unsolicited channel.close-ok is 503 "COMMAND_INVALID -
  unimplemented method".
* ``channel.flow(active=false)`` is 540 "NOT_IMPLEMENTED - active=false" (a connection error);
  ``channel.flow(active=true)`` gets flow-ok, and the legacy ``access.request`` gets request-ok.
* After a channel error, methods the client sends before its channel.close-ok are ignored; the
  channel number can then be opened again.
* An unknown method id makes RabbitMQ drop the TCP connection without connection.close (its
  channel process crashes); the test only requires that the connection ends.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import aio_pika
import aiormq.exceptions
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.helpers.amqp import bodies, expect_channel_error, reply_not_found_queue, unique, wait_until
from tests.helpers.raw_amqp import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    ConnectionClosedError,
    RawAMQP,
)

pytestmark = pytest.mark.timeout(10)


def _still_working(connection: pika.BlockingConnection) -> None:
    """Another client on the same broker is unaffected."""
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"alive")
    assert bodies(ch, q) == [b"alive"]


def _header(class_id: int = 60, size: int = 3) -> bytes:
    return struct.pack(">HHQ", class_id, 0, size) + b"\x00\x00"


def _publish_method(client: RawAMQP, channel: int = 1) -> None:
    client.send_method(channel, pika.spec.Basic.Publish(exchange="amq.direct", routing_key="k"))


# -- channel errors stay on their channel ---------------------------------------------------------


def test_channel_error_closes_only_that_channel(connection: pika.BlockingConnection) -> None:
    ch1, ch2, ch3 = connection.channel(), connection.channel(), connection.channel()
    q = ch1.queue_declare("", exclusive=True).method.queue
    missing = unique("missing")
    with expect_channel_error(404, reply_not_found_queue(missing)):
        ch2.queue_declare(missing, passive=True)
    assert ch2.is_closed
    assert ch1.is_open and ch3.is_open and connection.is_open
    ch3.confirm_delivery()
    ch3.basic_publish("", q, b"3")
    ch1.basic_publish("", q, b"1")
    assert sorted(bodies(ch1, q)) == [b"1", b"3"]
    reopened = connection.channel()
    reopened.queue_declare(q, passive=True)


def test_consumers_on_other_channels_survive_channel_error(connection: pika.BlockingConnection) -> None:
    consumer = connection.channel()
    q = consumer.queue_declare("", exclusive=True).method.queue
    got: list[bytes] = []
    consumer.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    bad = connection.channel()
    with expect_channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 99"):
        bad.basic_ack(99)
        bad.queue_declare(q, passive=True)
    publisher = connection.channel()
    publisher.basic_publish("", q, b"after error")
    assert wait_until(connection, lambda: got == [b"after error"])


def test_channel_error_raw_then_reopen(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    missing = unique("missing")
    client.send_method(1, pika.spec.Queue.Declare(queue=missing, passive=True))
    channel, close = client.recv_method()
    assert channel == 1
    assert isinstance(close, pika.spec.Channel.Close)
    assert (close.reply_code, close.reply_text) == (404, reply_not_found_queue(missing))
    assert (close.class_id, close.method_id) == (50, 10)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))  # ignored: not closed-ok yet
    client.send_method(1, pika.spec.Channel.CloseOk())
    client.open_channel(1)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    channel, ok = client.recv_method()
    assert (channel, type(ok)) == (1, pika.spec.Queue.DeclareOk)
    client.close_connection()


async def test_channel_error_aio_pika(aio_connection: aio_pika.abc.AbstractConnection) -> None:
    good = await aio_connection.channel()
    bad = await aio_connection.channel()
    missing = unique("missing")
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
        await bad.declare_queue(missing, passive=True)
    assert info.value.args == (reply_not_found_queue(missing),)
    assert bad.is_closed
    assert not good.is_closed
    q = await good.declare_queue(exclusive=True)
    await good.default_exchange.publish(aio_pika.Message(b"ok"), routing_key=q.name)
    msg = await q.get(no_ack=True, timeout=5)
    assert msg is not None and msg.body == b"ok"


# -- channel state errors (connection level) ------------------------------------------------------


def _expect_close(client: RawAMQP, code: int, text: str, ids: tuple[int, int]) -> None:
    close = client.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (code, text)
    assert (close.class_id, close.method_id) == ids


def test_method_on_closed_channel(raw: Callable[..., RawAMQP], connection: pika.BlockingConnection) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
    client.expect(pika.spec.Channel.CloseOk)
    client.send_method(1, pika.spec.Queue.Declare(queue="", exclusive=True))
    _expect_close(client, 504, "CHANNEL_ERROR - expected 'channel.open'", (50, 10))
    _still_working(connection)


def test_method_on_never_opened_channel(raw: Callable[..., RawAMQP], connection: pika.BlockingConnection) -> None:
    client = raw()
    client.handshake()
    client.send_method(77, pika.spec.Queue.Declare(queue="", exclusive=True))
    _expect_close(client, 504, "CHANNEL_ERROR - expected 'channel.open'", (50, 10))
    _still_working(connection)


def test_method_on_closed_channel_pika(connection: pika.BlockingConnection) -> None:
    """The same through pika: a method frame sent on a channel the broker has closed."""
    ch = connection.channel()
    number = ch.channel_number
    ch.close()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        connection._impl._send_method(number, pika.spec.Queue.Declare(queue="", exclusive=True))
        connection.channel()
    assert (info.value.reply_code, info.value.reply_text) == (504, "CHANNEL_ERROR - expected 'channel.open'")


def test_second_channel_open(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Channel.Open())
    _expect_close(client, 504, "CHANNEL_ERROR - second 'channel.open' seen", (20, 10))


@pytest.mark.parametrize(
    ("method", "ids"),
    [
        (pika.spec.Queue.Declare(queue="", exclusive=True), (50, 10)),
        (pika.spec.Channel.Open(), (20, 10)),
        (pika.spec.Basic.Publish(exchange="amq.direct", routing_key="k"), (60, 40)),
    ],
)
def test_channel_method_on_channel_zero(raw: Callable[..., RawAMQP], method: Any, ids: tuple[int, int]) -> None:
    client = raw()
    client.handshake()
    client.send_method(0, method)
    _expect_close(client, 504, "CHANNEL_ERROR - unexpected method in connection state running", ids)


def test_connection_method_on_channel(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Connection.Open(virtual_host="/"))
    _expect_close(client, 503, "COMMAND_INVALID - unimplemented method", (10, 40))


def test_unsolicited_channel_close_ok(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Channel.CloseOk())
    _expect_close(client, 503, "COMMAND_INVALID - unimplemented method", (20, 41))


def test_channel_flow(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Channel.Flow(active=True))
    ok = client.expect(pika.spec.Channel.FlowOk)
    assert ok.active is True
    client.send_method(1, pika.spec.Channel.Flow(active=False))
    _expect_close(client, 540, "NOT_IMPLEMENTED - active=false", (20, 20))


def test_access_request_is_accepted(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_method(1, pika.spec.Access.Request(realm="/data"))
    ok = client.expect(pika.spec.Access.RequestOk)
    assert ok.ticket == 1
    client.close_connection()


# -- malformed frames -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_type", "channel", "payload", "text"),
    [
        (9, 0, b"hello", 'FRAME_ERROR - type 9, all octets = <<"hello">>: unknown_frame'),
        (4, 1, b"\x00\x01\xff", "FRAME_ERROR - type 4, all octets = <<0,1,255>>: unknown_frame"),
        (FRAME_METHOD, 1, b"\x00\x3c", "FRAME_ERROR - type 1, all octets = <<0,60>>: unknown_frame"),
        (FRAME_HEARTBEAT, 0, b"xx", 'FRAME_ERROR - type 8, all octets = <<"xx">>: unknown_frame'),
    ],
)
def test_garbage_frame(
    raw: Callable[..., RawAMQP],
    connection: pika.BlockingConnection,
    frame_type: int,
    channel: int,
    payload: bytes,
    text: str,
) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_frame(frame_type, channel, payload)
    _expect_close(client, 501, text, (0, 0))
    _still_working(connection)


def test_bad_frame_end(raw: Callable[..., RawAMQP], connection: pika.BlockingConnection) -> None:
    client = raw()
    client.handshake()
    client.send_frame(FRAME_METHOD, 1, struct.pack(">I", pika.spec.Channel.Open.INDEX) + b"\x00", frame_end=0x00)
    _expect_close(
        client, 501, "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}", (0, 0)
    )
    _still_working(connection)


def test_bad_frame_end_long_payload(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_frame(FRAME_METHOD, 1, struct.pack(">I", pika.spec.Basic.Qos.INDEX) + b"\x00" * 7, frame_end=0xCF)
    close = client.expect_connection_close()
    assert close.reply_code == 501
    assert close.reply_text.startswith("FRAME_ERROR - type 1, all octets = <<0,60,0,10,0,0,0,0,0,0,0>>:")
    assert "invalid_frame_end_marker" in close.reply_text


def test_oversized_frame(raw: Callable[..., RawAMQP], connection: pika.BlockingConnection) -> None:
    client = raw()
    client.handshake()
    client.send(struct.pack(">BHI", FRAME_METHOD, 1, 200000))  # only the header: judged on the size
    _expect_close(client, 501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}", (0, 0))
    _still_working(connection)


def test_oversized_body_frame_for_negotiated_frame_max(raw: Callable[..., RawAMQP]) -> None:
    client = raw()
    client.start()
    tune = client.login()
    client.tune_and_open(tune, frame_max=4096)
    client.open_channel(1)
    _publish_method(client)
    client.send_frame(FRAME_HEADER, 1, _header(size=5000))
    client.send_frame(FRAME_BODY, 1, b"x" * 5000)
    _expect_close(client, 501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}", (0, 0))


@pytest.mark.parametrize(
    ("payload", "text", "ids"),
    [
        (struct.pack(">HH", 50, 10) + b"\x00", "FRAME_ERROR - cannot decode <<0>>", (50, 10)),
        (struct.pack(">HH", 60, 10) + b"\x00\x00", "FRAME_ERROR - cannot decode <<0,0>>", (60, 10)),
    ],
)
def test_truncated_method(raw: Callable[..., RawAMQP], payload: bytes, text: str, ids: tuple[int, int]) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_frame(FRAME_METHOD, 1, payload)
    _expect_close(client, 501, text, ids)


NO_METHOD = "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
NO_HEADER = "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
NO_BODY = "UNEXPECTED_FRAME - expected content body, got non content body frame instead"


@pytest.mark.parametrize(
    ("scenario", "text", "ids"),
    [
        ("header_without_method", NO_METHOD, (0, 0)),
        ("body_without_method", NO_METHOD, (0, 0)),
        ("header_on_unopened_channel", NO_METHOD, (0, 0)),
        ("method_instead_of_header", NO_HEADER, (60, 40)),
        ("body_instead_of_header", NO_HEADER, (60, 40)),
        (
            "header_of_wrong_class",
            "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
            (60, 40),
        ),
        ("method_instead_of_body", NO_BODY, (60, 40)),
        ("header_instead_of_body", NO_BODY, (60, 40)),
        ("heartbeat_on_channel", "UNEXPECTED_FRAME - type 8, all octets = <<>>", (0, 0)),
        ("header_on_channel_zero", "UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,3,0,0>>", (0, 0)),
    ],
)
def test_unexpected_frame(
    raw: Callable[..., RawAMQP],
    connection: pika.BlockingConnection,
    scenario: str,
    text: str,
    ids: tuple[int, int],
) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    if scenario == "header_without_method":
        client.send_frame(FRAME_HEADER, 1, _header())
    elif scenario == "body_without_method":
        client.send_frame(FRAME_BODY, 1, b"abc")
    elif scenario == "header_on_unopened_channel":
        client.send_frame(FRAME_HEADER, 5, _header())
    elif scenario == "method_instead_of_header":
        _publish_method(client)
        client.send_method(1, pika.spec.Basic.Qos(prefetch_count=1))
    elif scenario == "body_instead_of_header":
        _publish_method(client)
        client.send_frame(FRAME_BODY, 1, b"abc")
    elif scenario == "header_of_wrong_class":
        _publish_method(client)
        client.send_frame(FRAME_HEADER, 1, _header(class_id=50))
    elif scenario == "method_instead_of_body":
        _publish_method(client)
        client.send_frame(FRAME_HEADER, 1, _header())
        client.send_method(1, pika.spec.Basic.Qos(prefetch_count=1))
    elif scenario == "header_instead_of_body":
        _publish_method(client)
        client.send_frame(FRAME_HEADER, 1, _header())
        client.send_frame(FRAME_HEADER, 1, _header())
    elif scenario == "heartbeat_on_channel":
        client.send_frame(FRAME_HEARTBEAT, 1, b"")
    elif scenario == "header_on_channel_zero":
        client.send_frame(FRAME_HEADER, 0, _header())
    _expect_close(client, 505, text, ids)
    _still_working(connection)


def test_unknown_method_ends_the_connection(raw: Callable[..., RawAMQP], connection: pika.BlockingConnection) -> None:
    client = raw()
    client.handshake()
    client.open_channel(1)
    client.send_frame(FRAME_METHOD, 1, struct.pack(">HH", 60, 999))
    try:
        close = client.expect_connection_close()
    except ConnectionClosedError:
        pass  # RabbitMQ drops the socket without a connection.close
    else:
        assert close.reply_code in (503, 540)
        assert client.is_closed_by_broker(timeout=3)
    _still_working(connection)


def test_garbage_after_protocol_header(raw: Callable[..., RawAMQP], connection: pika.BlockingConnection) -> None:
    client = raw()
    client.start()
    client.send(b"\xde\xad\xbe\xef" * 4)
    assert client.is_closed_by_broker(timeout=4.5)
    _still_working(connection)
