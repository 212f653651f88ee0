"""A published message as the broker holds it: routing info, the raw content header, the body.

The content header is kept as the bytes it arrived in and is sent on unchanged to every consumer;
properties are decoded only when a feature needs one (headers exchange, user-id check, ...).
"""

from __future__ import annotations

from lapine.amqp.spec import BasicProperties


class Message:
    __slots__ = (
        "_exchange_bytes",
        "_persistent",
        "_properties",
        "_routing_key_bytes",
        "bcc",
        "body",
        "cc",
        "durably_written",
        "exchange",
        "header_payload",
        "routing_key",
        "ttl",
    )

    def __init__(self, exchange: str, routing_key: str, header_payload: bytes, body: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        # Full content-header payload: class id, weight, body size, property flags and values.
        self.header_payload = header_payload
        self.body = body
        self._properties: BasicProperties | None = None
        # Encoded once for all deliveries (a fanout delivers the same message many times).
        self._exchange_bytes: bytes | None = None
        self._routing_key_bytes: bytes | None = None
        # delivery_mode lives in the properties; flags bit 12 (0x1000) says whether it is present.
        self._persistent: bool | None = None
        # The expiration property in milliseconds, set by the channel when the property is there.
        self.ttl: int | None = None
        # CC routing keys from the headers (sender-selected distribution); None when there are none.
        self.cc: list[str] | None = None
        # BCC keys route like CC but are stripped from the headers before anyone sees them.
        self.bcc: list[str] | None = None
        # Handed to the store (persistent for a durable queue, or paged out past a queue's window):
        # a publisher confirm must wait for the store.
        self.durably_written = False

    @property
    def persistent(self) -> bool:
        """delivery_mode 2; read from the raw header only when a durable queue needs to know."""
        if self._persistent is None:
            self._persistent = _delivery_mode(self.header_payload) == 2
        return self._persistent

    @property
    def properties(self) -> BasicProperties:
        if self._properties is None:
            self._properties = BasicProperties.decode(self.header_payload, 12)
        return self._properties

    @property
    def may_name_recipients(self) -> bool:
        """Cheap pre-check for CC/BCC headers: the raw bytes must hold one of the key names."""
        header = self.header_payload
        if len(header) <= 12 or not header[12] & _HEADERS_FLAG_HIGH:
            return False
        return b"\x02CC" in header or b"\x03BCC" in header

    @property
    def has_expiration(self) -> bool:
        return len(self.header_payload) > 12 and bool(self.header_payload[12] & _EXPIRATION_FLAG_HIGH)

    @property
    def exchange_bytes(self) -> bytes:
        if self._exchange_bytes is None:
            self._exchange_bytes = self.exchange.encode("utf-8", "surrogateescape")
        return self._exchange_bytes

    @property
    def routing_key_bytes(self) -> bytes:
        if self._routing_key_bytes is None:
            self._routing_key_bytes = self.routing_key.encode("utf-8", "surrogateescape")
        return self._routing_key_bytes

    @property
    def raw_properties(self) -> bytes:
        return self.header_payload[12:]

    @property
    def body_size(self) -> int:
        return len(self.body)


_DELIVERY_MODE_FLAG = 0x1000
_EXPIRATION_FLAG_HIGH = 0x01
_HEADERS_FLAG_HIGH = 0x20  # 0x2000  # 0x0100 in the high byte of the property flags
_SHORTSTR_FLAGS = (0x8000, 0x4000)  # content-type, content-encoding precede headers
_HEADERS_FLAG = 0x2000


def _delivery_mode(header_payload: bytes) -> int:
    """Read delivery-mode without decoding the other properties (it sits after three fields)."""
    if len(header_payload) < 14:
        return 0
    flags = (header_payload[12] << 8) | header_payload[13]
    if not flags & _DELIVERY_MODE_FLAG:
        return 0
    pos = 14
    try:
        for flag in _SHORTSTR_FLAGS:
            if flags & flag:
                pos += 1 + header_payload[pos]
        if flags & _HEADERS_FLAG:
            pos += 4 + int.from_bytes(header_payload[pos : pos + 4], "big")
        return header_payload[pos]
    except IndexError:
        return 0
