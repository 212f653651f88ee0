"""Fanout exchange routing: every bound destination, once, whatever the routing key."""

from __future__ import annotations

from lapine.broker.exchanges import FanoutRouter, router_for


def test_registry() -> None:
    assert router_for("fanout") is FanoutRouter
    assert FanoutRouter.type_name == "fanout"
    assert FanoutRouter.needs_headers is False


def test_routes_to_all_whatever_the_key() -> None:
    router = FanoutRouter()
    assert router.route("") == ()
    router.bind("q1", "", None)
    router.bind("q2", "some.key", None)
    router.bind("q3", "#", {"x-match": "any"})
    for key in ("", "some.key", "other", "#"):
        assert router.route(key) == ("q1", "q2", "q3")
    assert router.route("k", {"a": 1}) == ("q1", "q2", "q3")
    assert router.route("k") is router.route("other")  # one prebuilt tuple


def test_one_copy_per_destination() -> None:
    router = FanoutRouter()
    assert router.bind("q", "a", None)
    assert router.bind("q", "b", None)
    assert router.bind("q", "a", {"x": 1})
    assert not router.bind("q", "a", {})
    assert len(router) == 3
    assert router.route("") == ("q",)
    assert router.unbind("q", "a", None)
    assert router.unbind("q", "b", None)
    assert router.route("") == ("q",)
    assert not router.unbind("q", "b", None)
    assert router.unbind("q", "a", {"x": 1})
    assert router.route("") == ()
    assert not router.is_bound_to("q")


def test_unbind_destination_keeps_the_others_in_order() -> None:
    router = FanoutRouter()
    queues = [object() for _ in range(4)]
    for q in queues:
        router.bind(q, "", None)
    router.bind(queues[1], "again", None)
    assert router.unbind_destination(queues[1]) == 2
    assert router.route("") == (queues[0], queues[2], queues[3])
    assert router.unbind_destination(queues[1]) == 0
    assert [b[0] for b in router.bindings()] == [queues[0], queues[2], queues[3]]
    assert len(router) == 3
