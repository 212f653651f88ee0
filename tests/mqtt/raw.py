"""A raw MQTT socket for the tests that send what no well-behaved client would."""

from __future__ import annotations

import socket

from lapine.mqtt import packets as p
from lapine.mqtt.codec import PacketReader, decode_packet, encode


class RawClient:
    def __init__(self, port: int, level: int = p.MQTT_3_1_1, timeout: float = 5.0) -> None:
        self.level = level
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def connect(self, client_id: str = "raw", **fields: object) -> p.ConnAck:
        self.send(p.Connect(self.level, client_id, **fields))  # type: ignore[arg-type]
        answer = self.read()
        assert isinstance(answer, p.ConnAck)
        return answer

    def send(self, packet: p.Packet) -> None:
        self.sock.sendall(encode(packet, self.level))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> p.Packet | None:
        """The next packet from the broker, or None once it closed the socket."""
        while True:
            packet = self._cut()
            if packet is not None:
                return packet
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data

    def _cut(self) -> p.Packet | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        length, shift, index = 0, 0, 1
        while True:
            if index >= len(buf):
                return None
            byte = buf[index]
            length |= (byte & 0x7F) << shift
            index += 1
            shift += 7
            if not byte & 0x80:
                break
        if len(buf) < index + length:
            return None
        first, body = buf[0], buf[index : index + length]
        self.buffer = buf[index + length :]
        return decode_packet(first >> 4, first & 0x0F, body, self.level)

    def closed_by_broker(self) -> bool:
        """True when the broker closes the socket (after any packets it sent first)."""
        while True:
            try:
                if self.read() is None:
                    return True
            except (ConnectionResetError, TimeoutError):
                return False

    def close(self) -> None:
        self.sock.close()


__all__ = ["PacketReader", "RawClient"]
