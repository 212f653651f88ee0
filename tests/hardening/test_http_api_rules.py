"""The HTTP API keeps AMQP's rules: exclusive queues, alarms, max_message_size, confirms after the
disk, permissions in the aliveness test, and a get that never loses a message.

RabbitMQ 3.10.8, measured: a get on another connection's exclusive queue is 400 "405
RESOURCE_LOCKED - cannot obtain exclusive access to locked queue ..."; a purge or delete is 400 with
the same text without the code; an aliveness test without configure permission is 401
"ACCESS_REFUSED - access to queue 'aliveness-test' in vhost '/' refused for user 'u'" (current
RabbitMQ, as Lapine, names the permission: "configure access to queue ...").
"""

from __future__ import annotations

import time
from pathlib import Path

import pika
import pytest

from lapine.testing import BrokerThread
from tests.durability.test_disk_trouble import FailingConnection
from tests.hardening.conftest import StartBroker
from tests.management.client import Http

LOCKED = (
    "cannot obtain exclusive access to locked queue 'mine' in vhost '/'. It could be originally declared on "
    "another connection or the exclusive property value does not match that of the original declaration."
)
REJECTED = "rejected Unable to publish message. Check queue limits."
GET = {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"}


@pytest.fixture
def running(start_broker: StartBroker) -> BrokerThread:
    return start_broker(management_port=0, max_message_size=1024)


@pytest.fixture
def api(running: BrokerThread) -> Http:
    return Http(running.management_url)


def _message(routing_key: str, payload: str = "hello", **properties: object) -> dict[str, object]:
    return {"routing_key": routing_key, "properties": properties, "payload": payload, "payload_encoding": "string"}


def test_another_connections_exclusive_queue_is_locked(api: Http, running: BrokerThread) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(running.url))
    try:
        channel = connection.channel()
        channel.queue_declare("mine", exclusive=True)
        channel.basic_publish("", "mine", b"private")
        assert api.post("/api/queues/%2F/mine/get", GET).body == {
            "error": "bad_request",
            "reason": f"405 RESOURCE_LOCKED - {LOCKED}",
        }
        assert api.delete("/api/queues/%2F/mine/contents").body == {"error": "bad_request", "reason": LOCKED}
        assert api.delete("/api/queues/%2F/mine").body == {"error": "bad_request", "reason": LOCKED}
        assert api.put("/api/queues/%2F/mine", {"durable": False}).status == 400
        _method, _properties, body = channel.basic_get("mine", auto_ack=True)
        assert body == b"private"
    finally:
        connection.close()


def test_invalid_get_takes_nothing(api: Http) -> None:
    api.put("/api/queues/%2F/work", {"durable": False})
    api.post("/api/exchanges/%2F/amq.default/publish", _message("work"))
    reply = api.post("/api/queues/%2F/work/get", {**GET, "truncate": "x"})
    assert reply.body == {"error": "bad_request", "reason": "truncate must be an integer"}
    assert api.get("/api/queues/%2F/work").body["messages"] == 1
    taken = api.post("/api/queues/%2F/work/get", {**GET, "truncate": 2}).body
    assert [(m["payload"], m["payload_bytes"]) for m in taken] == [("he", 5)]


def test_get_puts_back_what_it_cannot_show(api: Http, running: BrokerThread) -> None:
    """A content header that does not decode (a field table running past its end, as a raw client may
    send: the broker keeps headers undecoded) is a 500, and the messages stay."""
    connection = pika.BlockingConnection(pika.URLParameters(running.url))
    try:
        channel = connection.channel()
        channel.queue_declare("odd")
        channel.basic_publish("", "odd", b"first")
        channel.basic_publish("", "odd", b"second")
    finally:
        connection.close()
    assert running.server is not None
    queue = running.server.broker.vhosts["/"].queues["odd"]

    def break_second_header() -> None:
        entry = list(queue.ready)[1]
        message = entry.message
        # Property flags saying "headers present", then a table length far beyond the bytes there.
        message.header_payload = message.header_payload[:12] + b"\x20\x00" + (1000).to_bytes(4, "big") + b"\x01"
        message._properties = None

    running.call(break_second_header)
    reply = api.post("/api/queues/%2F/odd/get", GET)
    assert reply.status == 500
    assert "cannot be decoded" in reply.body["reason"]
    assert api.get("/api/queues/%2F/odd").body["messages"] == 2


def test_publish_refuses_what_amqp_refuses(api: Http) -> None:
    api.put("/api/queues/%2F/sized", {"durable": False})
    reply = api.post("/api/exchanges/%2F/amq.default/publish", _message("sized", "x" * 1025))
    assert reply.body == {
        "error": "bad_request",
        "reason": "406 PRECONDITION_FAILED - message size 1025 is larger than configured max size 1024",
    }
    assert api.post("/api/exchanges/%2F/amq.default/publish", _message("sized", "x" * 1024)).body == {"routed": True}
    limited = {"x-max-length": 1, "x-overflow": "reject-publish"}
    api.put("/api/queues/%2F/full", {"durable": False, "arguments": limited})
    assert api.post("/api/exchanges/%2F/amq.default/publish", _message("full")).body == {"routed": True}
    assert api.post("/api/exchanges/%2F/amq.default/publish", _message("full")).body == {
        "error": "bad_request",
        "reason": REJECTED,
    }


def test_publish_is_refused_under_an_alarm(start_broker: StartBroker) -> None:
    running = start_broker(management_port=0, vm_memory_high_watermark_absolute=1, alarm_check_interval=0.05)
    api = Http(running.management_url)
    deadline = time.monotonic() + 10
    while api.get("/api/health/checks/alarms").status != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    reply = api.post("/api/exchanges/%2F/amq.default/publish", _message("any"))
    assert reply.status == 503
    assert reply.body == {"error": "service_unavailable", "reason": "publishing is blocked: low on memory"}


def test_publish_answers_only_once_the_disk_has_the_message(tmp_path: Path, start_broker: StartBroker) -> None:
    running = start_broker(management_port=0, data_dir=str(tmp_path))
    api = Http(running.management_url)
    api.put("/api/queues/%2F/kept", {"durable": True})
    assert api.post("/api/exchanges/%2F/amq.default/publish", _message("kept", delivery_mode=2)).body == {
        "routed": True
    }
    assert running.server is not None
    store = running.server.store
    assert store is not None
    running.call(lambda: setattr(store._writer, "conn", FailingConnection(store._writer.conn)))
    try:
        reply = api.post("/api/exchanges/%2F/amq.default/publish", _message("kept", "lost", delivery_mode=2))
        assert reply.body == {"error": "bad_request", "reason": REJECTED}
    finally:
        running.call(lambda: setattr(store._writer, "conn", store._writer.conn._conn))


def test_aliveness_checks_permissions_and_takes_only_its_own_message(api: Http) -> None:
    assert api.put("/api/users/watcher", {"password": "pw", "tags": "monitoring"}).status == 201
    api.put("/api/permissions/%2F/watcher", {"configure": "^$", "write": ".*", "read": ".*"})
    reply = api.as_user("watcher", "pw").get("/api/aliveness-test/%2F")
    assert reply.status == 401
    assert reply.body == {
        "error": "not_authorised",
        "reason": "ACCESS_REFUSED - configure access to queue 'aliveness-test' in vhost '/' refused for user 'watcher'",
    }
    assert api.get("/api/aliveness-test/%2F").body == {"status": "ok"}
    assert api.get("/api/queues/%2F/aliveness-test").body["messages"] == 0
    api.post("/api/exchanges/%2F/amq.default/publish", _message("aliveness-test", "someone's"))
    reply = api.get("/api/aliveness-test/%2F")
    assert reply.status == 503
    assert reply.body["status"] == "failed"
    taken = api.post("/api/queues/%2F/aliveness-test/get", GET).body
    assert [m["payload"] for m in taken] == ["someone's"]
