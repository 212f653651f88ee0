"""Headers exchange routing and binding validation.

The matrix and the error texts below were captured from RabbitMQ 3.10.8 with pika (one queue per
binding on a headers exchange, one message per header table, then basic.get on every queue).
Where current RabbitMQ (rabbit_exchange_type_headers.erl with mc_amqpl:routing_headers, 3.13 and
4.x) decides differently, Lapine follows current RabbitMQ and the test is marked rabbitmq_differs.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from lapine.amqp.codec import LongStr, Timestamp
from lapine.broker.exchanges import ROUTER_TYPES, HeadersRouter, Router, router_for
from lapine.broker.exchanges.headers import erlang_term


def routes(arguments: Mapping[str, Any] | None, headers: Mapping[str, Any] | None) -> bool:
    router = HeadersRouter()
    router.bind("q", "", arguments)
    return router.route("ignored", headers) == ("q",)


T5 = datetime.fromtimestamp(5, UTC)

HEADER_SETS: list[dict[str, Any] | None] = [
    None,  # 0: a message without headers
    {},  # 1
    {"a": 1},  # 2
    {"a": "1"},  # 3
    {"a": b"1"},  # 4
    {"a": 2},  # 5
    {"a": 1, "b": 2},  # 6
    {"b": 2},  # 7
    {"c": 1},  # 8
    {"a": None},  # 9
    {"x-foo": "bar"},  # 10
    {"x-foo": "baz"},  # 11
    {"a": True},  # 12
    {"a": 2**40},  # 13
    {"a": [1, 2]},  # 14
    {"a": [2, 1]},  # 15
    {"a": {"x": 1, "y": 2}},  # 16
    {"a": {"y": 2, "x": 1}},  # 17
    {"t": 5},  # 18
    {"x-match-extra": "q"},  # 19
    {"x-y": 1},  # 20
]
EVERY = frozenset(range(len(HEADER_SETS)))
WITH_A = frozenset({2, 3, 4, 5, 6, 9, 12, 13, 14, 15, 16, 17})

# binding arguments -> indexes of HEADER_SETS that it routes (as RabbitMQ 3.10.8 did)
LIVE_MATRIX: list[tuple[dict[str, Any], frozenset[int]]] = [
    # No arguments at all: "all" of nothing matches every message, even one without headers.
    ({}, EVERY),
    # "any" of nothing matches none.
    ({"x-match": "any"}, frozenset()),
    ({"x-match": "all", "a": 1}, frozenset({2, 6})),
    ({"x-match": "any", "a": 1, "b": 2}, frozenset({2, 6, 7})),
    # A void value asks only that the header be there, whatever its value (void included).
    ({"a": None}, WITH_A),
    ({"x-match": "any", "a": None}, WITH_A),
    # "x-" arguments are ignored by all/any...
    ({"x-match": "all", "x-foo": "bar"}, EVERY),
    ({"x-match": "any", "x-foo": "bar"}, frozenset()),
    # ...and compared by all-with-x/any-with-x.
    ({"x-match": "all-with-x", "x-foo": "bar"}, frozenset({10})),
    ({"x-match": "any-with-x", "x-foo": "bar", "a": 1}, frozenset({2, 6, 10})),
    ({"x-match": "all-with-x", "x-match-extra": "q"}, frozenset({19})),
    ({"x-match": "any-with-x", "a": None, "x-y": None}, WITH_A | {20}),
    # longstr and binary are both binaries: they compare by their bytes.
    ({"a": "1"}, frozenset({3, 4})),
    ({"a": b"1"}, frozenset({3, 4})),
    # A bool is not an integer, an integer is not a string.
    ({"a": True}, frozenset({12})),
    ({"a": 1}, frozenset({2, 6})),
    ({"a": 2**40}, frozenset({13})),
    # Arrays and nested tables compare element by element, in order.
    ({"a": [1, 2]}, frozenset({14})),
    ({"a": {"x": 1, "y": 2}}, frozenset({16})),
    ({"t": 5}, frozenset({18})),
]


@pytest.mark.parametrize(("arguments", "expected"), LIVE_MATRIX, ids=[repr(a) for a, _ in LIVE_MATRIX])
def test_live_matrix(arguments: dict[str, Any], expected: frozenset[int]) -> None:
    got = {i for i, headers in enumerate(HEADER_SETS) if routes(arguments, headers)}
    assert got == expected


def test_live_matrix_on_one_exchange() -> None:
    router = HeadersRouter()
    for index, (arguments, _) in enumerate(LIVE_MATRIX):
        router.bind(index, "", arguments)
    for h, headers in enumerate(HEADER_SETS):
        expected = {b for b, (_, matched) in enumerate(LIVE_MATRIX) if h in matched}
        result = router.route("", headers)
        assert len(result) == len(set(result))
        assert set(result) == expected, headers


HEADER_TABLE: list[tuple[dict[str, Any], dict[str, Any] | None, bool]] = [
    # "all" needs every non-x argument; "any" needs one.
    ({"x-match": "all", "a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, True),
    ({"x-match": "all", "a": 1, "b": 2}, {"a": 1}, False),
    ({"x-match": "all", "a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ({"x-match": "any", "a": 1, "b": 2}, {"a": 0, "b": 2}, True),
    ({"x-match": "any", "a": 1, "b": 2}, {"a": 0, "b": 0}, False),
    ({"x-match": "any", "a": 1, "b": 2}, None, False),
    ({"a": 1}, None, False),
    ({"a": 1}, {"A": 1}, False),  # header names are case-sensitive
    # x- arguments beside ordinary ones.
    ({"x-match": "all", "a": 1, "x-b": 2}, {"a": 1}, True),
    ({"x-match": "all-with-x", "a": 1, "x-b": 2}, {"a": 1}, False),
    ({"x-match": "all-with-x", "a": 1, "x-b": 2}, {"a": 1, "x-b": 2}, True),
    ({"x-match": "any", "a": 1, "x-b": 2}, {"x-b": 2}, False),
    ({"x-match": "any-with-x", "a": 1, "x-b": 2}, {"x-b": 2}, True),
    # x-match itself is never compared, even under the -with-x variants.
    ({"x-match": "all-with-x"}, {}, True),
    ({"x-match": "any-with-x"}, {"x-match": "any-with-x"}, False),
    # A void header is present; it matches a void (presence) argument, not a value.
    ({"a": None}, {"a": None}, True),
    ({"a": 0}, {"a": None}, False),
    ({"a": ""}, {"a": None}, False),
    # Exact values (Erlang =:=): decimals keep their scale, strings are UTF-8 bytes.
    ({"a": Decimal("1.5")}, {"a": Decimal("1.5")}, True),
    ({"a": Decimal("1.5")}, {"a": Decimal("1.50")}, False),
    ({"a": "é"}, {"a": "é".encode()}, True),
    ({"a": 0}, {"a": False}, False),
    ({"a": 1.5}, {"a": 1.5}, True),
    # Nested values keep their types: a longstr inside an array is not a binary.
    ({"a": ["x"]}, {"a": ["x"]}, True),
    ({"a": ["x"]}, {"a": [b"x"]}, False),
    ({"a": [True]}, {"a": [1]}, False),
    ({"a": {"k": "v"}}, {"a": {"k": "v"}}, True),
    ({"a": {"k": "v"}}, {"a": {"k": "w"}}, False),
    ({"a": {}}, {"a": {}}, True),
    ({"a": []}, {"a": {}}, False),
]


@pytest.mark.parametrize(("arguments", "headers", "expected"), HEADER_TABLE)
def test_match_table(arguments: dict[str, Any], headers: dict[str, Any] | None, expected: bool) -> None:
    assert routes(arguments, headers) is expected


@pytest.mark.rabbitmq_differs
def test_numbers_compare_exactly() -> None:
    # Current RabbitMQ compares with =:=; 3.12 and older used == so 1 and 1.0 were equal there.
    assert not routes({"a": 1}, {"a": 1.0})
    assert not routes({"a": 1.0}, {"a": 1})


@pytest.mark.rabbitmq_differs
def test_timestamp_headers_are_compared_in_milliseconds() -> None:
    # mc_amqpl:routing_headers turns a timestamp header into milliseconds; binding arguments are
    # left as they are (seconds). 3.10.8 matched {"t": T5} and {"t": 5} both ways.
    assert not routes({"t": T5}, {"t": T5})
    assert routes({"t": T5}, {"t": 5})
    assert routes({"t": 5000}, {"t": T5})
    assert not routes({"t": 5}, {"t": T5})
    assert routes({"t": None}, {"t": T5})
    # The same with the codec's Timestamp, which is what a decoded header or argument holds.
    assert not routes({"t": Timestamp(5)}, {"t": Timestamp(5)})
    assert routes({"t": Timestamp(5)}, {"t": 5})
    assert routes({"t": 5000}, {"t": Timestamp(5)})
    assert not routes({"t": 5}, {"t": Timestamp(5)})


def test_codec_longstr_is_a_binary() -> None:
    # A longstr that is not UTF-8 reaches us as LongStr; at the top level it equals the same bytes
    # as a byte array ("x"), inside an array it does not (nested values keep their types).
    assert routes({"s": LongStr(b"\xff")}, {"s": b"\xff"})
    assert routes({"s": b"\xff"}, {"s": LongStr(b"\xff")})
    assert routes({"s": LongStr(b"\xff")}, {"s": LongStr(b"\xff")})
    assert not routes({"s": [LongStr(b"\xff")]}, {"s": [b"\xff"]})
    assert routes({"s": [LongStr(b"\xff")]}, {"s": [LongStr(b"\xff")]})


def test_routing_key_is_ignored() -> None:
    router = HeadersRouter()
    router.bind("q", "some.key", {"a": 1})
    assert router.route("", {"a": 1}) == ("q",)
    assert router.route("other", {"a": 1}) == ("q",)
    assert router.route("some.key", {"a": 2}) == ()


def test_needs_headers_and_registry() -> None:
    assert HeadersRouter.needs_headers is True
    assert HeadersRouter.type_name == "headers"
    assert router_for("headers") is HeadersRouter
    assert ROUTER_TYPES["headers"] is HeadersRouter
    assert all(cls.needs_headers is (name == "headers") for name, cls in ROUTER_TYPES.items())
    assert router_for("x-consistent-hash") is None


# --- Bindings -----------------------------------------------------------------------------------


def test_bind_unbind_with_shared_arguments() -> None:
    router = HeadersRouter()
    args = {"x-match": "any", "a": 1}
    assert router.bind("q1", "", args)
    assert router.bind("q1", "k", args)  # another routing key: another binding, one group
    assert router.bind("q2", "", {"a": 1, "x-match": "any"})
    assert not router.bind("q2", "", dict(args))  # the same arguments in another order
    assert len(router) == 3
    assert len(router._groups) == 1
    assert set(router.route("", {"a": 1})) == {"q1", "q2"}
    assert router.unbind("q1", "", args)
    assert set(router.route("", {"a": 1})) == {"q1", "q2"}  # q1 is still bound with "k"
    assert router.unbind("q1", "k", args)
    assert router.route("", {"a": 1}) == ("q2",)
    assert not router.unbind("q1", "k", args)
    assert router.unbind_destination("q2") == 1
    assert router.route("", {"a": 1}) == ()
    assert router._groups == {}
    assert len(router) == 0


def test_one_destination_through_two_matching_bindings_gets_one_copy() -> None:
    router = HeadersRouter()
    router.bind("q", "", {"a": 1})
    router.bind("q", "", {"x-match": "any", "b": 2})
    router.bind("other", "", {"a": 2})
    assert router.route("", {"a": 1, "b": 2}) == ("q",)
    assert router.route("", {"a": 2, "b": 2}) == ("q", "other")


def test_same_header_against_different_expectations() -> None:
    # The per-message memo of normalised header values must not leak between bindings.
    router = HeadersRouter()
    router.bind("one", "", {"a": 1})
    router.bind("two", "", {"a": 2})
    router.bind("present", "", {"a": None})
    router.bind("str", "", {"a": "2"})
    assert set(router.route("", {"a": 2})) == {"two", "present"}
    assert set(router.route("", {"a": "2"})) == {"str", "present"}
    assert router.route("", {"b": 2}) == ()


def test_bindings_listing() -> None:
    router = HeadersRouter()
    router.bind("q", "", {"x-match": "all", "a": 1})
    router.bind("q", "", None)
    assert list(router.bindings()) == [("q", "", {"x-match": "all", "a": 1}), ("q", "", {})]
    assert router.has_binding("q", "", {"a": 1, "x-match": "all"})
    assert not router.has_binding("q", "", {"a": 1})


# --- x-match validation ---------------------------------------------------------------------------

_EXPECTED = "expected all, any, all-with-x, or any-with-x"

VALIDATION_TABLE: list[tuple[object, str | None]] = [
    ("all", None),
    ("any", None),
    ("all-with-x", None),
    ("any-with-x", None),
    # Texts as RabbitMQ 3.10.8 sent them (after "PRECONDITION_FAILED - ").
    ("foo", f'Invalid x-match field value <<"foo">>; {_EXPECTED}'),
    ("ALL", f'Invalid x-match field value <<"ALL">>; {_EXPECTED}'),
    ("", f"Invalid x-match field value <<>>; {_EXPECTED}"),
    ("héllo", f'Invalid x-match field value <<"héllo">>; {_EXPECTED}'),
    ("ā", f"Invalid x-match field value <<196,129>>; {_EXPECTED}"),
    ('a"b\\c', f'Invalid x-match field value <<"a\\"b\\\\c">>; {_EXPECTED}'),
    ("tab\there\n", f'Invalid x-match field value <<"tab\\there\\n">>; {_EXPECTED}'),
    ("\x01x", f"Invalid x-match field value <<1,120>>; {_EXPECTED}"),
    ("\x7f", f"Invalid x-match field value <<127>>; {_EXPECTED}"),
    (1, "Invalid x-match field type signedint (value 1); expected longstr"),
    (2**40, "Invalid x-match field type long (value 1099511627776); expected longstr"),
    (True, "Invalid x-match field type bool (value true); expected longstr"),
    (b"all", 'Invalid x-match field type binary (value <<"all">>); expected longstr'),
    (None, "Invalid x-match field type void (value undefined); expected longstr"),
    (
        [1, "a"],
        'Invalid x-match field type array (value [{signedint,1},{longstr,<<"a">>}]); expected longstr',
    ),
    (
        [True, 2**40],
        "Invalid x-match field type array (value [{bool,true},{long,1099511627776}]); expected longstr",
    ),
    ({"k": "v"}, 'Invalid x-match field type table (value [{<<"k">>,longstr,<<"v">>}]); expected longstr'),
    # As the codec decodes them: a longstr that is not UTF-8, and a timestamp.
    (LongStr(b"\x80\x81"), f"Invalid x-match field value <<128,129>>; {_EXPECTED}"),
    (Timestamp(5), "Invalid x-match field type timestamp (value 5); expected longstr"),
]


@pytest.mark.parametrize(("x_match", "expected"), VALIDATION_TABLE)
def test_validate_x_match(x_match: object, expected: str | None) -> None:
    assert HeadersRouter.validate_binding_arguments({"x-match": x_match, "a": 1}) == expected


# RabbitMQ lays long terms out over several lines (io_lib_pretty, 80 columns, from the column the
# term starts at). Captured from 3.10.8; where RabbitMQ cut its reply at 255 octets, the prefix.
_ARRAY = "Invalid x-match field type array (value "
_PAD41, _PAD42 = "\n" + " " * 41, "\n" + " " * 42
LAYOUT_TABLE: list[tuple[object, str]] = [
    (["x" * 20], _ARRAY + '[{longstr,<<"' + "x" * 20 + '">>}]); expected longstr'),
    (["x" * 21], _ARRAY + "[{longstr," + _PAD42 + '<<"' + "x" * 21 + '">>}]); expected longstr'),
    (["a" * 60], _ARRAY + "[{longstr," + _PAD42 + '<<"' + "a" * 60 + '">>}]); expected longstr'),
    (
        [1, 2, 3, "y" * 20],
        _ARRAY
        + "[{signedint,1},"
        + _PAD41
        + "{signedint,2},"
        + _PAD41
        + "{signedint,3},"
        + _PAD41
        + '{longstr,<<"yyyyyyyyy',
    ),
    (
        {"key": "v" * 30},
        "Invalid x-match field type table (value "
        + '[{<<"key">>,longstr,'
        + _PAD42
        + '<<"'
        + "v" * 30
        + '">>}]); expected longstr',
    ),
    (
        ["\x01" * 20],
        _ARRAY + "[{longstr," + _PAD42 + "<<" + "1," * 16 + "\n" + " " * 44 + "1,1,1,1>>}]); expected longstr",
    ),
    (
        [["q" * 40, 1]],
        _ARRAY + "[{array," + _PAD42 + "[{longstr,\n" + " " * 44 + '<<"' + "q" * 40 + '">>},\n' + " " * 35,
    ),
    (
        ["x" * 30, "y" * 30, "z" * 30],
        _ARRAY + "[{longstr," + _PAD42 + '<<"' + "x" * 30 + '">>},' + _PAD41 + "{longstr," + _PAD42 + '<<"yy',
    ),
    ("a" * 120, 'Invalid x-match field value <<"' + "a" * 120 + f'">>; {_EXPECTED}'),
]


@pytest.mark.parametrize(("x_match", "expected"), LAYOUT_TABLE)
def test_validate_layout_of_long_terms(x_match: object, expected: str) -> None:
    text = HeadersRouter.validate_binding_arguments({"x-match": x_match})
    assert text is not None
    assert text.startswith(expected)


def test_validate_without_x_match() -> None:
    assert HeadersRouter.validate_binding_arguments(None) is None
    assert HeadersRouter.validate_binding_arguments({}) is None
    assert HeadersRouter.validate_binding_arguments({"a": "b", "x-other": 1}) is None
    # Only the headers exchange checks x-match.
    assert Router.validate_binding_arguments({"x-match": "foo"}) is None


def test_erlang_terms_not_seen_live() -> None:
    # Values pika cannot send, rendered the way io_lib prints them (approximated for floats).
    assert erlang_term(1.5) == "1.5"
    assert erlang_term(1e20) == "1.0e20"
    assert erlang_term(Decimal("1.5")) == "{1,15}"
    assert erlang_term(T5) == "5"
    assert erlang_term([], 78) == "[]"
    assert erlang_term({}, 78) == "[]"


def test_route_without_bindings() -> None:
    router: HeadersRouter = HeadersRouter()
    assert router.route("", {"a": 1}) == ()
    assert router.route("", None) == ()


def test_destinations_are_any_hashable() -> None:
    class Exchange:
        pass

    target: Hashable = Exchange()
    router = HeadersRouter()
    router.bind(target, "", {"a": 1})
    assert router.route("", {"a": 1}) == (target,)
    assert router.is_bound_to(target)
