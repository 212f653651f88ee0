"""Log lines with names from clients stay one line each: a client cannot forge log lines."""

from __future__ import annotations

import logging

import pytest

from lapine.amqp import spec
from lapine.broker.broker import Broker
from lapine.broker.scheduler import ManualScheduler
from lapine.testing.model import ModelClient

FORGED = "x\n2026-12-02 10:00:00,000 [WARNING] lapine.connection: forged\x1b[2K"


@pytest.fixture
def client() -> ModelClient:
    client = ModelClient(Broker(scheduler=ManualScheduler()))
    client.handshake()
    client.open_channel(1)
    return client


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "lapine.connection"]


def test_a_queue_name_in_a_channel_error_is_escaped(client: ModelClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lapine.connection")
    client.method(1, spec.QueueDeclare(queue=FORGED, passive=True))
    assert client.expect(spec.ChannelClose).reply_code == 404
    [message] = _messages(caplog)
    assert "\n" not in message and "\x1b" not in message
    assert "no queue 'x\\n2026-12-02 10:00:00,000 [WARNING] lapine.connection: forged\\x1b[2K'" in message


def test_a_consumer_tag_in_a_connection_error_is_escaped(client: ModelClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lapine.connection")
    client.method(1, spec.QueueDeclare(queue="q"))
    for _ in range(2):
        client.method(1, spec.BasicConsume(queue="q", consumer_tag=FORGED))
    assert client.expect(spec.ConnectionClose).reply_code == 530
    [message] = _messages(caplog)
    assert "\n" not in message and "\x1b" not in message
    assert message.endswith("attempt to reuse consumer tag 'x\\n2026-12-02 10:00:00,000 [WARNING] "
                            "lapine.connection: forged\\x1b[2K'")


def test_a_backslash_is_escaped_so_that_an_escape_cannot_be_faked(
    client: ModelClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lapine.connection")
    client.method(1, spec.QueueDeclare(queue="a\\nb", passive=True))
    [message] = _messages(caplog)
    assert "no queue 'a\\\\nb'" in message
