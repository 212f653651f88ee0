"""Policies: settings applied by name pattern to queues and exchanges, as RabbitMQ's.

At most one policy applies to an object: the matching one with the highest priority. A queue's
own arguments take precedence over its policy; for the numeric limits (TTLs, lengths) RabbitMQ
applies the lower of the two, and so do we.

Patterns are matched by RE2 (google-re2), whose time is linear in the name: a pattern such as
``^(a+)+$`` that makes a backtracking engine run for ever against a long name costs nothing here,
and matching runs on the event loop. RE2 refuses what needs backtracking (backreferences,
lookarounds); such a pattern is refused when the policy is set, with RE2's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import re2

from lapine.broker import names
from lapine.broker.arguments import MAX_EXPIRY

APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues")

# Policy keys and the queue or exchange argument each stands for.
QUEUE_KEYS = {
    "message-ttl": "x-message-ttl",
    "expires": "x-expires",
    "dead-letter-exchange": "x-dead-letter-exchange",
    "dead-letter-routing-key": "x-dead-letter-routing-key",
    "max-length": "x-max-length",
    "max-length-bytes": "x-max-length-bytes",
    "overflow": "x-overflow",
    "queue-mode": "x-queue-mode",
    "consumer-timeout": "x-consumer-timeout",
    # Streams' retention and segment size (broker/stream_queue.py).
    "max-age": "x-max-age",
    "stream-max-segment-size-bytes": "x-stream-max-segment-size-bytes",
}
EXCHANGE_KEYS = {"alternate-exchange": "alternate-exchange"}
LOWER_WINS = frozenset({"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-consumer-timeout"})


@dataclass
class Policy:
    vhost: str
    name: str
    pattern: str
    definition: dict[str, Any]
    priority: int = 0
    apply_to: str = "all"
    _compiled: Any = field(default=None, repr=False, compare=False)

    def matches(self, name: str, kind: str, queue_type: str = "classic") -> bool:
        """Does it apply to this object? (a queue of ``queue_type``, or an exchange)"""
        if kind == "queue" and self.apply_to not in ("all", "queues", f"{queue_type}_queues"):
            return False
        if kind == "exchange" and self.apply_to not in ("all", "exchanges"):
            return False
        if self._compiled is None:
            try:
                self._compiled = compile_pattern(self.pattern)
            except re2.error:
                # Only a policy stored before patterns were checked by RE2 gets here: it matches nothing.
                self._compiled = _NOTHING
        return self._compiled.search(name) is not None

    def as_arguments(self, kind: str) -> dict[str, Any]:
        keys = QUEUE_KEYS if kind == "queue" else EXCHANGE_KEYS
        return {keys[key]: value for key, value in self.definition.items() if key in keys}


class _MatchesNothing:
    def search(self, name: str) -> None:
        return None


_NOTHING = _MatchesNothing()


def compile_pattern(pattern: str) -> Any:
    """The RE2 program for a pattern; raises re2.error (its reason in bytes) when RE2 refuses it."""
    options = re2.Options()
    options.log_errors = False  # the reason goes back to whoever set the policy, not to stderr
    return re2.compile(pattern, options)


def validate(policy: Policy) -> str | None:
    """Why RabbitMQ would refuse this policy, or None (rabbit_policy.erl, rabbit_policies.erl)."""
    if policy.apply_to not in APPLY_TO:
        choices = ", ".join(f"'{choice}'" for choice in APPLY_TO if choice != "all")
        return f"apply-to '{policy.apply_to}' unrecognised; should be one of: {choices}, or 'all'"
    if not isinstance(policy.pattern, str):
        return f"pattern should be a binary but was {erlang_term(policy.pattern)}"
    try:
        compile_pattern(policy.pattern)
    except re2.error as error:
        reason = error.args[0].decode("utf-8", "replace") if error.args else "invalid"
        return f"pattern should be regular expression but is invalid: {reason}"
    if not policy.definition:
        return "no policy provided"
    unknown = [(key, value) for key, value in policy.definition.items() if key not in VALUE_CHECKS]
    if unknown:
        terms = ",".join(f"{{{erlang_term(key)},{erlang_term(value)}}}" for key, value in unknown)
        return f"[{terms}] are not recognised policy settings"
    for key, value in policy.definition.items():
        check, what = VALUE_CHECKS[key]
        if not check(value):
            return f"{erlang_term(value)} is not a valid {what}"
    for key in SHORTSTR_KEYS:
        # These become exchange names and routing keys on the wire: at most 255 octets of UTF-8.
        value = policy.definition.get(key)
        if isinstance(value, str):
            problem = names.shortstr_problem(key, value)
            if problem is not None:
                return problem
    return None


SHORTSTR_KEYS = ("alternate-exchange", "dead-letter-exchange", "dead-letter-routing-key")


def _integer(low: int, high: int | None = None) -> Callable[[Any], bool]:
    """Integers from ``low`` (and up to ``high``: the ceiling Lapine's queues accept for a TTL)."""

    def check(value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= low
            and (high is None or value <= high)
        )

    return check


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and value in choices


def _anything(value: Any) -> bool:
    return True


def _max_age(value: Any) -> bool:
    """x-max-age's form ("7D", "1h"): queue_types imports queue, which imports this module."""
    from lapine.broker.queue_types.declare_arguments import max_age_seconds

    return isinstance(value, str) and max_age_seconds(value) is not None


# Each policy key: its check and the words of RabbitMQ's refusal ("~p is not a valid <words>").
VALUE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "alternate-exchange": (_text, "alternate exchange name"),
    "consumer-timeout": (_integer(0, MAX_EXPIRY), "consumer timeout"),
    "dead-letter-exchange": (_text, "dead letter exchange name"),
    "dead-letter-routing-key": (_text, "dead letter routing key"),
    "dead-letter-strategy": (_one_of("at-most-once", "at-least-once"), "dead letter strategy"),
    "message-ttl": (_integer(0, MAX_EXPIRY), "message TTL"),
    "expires": (_integer(1, MAX_EXPIRY), "queue expiry"),
    "max-length": (_integer(0), "maximum length"),
    "max-length-bytes": (_integer(0), "maximum length in bytes"),
    "queue-mode": (_one_of("default", "lazy"), "queue-mode value"),
    "overflow": (_one_of("drop-head", "reject-publish", "reject-publish-dlx"), "overflow value"),
    "delivery-limit": (_integer(-(2**63)), "delivery limit"),
    "max-age": (_max_age, "max age"),
    "stream-max-segment-size-bytes": (_integer(0), "segment size"),
    # Mirroring settings are accepted, as RabbitMQ 3.x accepts them, and have no effect.
    "ha-mode": (_anything, "ha-mode"),
    "ha-params": (_anything, "ha-params"),
}


def erlang_term(value: Any) -> str:
    """A JSON value as RabbitMQ's ~p prints it in its refusals: <<"text">>, 1.0e20, true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return '<<"' + value.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(value, float):
        mantissa, _, exponent = repr(value).partition("e")
        if "." not in mantissa and mantissa.lstrip("-").isdigit():
            mantissa += ".0"
        return f"{mantissa}e{int(exponent)}" if exponent else mantissa
    if isinstance(value, list):
        return "[" + ",".join(erlang_term(item) for item in value) + "]"
    if isinstance(value, dict):
        return "#{" + ",".join(f"{erlang_term(k)} => {erlang_term(v)}" for k, v in value.items()) + "}"
    return str(value)


def effective(arguments: dict[str, Any], policy: Policy | None, kind: str) -> dict[str, Any]:
    """An object's own arguments merged with its policy's, as RabbitMQ resolves them."""
    if policy is None:
        return arguments
    merged = dict(policy.as_arguments(kind))
    for key, value in arguments.items():
        current = merged.get(key)
        if key in LOWER_WINS and isinstance(current, int) and isinstance(value, int):
            merged[key] = min(current, value)
        else:
            merged[key] = value
    return merged


class Policies:
    """The policies of one vhost."""

    def __init__(self) -> None:
        self.by_name: dict[str, Policy] = {}

    def set(self, policy: Policy) -> None:
        self.by_name[policy.name] = policy

    def clear(self, name: str) -> bool:
        return self.by_name.pop(name, None) is not None

    def __iter__(self) -> Iterator[Policy]:
        return iter(sorted(self.by_name.values(), key=lambda p: p.name))

    def for_object(self, name: str, kind: str, queue_type: str = "classic") -> Policy | None:
        best: Policy | None = None
        for policy in self.by_name.values():
            if policy.matches(name, kind, queue_type) and (best is None or policy.priority > best.priority):
                best = policy
        return best
