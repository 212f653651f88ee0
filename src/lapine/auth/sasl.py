"""The SASL mechanisms RabbitMQ offers by default: PLAIN and AMQPLAIN."""

from __future__ import annotations

from lapine.amqp.codec import decode_table

MECHANISMS = b"PLAIN AMQPLAIN"


def parse_response(mechanism: str, response: bytes) -> tuple[str, str] | None:
    """(username, password) from a start-ok response, or None when it cannot be read."""
    if mechanism == "PLAIN":
        parts = response.split(b"\x00")
        if len(parts) != 3:
            return None
        return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
    if mechanism == "AMQPLAIN":
        # AMQPLAIN's response is a field table without its length prefix.
        framed = len(response).to_bytes(4, "big") + response
        try:
            table, _ = decode_table(framed, 0)
        except Exception:
            return None
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if not isinstance(login, str | bytes) or not isinstance(password, str | bytes):
            return None
        return _text(login), _text(password)
    return None


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
