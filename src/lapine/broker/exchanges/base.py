"""The interface every exchange type implements, and the binding bookkeeping they share.

A router is a pure data structure: it holds an exchange's bindings and answers "which destinations
does this message go to". It knows nothing of queues or I/O; a destination is any hashable object
(the broker passes Queue and Exchange objects, which hash by identity).

A binding is identified, as in RabbitMQ, by (destination, routing key, arguments): two bindings
that differ only in their arguments are distinct, and binding the identical triple again is a
no-op. Arguments are compared the way RabbitMQ compares its sorted field tables (see
``arguments_key``).
"""

from __future__ import annotations

import calendar
import datetime
import decimal
import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Hashable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

from lapine.amqp.codec import LongStr, Timestamp

# The codec gives a longstr that is not UTF-8 as LongStr (bytes) and a timestamp as Timestamp
# (int); datetime is accepted too, as pika and hand-written arguments use it.
_LONGSTR_TYPES: tuple[type, ...] = (str, LongStr)
_TIMESTAMP_TYPES: tuple[type, ...] = (Timestamp, datetime.datetime)

ArgumentsKey: TypeAlias = tuple[tuple[str, Hashable], ...]
BindingKey: TypeAlias = tuple[Hashable, str, ArgumentsKey]

EMPTY: tuple[Hashable, ...] = ()
_EMPTY_ARGUMENTS: Mapping[str, Any] = MappingProxyType({})


def is_longstr(value: object) -> bool:
    return isinstance(value, _LONGSTR_TYPES)


def is_timestamp(value: object) -> bool:
    return isinstance(value, _TIMESTAMP_TYPES)


def timestamp_seconds(value: Any) -> int:
    """Seconds since the epoch, as an AMQP timestamp carries them (naive datetimes are UTC, as pika)."""
    if isinstance(value, datetime.datetime):
        return calendar.timegm(value.utctimetuple())
    return int(value)


def binary_payload(value: Any) -> bytes:
    """The bytes of a longstr or binary field value, the way RabbitMQ holds both: as a binary."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return bytes(value)


def canonical(value: Any) -> Hashable:
    """A hashable form of a field value that is equal exactly when RabbitMQ's typed values are.

    Python's equality is looser than Erlang's typed tables: True == 1, 1 == 1.0, "a" != b"a" but
    both are binaries to RabbitMQ, Decimal("1.0") == Decimal("1") though {1,10} and {0,1} differ.
    Each value is therefore tagged with its AMQP kind. Nested tables keep their order, because
    RabbitMQ sorts only the top level of a binding's arguments.
    """
    if value is None:
        return ("void",)
    if isinstance(value, bool):
        return ("bool", value)
    if is_timestamp(value):
        return ("timestamp", timestamp_seconds(value))
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        # NaN is unequal to itself, which would make an identical binding look new.
        return ("float", "nan") if math.isnan(value) else ("float", value)
    if isinstance(value, decimal.Decimal):
        return ("decimal", value.as_tuple())
    if is_longstr(value):
        return ("longstr", binary_payload(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return ("binary", bytes(value))
    if isinstance(value, Mapping):
        return ("table", tuple((str(k), canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("array", tuple(canonical(v) for v in value))
    if isinstance(value, Hashable):
        return (type(value).__name__, value)
    return (type(value).__name__, repr(value))


def arguments_key(arguments: Mapping[str, Any] | None) -> ArgumentsKey:
    """The identity of a binding's arguments: RabbitMQ sorts the top-level table by key."""
    if not arguments:
        return ()
    return tuple(sorted((str(k), canonical(v)) for k, v in arguments.items()))


class Router(ABC):
    """The bindings of one exchange and its routing rule.

    Subclasses implement ``_added``/``_removed`` to maintain their own index, and ``route``. The
    base class owns the set of bindings, so bind/unbind/duplicate semantics are the same for every
    exchange type.
    """

    type_name: ClassVar[str]
    # Only the headers exchange reads message headers; the broker decodes them lazily, for it alone.
    needs_headers: ClassVar[bool] = False

    __slots__ = ("_bindings", "_by_destination")

    def __init__(self) -> None:
        self._bindings: dict[BindingKey, Mapping[str, Any]] = {}
        # Per destination, its bindings (a dict used as an ordered set) so deleting a queue is cheap.
        self._by_destination: dict[Hashable, dict[BindingKey, None]] = {}

    @staticmethod
    def validate_binding_arguments(arguments: Mapping[str, Any] | None) -> str | None:
        """The PRECONDITION_FAILED text for arguments this type rejects, or None when acceptable."""
        return None

    def bind(self, destination: Hashable, routing_key: str, arguments: Mapping[str, Any] | None) -> bool:
        """Add a binding; False if the identical binding (destination, key, arguments) existed."""
        args_key = arguments_key(arguments)
        key: BindingKey = (destination, routing_key, args_key)
        if key in self._bindings:
            return False
        stored = MappingProxyType(dict(arguments)) if arguments else _EMPTY_ARGUMENTS
        self._bindings[key] = stored
        self._by_destination.setdefault(destination, {})[key] = None
        self._added(destination, routing_key, args_key, stored)
        return True

    def unbind(self, destination: Hashable, routing_key: str, arguments: Mapping[str, Any] | None) -> bool:
        """Remove a binding; False if there was no such binding."""
        key: BindingKey = (destination, routing_key, arguments_key(arguments))
        if key not in self._bindings:
            return False
        self._forget(key)
        return True

    def unbind_destination(self, destination: Hashable) -> int:
        """Drop every binding to ``destination`` (it was deleted); returns how many there were."""
        keys = self._by_destination.get(destination)
        if not keys:
            return 0
        removed = list(keys)
        for key in removed:
            self._forget(key)
        return len(removed)

    def _forget(self, key: BindingKey) -> None:
        destination, routing_key, args_key = key
        stored = self._bindings.pop(key)
        keys = self._by_destination[destination]
        del keys[key]
        if not keys:
            del self._by_destination[destination]
        self._removed(destination, routing_key, args_key, stored)

    @abstractmethod
    def _added(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        """Index a binding that was not there before."""

    @abstractmethod
    def _removed(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        """Unindex a binding that was there."""

    @abstractmethod
    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> Collection[Hashable]:
        """The distinct destinations a message goes to. The result is shared: never mutate it."""

    def bindings(self) -> Iterator[tuple[Hashable, str, Mapping[str, Any]]]:
        """(destination, routing_key, arguments) of every binding, in the order they were made."""
        for (destination, routing_key, _), arguments in tuple(self._bindings.items()):
            yield destination, routing_key, arguments

    def has_binding(
        self, destination: Hashable, routing_key: str, arguments: Mapping[str, Any] | None
    ) -> bool:
        return (destination, routing_key, arguments_key(arguments)) in self._bindings

    def is_bound_to(self, destination: Hashable) -> bool:
        return destination in self._by_destination

    def __len__(self) -> int:
        return len(self._bindings)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} with {len(self._bindings)} bindings>"


class CountedDestinations:
    """Destinations with how many bindings lead to each, plus a prebuilt tuple of them for routing.

    Several bindings can route the same key to the same destination (they differ in arguments);
    the destination must be delivered to once, and stay reachable until its last binding goes.
    """

    __slots__ = ("counts", "members")

    def __init__(self) -> None:
        self.counts: dict[Hashable, int] = {}
        self.members: tuple[Hashable, ...] = EMPTY

    def add(self, destination: Hashable) -> None:
        count = self.counts.get(destination, 0)
        self.counts[destination] = count + 1
        if count == 0:
            self.members = (*self.members, destination)

    def remove(self, destination: Hashable) -> None:
        count = self.counts[destination] - 1
        if count:
            self.counts[destination] = count
        else:
            del self.counts[destination]
            self.members = tuple(self.counts)

    def __bool__(self) -> bool:
        return bool(self.counts)
