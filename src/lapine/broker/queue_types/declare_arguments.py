"""Checking queue declare and consume arguments per queue type, as RabbitMQ 4.x does.

Three steps, as rabbit_amqqueue:check_declare_arguments takes them: the x-queue-type value
itself; then the values of the arguments the type takes, in RabbitMQ's order; then any argument
that only other types take ("invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue
type rabbit_quorum_queue"). Arguments no type knows are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from lapine.broker import names
from lapine.broker.arguments import MAX_EXPIRY, type_name
from lapine.broker.queue_types.rabbitmq_arguments import ALL_CONSUMER_ARGUMENTS, ALL_QUEUE_ARGUMENTS

MAX_PRIORITY = 255
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
DEAD_LETTER_STRATEGIES = ("at-most-once", "at-least-once")
LEADER_LOCATORS = ("client-local", "balanced")
QUEUE_TYPE_NAMES = ("classic", "quorum", "stream")
# x-max-age: a positive count and one unit, years to seconds (rabbit_amqqueue:check_max_age).
_MAX_AGE = re.compile(r"([0-9]+)(Y|M|D|h|m|s)")
_UNIT_SECONDS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}

Problem = Any  # an Erlang-like error term: a string, a tuple, or None for no problem


def erlang_term(detail: Problem) -> str:
    """An error term printed as Erlang's ~p would: strings quoted, tuples in braces."""
    if isinstance(detail, str):
        return f'"{detail}"'
    if isinstance(detail, tuple):
        return "{" + ",".join(str(part) for part in detail) + "}"
    return str(detail)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _integer(value: Any) -> Problem:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected integer, got {type_name(value)}"
    return None


def _non_negative(value: Any) -> Problem:
    return _integer(value) or (("value_negative", value) if value < 0 else None)


def _positive(value: Any) -> Problem:
    problem = _non_negative(value)
    return ("value_zero", value) if problem is None and value == 0 else problem


def _expiry(value: Any) -> Problem:
    problem = _non_negative(value)
    if problem is None and value > MAX_EXPIRY:
        return ("value_too_large", value)
    return problem


def _expires(value: Any) -> Problem:
    problem = _integer(value)
    if problem is None and value == 0:
        return ("value_zero", value)
    return problem or _expiry(value)


def _max_priority(value: Any) -> Problem:
    problem = _non_negative(value)
    if problem is None and value > MAX_PRIORITY:
        return ("max_value_exceeded", value)
    return problem


def _shortstr_in_longstr(value: Any) -> Problem:
    """A name or routing key given as a longstr: it still goes on the wire as a shortstr later."""
    if not isinstance(value, str | bytes):
        return ("unacceptable_type", type_name(value))
    size = names.wire_size(value)
    if size is None:
        return "invalid UTF-8"
    return ("too_long", size) if size > names.SHORTSTR_MAX else None


def _one_of(choices: tuple[str, ...], error: str) -> Callable[[Any], Problem]:
    def check(value: Any) -> Problem:
        text = _text(value)
        if text is None:
            return ("unacceptable_type", type_name(value))
        return None if text in choices else error

    return check


def _boolean(value: Any) -> Problem:
    return None if isinstance(value, bool) else ("unacceptable_type", type_name(value))


def _queue_version(value: Any) -> Problem:
    problem = _non_negative(value)
    return f"unsupported queue version '{value}'" if problem is None and value != 2 else problem


def _max_age(value: Any) -> Problem:
    text = _text(value)
    if text is None:
        return ("unacceptable_type", type_name(value))
    return None if max_age_seconds(text) is not None else "invalid_max_age"


def max_age_seconds(text: str) -> int | None:
    """x-max-age in seconds ("7D", "1h", ...), or None when RabbitMQ would refuse it."""
    match = _MAX_AGE.fullmatch(text)
    if match is None or int(match[1]) <= 0:
        return None
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def _placement_tag(value: Any) -> Problem:
    text = _text(value)
    if text is None:
        return ("unacceptable_type", type_name(value))
    return None if text else "invalid_member_placement_tag_arg"


def _queue_type(value: Any) -> Problem:
    text = _text(value)
    if text is None:
        return ("unacceptable_type", type_name(value))
    return None if text in QUEUE_TYPE_NAMES else f"unsupported queue type '{text}'"


def _dead_letter_routing_key(value: Any, arguments: Mapping[str, Any]) -> Problem:
    problem = _shortstr_in_longstr(value)
    if problem is None and "x-dead-letter-exchange" not in arguments:
        return "routing_key_but_no_dlx_defined"
    return problem


# rabbit_amqqueue:declare_args(), in its order.
DECLARE_VALIDATORS: dict[str, Callable[[Any], Problem]] = {
    "x-expires": _expires,
    "x-message-ttl": _expiry,
    "x-dead-letter-exchange": _shortstr_in_longstr,
    "x-dead-letter-routing-key": _shortstr_in_longstr,  # and the DLX must be there: see below
    "x-dead-letter-strategy": _one_of(DEAD_LETTER_STRATEGIES, "invalid_dlx_strategy"),
    "x-max-length": _non_negative,
    "x-max-length-bytes": _non_negative,
    "x-max-in-memory-length": _non_negative,
    "x-max-in-memory-bytes": _non_negative,
    "x-max-priority": _max_priority,
    "x-overflow": _one_of(OVERFLOW_MODES, "invalid_overflow"),
    "x-queue-version": _queue_version,
    "x-single-active-consumer": _boolean,
    "x-consumer-timeout": _non_negative,
    "x-consumer-disconnected-timeout": _non_negative,
    "x-queue-type": _queue_type,
    "x-quorum-initial-group-size": _positive,
    "x-max-age": _max_age,
    "x-stream-max-segment-size-bytes": _non_negative,
    "x-stream-filter-size-bytes": _non_negative,
    "x-initial-cluster-size": _positive,
    "x-queue-leader-locator": _one_of(LEADER_LOCATORS, "invalid_queue_locator_arg"),
    "x-member-placement-tag": _placement_tag,
}


def queue_type_problem(arguments: Mapping[str, Any], where: str) -> str | None:
    """The first step alone: is x-queue-type one RabbitMQ knows?"""
    if "x-queue-type" not in arguments:
        return None
    problem = _queue_type(arguments["x-queue-type"])
    return f"invalid arg 'x-queue-type' {where}: {erlang_term(problem)}" if problem is not None else None


def declare_problem(arguments: Mapping[str, Any], where: str, module: str, accepted: frozenset[str]) -> str | None:
    """RabbitMQ's text for the first declare argument a queue of type ``module`` refuses, or None."""
    for key, check in DECLARE_VALIDATORS.items():
        if key in arguments and key in accepted:
            value = arguments[key]
            problem = _dead_letter_routing_key(value, arguments) if key == "x-dead-letter-routing-key" else check(value)
            if problem is not None:
                return f"invalid arg '{key}' {where}: {erlang_term(problem)}"
    return _foreign_argument(arguments, where, module, ALL_QUEUE_ARGUMENTS - accepted)


def consume_problem(arguments: Mapping[str, Any], where: str, module: str, accepted: frozenset[str]) -> str | None:
    """The same for basic.consume arguments (x-priority must be an integer, and so on)."""
    if "x-priority" in arguments and "x-priority" in accepted:
        problem = _integer(arguments["x-priority"])
        if problem is not None:
            return f"invalid arg 'x-priority' {where}: {erlang_term(problem)}"
    return _foreign_argument(arguments, where, module, ALL_CONSUMER_ARGUMENTS - accepted)


def _foreign_argument(arguments: Mapping[str, Any], where: str, module: str, foreign: frozenset[str]) -> str | None:
    for key in arguments:
        if key in foreign:
            return f"invalid arg '{key}' {where} of queue type {module}"
    return None
