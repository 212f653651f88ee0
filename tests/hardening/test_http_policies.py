"""Policies over HTTP: values checked as RabbitMQ checks them, and patterns that cannot stall the loop.

The refusals are RabbitMQ 3.10.8's, measured: 400 {"error": "bad_request", "reason":
"Validation failed\\n\\n-1 is not a valid maximum length\\n"}. Lapine also refuses TTLs above the
ten-year ceiling its queues accept (RabbitMQ's x-message-ttl ceiling), and patterns RE2 cannot run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pika
import pytest

from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.management.client import Http


@pytest.fixture
def running(start_broker: StartBroker) -> BrokerThread:
    return start_broker(management_port=0)


@pytest.fixture
def api(running: BrokerThread) -> Http:
    return Http(running.management_url)


def _refusal(api: Http, definition: object, **extra: object) -> object:
    reply = api.put("/api/policies/%2F/p", {"pattern": "^a", "definition": definition, **extra})
    assert reply.status == 400, reply.body
    assert reply.body["error"] == "bad_request"
    return reply.body["reason"]


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        ({"max-length": -1}, "-1 is not a valid maximum length"),
        ({"message-ttl": 2**47}, "140737488355328 is not a valid message TTL"),
        ({"expires": 1e20}, "1.0e20 is not a valid queue expiry"),
        ({"expires": 0}, "0 is not a valid queue expiry"),
        ({"message-ttl": "x"}, '<<"x">> is not a valid message TTL'),
        ({"max-length-bytes": 1.5}, "1.5 is not a valid maximum length in bytes"),
        ({"overflow": "drop-tail"}, '<<"drop-tail">> is not a valid overflow value'),
        ({"dead-letter-exchange": 5}, "5 is not a valid dead letter exchange name"),
        ({"bogus": 1}, '[{<<"bogus">>,1}] are not recognised policy settings'),
        ({}, "no policy provided"),
    ],
)
def test_policy_values_are_checked_as_rabbitmq_checks_them(api: Http, definition: object, reason: str) -> None:
    assert _refusal(api, definition) == f"Validation failed\n\n{reason}\n"
    assert api.get("/api/policies").body == []


def test_pattern_priority_and_apply_to_are_checked(api: Http) -> None:
    assert _refusal(api, {"max-length": 1}, priority="x") == (
        'Validation failed\n\npriority should be a number, actually was <<"x">>\n'
    )
    assert _refusal(api, {"max-length": 1}, **{"apply-to": "streams"}) == (
        "Validation failed\n\napply-to 'streams' unrecognised; should be one of: "
        "'queues', 'exchanges', 'classic_queues', 'quorum_queues', or 'all'\n"
    )
    reply = api.put("/api/policies/%2F/p", {"pattern": "(a", "definition": {"max-length": 1}})
    invalid = "pattern should be regular expression but is invalid"
    assert reply.body["reason"] == f"Validation failed\n\n{invalid}: missing ): (a\n"
    # A backreference needs a backtracking engine: refused with RE2's reason, not accepted and stalled on.
    reply = api.put("/api/policies/%2F/p", {"pattern": "(a)\\1", "definition": {"max-length": 1}})
    assert reply.status == 400
    assert "pattern should be regular expression but is invalid: invalid escape sequence" in reply.body["reason"]
    reply = api.put("/api/policies/%2F/p", {"pattern": 7, "definition": {"max-length": 1}})
    assert reply.body["reason"] == "Validation failed\n\npattern should be a binary but was 7\n"


@pytest.mark.timeout(30)
def test_catastrophic_pattern_does_not_stall_declares(api: Http, running: BrokerThread) -> None:
    """With a backtracking engine this declare never returns (3 s at 26 characters, doubling per one)."""
    assert api.put("/api/policies/%2F/evil", {"pattern": "^(a+)+$", "definition": {"max-length": 5}}).status == 201
    name = "a" * 200 + "!"
    connection = pika.BlockingConnection(pika.URLParameters(running.url))
    try:
        channel = connection.channel()
        channel.queue_declare(name)
        channel.queue_declare("aaaa")
        assert api.get("/api/queues/%2F/aaaa").body["effective_policy_definition"] == {"max-length": 5}
        assert api.get(f"/api/queues/%2F/{name}").body["policy"] is None
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ({"pattern": 7, "definition": {"max-length": 1}}, "pattern should be a binary but was 7"),
        ({"pattern": "^a", "definition": {"max-length": -1}}, "-1 is not a valid maximum length"),
        ({"pattern": "^a", "definition": [1]}, "definition must be a dictionary: [1]"),
    ],
)
def test_imported_policies_are_checked_too(api: Http, policy: dict[str, object], reason: str) -> None:
    definitions = {"policies": [{"vhost": "/", "name": "imported", "apply-to": "all", "priority": 0, **policy}]}
    reply = api.post("/api/definitions", definitions)
    assert reply.status == 400, reply.body
    assert reason in reply.body["reason"]
    assert api.get("/api/policies").body == []


def test_accepted_policy_values_still_work(api: Http) -> None:
    ten_years = 315_360_000_000
    body = {"pattern": "^a", "definition": {"message-ttl": ten_years, "expires": 1, "max-length": 0}}
    assert api.put("/api/policies/%2F/p", body).status == 201


def test_lapinectl_shows_the_reason(running: BrokerThread) -> None:
    assert running.server is not None
    env = {**os.environ, "LAPINECTL_PORT": str(running.server.management_port), "LAPINECTL_HOST": "127.0.0.1"}
    command = [sys.executable, "-m", "lapine.cli.ctl", "set_policy", "p", "^a", '{"max-length": -1}']
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode != 0
    assert "-1 is not a valid maximum length" in done.stderr
