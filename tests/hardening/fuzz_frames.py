"""Bad input for the broker-level fuzz test: hypothesis strategies and hand-made attacks.

An :class:`Attack` is what one misbehaving client does: how far it gets into the handshake
(``prelude``), the bytes it then sends, and how they are cut into writes. The bytes are built
from pieces: random bytes, frames with random or lying headers, real methods (encoded by pika,
so that they are what real clients send) truncated, bit-flipped or padded, content frames out of
order, tables with unknown field types or lying sizes, and methods on channels that are closed
or were never opened.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from decimal import Decimal

import pika.amqp_object
import pika.spec as S
from hypothesis import strategies as st

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE

# How far the client gets before it misbehaves.
RAW = "raw"  # nothing: its bytes are the first thing the broker reads
HEADER = "header"  # protocol header sent, connection.start received
OPEN = "open"  # logged in, connection and channel 1 open


@dataclass
class Attack:
    name: str
    prelude: str
    data: bytes
    # Sizes of the writes the data is cut into (the rest goes in one last write).
    chunks: list[int] = field(default_factory=list)

    def writes(self) -> list[bytes]:
        pieces, pos = [], 0
        for size in self.chunks:
            if pos >= len(self.data):
                break
            pieces.append(self.data[pos : pos + size])
            pos += size
        if pos < len(self.data):
            pieces.append(self.data[pos:])
        return pieces


def frame(frame_type: int, channel: int, payload: bytes, end: int = FRAME_END, size: int | None = None) -> bytes:
    declared = len(payload) if size is None else size
    return struct.pack(">BHI", frame_type, channel, declared) + payload + bytes([end])


def method_payload(method: pika.amqp_object.Method) -> bytes:
    return struct.pack(">I", method.INDEX) + b"".join(method.encode())


def method_frame(channel: int, method: pika.amqp_object.Method) -> bytes:
    return frame(1, channel, method_payload(method))


def content_header(body_size: int, properties: S.BasicProperties | None = None, class_id: int = 60) -> bytes:
    props = b"".join((properties or S.BasicProperties()).encode())
    return struct.pack(">HHQ", class_id, 0, body_size) + props


def nested_table(depth: int) -> bytes:
    inner = struct.pack(">I", 0)
    for _ in range(depth):
        entry = b"\x01aF" + inner
        inner = struct.pack(">I", len(entry)) + entry
    return inner


def publish(channel: int, body: bytes, properties: S.BasicProperties | None = None, key: str = "fuzz-q") -> bytes:
    return (
        method_frame(channel, S.Basic.Publish(exchange="", routing_key=key))
        + frame(2, channel, content_header(len(body), properties))
        + frame(3, channel, body)
    )


# Real methods, the raw material of mutations. Names are kept apart from the good clients' queue.
BASE_METHODS: list[pika.amqp_object.Method] = [
    S.Queue.Declare(queue="fuzz-q", auto_delete=True, arguments={"x-message-ttl": 1000, "x-max-length": 5}),
    S.Queue.Declare(queue="", exclusive=True, arguments={"x-dead-letter-exchange": "fuzz-dlx", "x-max-priority": 5}),
    S.Exchange.Declare(exchange="fuzz-x", type="topic", auto_delete=True, arguments={"alternate-exchange": "a"}),
    S.Exchange.Declare(exchange="fuzz-h", type="headers", auto_delete=True),
    S.Queue.Bind(queue="fuzz-q", exchange="amq.headers", routing_key="", arguments={"x-match": "any", "k": 1}),
    S.Queue.Bind(queue="fuzz-q", exchange="amq.topic", routing_key="a.*.#"),
    S.Exchange.Bind(destination="fuzz-x", source="amq.fanout", routing_key="r"),
    S.Queue.Unbind(queue="fuzz-q", exchange="amq.topic", routing_key="a.*.#"),
    S.Queue.Purge(queue="fuzz-q"),
    S.Queue.Delete(queue="fuzz-q", if_unused=True),
    S.Basic.Publish(exchange="amq.headers", routing_key="k", mandatory=True),
    S.Basic.Consume(queue="fuzz-q", consumer_tag="c1", arguments={"x-priority": 3}),
    S.Basic.Cancel(consumer_tag="c1"),
    S.Basic.Get(queue="fuzz-q"),
    S.Basic.Qos(prefetch_count=7, global_qos=True),
    S.Basic.Ack(delivery_tag=1, multiple=True),
    S.Basic.Nack(delivery_tag=3, requeue=True),
    S.Basic.Reject(delivery_tag=2),
    S.Basic.Recover(requeue=True),
    S.Confirm.Select(),
    S.Tx.Select(),
    S.Tx.Commit(),
    S.Tx.Rollback(),
    S.Channel.Flow(active=True),
    S.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
    S.Channel.Open(),
    S.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
    S.Connection.Open(virtual_host="/"),
    S.Connection.TuneOk(channel_max=10, frame_max=4096, heartbeat=1),
]

RICH_PROPERTIES = S.BasicProperties(
    content_type="text/plain",
    headers={
        "x-death": [{"count": 1, "queue": "q"}],
        "n": Decimal("1.5"),
        "t": True,
        "deep": {"a": {"b": [1, 2, {"c": None}]}},
    },
    delivery_mode=2,
    priority=9,
    expiration="1000",
    message_id="m",
    user_id="guest",
)


# --- hypothesis strategies ------------------------------------------------------------------------

channels = st.sampled_from([0, 1, 1, 1, 2, 7, 65535])
frame_types = st.sampled_from([1, 1, 2, 3, 8, 0, 4, 9, 255])


@st.composite
def random_frame(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=64))
    size = draw(st.sampled_from([None, None, None, 0, len(payload) + 1, max(0, len(payload) - 1), 0xFFFFFFFF]))
    end = draw(st.sampled_from([FRAME_END, FRAME_END, FRAME_END, 0x00, 0xCF]))
    return frame(draw(frame_types), draw(channels), payload, end=end, size=size)


@st.composite
def mutated_method(draw: st.DrawFn) -> bytes:
    payload = bytearray(method_payload(draw(st.sampled_from(BASE_METHODS))))
    operation = draw(st.sampled_from(["truncate", "flip", "pad", "ids", "intact"]))
    if operation == "truncate":
        payload = payload[: draw(st.integers(0, len(payload)))]
    elif operation == "flip":
        for _ in range(draw(st.integers(1, 4))):
            index = draw(st.integers(0, len(payload) - 1))
            payload[index] ^= 1 << draw(st.integers(0, 7))
    elif operation == "pad":
        payload += draw(st.binary(min_size=1, max_size=16))
    elif operation == "ids":
        payload[:4] = struct.pack(">HH", draw(st.integers(0, 120)), draw(st.integers(0, 120)))
    return frame(1, draw(channels), bytes(payload))


@st.composite
def bad_table_declare(draw: st.DrawFn) -> bytes:
    """queue.declare whose arguments table has random field types, values and sizes."""
    entries = b""
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.binary(min_size=0, max_size=8))
        entries += bytes([len(key)]) + key + draw(st.binary(min_size=1, max_size=12))
    size = draw(st.sampled_from([len(entries), len(entries) + 5, max(0, len(entries) - 3), 0xFFFFFFFF]))
    payload = struct.pack(">HHH", 50, 10, 0) + b"\x06fuzz-t" + bytes([0b01000]) + struct.pack(">I", size) + entries
    return frame(1, draw(channels), payload)


@st.composite
def content_out_of_order(draw: st.DrawFn) -> bytes:
    channel = draw(st.sampled_from([1, 1, 2]))
    body = draw(st.binary(max_size=40))
    pieces = {
        "publish": method_frame(channel, S.Basic.Publish(exchange="", routing_key="fuzz-q")),
        "header": frame(2, channel, content_header(draw(st.sampled_from([len(body), len(body) + 3, 0, 1 << 62])))),
        "wrong class header": frame(2, channel, content_header(len(body), class_id=50)),
        "rich header": frame(2, channel, content_header(len(body), RICH_PROPERTIES)),
        "garbled header": frame(2, channel, draw(st.binary(max_size=30))),
        "body": frame(3, channel, body),
    }
    order = draw(st.lists(st.sampled_from(sorted(pieces)), min_size=1, max_size=5))
    return b"".join(pieces[name] for name in order)


@st.composite
def closed_channel_traffic(draw: st.DrawFn) -> bytes:
    channel = draw(st.sampled_from([1, 3]))
    after = draw(st.sampled_from(BASE_METHODS))
    return (
        method_frame(channel, S.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
        + method_frame(channel, after)
        + frame(3, channel, b"late body")
    )


pieces = st.one_of(
    st.binary(min_size=1, max_size=48),
    random_frame(),
    mutated_method(),
    mutated_method(),
    bad_table_declare(),
    content_out_of_order(),
    closed_channel_traffic(),
    st.builds(lambda body: publish(1, body), st.binary(max_size=100)),
)


@st.composite
def attacks(draw: st.DrawFn) -> Attack:
    prelude = draw(st.sampled_from([OPEN, OPEN, OPEN, HEADER, RAW]))
    data = b"".join(draw(st.lists(pieces, min_size=1, max_size=6)))
    if prelude == RAW:
        # Sometimes a protocol header first, sometimes a wrong one: the broker reads it either way.
        head = draw(st.sampled_from([b"", PROTOCOL_HEADER, b"AMQP\x01\x01\x00\x0a", b"GET / HTTP/1.1\r\n\r\n"]))
        data = head + data
    chunks = draw(st.lists(st.integers(1, 64), max_size=6))
    return Attack("hypothesis", prelude, data, chunks)


# --- hand-made attacks ----------------------------------------------------------------------------


def hand_made() -> list[Attack]:
    ok_publish = S.Basic.Publish(exchange="", routing_key="fuzz-q")
    cases = [
        Attack("bad frame end", OPEN, frame(1, 1, method_payload(S.Basic.Qos(prefetch_count=1)), end=0)),
        Attack("size larger than payload", OPEN, frame(1, 1, b"\x00\x3c\x00\x0a", size=4000) + b"\x00" * 10),
        Attack("size smaller than payload", OPEN, frame(1, 1, method_payload(S.Basic.Qos()), size=3)),
        Attack("oversized frame header", OPEN, struct.pack(">BHI", 1, 1, 10_000_000)),
        Attack("oversized frame, all of it", OPEN, frame(3, 1, b"\x00" * 200_000)),
        Attack(
            "truncated table", OPEN, frame(1, 1, struct.pack(">HHH", 50, 10, 0) + b"\x01q\x00" + b"\x00\x00\x00\x40F")
        ),
        Attack(
            "unknown field type",
            OPEN,
            frame(1, 1, struct.pack(">HHH", 50, 10, 0) + b"\x01q\x08" + struct.pack(">I", 4) + b"\x01kZ!"),
        ),
        Attack("unknown class", OPEN, frame(1, 1, struct.pack(">HH", 99, 99) + b"\x00" * 8)),
        Attack("unknown method", OPEN, frame(1, 1, struct.pack(">HH", 60, 999))),
        Attack("empty method frame", OPEN, frame(1, 1, b"")),
        Attack("header before publish", OPEN, frame(2, 1, content_header(3))),
        Attack("body before header", OPEN, method_frame(1, ok_publish) + frame(3, 1, b"abc")),
        Attack(
            "method instead of body",
            OPEN,
            method_frame(1, ok_publish) + frame(2, 1, content_header(3)) + method_frame(1, S.Basic.Qos()),
        ),
        Attack(
            "body larger than declared",
            OPEN,
            method_frame(1, ok_publish) + frame(2, 1, content_header(2)) + frame(3, 1, b"abcdef"),
        ),
        Attack(
            "content header of class 50",
            OPEN,
            method_frame(1, ok_publish) + frame(2, 1, content_header(3, class_id=50)),
        ),
        Attack("enormous body size", OPEN, method_frame(1, ok_publish) + frame(2, 1, content_header(1 << 63))),
        Attack(
            "garbled properties",
            OPEN,
            method_frame(1, ok_publish)
            + frame(2, 1, struct.pack(">HHQ", 60, 0, 1) + b"\xff\xff\x00")
            + frame(3, 1, b"x"),
        ),
        Attack(
            "deep headers to a headers exchange",
            OPEN,
            method_frame(1, S.Basic.Publish(exchange="amq.headers", routing_key=""))
            + frame(2, 1, struct.pack(">HHQH", 60, 0, 1, 0x2000) + nested_table(3000))
            + frame(3, 1, b"x"),
        ),
        Attack(
            "deep declare arguments",
            OPEN,
            frame(1, 1, struct.pack(">HHH", 50, 10, 0) + b"\x01q\x08" + nested_table(3000)),
        ),
        Attack(
            "method on a closed channel",
            OPEN,
            method_frame(1, S.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0))
            + method_frame(1, S.Basic.Qos()),
        ),
        Attack("method on a channel never opened", OPEN, method_frame(5, S.Basic.Qos())),
        Attack("content on a channel never opened", OPEN, frame(2, 5, content_header(1)) + frame(3, 5, b"x")),
        Attack("second channel.open", OPEN, method_frame(1, S.Channel.Open())),
        Attack("channel method on channel 0", OPEN, method_frame(0, S.Basic.Qos())),
        Attack(
            "connection method on channel 1",
            OPEN,
            method_frame(1, S.Connection.Close(reply_code=200, reply_text="", class_id=0, method_id=0)),
        ),
        Attack("heartbeat on channel 1", OPEN, frame(8, 1, b"")),
        Attack("heartbeat with payload", OPEN, frame(8, 0, b"xx")),
        Attack("unknown frame type", OPEN, frame(9, 0, b"hello")),
        Attack("channel.flow off", OPEN, method_frame(1, S.Channel.Flow(active=False))),
        Attack(
            "immediate publish", OPEN, method_frame(1, S.Basic.Publish(exchange="", routing_key="q", immediate=True))
        ),
        Attack("second connection.open", OPEN, method_frame(0, S.Connection.Open(virtual_host="/"))),
        Attack("many channels", OPEN, b"".join(method_frame(n, S.Channel.Open()) for n in range(2, 2100))),
        Attack(
            "byte-by-byte bad frame", OPEN, frame(1, 1, b"\x00\x3c\x00\x0a" + b"\x00" * 7, end=0x41), chunks=[1] * 40
        ),
        Attack("wrong protocol header", RAW, b"AMQP\x01\x01\x00\x0a"),
        Attack("HTTP request", RAW, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Attack("TLS client hello", RAW, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40),
        Attack("garbage before the header", RAW, b"\x00\xff" * 40),
        Attack("frames before the header", RAW, frame(1, 0, method_payload(S.Connection.Open(virtual_host="/")))),
        Attack(
            "tune-ok before start-ok",
            HEADER,
            method_frame(0, S.Connection.TuneOk(channel_max=0, frame_max=131072, heartbeat=0)),
        ),
        Attack(
            "start-ok with a garbled table",
            HEADER,
            frame(1, 0, struct.pack(">HH", 10, 11) + b"\x00\x00\x00\x20\x05PLAIN"),
        ),
        Attack(
            "start-ok with bad credentials shape",
            HEADER,
            method_frame(0, S.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="no-nul-bytes")),
        ),
        Attack(
            "start-ok, unknown mechanism",
            HEADER,
            method_frame(0, S.Connection.StartOk(client_properties={}, mechanism="GSSAPI", response="")),
        ),
        Attack("open before login", HEADER, method_frame(0, S.Connection.Open(virtual_host="/"))),
        Attack("content before login", HEADER, frame(2, 1, content_header(0))),
    ]
    return cases
