"""Failed logins: answered late (without holding up anyone else), logged with the peer, and no
password ever reaches the log.

RabbitMQ 3.10.8, measured: a client with the ``authentication_failure_close`` capability gets
403 "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see
the broker logfile." at once; one without it sees the socket closed 3 s later (rabbit_reader's
SILENT_CLOSE_DELAY). Lapine delays both by ``login_failure_delay`` (1 s by default), which slows
down password guessing the same way for every client.
"""

from __future__ import annotations

import logging
import time

import pika
import pika.exceptions
import pika.spec
import pytest

from lapine.auth.permissions import Permission
from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.helpers.raw_amqp import RawAMQP, amqplain_response

WITH_CAPABILITY = {"product": "raw", "capabilities": {"authentication_failure_close": True}}


def _failed_login(
    broker: BrokerThread, client_properties: dict[str, object], user: str = "guest", password: str = "wrong"
) -> RawAMQP:
    client = RawAMQP(broker.url, timeout=10)
    client.start()
    start_ok = pika.spec.Connection.StartOk(
        client_properties=client_properties,
        mechanism="PLAIN",
        response=f"\x00{user}\x00{password}".encode(),  # type: ignore[arg-type]
    )
    client.send_method(0, start_ok)
    return client


def test_failed_login_is_answered_late(start_broker: StartBroker) -> None:
    broker = start_broker(login_failure_delay=0.6)
    started = time.monotonic()
    client = _failed_login(broker, WITH_CAPABILITY)
    close = client.expect_connection_close()
    waited = time.monotonic() - started
    assert close.reply_code == 403
    assert close.reply_text == (
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
    )
    assert 0.55 <= waited < 2.0
    assert client.is_closed_by_broker()

    started = time.monotonic()
    client = _failed_login(broker, {"product": "raw"})
    assert client.wait_closed(5) == b""  # no capability: nothing is said, the socket just closes
    assert 0.55 <= time.monotonic() - started < 2.0


def test_delay_does_not_hold_up_other_clients(start_broker: StartBroker) -> None:
    broker = start_broker(login_failure_delay=2.0)
    pending = [_failed_login(broker, WITH_CAPABILITY) for _ in range(5)]
    started = time.monotonic()
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    connection.channel().queue_declare("", exclusive=True)
    assert time.monotonic() - started < 1.0
    connection.close()
    for client in pending:
        assert client.expect_connection_close().reply_code == 403
        client.close()


def test_no_delay_when_turned_off(start_broker: StartBroker) -> None:
    broker = start_broker(login_failure_delay=0)
    started = time.monotonic()
    client = _failed_login(broker, WITH_CAPABILITY)
    assert client.expect_connection_close().reply_code == 403
    assert time.monotonic() - started < 0.5


def test_passwords_never_reach_the_log(start_broker: StartBroker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good_password, bad_password = "Right-Horse-Battery-9137", "Wrong-Staple-Guess-4410"
    broker = start_broker(login_failure_delay=0.05, log_level="debug")
    assert broker.server is not None
    model = broker.server.broker
    broker.call(model.users.add, "alice", good_password, ["management"])
    broker.call(model.permissions.set, Permission("alice", "/"))
    url = broker.url.replace("guest:guest", f"alice:{good_password}")

    connection = pika.BlockingConnection(pika.URLParameters(url))  # a successful login
    connection.channel().queue_declare("", exclusive=True)
    connection.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(url.replace(good_password, bad_password)))
    client = _failed_login(broker, WITH_CAPABILITY, user="alice", password=bad_password)  # PLAIN, raw
    client.expect_connection_close()
    client.close()
    client = RawAMQP(broker.url)  # AMQPLAIN with the good password, then a bad one
    client.start()
    client.login(mechanism="AMQPLAIN", response=amqplain_response("alice", good_password))
    client.close()
    client = RawAMQP(broker.url)
    client.start()
    client.send_method(
        0,
        pika.spec.Connection.StartOk(
            client_properties=WITH_CAPABILITY,
            mechanism="AMQPLAIN",
            response=amqplain_response("alice", bad_password),  # type: ignore[arg-type]
        ),
    )
    client.expect_connection_close()
    client.close()

    logged = "\n".join(_record_text(record) for record in caplog.records)
    assert good_password not in logged and bad_password not in logged
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("login refused for user 'alice'")]
    assert len(refusals) == 3
    assert all("from 127.0.0.1" in message for message in refusals)


def _record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write: the message, its raw arguments and any traceback."""
    parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(repr(record.exc_info[1]))
    return " ".join(parts)
