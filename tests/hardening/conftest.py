"""Fixtures for the hardening tests: a broker of their own per test, with the settings it needs.

Each test starts its own Lapine (``start_broker(**settings)``) because most of them change limits,
alarms or timeouts that would disturb any other test sharing the broker. Management and
Prometheus listeners are off: none of these tests need them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # so that ``tests.helpers`` imports however pytest was started
    sys.path.insert(0, _ROOT)

from lapine.testing import BrokerThread  # noqa: E402

StartBroker = Callable[..., BrokerThread]


@pytest.fixture
def start_broker() -> Iterator[StartBroker]:
    """start_broker(**settings) -> a running BrokerThread, stopped at teardown."""
    started: list[BrokerThread] = []

    def start(**settings: object) -> BrokerThread:
        settings.setdefault("management_port", -1)
        settings.setdefault("prometheus_port", -1)
        broker = BrokerThread(**settings).start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(start_broker: StartBroker) -> BrokerThread:
    """A broker with the default settings."""
    return start_broker()
