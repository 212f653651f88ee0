"""Comparing declare arguments the way RabbitMQ does, and describing them in its error texts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lapine.broker import names
from lapine.broker.exchanges.headers import field_type

# Queue arguments whose values must match on a redeclare; RabbitMQ ignores unknown ones.
QUEUE_EQUIVALENT_ARGS = (
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
)
EXCHANGE_EQUIVALENT_ARGS = ("alternate-exchange",)


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


# --- validation of queue arguments at declare (rabbit_amqqueue:declare_args) -------------------

MAX_EXPIRY = 315_360_000_000  # ten years in milliseconds, RabbitMQ's ceiling for TTLs
MAX_PRIORITY = 255
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_MODES = ("default", "lazy")


def _erlang(detail: Any) -> str:
    """An error term printed as Erlang's ~p would: strings quoted, tuples in braces."""
    if isinstance(detail, str):
        return f'"{detail}"'
    if isinstance(detail, tuple):
        return "{" + ",".join(str(part) for part in detail) + "}"
    return str(detail)


def _integer(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected integer, got {type_name(value)}"
    return None


def _non_negative(value: Any) -> Any:
    return _integer(value) or (("value_negative", value) if value < 0 else None)


def _expiry(value: Any) -> Any:
    problem = _non_negative(value)
    if problem is None and value > MAX_EXPIRY:
        return ("value_too_large", value)
    return problem


def _expires(value: Any) -> Any:
    problem = _integer(value)
    if problem is None and value == 0:
        return ("value_zero", value)
    return problem or _expiry(value)


def _max_priority(value: Any) -> Any:
    problem = _non_negative(value)
    if problem is None and value > MAX_PRIORITY:
        return ("max_value_exceeded", value)
    return problem


def _shortstr_in_longstr(value: Any) -> Any:
    """A name or routing key given as a longstr: it still goes on the wire as a shortstr later."""
    if not isinstance(value, str | bytes):
        return ("unacceptable_type", type_name(value))
    size = names.wire_size(value)
    if size is None:
        return "invalid UTF-8"
    return ("too_long", size) if size > names.SHORTSTR_MAX else None


def _one_of(choices: tuple[str, ...], error: str) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, str | bytes):
            return ("unacceptable_type", type_name(value))
        text = value.decode() if isinstance(value, bytes) else value
        return None if text in choices else error

    return check


def _boolean(value: Any) -> Any:
    return None if isinstance(value, bool) else ("unacceptable_type", type_name(value))


QUEUE_VALIDATORS = {
    "x-expires": _expires,
    "x-message-ttl": _expiry,
    "x-dead-letter-exchange": _shortstr_in_longstr,
    "x-dead-letter-routing-key": _shortstr_in_longstr,
    "x-max-length": _non_negative,
    "x-max-length-bytes": _non_negative,
    "x-max-priority": _max_priority,
    "x-overflow": _one_of(OVERFLOW_MODES, "invalid_overflow"),
    "x-queue-mode": _one_of(QUEUE_MODES, "invalid_queue_mode"),
    "x-single-active-consumer": _boolean,
}


def invalid_queue_argument(arguments: Mapping[str, Any], where: str) -> str | None:
    """RabbitMQ's text for the first declare argument it would refuse, or None."""
    for key, check in QUEUE_VALIDATORS.items():
        if key in arguments:
            problem = check(arguments[key])
            if problem is not None:
                return f"invalid arg '{key}' {where}: {_erlang(problem)}"
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        return f"invalid arg 'x-dead-letter-routing-key' {where}: routing_key_but_no_dlx_defined"
    return None
