"""pytest plugin (installed with Lapine): fixtures that give your tests a fresh real broker.

def test_my_consumer(lapine_url):
    connection = pika.BlockingConnection(pika.URLParameters(lapine_url))
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lapine.testing import BrokerThread
from lapine.testing.model import ModelBroker


@pytest.fixture
def lapine_broker() -> Iterator[BrokerThread]:
    """A broker of its own for one test, on a free port of 127.0.0.1."""
    with BrokerThread() as broker:
        yield broker


@pytest.fixture
def lapine_url(lapine_broker: BrokerThread) -> str:
    """The AMQP URL of a fresh broker (guest/guest, vhost /)."""
    return lapine_broker.url


@pytest.fixture
def lapine_management_url(lapine_broker: BrokerThread) -> str:
    """The management HTTP API's base URL of the same broker (guest/guest), e.g. for /api/queues."""
    return lapine_broker.management_url


@pytest.fixture
def lapine_model() -> ModelBroker:
    """The broker with no sockets, on a manual clock: ``lapine_model.client()`` logs a client in."""
    return ModelBroker()
