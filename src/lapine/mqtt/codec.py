"""MQTT packets to and from bytes, sans-IO: ``PacketReader.feed(data)`` returns whole packets,
``encode(packet, level)`` returns a packet's bytes. 3.1, 3.1.1 and 5.0 alike; the protocol level
comes from the CONNECT packet, which must be the first.
"""

from __future__ import annotations

from lapine.mqtt import packets as p
from lapine.mqtt.errors import MalformedPacket, PacketTooLarge, ProtocolError, UnsupportedProtocolVersion
from lapine.mqtt.properties import (
    decode_binary,
    decode_properties,
    decode_string,
    encode_binary,
    encode_properties,
    encode_string,
    encode_varint,
)

# The largest Remaining Length a variable byte integer can say (256 MiB - 1).
MAX_REMAINING_LENGTH = 268_435_455
# Packets whose fixed-header flags are fixed by the spec: PUBREL, SUBSCRIBE, UNSUBSCRIBE say 0b0010.
_FLAGS_TWO = frozenset({p.PUBREL, p.SUBSCRIBE, p.UNSUBSCRIBE})


class PacketReader:
    """Cuts a byte stream into packets. Before CONNECT the size limit is ``max_connect_size``."""

    def __init__(self, max_connect_size: int = 65536, max_size: int = MAX_REMAINING_LENGTH) -> None:
        self.buffer = bytearray()
        self.level: int | None = None  # known once CONNECT is read
        self.max_connect_size = max_connect_size
        self.max_size = max_size

    def feed(self, data: bytes) -> list[p.Packet]:
        """Every whole packet in the bytes so far; raises MalformedPacket or PacketTooLarge."""
        self.buffer += data
        found: list[p.Packet] = []
        buf = self.buffer
        pos = 0
        while True:
            header = self._fixed_header(buf, pos)
            if header is None:
                break
            first, start, length = header
            end = start + length
            if end > len(buf):
                break
            found.append(self._decode(first, bytes(buf[start:end])))
            pos = end
        if pos:
            del buf[:pos]
        return found

    def _fixed_header(self, buf: bytearray, pos: int) -> tuple[int, int, int] | None:
        if pos >= len(buf):
            return None
        first = buf[pos]
        kind = first >> 4
        if self.level is None and kind != p.CONNECT:
            raise MalformedPacket(f"expected CONNECT, got packet type {kind}")
        length = 0
        index = pos + 1
        for shift in (0, 7, 14, 21):
            if index >= len(buf):
                return None
            byte = buf[index]
            index += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        else:
            raise MalformedPacket("malformed remaining length")
        connect = kind == p.CONNECT and self.level is None
        limit = self.max_connect_size if connect else self.max_size
        if length > limit:
            raise PacketTooLarge(length, limit, connect)
        return first, index, length

    def _decode(self, first: int, body: bytes) -> p.Packet:
        kind, flags = first >> 4, first & 0x0F
        if kind == p.CONNECT:
            if self.level is not None:
                raise ProtocolError("second CONNECT")
            if flags:
                raise MalformedPacket("CONNECT with reserved flags set")
            packet = decode_connect(body)
            self.level = packet.protocol_level
            return packet
        assert self.level is not None
        return decode_packet(kind, flags, body, self.level)


def decode_packet(kind: int, flags: int, body: bytes, level: int) -> p.Packet:
    """One packet other than CONNECT, from its type, flags and body, at a protocol level."""
    v5 = level == p.MQTT_5
    if kind == p.PUBLISH:
        return _decode_publish(flags, body, v5)
    if kind in _FLAGS_TWO:
        if flags != 0b0010:
            raise MalformedPacket(f"packet type {kind} with flags {flags:#06b}")
    elif flags:
        raise MalformedPacket(f"packet type {kind} with reserved flags set")
    if kind in (p.PUBACK, p.PUBREC, p.PUBREL, p.PUBCOMP):
        return _decode_ack(kind, body, v5)
    if kind == p.SUBSCRIBE:
        return _decode_subscribe(body, v5)
    if kind == p.UNSUBSCRIBE:
        return _decode_unsubscribe(body, v5)
    if kind in (p.PINGREQ, p.PINGRESP):
        if body:
            raise MalformedPacket("PING with a body")
        return p.PingReq() if kind == p.PINGREQ else p.PingResp()
    if kind == p.DISCONNECT:
        code, properties = _reason_and_properties(body, 0, v5)
        return p.Disconnect(code, properties)
    if kind == p.AUTH:
        if not v5:
            raise MalformedPacket("AUTH before MQTT 5")
        code, properties = _reason_and_properties(body, 0, v5)
        return p.Auth(code, properties)
    if kind == p.CONNACK:
        return _decode_connack(body, v5)
    if kind == p.SUBACK:
        packet_id, pos = _packet_id(body, 0)
        properties, pos = decode_properties(body, pos) if v5 else ({}, pos)
        return p.SubAck(packet_id, list(body[pos:]), properties)
    if kind == p.UNSUBACK:
        packet_id, pos = _packet_id(body, 0)
        properties, pos = decode_properties(body, pos) if v5 else ({}, pos)
        return p.UnsubAck(packet_id, list(body[pos:]), properties)
    raise MalformedPacket(f"reserved packet type {kind}")


def decode_connect(body: bytes) -> p.Connect:
    name, pos = decode_string(body, 0)
    if pos + 4 > len(body):
        raise MalformedPacket("truncated CONNECT")
    level, flags = body[pos], body[pos + 1]
    keepalive = (body[pos + 2] << 8) | body[pos + 3]
    pos += 4
    if level not in p.PROTOCOL_NAMES or p.PROTOCOL_NAMES[level] != name:
        if name not in ("MQTT", "MQIsdp"):
            raise MalformedPacket(f"unknown protocol name {name!r}")
        raise UnsupportedProtocolVersion(level)
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    v5 = level == p.MQTT_5
    properties, pos = decode_properties(body, pos) if v5 else ({}, pos)
    client_id, pos = decode_string(body, pos)
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")
        will_properties, pos = decode_properties(body, pos) if v5 else ({}, pos)
        topic, pos = decode_string(body, pos)
        payload, pos = decode_binary(body, pos)
        will = p.Will(topic, payload, will_qos, bool(flags & 0x20), will_properties)
    elif will_qos or flags & 0x20:
        raise MalformedPacket("will QoS or retain without a will")
    username = password = None
    if flags & 0x80:
        username, pos = decode_string(body, pos)
    if flags & 0x40:
        password, pos = decode_binary(body, pos)
    if pos != len(body):
        raise MalformedPacket("trailing bytes in CONNECT")
    return p.Connect(level, client_id, bool(flags & 0x02), keepalive, username, password, will, properties)


def _packet_id(body: bytes, pos: int) -> tuple[int, int]:
    if pos + 2 > len(body):
        raise MalformedPacket("truncated packet identifier")
    return (body[pos] << 8) | body[pos + 1], pos + 2


def _decode_publish(flags: int, body: bytes, v5: bool) -> p.Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    topic, pos = decode_string(body, 0)
    packet_id = None
    if qos:
        packet_id, pos = _packet_id(body, pos)
        if packet_id == 0:
            raise MalformedPacket("packet identifier 0")
    properties, pos = decode_properties(body, pos) if v5 else ({}, pos)
    dup = bool(flags & 0x08)
    if dup and not qos:
        raise MalformedPacket("DUP set on a QoS 0 PUBLISH")
    return p.Publish(topic, body[pos:], qos, bool(flags & 0x01), dup, packet_id, properties)


def _decode_ack(kind: int, body: bytes, v5: bool) -> p.PubAck:
    packet_id, pos = _packet_id(body, 0)
    if not v5:
        if pos != len(body):
            raise MalformedPacket("trailing bytes in acknowledgement")
        return p.PubAck(packet_id, kind=kind)
    code, properties = _reason_and_properties(body, pos, v5)
    return p.PubAck(packet_id, code, properties, kind)


def _reason_and_properties(body: bytes, pos: int, v5: bool) -> tuple[int, dict]:
    """MQTT 5's optional reason code and properties (absent: success, none)."""
    if pos == len(body):
        return p.SUCCESS, {}
    if not v5:
        raise MalformedPacket("unexpected bytes in packet")
    code = body[pos]
    pos += 1
    if pos == len(body):
        return code, {}
    properties, pos = decode_properties(body, pos)
    if pos != len(body):
        raise MalformedPacket("trailing bytes after properties")
    return code, properties


def _decode_subscribe(body: bytes, v5: bool) -> p.Subscribe:
    packet_id, pos = _packet_id(body, 0)
    properties, pos = decode_properties(body, pos) if v5 else ({}, pos)
    subscriptions = []
    while pos < len(body):
        topic_filter, pos = decode_string(body, pos)
        if pos >= len(body):
            raise MalformedPacket("subscription without options")
        options = body[pos]
        pos += 1
        qos = options & 0x03
        if qos == 3 or options & (0xC0 if v5 else 0xFC) or (options >> 4) & 0x03 == 3:
            raise MalformedPacket(f"invalid subscription options {options:#x}")
        subscriptions.append(
            p.Subscription(topic_filter, qos, bool(options & 0x04), bool(options & 0x08), (options >> 4) & 0x03)
        )
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE without a topic filter")
    return p.Subscribe(packet_id, subscriptions, properties)


def _decode_unsubscribe(body: bytes, v5: bool) -> p.Unsubscribe:
    packet_id, pos = _packet_id(body, 0)
    properties, pos = decode_properties(body, pos) if v5 else ({}, pos)
    filters = []
    while pos < len(body):
        topic_filter, pos = decode_string(body, pos)
        filters.append(topic_filter)
    if not filters:
        raise ProtocolError("UNSUBSCRIBE without a topic filter")
    return p.Unsubscribe(packet_id, filters, properties)


def _decode_connack(body: bytes, v5: bool) -> p.ConnAck:
    if len(body) < 2:
        raise MalformedPacket("truncated CONNACK")
    properties = decode_properties(body, 2)[0] if v5 else {}
    return p.ConnAck(bool(body[0] & 0x01), body[1], properties)


# --- encoding --------------------------------------------------------------------------------


def _frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


def encode(packet: p.Packet, level: int) -> bytes:
    """A packet's bytes at a protocol level (properties are sent to MQTT 5 only)."""
    v5 = level == p.MQTT_5
    if isinstance(packet, p.Publish):
        return encode_publish(packet, v5)
    if isinstance(packet, p.PubAck):
        body = packet.packet_id.to_bytes(2, "big")
        if v5 and (packet.reason_code or packet.properties):
            body += bytes([packet.reason_code])
            if packet.properties:
                body += encode_properties(packet.properties)
        return _frame((packet.kind << 4) | (0b0010 if packet.kind == p.PUBREL else 0), body)
    if isinstance(packet, p.ConnAck):
        body = bytes([int(packet.session_present), packet.code])
        if v5:
            body += encode_properties(packet.properties)
        return _frame(p.CONNACK << 4, body)
    if isinstance(packet, p.SubAck):
        body = packet.packet_id.to_bytes(2, "big") + (encode_properties(packet.properties) if v5 else b"")
        return _frame(p.SUBACK << 4, body + bytes(packet.reason_codes))
    if isinstance(packet, p.UnsubAck):
        body = packet.packet_id.to_bytes(2, "big")
        if v5:
            body += encode_properties(packet.properties) + bytes(packet.reason_codes)
        return _frame(p.UNSUBACK << 4, body)
    if isinstance(packet, p.PingResp):
        return b"\xd0\x00"
    if isinstance(packet, p.PingReq):
        return b"\xc0\x00"
    if isinstance(packet, p.Disconnect):
        body = b""
        if v5 and (packet.reason_code or packet.properties):
            body = bytes([packet.reason_code]) + (encode_properties(packet.properties) if packet.properties else b"")
        return _frame(p.DISCONNECT << 4, body)
    if isinstance(packet, p.Auth):
        return _frame(p.AUTH << 4, bytes([packet.reason_code]) + encode_properties(packet.properties))
    if isinstance(packet, p.Connect):
        return encode_connect(packet)
    if isinstance(packet, p.Subscribe):
        body = packet.packet_id.to_bytes(2, "big") + (encode_properties(packet.properties) if v5 else b"")
        for sub in packet.subscriptions:
            options = sub.qos | (sub.no_local << 2) | (sub.retain_as_published << 3) | (sub.retain_handling << 4)
            body += encode_string(sub.topic_filter) + bytes([options])
        return _frame((p.SUBSCRIBE << 4) | 0b0010, body)
    if isinstance(packet, p.Unsubscribe):
        body = packet.packet_id.to_bytes(2, "big") + (encode_properties(packet.properties) if v5 else b"")
        body += b"".join(encode_string(topic_filter) for topic_filter in packet.topic_filters)
        return _frame((p.UNSUBSCRIBE << 4) | 0b0010, body)
    raise TypeError(f"not an MQTT packet: {packet!r}")


def encode_publish(packet: p.Publish, v5: bool) -> bytes:
    first = (p.PUBLISH << 4) | (packet.dup << 3) | (packet.qos << 1) | int(packet.retain)
    body = encode_string(packet.topic)
    if packet.qos:
        assert packet.packet_id is not None
        body += packet.packet_id.to_bytes(2, "big")
    if v5:
        body += encode_properties(packet.properties)
    return _frame(first, body + packet.payload)


def encode_connect(packet: p.Connect) -> bytes:
    level = packet.protocol_level
    v5 = level == p.MQTT_5
    will = packet.will
    flags = (packet.clean_start << 1) | ((packet.username is not None) << 7) | ((packet.password is not None) << 6)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (will.retain << 5)
    body = encode_string(p.PROTOCOL_NAMES[level]) + bytes([level, flags]) + packet.keepalive.to_bytes(2, "big")
    if v5:
        body += encode_properties(packet.properties)
    body += encode_string(packet.client_id)
    if will is not None:
        if v5:
            body += encode_properties(will.properties)
        body += encode_string(will.topic) + encode_binary(will.payload)
    if packet.username is not None:
        body += encode_string(packet.username)
    if packet.password is not None:
        body += encode_binary(packet.password)
    return _frame(p.CONNECT << 4, body)
