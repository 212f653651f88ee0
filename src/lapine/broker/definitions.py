"""Administration of the broker's definitions: vhosts, users, permissions, policies.

Every change an operator makes (through the HTTP API, lapinectl, or a definitions file, which
broker/definitions_format.py reads) goes through these functions, so that there is one place to
hook persistence and one place that applies RabbitMQ's side effects: a new vhost gets its amq.*
exchanges, a deleted vhost or user takes its open connections with it (320 CONNECTION_FORCED),
and so on. There is no HTTP here; errors are raised as DefinitionError with RabbitMQ's wording,
for the caller to translate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lapine.amqp.constants import CONNECTION_FORCED
from lapine.amqp.errors import ConnectionError
from lapine.auth.passwords import ALGORITHMS, HASHING_ALGORITHM
from lapine.auth.permissions import Permission, TopicPermission, pattern_error
from lapine.auth.users import User
from lapine.broker import names
from lapine.broker.policies import Policy, erlang_term, validate

if TYPE_CHECKING:
    from lapine.broker.broker import Broker
    from lapine.broker.vhost import VhostMetadata, VirtualHost

# The RabbitMQ release whose behaviour Lapine follows: tools read it to pick API features.
RABBITMQ_COMPATIBLE_VERSION = "3.13.7"
# RabbitMQ's password hashing algorithms, and Lapine's PBKDF2 one (lapine.auth.passwords).
HASHING_ALGORITHMS = ALGORITHMS


class DefinitionError(Exception):
    """An operation refused; ``kind`` is "not_found" or "bad_request", as the HTTP API reports."""

    def __init__(self, reason: str, kind: str = "bad_request") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


# --- vhosts --------------------------------------------------------------------------------------


def vhost_metadata(vhost: VirtualHost) -> VhostMetadata:
    return vhost.metadata


def add_vhost(
    broker: Broker,
    name: str,
    *,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    default_queue_type: str | None = None,
) -> tuple[VirtualHost, bool]:
    """Create a vhost (with its amq.* exchanges), or update its metadata; True when created."""
    if not name:
        raise DefinitionError("vhost name must not be empty")
    _check_name_fits("vhost name", name)
    created = name not in broker.vhosts
    vhost = broker.add_vhost(name)
    metadata = vhost_metadata(vhost)
    # As RabbitMQ does, a PUT replaces the description and tags (missing ones become empty).
    metadata.description = description or ""
    metadata.tags = list(tags or [])
    if default_queue_type:
        metadata.default_queue_type = default_queue_type
    if broker.persistence is not None:
        broker.persistence.vhost_added(vhost)
    return vhost, created


# RabbitMQ's vhost limits; a negative value means no limit, and is kept as given.
VHOST_LIMITS = ("max-connections", "max-queues")


def set_vhost_limit(broker: Broker, vhost: VirtualHost, name: str, value: Any) -> None:
    """One of a vhost's limits, refused with RabbitMQ's validation texts."""
    if name not in VHOST_LIMITS:
        terms = f"[{{{erlang_term(name)},{erlang_term(value)}}}]"
        raise DefinitionError(f"Validation failed\n\nUnrecognised terms {terms} in limits\n")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(f"Validation failed\n\n{name} should be a number, actually was {erlang_term(value)}\n")
    vhost.limits[name] = value
    if broker.persistence is not None:
        broker.persistence.vhost_limits_changed(vhost)


def clear_vhost_limit(broker: Broker, vhost: VirtualHost, name: str) -> None:
    if vhost.limits.pop(name, None) is not None and broker.persistence is not None:
        broker.persistence.vhost_limits_changed(vhost)


def delete_vhost(broker: Broker, name: str) -> bool:
    """Remove a vhost with everything in it; its connections are closed first, as RabbitMQ does."""
    vhost = broker.vhosts.get(name)
    if vhost is None:
        return False
    _close_connections(broker, lambda c: c.vhost is vhost, f"vhost '{name}' is deleted")
    for queue in list(vhost.queues.values()):
        vhost.delete_queue(queue)
    del broker.vhosts[name]
    broker.delayed.vhost_deleted(vhost)
    broker.deleted_vhosts_stats.add(vhost.stats)
    broker.permissions.drop_vhost(name)
    if broker.persistence is not None:
        broker.persistence.vhost_deleted(name)
    return True


def _check_name_fits(what: str, name: str) -> None:
    """A vhost name goes in connection.open and a user name in the user-id property: shortstrs."""
    problem = names.shortstr_problem(what, name)
    if problem is not None:
        raise DefinitionError(problem)


# --- users ---------------------------------------------------------------------------------------


def parse_tags(tags: str | Iterable[str] | None) -> list[str]:
    """Tags as RabbitMQ accepts them: a list, or one comma-separated string ("" for none)."""
    if tags is None:
        return []
    items = tags.split(",") if isinstance(tags, str) else list(tags)
    return [str(tag).strip() for tag in items if str(tag).strip()]


def put_user(
    broker: Broker,
    name: str,
    *,
    password: str | None = None,
    password_hash: str | None = None,
    hashing_algorithm: str | None = None,
    tags: str | Iterable[str] | None = None,
) -> bool:
    """Create or replace a user; True when created. A password wins over a hash when both come."""
    if not name:
        raise DefinitionError("user name must not be empty")
    _check_name_fits("user name", name)
    algorithm = hashing_algorithm or HASHING_ALGORITHM
    if algorithm not in HASHING_ALGORITHMS:
        raise DefinitionError(f"unsupported hashing algorithm '{algorithm}'")
    existing = broker.users.get(name)
    tag_list = parse_tags(tags)
    if password is not None:
        broker.users.add(name, password, tag_list)
    elif password_hash is None and existing is not None:
        # Only the tags change: the password stays.
        existing.tags = tag_list
    else:
        broker.users.users[name] = User(name, password_hash or "", tag_list, algorithm)
    _user_changed(broker, name)
    return existing is None


def _user_changed(broker: Broker, name: str) -> None:
    if broker.persistence is not None:
        broker.persistence.user_changed(broker.users.users[name])


def add_user(broker: Broker, name: str, password: str, tags: str | Iterable[str] | None = None) -> None:
    if name in broker.users.users:
        raise DefinitionError(f"user '{name}' already exists")
    put_user(broker, name, password=password, tags=tags)


def change_password(broker: Broker, name: str, password: str) -> None:
    user = _user(broker, name)
    put_user(broker, name, password=password, tags=user.tags)


def clear_password(broker: Broker, name: str) -> None:
    user = _user(broker, name)
    put_user(broker, name, password_hash="", tags=user.tags, hashing_algorithm=user.hashing_algorithm)


def set_user_tags(broker: Broker, name: str, tags: str | Iterable[str] | None) -> None:
    _user(broker, name).tags = parse_tags(tags)
    _user_changed(broker, name)


def delete_user(broker: Broker, name: str) -> bool:
    """Remove a user and its permissions; its open connections are closed, as RabbitMQ does."""
    if broker.users.users.pop(name, None) is None:
        return False
    broker.permissions.drop_user(name)
    if broker.persistence is not None:
        broker.persistence.user_deleted(name)
    _close_connections(broker, lambda c: c.username == name, f"user '{name}' is deleted")
    return True


def _user(broker: Broker, name: str) -> User:
    user = broker.users.get(name)
    if user is None:
        raise DefinitionError(f"no such user '{name}'", "not_found")
    return user


# --- permissions ---------------------------------------------------------------------------------


def set_permissions(broker: Broker, user: str, vhost: str, configure: str, write: str, read: str) -> bool:
    """Grant a user three patterns on a vhost; True when the user had none there before."""
    if user not in broker.users.users or vhost not in broker.vhosts:
        raise DefinitionError("vhost_or_user_not_found")
    for pattern in (configure, write, read):
        _check_regex(pattern)
    created = broker.permissions.get(user, vhost) is None
    permission = Permission(user, vhost, configure, write, read)
    broker.permissions.set(permission)
    if broker.persistence is not None:
        broker.persistence.permission_set(permission)
    return created


def clear_permissions(broker: Broker, user: str, vhost: str) -> bool:
    cleared = broker.permissions.clear(user, vhost)
    if cleared and broker.persistence is not None:
        broker.persistence.permission_cleared(user, vhost)
    return cleared


def set_topic_permissions(broker: Broker, user: str, vhost: str, exchange: str, write: str, read: str) -> bool:
    """A user's write and read patterns for one exchange's routing keys; True when the user had no
    topic permission in that vhost before (RabbitMQ's 201 rather than 204)."""
    if user not in broker.users.users or vhost not in broker.vhosts:
        raise DefinitionError("vhost_or_user_not_found")
    for pattern in (write, read):
        _check_regex(pattern)
    created = not broker.permissions.topic_for(user, vhost)
    permission = TopicPermission(user, vhost, exchange, write, read)
    broker.permissions.set_topic(permission)
    if broker.persistence is not None:
        broker.persistence.topic_permission_set(permission)
    return created


def clear_topic_permissions(broker: Broker, user: str, vhost: str, exchange: str | None = None) -> bool:
    """One exchange's topic permission, or all the user's in the vhost; False when there was none."""
    cleared = broker.permissions.clear_topic(user, vhost, exchange)
    if broker.persistence is not None:
        for permission in cleared:
            broker.persistence.topic_permission_cleared(permission)
    return bool(cleared)


def _check_regex(pattern: str) -> None:
    reason = pattern_error(pattern)
    if reason is not None:
        raise DefinitionError(f"invalid_regexp: '{pattern}': {reason} (patterns are matched by RE2)")


# --- policies ------------------------------------------------------------------------------------


def set_policy(
    broker: Broker,
    vhost: str,
    name: str,
    *,
    pattern: str,
    definition: Mapping[str, Any],
    priority: int = 0,
    apply_to: str = "all",
) -> bool:
    """Create or replace a policy; True when created. The vhost re-applies its policies at once."""
    target = broker.vhosts.get(vhost)
    if target is None:
        raise DefinitionError("vhost_not_found", "not_found")
    if not isinstance(definition, Mapping):
        raise DefinitionError(f"Validation failed\n\ndefinition must be a dictionary: {erlang_term(definition)}\n")
    policy = Policy(vhost, name, pattern, dict(definition), int(priority), apply_to)
    problem = validate(policy)
    if problem is not None:
        raise DefinitionError(f"Validation failed\n\n{problem}\n")
    created = name not in target.policies.by_name
    target.set_policy(policy)
    return created


def clear_policy(broker: Broker, vhost: str, name: str) -> bool:
    target = broker.vhosts.get(vhost)
    return target is not None and target.clear_policy(name)


# --- connections ---------------------------------------------------------------------------------


def _close_connections(broker: Broker, which: Any, reason: str) -> int:
    error = ConnectionError(CONNECTION_FORCED, reason)
    closing = [connection for connection in broker.connections if which(connection)]
    for connection in closing:
        connection.close_with_error(error)
    return len(closing)


def close_connection(broker: Broker, name: str, reason: str = "Closed via management plugin") -> bool:
    return _close_connections(broker, lambda c: c.name == name, reason) > 0
