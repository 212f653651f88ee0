"""The headers exchange: bindings match on message header values; the routing key is ignored.

Follows current RabbitMQ (rabbit_exchange_type_headers.erl, 3.13 and 4.x):

- ``x-match`` is "all" (also when absent), "any", "all-with-x" or "any-with-x"; any other value
  is refused when binding, with RabbitMQ's PRECONDITION_FAILED text.
- Binding arguments whose names start with "x-" take no part in matching under "all" and "any";
  the "-with-x" variants compare them too (except ``x-match`` itself).
- A binding argument whose value is void (None) asks only that the header be present.
- Otherwise the header's value must equal the binding's exactly (Erlang ``=:=``): an integer is
  not a float, a bool or a string; longstr and binary are both binaries and compare by bytes;
  nested tables and arrays compare element by element, in order.
- "all" with nothing to compare matches every message; "any" with nothing matches none.
- A timestamp header is compared as milliseconds (``mc_amqpl:routing_value``) while a timestamp in
  a binding stays in seconds, so the two never match each other; RabbitMQ 3.12 and older compared
  seconds, and also compared numbers loosely (1 == 1.0).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Hashable, Mapping
from typing import Any, TypeAlias

from lapine.broker.exchanges.base import (
    EMPTY,
    ArgumentsKey,
    Router,
    binary_payload,
    canonical,
    is_longstr,
    is_timestamp,
    timestamp_seconds,
)

X_MATCH_VALUES = ("all", "any", "all-with-x", "any-with-x")

# The binding value that asks only for the header's presence.
_PRESENT = object()
_MISSING = object()


def _match_form(value: Any, *, header: bool) -> Hashable:
    """What RabbitMQ compares at the top level: the untyped value (its type tag is dropped there)."""
    if isinstance(value, str | bytes | bytearray | memoryview) or is_longstr(value):
        return ("bytes", binary_payload(value))
    if is_timestamp(value):
        seconds = timestamp_seconds(value)
        return ("int", seconds * 1000 if header else seconds)
    return canonical(value)


class _Group:
    """The bindings that share one argument table: evaluated once per message for all of them."""

    __slots__ = ("destinations", "match_any", "tests")

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        x_match = arguments.get("x-match")
        mode = x_match if isinstance(x_match, str) and x_match in X_MATCH_VALUES else "all"
        with_x = mode.endswith("-with-x")
        self.match_any = mode.startswith("any")
        self.tests: tuple[tuple[str, Hashable], ...] = tuple(
            (key, _PRESENT if value is None else _match_form(value, header=False))
            for key, value in arguments.items()
            if key != "x-match" and (with_x or not key.startswith("x-"))
        )
        # Destination -> how many bindings (by routing key) of this group lead to it.
        self.destinations: dict[Hashable, int] = {}

    def matches(self, headers: Mapping[str, Any], seen: dict[str, Hashable]) -> bool:
        for key, expected in self.tests:
            form = seen.get(key)
            if form is None:
                value = headers.get(key, _MISSING)
                form = _MISSING if value is _MISSING else _match_form(value, header=True)
                seen[key] = form
            ok = form is not _MISSING if expected is _PRESENT else form == expected
            if ok == self.match_any:
                # "any" stops at the first success, "all" at the first failure.
                return ok
        return not self.match_any


class HeadersRouter(Router):
    type_name = "headers"
    needs_headers = True

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        super().__init__()
        self._groups: dict[ArgumentsKey, _Group] = {}

    @staticmethod
    def validate_binding_arguments(arguments: Mapping[str, Any] | None) -> str | None:
        """RabbitMQ's text for a bad ``x-match`` (rabbit_exchange_type_headers:validate_binding)."""
        if not arguments or "x-match" not in arguments:
            return None
        value = arguments["x-match"]
        if is_longstr(value):
            if value in X_MATCH_VALUES:
                return None
            prefix = "Invalid x-match field value "
            return f"{prefix}{erlang_term(value, len(prefix))}; expected all, any, all-with-x, or any-with-x"
        # The column matters: io_lib lays out a long term from where it starts on the line.
        prefix = f"Invalid x-match field type {field_type(value)} (value "
        return f"{prefix}{erlang_term(value, len(prefix))}); expected longstr"

    def _added(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        group = self._groups.get(args_key)
        if group is None:
            group = self._groups[args_key] = _Group(arguments)
        group.destinations[destination] = group.destinations.get(destination, 0) + 1

    def _removed(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        group = self._groups[args_key]
        count = group.destinations[destination] - 1
        if count:
            group.destinations[destination] = count
        else:
            del group.destinations[destination]
            if not group.destinations:
                del self._groups[args_key]

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple[Hashable, ...]:
        if not self._groups:
            return EMPTY
        if headers is None:
            headers = {}
        seen: dict[str, Hashable] = {}
        found: dict[Hashable, None] = {}
        for group in self._groups.values():
            if group.matches(headers, seen):
                found.update(dict.fromkeys(group.destinations))
        return tuple(found) if found else EMPTY


# --- RabbitMQ's rendering of field values in error texts ------------------------------------------


def field_type(value: Any) -> str:
    """The AMQP field type RabbitMQ would have decoded ``value`` as (pika's choice for ints)."""
    if value is None:
        return "void"
    if isinstance(value, bool):
        return "bool"
    if is_timestamp(value):
        return "timestamp"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if is_longstr(value):
        return "longstr"
    if isinstance(value, bytes | bytearray | memoryview):
        return "binary"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    return "void"


# io_lib's printable Latin-1 set, and the escapes ~p writes inside a string.
_ESCAPES = {8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 27: "\\e", 34: '\\"', 92: "\\\\"}
_PRINTABLE = frozenset(range(32, 127)) | frozenset(range(160, 256)) | frozenset(_ESCAPES)
_LINE_LENGTH = 80

# A field value as the Erlang term RabbitMQ holds: atoms and numbers are str, binaries bytes,
# lists list and tuples tuple.
_Term: TypeAlias = "str | bytes | list[_Term] | tuple[_Term, ...]"


def _erlang_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return repr(value)
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{int(exponent)}"


def _term(value: Any) -> _Term:
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_timestamp(value):
        return str(timestamp_seconds(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _erlang_float(value)
    if isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if isinstance(exponent, int) and exponent > 0:
            unscaled *= 10**exponent
        # RabbitMQ reads a decimal as {Scale, Value} with Value an unsigned 32-bit integer.
        return (str(scale), str(unscaled % 2**32))
    if is_longstr(value) or isinstance(value, bytes | bytearray | memoryview):
        return binary_payload(value)
    if isinstance(value, Mapping):
        return [(binary_payload(str(k)), field_type(v), _term(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [(field_type(v), _term(v)) for v in value]
    return repr(value)


def _flat(term: _Term) -> str:
    if isinstance(term, str):
        return term
    if isinstance(term, bytes):
        if not term:
            return "<<>>"
        if _PRINTABLE.issuperset(term):
            # Erlang writes the bytes as Latin-1 characters and RabbitMQ sends those characters as
            # bytes again, so a UTF-8 value comes back as the same UTF-8 ("héllo" stays "héllo").
            raw = "".join(_ESCAPES[b] if b in _ESCAPES else chr(b) for b in term).encode("latin-1")
            try:
                return '<<"' + raw.decode("utf-8") + '">>'
            except UnicodeDecodeError:
                # A str cannot carry those raw bytes; the codec's erlang_binary falls back the same way.
                return '<<"' + raw.decode("latin-1") + '">>'
        return "<<" + ",".join(map(str, term)) + ">>"
    if isinstance(term, list):
        return "[" + ",".join(map(_flat, term)) + "]"
    return "{" + ",".join(map(_flat, term)) + "}"


def _end_column(text: str, start: int) -> int:
    newline = text.rfind("\n")
    return start + len(text) if newline < 0 else len(text) - newline - 1


def _pretty(term: _Term, column: int, depth: int) -> str:
    """io_lib_pretty's layout (line length 80) of ``term`` starting at ``column``, with ``depth``
    closing characters after it. Fitted to RabbitMQ's texts: lists and tuples that do not fit put
    their elements one per line (only atoms and numbers may share a line), a tuple tagged by an
    atom keeps just the tag on its first line, a binary of numbers is filled line by line."""
    flat = _flat(term)
    if len(flat) < _LINE_LENGTH - column - 1 - depth or isinstance(term, str) or not term:
        return flat
    if isinstance(term, bytes):
        if _PRINTABLE.issuperset(term):
            return flat
        out, col = "<<", column + 2
        for i, byte in enumerate(term):
            piece = f"{byte}>>" if i == len(term) - 1 else f"{byte},"
            if col > column + 2 and col + len(piece) + depth > _LINE_LENGTH - 2:
                out += "\n" + " " * (column + 2)
                col = column + 2
            out += piece
            col += len(piece)
        return out
    if isinstance(term, list):
        return "[" + _pretty_elements(term, column + 1, depth + 1) + "]"
    head = term[0] if term else ""
    if len(term) > 1 and isinstance(head, str) and head[:1].isalpha():
        indent = " " * (column + 1)
        return "{" + head + ",\n" + indent + _pretty_elements(list(term[1:]), column + 1, depth + 1) + "}"
    return "{" + _pretty_elements(list(term), column + 1, depth + 1) + "}"


def _pretty_elements(terms: list[_Term], column: int, last_depth: int) -> str:
    last = len(terms) - 1
    out = _pretty(terms[0], column, last_depth if last == 0 else 0)
    col = _end_column(out, column)
    for i in range(1, last + 1):
        term, depth = terms[i], last_depth if i == last else 0
        width = len(_flat(term)) + 1
        room = _LINE_LENGTH - col - 1
        if isinstance(term, str) and (width + 1 < room if depth == 0 else width < room - depth):
            out += "," + _flat(term)
            col += width
        else:
            piece = _pretty(term, column, depth)
            out += ",\n" + " " * column + piece
            col = _end_column(piece, column)
    return out


def erlang_term(value: Any, column: int = 0) -> str:
    """``value`` as RabbitMQ prints it with ~tp, starting at ``column`` of its line."""
    return _pretty(_term(value), column, 0)
