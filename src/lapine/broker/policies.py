"""Policies: settings applied by name pattern to queues and exchanges, as RabbitMQ's.

At most one policy applies to an object: the matching one with the highest priority. A queue's
own arguments take precedence over its policy; for the numeric limits (TTLs, lengths) RabbitMQ
applies the lower of the two, and so do we.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lapine.broker import names

APPLY_TO = ("all", "queues", "exchanges", "classic_queues")

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
    _compiled: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, name: str, kind: str) -> bool:
        if kind == "queue" and self.apply_to not in ("all", "queues", "classic_queues"):
            return False
        if kind == "exchange" and self.apply_to not in ("all", "exchanges"):
            return False
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return self._compiled.search(name) is not None

    def as_arguments(self, kind: str) -> dict[str, Any]:
        keys = QUEUE_KEYS if kind == "queue" else EXCHANGE_KEYS
        return {keys[key]: value for key, value in self.definition.items() if key in keys}


def validate(policy: Policy) -> str | None:
    """Why RabbitMQ would refuse this policy, or None."""
    if policy.apply_to not in APPLY_TO:
        return f"'{policy.apply_to}' is not a valid apply-to value"
    try:
        re.compile(policy.pattern)
    except re.error as error:
        return f"invalid regular expression '{policy.pattern}': {error}"
    if not policy.definition:
        return "policy definition must not be empty"
    known = set(QUEUE_KEYS) | set(EXCHANGE_KEYS) | {"ha-mode", "ha-params", "delivery-limit"}
    unknown = sorted(set(policy.definition) - known)
    if unknown:
        return f"Unrecognised terms {unknown} in policy"
    for key, what in SHORTSTR_KEYS.items():
        if key in policy.definition:
            problem = _shortstr_problem(key, what, policy.definition[key])
            if problem is not None:
                return problem
    return None


# Policy keys whose values become exchange names or routing keys on the wire, with RabbitMQ's
# words for a value that is not a string (rabbit_policies:validate_policy0).
SHORTSTR_KEYS = {
    "alternate-exchange": "alternate exchange name",
    "dead-letter-exchange": "dead letter exchange name",
    "dead-letter-routing-key": "dead letter routing key",
}


def _shortstr_problem(key: str, what: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{json.dumps(value, default=str)} is not a valid {what}"
    return names.shortstr_problem(key, value)


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

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self.by_name.values(), key=lambda p: p.name))

    def for_object(self, name: str, kind: str) -> Policy | None:
        best: Policy | None = None
        for policy in self.by_name.values():
            if policy.matches(name, kind) and (best is None or policy.priority > best.priority):
                best = policy
        return best
