"""Comparing declare arguments the way RabbitMQ does, and describing them in its error texts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lapine.broker.exchanges.headers import field_type

EXCHANGE_EQUIVALENT_ARGS = ("alternate-exchange",)
MAX_EXPIRY = 315_360_000_000  # ten years in milliseconds, RabbitMQ's ceiling for TTLs


def type_name(value: Any) -> str:
    """The AMQP field type RabbitMQ names in its messages for a decoded value."""
    return field_type(value)


def describe(value: Any) -> str:
    if value is None:
        return "none"
    shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if isinstance(shown, bool):
        shown = str(shown).lower()
    return f"the value '{shown}' of type '{type_name(value)}'"


def inequivalent_text(key: str, where: str, received: Any, current: Any) -> str:
    """RabbitMQ's words for a redeclare whose argument differs (rabbit_misc:assert_args_equivalence)."""
    if received is None or current is None:
        return f"inequivalent arg '{key}' {where}: received {describe(received)} but current is {describe(current)}"
    return f"inequivalent arg '{key}' {where}: received '{_plain(received)}' but current is '{_plain(current)}'"


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def first_inequivalent(
    keys: tuple[str, ...], received: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[str, Any, Any] | None:
    """The first argument (of those that matter) whose value differs: (name, received, current)."""
    for key in keys:
        new, old = received.get(key), current.get(key)
        if new != old or _type_class(new) != _type_class(old):
            return key, new, old
    return None


def bool_text(value: bool) -> str:
    return "true" if value else "false"


def _type_class(value: Any) -> str:
    """Integers of every width compare equal in RabbitMQ, as do longstr and binary."""
    name = type_name(value)
    if name in ("signedint", "long"):
        return "int"
    if name in ("longstr", "binary"):
        return "binary"
    return name
