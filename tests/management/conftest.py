"""Fixtures for the management tests: a broker with its HTTP API, and clients for it.

By default each module starts a Lapine broker (free ports, counters sampled every 0.5 s). The
compatibility module can instead point at any broker: set MANAGEMENT_URL (and AMQP_URL for the
AMQP side), e.g. a real RabbitMQ with its management plugin:

    MANAGEMENT_URL=http://localhost:15674 AMQP_URL=amqp://guest:guest@localhost:5674/%2F \
        python -m pytest tests/management/test_compat.py
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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
