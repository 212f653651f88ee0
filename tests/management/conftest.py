"""Fixtures for the management tests: a broker with its HTTP API, and clients for it.

By default each module starts a Lapine broker (free ports, counters sampled every 0.5 s). The
compatibility module can instead point at any broker: set MANAGEMENT_URL (and AMQP_URL for the
AMQP side), e.g. a real RabbitMQ with its management plugin:

    MANAGEMENT_URL=http://localhost:15674 AMQP_URL=amqp://guest:guest@localhost:5674/%2F \
        python -m pytest tests/management/test_compat.py
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from lapine.testing import BrokerThread  # noqa: E402
from tests.management.client import Http  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread(management_sample_interval=0.5) as running:
        yield running


@pytest.fixture(scope="module")
def http(broker: BrokerThread) -> Http:
    return Http(broker.management_url)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """unique("q") -> a name no other test uses."""
    run = uuid.uuid4().hex[:6]
    return lambda prefix: f"{prefix}-{run}-{next(_counter)}"


def amqp_params(url: str, **overrides: object) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    for key, value in overrides.items():
        setattr(params, key, value)
    return params


def url_for(amqp_url: str, user: str, password: str, vhost: str = "/") -> str:
    """The broker's AMQP URL with another user and vhost."""
    from urllib.parse import quote, urlsplit

    split = urlsplit(amqp_url)
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"amqp://{credentials}@{split.hostname}:{split.port}/{quote(vhost, safe='')}"


# --- the broker under test: Lapine, or any broker given by MANAGEMENT_URL and AMQP_URL -----------

Target = tuple[Http, str]


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    management_url = os.environ.get("MANAGEMENT_URL")
    if management_url:
        yield Http(management_url.rstrip("/")), os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
        return
    with BrokerThread(management_sample_interval=0.5) as running:
        yield Http(running.management_url), running.url


@pytest.fixture(scope="module")
def api(target: Target) -> Http:
    return target[0]


@pytest.fixture(scope="module")
def amqp_url(target: Target) -> str:
    return target[1]


@pytest.fixture
def connect(amqp_url: str) -> Iterator[Callable[..., pika.BlockingConnection]]:
    """connect(url=None, **pika_parameters) -> a BlockingConnection, closed at teardown."""
    opened: list[pika.BlockingConnection] = []

    def make(url: str | None = None, **overrides: Any) -> pika.BlockingConnection:
        connection = pika.BlockingConnection(amqp_params(url or amqp_url, **overrides))
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        # Some were closed by the broker on purpose (a deleted user or vhost).
        with contextlib.suppress(pika.exceptions.AMQPError):
            if connection.is_open:
                connection.close()


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """RabbitMQ's statistics lag by up to its collection interval: poll until the check holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)
