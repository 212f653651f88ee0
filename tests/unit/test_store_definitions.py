"""Definitions in the SQLite store: round trips, cascading deletes, persistence across reopen."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lapine.amqp.codec import LongStr, Timestamp
from lapine.store import (
    BindingDef,
    Definitions,
    ExchangeDef,
    GlobalParameterDef,
    ParameterDef,
    PermissionDef,
    PolicyDef,
    QueueDef,
    SqliteStore,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)
from lapine.store.sqlite import decode_value, encode_value

Opener = Callable[[], SqliteStore]


def run_now(fn: Callable[[], object]) -> None:
    fn()


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Opener]:
    opened: list[SqliteStore] = []

    def opener() -> SqliteStore:
        store = SqliteStore(tmp_path / "data", notify=run_now)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


ARGS: dict[str, Any] = {
    "x-max-length": 10,
    "x-message-ttl": 2**40,
    "x-dead-letter-exchange": "dlx",
    "bool": True,
    "float": 1.5,
    "bytes": b"\x00\xff",
    "longstr": LongStr(b"\xff\xfe"),
    "decimal": Decimal("3.14"),
    "when": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    "stamp": Timestamp(1700000000),
    "none": None,
    "nested": {"list": [1, "two", [3.0], {"four": False}]},
    "surrogate": "abc\udcff",
}


def populate(store: SqliteStore) -> int:
    store.put_vhost(VHostDef("/", "default", ["prod"], "classic"))
    store.put_vhost(VHostDef("other"))
    store.put_user(UserDef("guest", "hash==", "rabbit_password_hashing_sha256", ["administrator"]))
    store.put_permission(PermissionDef("guest", "/", ".*", ".*", ".*"))
    store.put_topic_permission(TopicPermissionDef("guest", "/", "amq.topic", "^a", "^b"))
    store.put_exchange(ExchangeDef("/", "ex", "topic", arguments=ARGS))
    store.put_exchange(ExchangeDef("/", "ex2", "fanout", internal=True, auto_delete=True))
    queue_id = store.put_queue(QueueDef("/", "q", arguments=ARGS))
    store.put_binding(BindingDef("/", "ex", "q", "queue", "a.#", {"x-match": "all"}))
    store.put_binding(BindingDef("/", "ex", "ex2", "exchange", "b.*"))
    store.put_policy(PolicyDef("/", "ttl", "^q", "queues", {"message-ttl": 1000}, 5))
    store.put_parameter(ParameterDef("/", "vhost-limits", "limits", {"max-queues": 10}))
    store.put_global_parameter(GlobalParameterDef("cluster_name", "rabbit@x"))
    return queue_id


def expected(queue_id: int) -> Definitions:
    return Definitions(
        vhosts=[VHostDef("/", "default", ["prod"], "classic"), VHostDef("other")],
        users=[UserDef("guest", "hash==", "rabbit_password_hashing_sha256", ["administrator"])],
        permissions=[PermissionDef("guest", "/", ".*", ".*", ".*")],
        topic_permissions=[TopicPermissionDef("guest", "/", "amq.topic", "^a", "^b")],
        exchanges=[
            ExchangeDef("/", "ex", "topic", arguments=ARGS),
            ExchangeDef("/", "ex2", "fanout", internal=True, auto_delete=True),
        ],
        queues=[QueueDef("/", "q", arguments=ARGS, queue_id=queue_id)],
        bindings=[
            BindingDef("/", "ex", "ex2", "exchange", "b.*"),
            BindingDef("/", "ex", "q", "queue", "a.#", {"x-match": "all"}),
        ],
        policies=[PolicyDef("/", "ttl", "^q", "queues", {"message-ttl": 1000}, 5)],
        parameters=[ParameterDef("/", "vhost-limits", "limits", {"max-queues": 10})],
        global_parameters=[GlobalParameterDef("cluster_name", "rabbit@x")],
    )


def test_round_trip_and_reopen(open_store: Opener) -> None:
    store = open_store()
    queue_id = populate(store)
    assert store.load_definitions() == expected(queue_id)
    store.close()
    reopened = open_store()
    loaded = reopened.load_definitions()
    assert loaded == expected(queue_id)
    # Value types survive exactly, not just values that compare equal.
    arguments = loaded.queues[0].arguments
    assert type(arguments["longstr"]) is LongStr
    assert type(arguments["stamp"]) is Timestamp
    assert type(arguments["bytes"]) is bytes
    assert arguments["when"].tzinfo is not None
    assert reopened.queue_id("/", "q") == queue_id


def test_put_replaces(open_store: Opener) -> None:
    store = open_store()
    store.put_user(UserDef("u", "h1", "alg"))
    store.put_user(UserDef("u", "h2", "alg", ["management"]))
    assert store.load_definitions().users == [UserDef("u", "h2", "alg", ["management"])]
    first = store.put_queue(QueueDef("/", "q", arguments={"a": 1}))
    assert store.put_queue(QueueDef("/", "q", arguments={"a": 2})) == first
    assert store.load_definitions().queues == [QueueDef("/", "q", arguments={"a": 2}, queue_id=first)]


def test_delete_exchange_removes_bindings_from_and_to_it(open_store: Opener) -> None:
    store = open_store()
    populate(store)
    store.put_binding(BindingDef("/", "ex2", "q", "queue", ""))
    store.delete_exchange("/", "ex2")
    loaded = store.load_definitions()
    assert [e.name for e in loaded.exchanges] == ["ex"]
    assert loaded.bindings == [BindingDef("/", "ex", "q", "queue", "a.#", {"x-match": "all"})]


def test_delete_queue_removes_its_bindings_and_messages(open_store: Opener) -> None:
    store = open_store()
    queue_id = populate(store)
    store.put_exchange(ExchangeDef("/", "q", "direct"))  # same name, other kind: must survive
    store.put_binding(BindingDef("/", "ex", "q", "exchange", "k"))
    store.enqueue(queue_id, 0, b"x", b"rk", b"h", b"body")
    store.delete_queue("/", "q")
    loaded = store.load_definitions()
    assert loaded.queues == []
    assert {(b.destination, b.destination_type) for b in loaded.bindings} == {("ex2", "exchange"), ("q", "exchange")}
    assert store.queue_id("/", "q") is None
    # The id is reused, and the new queue does not inherit the old one's messages.
    again = store.put_queue(QueueDef("/", "q2"))
    assert again == queue_id
    assert store.read_messages(again, -1, 10) == []


def test_delete_vhost_cascades(open_store: Opener) -> None:
    store = open_store()
    queue_id = populate(store)
    store.enqueue(queue_id, 0, b"x", b"rk", b"h", b"body")
    store.put_permission(PermissionDef("guest", "other", "", "", ""))
    store.delete_vhost("/")
    loaded = store.load_definitions()
    assert loaded.vhosts == [VHostDef("other")]
    assert loaded.permissions == [PermissionDef("guest", "other", "", "", "")]
    assert (loaded.exchanges, loaded.queues, loaded.bindings, loaded.policies, loaded.parameters) == ([],) * 5
    assert loaded.topic_permissions == []
    assert loaded.users and loaded.global_parameters
    assert store.recover_queues() == {}


def test_delete_user_removes_permissions(open_store: Opener) -> None:
    store = open_store()
    populate(store)
    store.delete_user("guest")
    loaded = store.load_definitions()
    assert (loaded.users, loaded.permissions, loaded.topic_permissions) == ([], [], [])


def test_single_deletes(open_store: Opener) -> None:
    store = open_store()
    populate(store)
    store.delete_binding(BindingDef("/", "ex", "q", "queue", "a.#", {"x-match": "all"}))
    store.delete_binding(BindingDef("/", "ex", "ex2", "exchange", "b.*", {"other": "args"}))  # not this one
    store.delete_permission("guest", "/")
    store.delete_topic_permission("guest", "/", "amq.topic")
    store.delete_policy("/", "ttl")
    store.delete_parameter("/", "vhost-limits", "limits")
    loaded = store.load_definitions()
    assert loaded.bindings == [BindingDef("/", "ex", "ex2", "exchange", "b.*")]
    assert (loaded.permissions, loaded.topic_permissions, loaded.policies) == ([], [], [])
    assert loaded.parameters == []


def test_binding_identity_ignores_argument_order(open_store: Opener) -> None:
    store = open_store()
    store.put_binding(BindingDef("/", "x", "q", "queue", "k", {"a": 1, "b": 2}))
    store.put_binding(BindingDef("/", "x", "q", "queue", "k", {"b": 2, "a": 1}))
    assert len(store.load_definitions().bindings) == 1
    store.delete_binding(BindingDef("/", "x", "q", "queue", "k", {"b": 2, "a": 1}))
    assert store.load_definitions().bindings == []


def test_non_durable_objects_are_not_persisted(open_store: Opener) -> None:
    store = open_store()
    store.put_exchange(ExchangeDef("/", "tmp", "direct", durable=False))
    queue_id = store.put_queue(QueueDef("/", "tmp", durable=False))
    assert store.queue_id("/", "tmp") == queue_id
    store.enqueue(queue_id, 0, b"x", b"rk", b"h", b"paged out")
    assert store.read_messages(queue_id, -1, 10)[0].body == b"paged out"
    assert store.load_definitions() == Definitions()
    store.close()
    reopened = open_store()
    assert reopened.load_definitions() == Definitions()
    assert reopened.queue_id("/", "tmp") is None


def test_callback_mode_returns_at_once_and_calls_back_when_durable(open_store: Opener) -> None:
    store = open_store()
    done = threading.Event()
    store.put_vhost(VHostDef("v"), callback=done.set)
    assert done.wait(5)
    assert store.load_definitions().vhosts == [VHostDef("v")]


def test_bad_values_fail_the_call_not_the_store(open_store: Opener) -> None:
    store = open_store()
    with pytest.raises(TypeError):
        store.put_exchange(ExchangeDef("/", "x", "direct", arguments={"bad": object()}))
    with pytest.raises(ValueError):
        store.put_queue(QueueDef("/", "bad\udcff"))
    with pytest.raises(ValueError):
        store.put_binding(BindingDef("/", "x", "q", "table", "k"))
    assert store.queue_id("/", "bad\udcff") is None
    assert store.failed is None
    store.put_vhost(VHostDef("still works"))
    assert store.load_definitions().vhosts == [VHostDef("still works")]


# --- the value encoding -----------------------------------------------------------------------

field_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats()
    | st.text()
    | st.binary()
    | st.binary().map(LongStr)
    | st.integers(min_value=0, max_value=2**64 - 1).map(Timestamp)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=-5)))),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def typed(value: Any) -> Any:
    """The value with every node's exact type, so that 1 == True or b"" == LongStr(b"") do not pass."""
    if isinstance(value, dict):
        return ("dict", sorted((k, typed(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=10), field_values, max_size=5))
def test_value_encoding_round_trips_exactly(table: dict[str, Any]) -> None:
    text = encode_value(table)
    assert text.isascii()
    assert typed(decode_value(text)) == typed(table)
    # Canonical: the same table in another key order encodes the same.
    assert encode_value(dict(reversed(list(table.items())))) == text
