"""What can go wrong reading MQTT: a packet that breaks the spec, or one larger than allowed."""

from __future__ import annotations


class MalformedPacket(Exception):
    """The bytes are not a valid MQTT packet: the connection is closed (MQTT 5: reason 0x81)."""


class ProtocolError(MalformedPacket):
    """Well-formed bytes that break the protocol's rules (MQTT 5: reason 0x82)."""


class PacketTooLarge(Exception):
    """A packet over the configured maximum: MQTT 5 hears DISCONNECT 0x95, then the socket closes."""

    def __init__(self, size: int, limit: int, connect: bool) -> None:
        self.size = size
        self.limit = limit
        self.connect = connect
        setting = "max_packet_size_unauthenticated" if connect else "max_packet_size_authenticated"
        kind = "CONNECT packet" if connect else "MQTT packet"
        super().__init__(f"{kind} size ({size} bytes) exceeds mqtt_{setting} ({limit} bytes)")


class UnsupportedProtocolVersion(Exception):
    """CONNECT with a protocol level other than 3, 4 or 5: CONNACK 0x01 (0x84 in MQTT 5), then close."""

    def __init__(self, level: int) -> None:
        self.level = level
        super().__init__(f"unsupported MQTT protocol level {level}")
