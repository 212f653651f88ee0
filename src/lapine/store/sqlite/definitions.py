"""The definitions' rows: what each definition change runs in the writer, and loading them all.

Each ``put_*`` / ``delete_*`` checks its values on the caller's thread and returns the function
the writer runs (see writer.Op); the store adds the queue-id registry's part.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from lapine.store.base import (
    BindingDef,
    Definitions,
    ExchangeDef,
    GlobalParameterDef,
    ParameterDef,
    PermissionDef,
    PolicyDef,
    QueueDef,
    TopicPermissionDef,
    UserDef,
    VHostDef,
)
from lapine.store.sqlite.schema import delete_messages
from lapine.store.sqlite.values import decode_value, encode_value

Run = Callable[[sqlite3.Connection], Any]
# The tables a vhost's rows are in, deleted with it.
_VHOST_TABLES = ("permissions", "topic_permissions", "exchanges", "queues", "bindings", "policies", "parameters")


def put_vhost(vhost: VHostDef) -> Run:
    row = params(vhost.name, vhost.description, json.dumps(list(vhost.tags)), vhost.default_queue_type)
    return lambda conn: conn.execute("INSERT OR REPLACE INTO vhosts VALUES (?, ?, ?, ?)", row)


def delete_vhost(name: str, queue_ids: list[int]) -> Run:
    params(name)

    def run(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM vhosts WHERE name = ?", (name,))
        for table in _VHOST_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE vhost = ?", (name,))
        for queue_id in queue_ids:
            delete_messages(conn, queue_id)

    return run


def put_user(user: UserDef) -> Run:
    row = params(user.name, user.password_hash, user.hashing_algorithm, json.dumps(list(user.tags)))
    return lambda conn: conn.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?)", row)


def delete_user(name: str) -> Run:
    params(name)

    def run(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM users WHERE name = ?", (name,))
        conn.execute("DELETE FROM permissions WHERE user = ?", (name,))
        conn.execute("DELETE FROM topic_permissions WHERE user = ?", (name,))

    return run


def put_permission(p: PermissionDef) -> Run:
    row = params(p.user, p.vhost, p.configure, p.write, p.read)
    return lambda conn: conn.execute("INSERT OR REPLACE INTO permissions VALUES (?, ?, ?, ?, ?)", row)


def delete_permission(user: str, vhost: str) -> Run:
    key = params(user, vhost)
    return lambda conn: conn.execute("DELETE FROM permissions WHERE user = ? AND vhost = ?", key)


def put_topic_permission(p: TopicPermissionDef) -> Run:
    row = params(p.user, p.vhost, p.exchange, p.write, p.read)
    return lambda conn: conn.execute("INSERT OR REPLACE INTO topic_permissions VALUES (?, ?, ?, ?, ?)", row)


def delete_topic_permission(user: str, vhost: str, exchange: str) -> Run:
    key = params(user, vhost, exchange)
    sql = "DELETE FROM topic_permissions WHERE user = ? AND vhost = ? AND exchange = ?"
    return lambda conn: conn.execute(sql, key)


def put_exchange(e: ExchangeDef) -> Run:
    row = params(e.vhost, e.name, e.type, e.durable, e.auto_delete, e.internal, encode_value(e.arguments))
    return lambda conn: conn.execute("INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?, ?, ?, ?, ?)", row)


def delete_exchange(vhost: str, name: str) -> Run:
    params(vhost, name)

    def run(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM exchanges WHERE vhost = ? AND name = ?", (vhost, name))
        conn.execute("DELETE FROM bindings WHERE vhost = ? AND source = ?", (vhost, name))
        conn.execute(
            "DELETE FROM bindings WHERE vhost = ? AND destination_type = 'exchange' AND destination = ?",
            (vhost, name),
        )

    return run


def put_queue(queue_id: int, queue: QueueDef, arguments: str) -> Run:
    row = (queue_id, queue.vhost, queue.name, True, queue.auto_delete, arguments)
    return lambda conn: conn.execute("INSERT OR REPLACE INTO queues VALUES (?, ?, ?, ?, ?, ?)", row)


def delete_queue(vhost: str, name: str, queue_id: int | None) -> Run:
    def run(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM queues WHERE vhost = ? AND name = ?", (vhost, name))
        conn.execute(
            "DELETE FROM bindings WHERE vhost = ? AND destination_type = 'queue' AND destination = ?",
            (vhost, name),
        )
        if queue_id is not None:
            delete_messages(conn, queue_id)

    return run


def put_binding(binding: BindingDef) -> Run:
    row = _binding_row(binding)
    return lambda conn: conn.execute("INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?, ?)", row)


def delete_binding(binding: BindingDef) -> Run:
    row = _binding_row(binding)
    sql = (
        "DELETE FROM bindings WHERE vhost = ? AND source = ? AND destination_type = ? "
        "AND destination = ? AND routing_key = ? AND arguments = ?"
    )
    return lambda conn: conn.execute(sql, row)


def put_policy(p: PolicyDef) -> Run:
    row = params(p.vhost, p.name, p.pattern, p.apply_to, encode_value(p.definition), p.priority)
    return lambda conn: conn.execute("INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?, ?, ?)", row)


def delete_policy(vhost: str, name: str) -> Run:
    key = params(vhost, name)
    return lambda conn: conn.execute("DELETE FROM policies WHERE vhost = ? AND name = ?", key)


def put_parameter(p: ParameterDef) -> Run:
    row = params(p.vhost, p.component, p.name, encode_value(p.value))
    return lambda conn: conn.execute("INSERT OR REPLACE INTO parameters VALUES (?, ?, ?, ?)", row)


def delete_parameter(vhost: str, component: str, name: str) -> Run:
    key = params(vhost, component, name)
    sql = "DELETE FROM parameters WHERE vhost = ? AND component = ? AND name = ?"
    return lambda conn: conn.execute(sql, key)


def put_global_parameter(parameter: GlobalParameterDef) -> Run:
    row = params(parameter.name, encode_value(parameter.value))
    return lambda conn: conn.execute("INSERT OR REPLACE INTO global_parameters VALUES (?, ?)", row)


def _binding_row(b: BindingDef) -> tuple[Any, ...]:
    if b.destination_type not in ("queue", "exchange"):
        raise ValueError(f"destination_type must be 'queue' or 'exchange', not {b.destination_type!r}")
    return params(b.vhost, b.source, b.destination_type, b.destination, b.routing_key, encode_value(b.arguments))


def params(*values: Any) -> tuple[Any, ...]:
    """Check on the caller's thread what SQLite would reject in the writer's, failing the store:
    text that is not valid Unicode (lone surrogates)."""
    for value in values:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"cannot store {value!r}: not valid Unicode") from exc
    return values


def load_definitions(conn: sqlite3.Connection) -> Definitions:
    d = Definitions()
    for name, description, tags, default_queue_type in conn.execute("SELECT * FROM vhosts ORDER BY name"):
        d.vhosts.append(VHostDef(name, description, json.loads(tags), default_queue_type))
    for name, password_hash, algorithm, tags in conn.execute("SELECT * FROM users ORDER BY name"):
        d.users.append(UserDef(name, password_hash, algorithm, json.loads(tags)))
    for row in conn.execute("SELECT * FROM permissions ORDER BY user, vhost"):
        d.permissions.append(PermissionDef(*row))
    for row in conn.execute("SELECT * FROM topic_permissions ORDER BY user, vhost, exchange"):
        d.topic_permissions.append(TopicPermissionDef(*row))
    for vhost, name, type_, durable, auto_delete, internal, arguments in conn.execute(
        "SELECT * FROM exchanges ORDER BY vhost, name"
    ):
        d.exchanges.append(
            ExchangeDef(vhost, name, type_, bool(durable), bool(auto_delete), bool(internal), decode_value(arguments))
        )
    for queue_id, vhost, name, durable, auto_delete, arguments in conn.execute(
        "SELECT * FROM queues ORDER BY vhost, name"
    ):
        d.queues.append(QueueDef(vhost, name, bool(durable), bool(auto_delete), decode_value(arguments), queue_id))
    for vhost, source, destination_type, destination, routing_key, arguments in conn.execute(
        "SELECT * FROM bindings ORDER BY vhost, source, destination_type, destination, routing_key"
    ):
        d.bindings.append(
            BindingDef(vhost, source, destination, destination_type, routing_key, decode_value(arguments))
        )
    for vhost, name, pattern, apply_to, definition, priority in conn.execute(
        "SELECT * FROM policies ORDER BY vhost, name"
    ):
        d.policies.append(PolicyDef(vhost, name, pattern, apply_to, decode_value(definition), priority))
    for vhost, component, name, value in conn.execute("SELECT * FROM parameters ORDER BY vhost, component, name"):
        d.parameters.append(ParameterDef(vhost, component, name, decode_value(value)))
    for name, value in conn.execute("SELECT * FROM global_parameters ORDER BY name"):
        d.global_parameters.append(GlobalParameterDef(name, decode_value(value)))
    return d
