"""Direct exchange routing, and the binding identity every exchange type shares (base.Router)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from lapine.amqp.codec import LongStr, Timestamp
from lapine.broker.exchanges import ROUTER_TYPES, DirectRouter, Router, router_for


def test_registry() -> None:
    assert router_for("direct") is DirectRouter
    assert set(ROUTER_TYPES) == {"direct", "fanout", "topic", "headers"}
    assert all(cls.type_name == name for name, cls in ROUTER_TYPES.items())
    assert all(issubclass(cls, Router) for cls in ROUTER_TYPES.values())
    assert router_for("Direct") is None  # type names are case-sensitive in RabbitMQ
    assert DirectRouter.needs_headers is False


def test_exact_match_only() -> None:
    router = DirectRouter()
    router.bind("q1", "orders", None)
    router.bind("q2", "", None)
    assert router.route("orders") == ("q1",)
    assert router.route("") == ("q2",)
    for other in ("Orders", "orders.", "order", "#", "*", " orders"):
        assert router.route(other) == ()


def test_route_returns_a_prebuilt_tuple() -> None:
    router = DirectRouter()
    router.bind("q1", "k", None)
    router.bind("q2", "k", None)
    first = router.route("k")
    assert first == ("q1", "q2")
    assert router.route("k") is first
    assert isinstance(router.route("missing"), tuple)


def test_duplicates_and_arguments() -> None:
    router = DirectRouter()
    assert router.bind("q", "k", None)
    assert not router.bind("q", "k", None)
    assert not router.bind("q", "k", {})  # no arguments and an empty table are the same
    assert router.bind("q", "k", {"a": 1})  # differs only in arguments: a distinct binding
    assert len(router) == 2
    assert router.route("k") == ("q",)  # delivered once
    assert router.unbind("q", "k", None)
    assert router.route("k") == ("q",)  # still bound with {"a": 1}
    assert not router.unbind("q", "k", None)
    assert router.unbind("q", "k", {"a": 1})
    assert router.route("k") == ()
    assert len(router) == 0
    assert router._routes == {}


def test_unbind_destination() -> None:
    router = DirectRouter()
    q1, q2 = object(), object()
    router.bind(q1, "a", None)
    router.bind(q1, "b", None)
    router.bind(q1, "b", {"x": "y"})
    router.bind(q2, "b", None)
    assert router.route("b") == (q1, q2)
    assert router.unbind_destination(q1) == 3
    assert router.unbind_destination(q1) == 0
    assert router.route("a") == ()
    assert router.route("b") == (q2,)
    assert not router.is_bound_to(q1)
    assert router.is_bound_to(q2)
    assert list(router.bindings()) == [(q2, "b", {})]


def test_bindings_listing_and_lookup() -> None:
    router = DirectRouter()
    args: dict[str, Any] = {"b": [1, 2], "a": {"n": None}}
    router.bind("q", "k1", args)
    router.bind("q", "k2", None)
    listed = list(router.bindings())
    assert listed == [("q", "k1", args), ("q", "k2", {})]
    assert router.has_binding("q", "k1", {"a": {"n": None}, "b": [1, 2]})
    assert not router.has_binding("q", "k1", None)
    assert not router.has_binding("other", "k2", None)
    # The stored arguments are a copy, and read-only.
    args["c"] = 3
    assert dict(next(iter(router.bindings()))[2]) == {"b": [1, 2], "a": {"n": None}}
    with pytest.raises(TypeError):
        next(iter(router.bindings()))[2]["d"] = 4  # type: ignore[index]
    # Unbinding while iterating is safe: bindings() iterates a snapshot.
    for destination, key, arguments in router.bindings():
        router.unbind(destination, key, arguments)
    assert len(router) == 0


# Binding identity follows RabbitMQ, checked with rabbitmqctl list_bindings on 3.10.8: the top-level
# arguments table is sorted (rabbit_binding:sort_args), nested tables keep their order, and
# values are typed ("v" as longstr and as binary, true and 1, are distinct bindings).
SAME_ARGUMENTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ({"n": {"x": [1, {"y": b"z"}]}}, {"n": {"x": [1, {"y": b"z"}]}}),
    ({"d": Decimal("1.5")}, {"d": Decimal("1.5")}),
    ({"t": datetime.fromtimestamp(5, UTC)}, {"t": datetime.fromtimestamp(5, UTC)}),
    ({"f": float("nan")}, {"f": float("nan")}),
    ({"v": None}, {"v": None}),
    ({"t": Timestamp(5)}, {"t": datetime.fromtimestamp(5, UTC)}),
    ({"s": LongStr(b"\xff")}, {"s": LongStr(b"\xff")}),
]
DIFFERENT_ARGUMENTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"n": {"x": 1, "y": 2}}, {"n": {"y": 2, "x": 1}}),
    ({"s": "v"}, {"s": b"v"}),
    ({"i": 1}, {"i": True}),
    ({"i": 1}, {"i": 1.0}),
    ({"i": 0}, {"i": None}),
    ({"d": Decimal("1.0")}, {"d": Decimal("1")}),
    ({"a": [1, 2]}, {"a": [2, 1]}),
    ({"a": []}, {"a": {}}),
    ({"a": 1}, {"A": 1}),
    ({"t": datetime.fromtimestamp(5, UTC)}, {"t": 5}),
    ({"t": Timestamp(5)}, {"t": 5}),
    ({"s": LongStr(b"\xff")}, {"s": b"\xff"}),  # longstr and byte array are different types
]


@pytest.mark.parametrize(("first", "second"), SAME_ARGUMENTS)
def test_same_binding_arguments(first: dict[str, Any], second: dict[str, Any]) -> None:
    router = DirectRouter()
    assert router.bind("q", "k", first)
    assert not router.bind("q", "k", second)
    assert router.has_binding("q", "k", second)
    assert router.unbind("q", "k", second)
    assert len(router) == 0


@pytest.mark.parametrize(("first", "second"), DIFFERENT_ARGUMENTS)
def test_different_binding_arguments(first: dict[str, Any], second: dict[str, Any]) -> None:
    router = DirectRouter()
    assert router.bind("q", "k", first)
    assert router.bind("q", "k", second)
    assert len(router) == 2
    assert router.unbind("q", "k", second)
    assert router.has_binding("q", "k", first)
    assert not router.has_binding("q", "k", second)


def test_destinations_compare_by_identity() -> None:
    class Queue:
        def __init__(self, name: str) -> None:
            self.name = name

    twin1, twin2 = Queue("same"), Queue("same")
    router = DirectRouter()
    assert router.bind(twin1, "k", None)
    assert router.bind(twin2, "k", None)
    assert router.route("k") == (twin1, twin2)
    assert router.unbind_destination(twin1) == 1
    assert router.route("k") == (twin2,)
