"""Per-vhost permissions: three regular expressions (configure, write, read) per user and vhost.

They are checked on every AMQP operation the way RabbitMQ maps operations to permissions
(https://www.rabbitmq.com/docs/access-control): declaring and deleting need configure,
publishing and binding-to need write, consuming and binding-from need read.

Topic permissions narrow that for one topic exchange: a write pattern the routing keys of a
publish must match, and a read pattern for the routing key of a binding from it. Without one
for the user, vhost and exchange, the exchange is open as far as its vhost permissions go.

Patterns are matched by RE2 (google-re2), in time linear in the name, because every check runs on
the event loop: a pattern such as ``^(a+)+$`` cannot stall the broker however long the name. RE2
refuses what needs backtracking (backreferences, lookarounds); setting such a pattern is refused
with RE2's reason, and one that got in before (an old data directory) grants nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2

from lapine.amqp.constants import ACCESS_REFUSED
from lapine.amqp.errors import ChannelError

KINDS = ("configure", "write", "read")


@dataclass(frozen=True)
class Permission:
    user: str
    vhost: str
    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"

    def allows(self, kind: str, name: str) -> bool:
        pattern = getattr(self, kind)
        # An empty pattern grants nothing (as in RabbitMQ, "^$" or "").
        return bool(pattern) and _compiled(pattern).search(name) is not None


@dataclass(frozen=True)
class TopicPermission:
    user: str
    vhost: str
    exchange: str
    write: str = ".*"
    read: str = ".*"

    def allows(self, kind: str, routing_key: str) -> bool:
        # As in RabbitMQ: an empty pattern is "^$", and {username} and {vhost} stand for the
        # user's name and the vhost's, escaped.
        pattern = getattr(self, kind) or "^$"
        pattern = pattern.replace("{username}", re2.escape(self.user)).replace("{vhost}", re2.escape(self.vhost))
        return _compiled(pattern).search(routing_key) is not None


def compile_pattern(pattern: str) -> Any:
    """The RE2 program for a pattern; raises re2.error (its reason in bytes) when RE2 refuses it."""
    options = re2.Options()
    options.log_errors = False  # the reason goes back to whoever set the permission, not to stderr
    return re2.compile(pattern, options)


def pattern_error(pattern: str) -> str | None:
    """Why RE2 cannot run this pattern, or None when it can."""
    try:
        compile_pattern(pattern)
    except re2.error as error:
        return error.args[0].decode("utf-8", "replace") if error.args else "invalid"
    return None


class _MatchesNothing:
    def search(self, name: str) -> None:
        return None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    try:
        return compile_pattern(pattern)
    except re2.error:
        return _MatchesNothing()


@dataclass
class Permissions:
    entries: dict[tuple[str, str], Permission] = field(default_factory=dict)
    # (user, vhost, exchange) -> the topic permission there.
    topic: dict[tuple[str, str, str], TopicPermission] = field(default_factory=dict)
    # Bumped on every change, so that channels can cache what they were allowed.
    version: int = 0

    def set(self, permission: Permission) -> None:
        self.entries[(permission.user, permission.vhost)] = permission
        self.version += 1

    def clear(self, user: str, vhost: str) -> bool:
        self.version += 1
        return self.entries.pop((user, vhost), None) is not None

    def get(self, user: str, vhost: str) -> Permission | None:
        return self.entries.get((user, vhost))

    def for_user(self, user: str) -> list[Permission]:
        return [p for (u, _v), p in self.entries.items() if u == user]

    def for_vhost(self, vhost: str) -> list[Permission]:
        return [p for (_u, v), p in self.entries.items() if v == vhost]

    def drop_user(self, user: str) -> None:
        self.version += 1
        for key in [k for k in self.entries if k[0] == user]:
            del self.entries[key]
        for topic_key in [k for k in self.topic if k[0] == user]:
            del self.topic[topic_key]

    def drop_vhost(self, vhost: str) -> None:
        self.version += 1
        for key in [k for k in self.entries if k[1] == vhost]:
            del self.entries[key]
        for topic_key in [k for k in self.topic if k[1] == vhost]:
            del self.topic[topic_key]

    # --- topic permissions -------------------------------------------------------------------

    def set_topic(self, permission: TopicPermission) -> None:
        self.topic[(permission.user, permission.vhost, permission.exchange)] = permission
        self.version += 1

    def clear_topic(self, user: str, vhost: str, exchange: str | None = None) -> list[TopicPermission]:
        """Remove one exchange's topic permission, or all of the user's in the vhost; the removed."""
        self.version += 1
        doomed = [p for p in self.topic_for(user, vhost) if exchange is None or p.exchange == exchange]
        for permission in doomed:
            del self.topic[(permission.user, permission.vhost, permission.exchange)]
        return doomed

    def topic_for(self, user: str, vhost: str) -> list[TopicPermission]:
        return [p for (u, v, _x), p in self.topic.items() if u == user and v == vhost]

    def check_topic(self, permission: TopicPermission, kind: str, routing_key: str) -> None:
        """403 ACCESS_REFUSED with current RabbitMQ's text unless the routing key is allowed."""
        if not permission.allows(kind, routing_key):
            raise ChannelError(
                ACCESS_REFUSED,
                f"{kind} access to topic '{routing_key}' in exchange '{permission.exchange}' in vhost "
                f"'{permission.vhost}' refused for user '{permission.user}'",
            )

    def can_access(self, user: str, vhost: str) -> bool:
        return (user, vhost) in self.entries

    def check(self, user: str, vhost: str, kind: str, resource: str, name: str) -> None:
        """Raise 403 ACCESS_REFUSED with RabbitMQ's text unless ``user`` may ``kind`` the resource."""
        permission = self.entries.get((user, vhost))
        if permission is None or not permission.allows(kind, name):
            raise ChannelError(
                ACCESS_REFUSED,
                f"{kind} access to {resource} '{name}' in vhost '{vhost}' refused for user '{user}'",
            )
