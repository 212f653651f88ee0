"""Who may use the management API, and what they may see: HTTP basic auth and RabbitMQ's user tags.

- management: own vhosts (those the user has permissions in), own connections and channels.
- policymaker: as management, plus policies and parameters of those vhosts.
- monitoring: as management, plus every vhost's and connection's figures, and the node.
- administrator: everything, including users, vhosts and permissions.
A user with none of these tags cannot log in to the API, as in RabbitMQ.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from lapine.auth.passwords import is_costly
from lapine.auth.users import User
from lapine.broker.vhost import VirtualHost
from lapine.log_text import quoted
from lapine.management.connection_gate import GATE
from lapine.management.context import broker_of
from lapine.management.http import ApiError, json_response, not_found
from lapine.management.login_throttle import LoginThrottle

MANAGEMENT_TAGS = frozenset({"management", "policymaker", "monitoring", "administrator"})
USER = "lapine.user"
THROTTLE = web.AppKey("login_throttle", LoginThrottle)
log = logging.getLogger("lapine.management")
# Asked by a UI before anyone has logged in.
PUBLIC_PATHS = frozenset({"/api/auth"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def login_failed(request: web.Request) -> web.Response:
    response = json_response({"error": "not_authorized", "reason": "Login failed"}, status=401)
    # Our own UI asks for no browser login box: it shows its own login form instead.
    if request.headers.get("X-Requested-With") != "XMLHttpRequest":
        response.headers["WWW-Authenticate"] = 'Basic realm="RabbitMQ Management"'
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api/ path needs a user with a management tag; the UI's files are public."""
    if not request.path.startswith("/api/") or request.path in PUBLIC_PATHS:
        return await handler(request)
    credentials = _credentials(request)
    if credentials is None:
        return login_failed(request)
    user = await request.app[THROTTLE].attempt(request.remote or "", lambda: _login(request, *credentials))
    if user is None:
        return login_failed(request)
    request.app[GATE].logged_in(request)
    request[USER] = user
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()


def _credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


async def _login(request: web.Request, name: str, password: str) -> User | None:
    """The user these credentials log in as, or None (logged, as RabbitMQ logs it)."""
    users = broker_of(request).users
    peer = request.remote or ""
    found = users.get(name)
    if found is not None and is_costly(found.hashing_algorithm):
        # A deliberately slow hash is checked on a worker thread: the loop serves everyone meanwhile.
        user = await asyncio.to_thread(users.authenticate, name, password, peer)
    else:
        user = users.authenticate(name, password, peer)
    if user is None:
        log.warning("HTTP access denied: user %s - invalid credentials (from %s)", quoted(name), peer)
    elif not MANAGEMENT_TAGS.intersection(user.tags):
        log.warning("HTTP access denied: user %s - not a management user (from %s)", quoted(name), peer)
        return None
    return user


def user_of(request: web.Request) -> User:
    user: User = request[USER]
    return user


def is_admin(user: User) -> bool:
    return "administrator" in user.tags


def is_monitor(user: User) -> bool:
    return is_admin(user) or "monitoring" in user.tags


def is_policymaker(user: User) -> bool:
    return is_admin(user) or "policymaker" in user.tags


def require_admin(request: web.Request) -> None:
    if not is_admin(user_of(request)):
        raise ApiError(401, "not_authorised", "Not administrator user")


def require_monitor(request: web.Request) -> None:
    if not is_monitor(user_of(request)):
        raise ApiError(401, "not_authorised", "Not monitor user")


def may_access(request: web.Request, vhost: str) -> bool:
    user = user_of(request)
    return is_admin(user) or broker_of(request).permissions.can_access(user.name, vhost)


def vhost_from_path(request: web.Request, key: str = "vhost") -> VirtualHost:
    """The vhost a path names: 404 when there is none, 401 when the user may not use it."""
    name = request.match_info[key]
    vhost = broker_of(request).vhosts.get(name)
    if vhost is None:
        raise not_found()
    if not may_access(request, name):
        raise ApiError(401, "not_authorised", "User not authorised to access virtual host")
    return vhost


def vhost_for_write(request: web.Request, key: str = "vhost") -> VirtualHost:
    """As vhost_from_path, but a missing vhost is worded as RabbitMQ words it for a PUT."""
    name = request.match_info[key]
    if name not in broker_of(request).vhosts:
        raise ApiError(404, "not_found", "vhost_not_found")
    return vhost_from_path(request, key)


def visible_vhosts(request: web.Request) -> list[VirtualHost]:
    """The vhosts whose queues, exchanges and bindings the user sees in lists."""
    broker = broker_of(request)
    return [vhost for name, vhost in broker.vhosts.items() if may_access(request, name)]


def listed_vhosts(request: web.Request) -> list[VirtualHost]:
    """/api/vhosts: monitoring users see every vhost, other users their own."""
    broker = broker_of(request)
    if is_monitor(user_of(request)):
        return list(broker.vhosts.values())
    return visible_vhosts(request)


def scoped_vhosts(request: web.Request) -> list[VirtualHost]:
    """The vhosts a list path covers: /api/things for every visible one, /api/things/{vhost} for one."""
    if "vhost" in request.match_info:
        return [vhost_from_path(request)]
    return visible_vhosts(request)


def sees_all_connections(request: web.Request) -> bool:
    return is_monitor(user_of(request))


def act_in(request: web.Request, vhost: VirtualHost) -> None:
    """Changes in a vhost are made as the user would make them over AMQP: it needs permissions there."""
    if not broker_of(request).permissions.can_access(user_of(request).name, vhost.name):
        raise ApiError(401, "not_authorised", "Access refused.")


def check(request: web.Request, vhost: VirtualHost, kind: str, resource: str, name: str) -> None:
    """RabbitMQ's configure/write/read check for one operation (ChannelError 403 when refused)."""
    broker_of(request).permissions.check(user_of(request).name, vhost.name, kind, resource, name or "amq.default")
