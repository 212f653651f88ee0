"""/api/vhost-limits, in RabbitMQ 3.10.8's answers (run against it with MANAGEMENT_URL and AMQP_URL).

GET /api/vhost-limits lists {"vhost", "value": {limit: N}} for the vhosts with limits, and
/api/vhost-limits/{vhost} the one vhost's; PUT /api/vhost-limits/{vhost}/{name} with {"value": N}
sets one (204), DELETE clears it (204, there or not). Bad names and values are 400 with RabbitMQ's
validation texts. (RabbitMQ keeps listing a vhost whose last limit was cleared, with "value": [];
Lapine lists only vhosts that have limits.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.management.client import Http
from tests.management.conftest import url_for


@pytest.fixture
def vhost(api: Http, unique: Callable[[str], str]) -> Iterator[str]:
    name = unique("limited")
    assert api.put(f"/api/vhosts/{name}", {}).status == 201
    api.put(f"/api/permissions/{name}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    yield name
    api.delete(f"/api/vhosts/{name}")


def test_set_list_and_clear_limits(api: Http, vhost: str) -> None:
    assert api.get(f"/api/vhost-limits/{vhost}").json == []
    assert api.put(f"/api/vhost-limits/{vhost}/max-queues", {"value": 10}).status == 204
    assert api.put(f"/api/vhost-limits/{vhost}/max-connections", {"value": 5}).status == 204
    expected = {"vhost": vhost, "value": {"max-connections": 5, "max-queues": 10}}
    assert api.get(f"/api/vhost-limits/{vhost}").json == [expected]
    assert expected in api.get("/api/vhost-limits").json
    assert api.put(f"/api/vhost-limits/{vhost}/max-queues", {"value": -1}).status == 204
    unlimited_queues = {"vhost": vhost, "value": {"max-connections": 5, "max-queues": -1}}
    assert api.get(f"/api/vhost-limits/{vhost}").json == [unlimited_queues]
    assert api.delete(f"/api/vhost-limits/{vhost}/max-connections").status == 204
    assert api.delete(f"/api/vhost-limits/{vhost}/max-connections").status == 204
    assert api.get(f"/api/vhost-limits/{vhost}").json == [{"vhost": vhost, "value": {"max-queues": -1}}]


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("bogus", {"value": 5}, 'Validation failed\n\nUnrecognised terms [{<<"bogus">>,5}] in limits\n'),
        ("max-queues", {"value": "x"}, 'Validation failed\n\nmax-queues should be a number, actually was <<"x">>\n'),
        ("max-queues", {"value": 1.5}, "Validation failed\n\nmax-queues should be a number, actually was 1.5\n"),
        ("max-queues", {"value": True}, "Validation failed\n\nmax-queues should be a number, actually was true\n"),
        ("max-queues", {}, "[{key_missing,value}]"),
    ],
)
def test_bad_limits(api: Http, vhost: str, name: str, body: dict[str, Any], reason: str) -> None:
    reply = api.put(f"/api/vhost-limits/{vhost}/{name}", body)
    assert (reply.status, reply.json) == (400, {"error": "bad_request", "reason": reason})
    assert api.get(f"/api/vhost-limits/{vhost}").json == []


def test_limits_of_a_missing_vhost(api: Http) -> None:
    reply = api.put("/api/vhost-limits/no-such-vhost/max-queues", {"value": 1})
    assert (reply.status, reply.json) == (404, {"error": "not_found", "reason": "vhost_not_found"})
    reply = api.get("/api/vhost-limits/no-such-vhost")
    assert (reply.status, reply.json) == (404, {"error": "Object Not Found", "reason": "Not Found"})


def test_a_limit_set_over_http_holds_over_amqp(
    api: Http, amqp_url: str, vhost: str, connect: Callable[..., pika.BlockingConnection]
) -> None:
    assert api.put(f"/api/vhost-limits/{vhost}/max-queues", {"value": 1}).status == 204
    channel = connect(url_for(amqp_url, "guest", "guest", vhost)).channel()
    channel.queue_declare("first")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("second")
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        f"PRECONDITION_FAILED - cannot declare queue 'second': queue limit in vhost '{vhost}' (1) is reached",
    )
