"""x-stream-offset spliced into raw content headers: every other property stays as it was."""

from __future__ import annotations

from typing import Any

import pytest

from lapine.amqp import spec
from lapine.broker.stream_headers import with_offset


def header(**properties: Any) -> bytes:
    return spec.encode_content_header(60, 5, spec.BasicProperties(**properties).encode())


@pytest.mark.parametrize(
    "properties",
    [
        {},
        {"delivery_mode": 2},
        {"content_type": "text/plain", "content_encoding": "gzip", "priority": 3},
        {"headers": {"a": 1, "b": "two"}, "content_type": "application/json", "correlation_id": "c"},
        {"headers": {}, "expiration": "100"},
        {"headers": {"x-stream-offset": "theirs", "k": [1, 2]}},
    ],
)
@pytest.mark.parametrize("offset", [0, 7, 2**40])
def test_the_offset_joins_the_headers_and_nothing_else_changes(properties: dict[str, Any], offset: int) -> None:
    raw = header(**properties)
    spliced = with_offset(raw, offset)
    assert spliced[:12] == raw[:12]  # class, weight, body size
    decoded = spec.BasicProperties.decode(spliced, 12)
    expected = {**properties.get("headers", {}), "x-stream-offset": offset}
    assert decoded.headers == expected
    for name, value in properties.items():
        if name != "headers":
            assert getattr(decoded, name) == value
    # A long ('l'), as RabbitMQ sends it, whatever its size.
    assert b"\x0fx-stream-offsetl" + offset.to_bytes(8, "big", signed=True) in spliced
