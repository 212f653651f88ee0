"""Small things a browser or a careless query could trip over: security headers on every answer,
and column selections RabbitMQ answers (``?columns=name,name.x`` was a 500)."""

from __future__ import annotations

import pytest

from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.management.client import Http


@pytest.fixture
def api(start_broker: StartBroker) -> Http:
    running: BrokerThread = start_broker(management_port=0)
    return Http(running.management_url)


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/overview", "/api/no-such-thing", "/no-such-file"])
def test_every_answer_carries_the_security_headers(api: Http, path: str) -> None:
    headers = {name.lower(): value for name, value in api.get(path).headers.items()}
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


def test_column_selections_as_rabbitmq_answers_them(api: Http) -> None:
    api.put("/api/queues/%2F/cols", {"durable": False, "arguments": {"x-max-length": 3}})
    path = "/api/queues/%2F/cols"
    assert api.get(path + "?columns=name,name.x").body == {"name": "cols"}
    assert api.get(path + "?columns=name.x,name").body == {"name": "cols"}
    assert api.get(path + "?columns=name.x.y").body == {"name": "cols"}
    assert api.get(path + "?columns=arguments.nope,name").body == {"arguments": {}, "name": "cols"}
    assert api.get(path + "?columns=arguments.x-max-length,nope").body == {"arguments": {"x-max-length": 3}}
    listed = api.get("/api/queues?columns=name,name.x")
    assert listed.status == 200
    assert {"name": "cols"} in listed.body
    paged = api.get("/api/queues?columns=name.x,name&page=1")
    assert {"name": "cols"} in paged.body["items"]
