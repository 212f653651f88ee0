"""Definitions in RabbitMQ's JSON format: export, import, and the JSON shape of each object.

The format is that of RabbitMQ's management plugin (``GET /api/definitions``, ``rabbitmqctl
export_definitions``), so files move between the two brokers. Import applies every object through
the administration functions of broker/definitions.py, which hook persistence and side effects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from lapine import __version__
from lapine.amqp.constants import PRECONDITION_FAILED, RESOURCE_LOCKED
from lapine.amqp.errors import AMQPError
from lapine.auth.permissions import Permission, TopicPermission
from lapine.auth.users import User
from lapine.broker.definitions import (
    RABBITMQ_COMPATIBLE_VERSION,
    DefinitionError,
    add_vhost,
    parse_tags,
    put_user,
    set_permissions,
    set_policy,
    set_topic_permissions,
    set_vhost_limit,
    vhost_metadata,
)
from lapine.broker.policies import Policy

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.broker.exchange import Exchange
    from lapine.broker.queue import Queue
    from lapine.broker.vhost import VirtualHost


def topic_permission_definition(permission: TopicPermission) -> dict[str, str]:
    return {
        "user": permission.user,
        "vhost": permission.vhost,
        "exchange": permission.exchange,
        "write": permission.write,
        "read": permission.read,
    }


def policy_definition(policy: Policy) -> dict[str, Any]:
    return {
        "vhost": policy.vhost,
        "name": policy.name,
        "pattern": policy.pattern,
        "apply-to": policy.apply_to,
        "definition": dict(policy.definition),
        "priority": policy.priority,
    }


# --- export --------------------------------------------------------------------------------------


def export_definitions(broker: Broker, vhost: str | None = None) -> dict[str, Any]:
    """Definitions in RabbitMQ's JSON shape; for one vhost, only its queues, exchanges and bindings."""
    vhosts = [broker.vhosts[vhost]] if vhost is not None else list(broker.vhosts.values())
    objects = {
        "queues": [_queue_definition(q) for v in vhosts for q in v.queues.values() if not q.exclusive],
        "exchanges": [_exchange_definition(x) for v in vhosts for x in v.exchanges.values() if _exportable(x)],
        "bindings": [b for v in vhosts for b in bindings_of(v) if b["source"]],
    }
    policies = [policy_definition(p) for v in vhosts for p in v.policies]
    parameters = [vhost_limits_definition(v) for v in vhosts if v.limits]
    if vhost is not None:
        for kind in (*objects.values(), policies, parameters):
            for item in kind:
                item.pop("vhost", None)
        return {
            "rabbit_version": RABBITMQ_COMPATIBLE_VERSION,
            "parameters": parameters,
            "policies": policies,
            **objects,
        }
    return {
        "rabbit_version": RABBITMQ_COMPATIBLE_VERSION,
        "rabbitmq_version": RABBITMQ_COMPATIBLE_VERSION,
        "product_name": "Lapine",
        "product_version": __version__,
        "users": [user_definition(u) for u in broker.users.users.values()],
        "vhosts": [vhost_definition(v) for v in vhosts],
        "permissions": [permission_definition(p) for p in broker.permissions.entries.values()],
        "topic_permissions": [topic_permission_definition(p) for p in broker.permissions.topic.values()],
        "parameters": parameters,
        "global_parameters": [
            {"name": "cluster_name", "value": broker.cluster_name},
            {"name": "internal_cluster_id", "value": broker.cluster_id},
        ],
        "policies": policies,
        **objects,
    }


def vhost_limits_definition(vhost: VirtualHost) -> dict[str, Any]:
    """The vhost's limits as RabbitMQ exports them: a runtime parameter."""
    limits = dict(sorted(vhost.limits.items()))
    return {"value": limits, "vhost": vhost.name, "component": "vhost-limits", "name": "limits"}


def user_definition(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "password_hash": user.password_hash,
        "hashing_algorithm": user.hashing_algorithm,
        "tags": list(user.tags),
        "limits": {},
    }


def vhost_definition(vhost: VirtualHost) -> dict[str, Any]:
    metadata = vhost_metadata(vhost)
    return {
        "name": vhost.name,
        "description": metadata.description,
        "tags": list(metadata.tags),
        "metadata": {"description": metadata.description, "tags": list(metadata.tags)},
    }


def permission_definition(permission: Permission) -> dict[str, Any]:
    return {
        "user": permission.user,
        "vhost": permission.vhost,
        "configure": permission.configure,
        "write": permission.write,
        "read": permission.read,
    }


def _exportable(exchange: Exchange) -> bool:
    return bool(exchange.name) and not exchange.name.startswith("amq.")


def _queue_definition(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "vhost": queue.vhost.name,
        "durable": queue.durable,
        "auto_delete": queue.auto_delete,
        "arguments": dict(queue.arguments),
    }


def _exchange_definition(exchange: Exchange) -> dict[str, Any]:
    return {
        "name": exchange.name,
        "vhost": exchange.vhost.name,
        "type": exchange.type,
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": dict(exchange.arguments),
    }


def bindings_of(vhost: VirtualHost) -> list[dict[str, Any]]:
    """Every binding of a vhost in RabbitMQ's shape, the default exchange's implicit ones first."""
    from lapine.broker.exchange import Exchange

    found = [_binding("", vhost.name, queue.name, "queue", queue.name, {}) for queue in vhost.queues.values()]
    for exchange in vhost.exchanges.values():
        if exchange.is_default:
            continue
        for destination, routing_key, arguments in exchange.router.bindings():
            kind = "exchange" if isinstance(destination, Exchange) else "queue"
            name = cast("Exchange | Queue", destination).name
            found.append(_binding(exchange.name, vhost.name, name, kind, routing_key, arguments))
    return found


def _binding(
    source: str, vhost: str, destination: str, kind: str, routing_key: str, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": kind,
        "routing_key": routing_key,
        "arguments": dict(arguments or {}),
    }


# --- import --------------------------------------------------------------------------------------


def import_definitions(broker: Broker, data: Mapping[str, Any], vhost: str | None = None) -> None:
    """Apply definitions exported by Lapine or RabbitMQ: users, vhosts, permissions, then objects.

    Objects that exist already are left as they are, even when the file declares them otherwise
    (RabbitMQ does the same). Of the parameters, vhost limits are applied; Lapine has no use for
    the others (federation, shovels) and ignores them.
    """
    if not isinstance(data, Mapping):
        raise DefinitionError("definitions must be a JSON object")
    try:
        if vhost is None:
            _import_users(broker, data.get("users") or [])
            _import_vhosts(broker, data.get("vhosts") or [])
            _import_permissions(broker, data.get("permissions") or [])
            for item in data.get("topic_permissions") or []:
                set_topic_permissions(
                    broker, item["user"], item["vhost"], item["exchange"], item["write"], item["read"]
                )
        for item in data.get("parameters") or []:
            if item.get("component") == "vhost-limits":
                limited = _target_vhost(broker, item, vhost)
                for name, value in dict(item["value"]).items():
                    set_vhost_limit(broker, limited, name, value)
        for item in data.get("policies") or []:
            _import_policy(broker, item, vhost)
        for kind, apply in (("exchanges", _import_exchange), ("queues", _import_queue), ("bindings", _import_binding)):
            for item in data.get(kind) or []:
                _import_object(broker, item, vhost, apply)
    except (KeyError, TypeError, AttributeError) as error:
        raise DefinitionError(f"malformed definitions: {error!r}") from None


def _import_object(broker: Broker, item: Mapping[str, Any], vhost: str | None, apply: Any) -> None:
    try:
        apply(broker, item, vhost)
    except AMQPError as error:
        if error.reply_code not in (PRECONDITION_FAILED, RESOURCE_LOCKED):
            raise DefinitionError(error.reply_text) from None


def _import_policy(broker: Broker, item: Mapping[str, Any], vhost: str | None) -> None:
    set_policy(
        broker,
        vhost if vhost is not None else item["vhost"],
        item["name"],
        pattern=item["pattern"],
        definition=item["definition"],
        priority=int(item.get("priority", 0)),
        apply_to=item.get("apply-to", "all"),
    )


def _import_users(broker: Broker, users: Iterable[Mapping[str, Any]]) -> None:
    for item in users:
        put_user(
            broker,
            item["name"],
            password=item.get("password"),
            password_hash=item.get("password_hash"),
            hashing_algorithm=item.get("hashing_algorithm"),
            tags=item.get("tags"),
        )


def _import_vhosts(broker: Broker, vhosts: Iterable[Mapping[str, Any]]) -> None:
    for item in vhosts:
        metadata = item.get("metadata") or {}
        add_vhost(
            broker,
            item["name"],
            description=item.get("description", metadata.get("description")),
            tags=parse_tags(item.get("tags", metadata.get("tags"))),
            default_queue_type=item.get("default_queue_type"),
        )


def _import_permissions(broker: Broker, permissions: Iterable[Mapping[str, Any]]) -> None:
    for item in permissions:
        set_permissions(broker, item["user"], item["vhost"], item["configure"], item["write"], item["read"])


def _target_vhost(broker: Broker, item: Mapping[str, Any], vhost: str | None) -> VirtualHost:
    name = vhost if vhost is not None else item["vhost"]
    found = broker.vhosts.get(name)
    if found is None:
        raise DefinitionError(f"vhost '{name}' does not exist", "not_found")
    return found


def _import_exchange(broker: Broker, item: Mapping[str, Any], vhost: str | None) -> None:
    target = _target_vhost(broker, item, vhost)
    if item["name"].startswith("amq.") and item["name"] in target.exchanges:
        return
    target.declare_exchange(
        item["name"],
        item.get("type", "direct"),
        durable=bool(item.get("durable", True)),
        auto_delete=bool(item.get("auto_delete", False)),
        internal=bool(item.get("internal", False)),
        arguments=item.get("arguments") or {},
    )


def _import_queue(broker: Broker, item: Mapping[str, Any], vhost: str | None) -> None:
    target = _target_vhost(broker, item, vhost)
    target.declare_queue(
        item["name"],
        None,
        durable=bool(item.get("durable", True)),
        auto_delete=bool(item.get("auto_delete", False)),
        arguments=item.get("arguments") or {},
    )


def _import_binding(broker: Broker, item: Mapping[str, Any], vhost: str | None) -> None:
    target = _target_vhost(broker, item, vhost)
    source = target.exchange(item["source"])
    if item.get("destination_type", "queue") == "exchange":
        destination: Queue | Exchange = target.exchange(item["destination"])
    else:
        destination = target.queue(item["destination"])
    target.bind(source, destination, item.get("routing_key", ""), item.get("arguments") or {})
