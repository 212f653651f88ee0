"""A vhost whose default queue type is quorum, set over HTTP: AMQP declares that may be quorum
queues become quorum queues (as in RabbitMQ 3.11 and later; 3.10 ignores the setting)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pika
import pytest

from tests.management.client import Http, q
from tests.management.conftest import url_for


@pytest.fixture
def vhost(api: Http, unique: Callable[[str], str]) -> Iterator[str]:
    name = unique("quorum-default")
    assert api.put(f"/api/vhosts/{name}", {"default_queue_type": "quorum"}).status == 201
    api.put(f"/api/permissions/{name}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    yield name
    api.delete(f"/api/vhosts/{name}")


def test_durable_queues_of_the_vhost_are_quorum_queues(
    api: Http, amqp_url: str, vhost: str, connect: Callable[..., pika.BlockingConnection]
) -> None:
    assert api.get(f"/api/vhosts/{vhost}").json["default_queue_type"] == "quorum"
    channel = connect(url_for(amqp_url, "guest", "guest", vhost)).channel()
    channel.queue_declare("jobs", durable=True)
    channel.queue_declare("", exclusive=True)  # cannot be a quorum queue: stays classic
    channel.queue_declare("jobs", durable=True)  # the same declare again is equivalent
    types = {queue["name"]: queue["type"] for queue in api.get(f"/api/queues/{q(vhost)}").json}
    assert types.pop("jobs") == "quorum"
    assert list(types.values()) == ["classic"]
    jobs = api.get(f"/api/queues/{q(vhost)}/jobs").json
    assert jobs["arguments"] == {"x-queue-type": "quorum"}
    channel.confirm_delivery()
    channel.basic_publish("", "jobs", b"kept", pika.BasicProperties(delivery_mode=1))
    assert channel.basic_get("jobs", auto_ack=True)[2] == b"kept"
