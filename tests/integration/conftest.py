"""Fixtures for the integration suite: real clients (pika, aio-pika, raw sockets) against a broker.

By default a Lapine broker is started in a background thread for the session. Set ``AMQP_URL`` to
run the very same tests against any other broker, e.g. a real RabbitMQ:

    AMQP_URL=amqp://guest:guest@localhost:5673/%2F python -m pytest tests/integration -q

The broker is shared by the whole session: every test uses unique names and cleans up after itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # so that ``tests.helpers`` imports however pytest was started
    sys.path.insert(0, _ROOT)

import aio_pika  # noqa: E402

from tests.helpers.amqp import Names  # noqa: E402
from tests.helpers.raw_amqp import RawAMQP  # noqa: E402


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    url = os.environ.get("AMQP_URL")
    if url:  # run the suite against any broker, e.g. a real RabbitMQ
        yield url
        return
    from lapine.testing import BrokerThread  # being written now; do not implement it

    with BrokerThread() as broker:  # starts a Lapine broker on a free port in a background thread
        yield broker.url  # "amqp://guest:guest@127.0.0.1:<port>/%2F"


@pytest.fixture(scope="session")
def against_rabbitmq() -> bool:
    """True when the suite runs against an external broker (normally a real RabbitMQ)."""
    return bool(os.environ.get("AMQP_URL"))


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@pytest.fixture(scope="session")
def broker_identity(amqp_url: str) -> tuple[str, tuple[int, ...]]:
    """(product, version) from the broker's connection.start server properties."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        props = conn._impl.server_properties
    finally:
        conn.close()

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return text(props.get("product", "")), _version_tuple(text(props.get("version", "")))


# RabbitMQ 4.3 is the first release that denies, by default, the deprecated features that the
# rabbitmq_differs tests are about (transient_nonexcl_queues, global_qos); older releases permit them.
CURRENT_RABBITMQ = (4, 3)


@pytest.fixture(autouse=True)
def _skip_where_old_rabbitmq_differs(request: pytest.FixtureRequest) -> None:
    """Tests marked ``rabbitmq_differs`` assert current RabbitMQ behaviour: skip them on older RabbitMQ."""
    if request.node.get_closest_marker("rabbitmq_differs") is None:
        return
    product, version = request.getfixturevalue("broker_identity")
    if product == "RabbitMQ" and version < CURRENT_RABBITMQ:
        shown = ".".join(map(str, version))
        pytest.skip(f"RabbitMQ {shown} predates the current behaviour this test asserts (rabbitmq_differs)")


def _with_url(url: str, **parts: str) -> str:
    """The broker URL with some of user/password/vhost replaced."""
    from urllib.parse import quote, urlsplit, urlunsplit

    split = urlsplit(url)
    user = parts.get("user", split.username or "guest")
    password = parts.get("password", split.password or "guest")
    host = split.hostname or "localhost"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}:{split.port or 5672}"
    path = "/" + quote(parts["vhost"], safe="") if "vhost" in parts else split.path
    return urlunsplit((split.scheme, netloc, path, split.query, split.fragment))


@pytest.fixture
def url_with(amqp_url: str) -> Callable[..., str]:
    """url_with(user=..., password=..., vhost=...) -> the broker URL with those parts replaced."""

    def make(**parts: str) -> str:
        return _with_url(amqp_url, **parts)

    return make


@pytest.fixture
def params(amqp_url: str) -> Callable[..., pika.URLParameters]:
    """params(**overrides) -> pika connection parameters for the broker under test."""

    def make(url: str | None = None, **overrides: Any) -> pika.URLParameters:
        p = pika.URLParameters(url or amqp_url)
        p.connection_attempts = 1
        p.socket_timeout = 5
        p.blocked_connection_timeout = 5
        for key, value in overrides.items():
            setattr(p, key, value)
        return p

    return make


@pytest.fixture
def connect(params: Callable[..., pika.URLParameters]) -> Iterator[Callable[..., pika.BlockingConnection]]:
    """connect(**param_overrides) -> a pika BlockingConnection, closed at teardown."""
    opened: list[pika.BlockingConnection] = []

    def make(url: str | None = None, **overrides: Any) -> pika.BlockingConnection:
        conn = pika.BlockingConnection(params(url, **overrides))
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        if conn.is_open:
            with contextlib.suppress(Exception):
                conn.close()


@pytest.fixture
def connection(connect: Callable[..., pika.BlockingConnection]) -> pika.BlockingConnection:
    return connect()


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> Any:
    return connection.channel()


@pytest.fixture
def names(params: Callable[..., pika.URLParameters]) -> Iterator[Names]:
    registry = Names()
    yield registry
    if not registry.queues and not registry.exchanges:
        return
    with contextlib.suppress(Exception):
        conn = pika.BlockingConnection(params())
        try:
            for queue in registry.queues:
                ch = conn.channel()
                with contextlib.suppress(Exception):
                    ch.queue_delete(queue)
                    ch.close()
            for exchange in registry.exchanges:
                ch = conn.channel()
                with contextlib.suppress(Exception):
                    ch.exchange_delete(exchange)
                    ch.close()
        finally:
            conn.close()


@pytest.fixture
def raw(amqp_url: str) -> Iterator[Callable[..., RawAMQP]]:
    """raw(timeout=5.0) -> a RawAMQP socket to the broker, closed at teardown."""
    opened: list[RawAMQP] = []

    def make(timeout: float = 5.0, url: str | None = None) -> RawAMQP:
        client = RawAMQP(url or amqp_url, timeout=timeout)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture
async def aio_connection(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """An aio-pika connection (not the robust one: a closed channel must stay closed)."""
    conn = await aio_pika.connect(amqp_url, timeout=5)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
