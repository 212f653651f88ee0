"""The management API as RabbitMQ answers it: status codes, error bodies and JSON field names.

Runs against a Lapine started here, or against any broker given by MANAGEMENT_URL and AMQP_URL
(a real RabbitMQ with its management plugin), so that both can be held to the same answers:

    MANAGEMENT_URL=http://localhost:15674 AMQP_URL=amqp://guest:guest@localhost:5674/%2F \
        python -m pytest tests/management/test_compat.py

Field lists are those of RabbitMQ's HTTP API reference and of what RabbitMQ 3.10 answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from tests.management.client import Http, q
from tests.management.conftest import eventually, url_for


def has_fields(item: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if name not in item]
    assert not missing, f"missing fields {missing} in {sorted(item)}"


# --- node-wide -----------------------------------------------------------------------------------


def test_overview_fields(api: Http) -> None:
    reply = api.get("/api/overview")
    assert reply.status == 200
    has_fields(
        reply.json,
        "management_version",
        "rates_mode",
        "exchange_types",
        "rabbitmq_version",
        "cluster_name",
        "erlang_version",
        "message_stats",
        "queue_totals",
        "object_totals",
        "statistics_db_event_queue",
        "node",
        "listeners",
        "contexts",
        "product_name",
        "product_version",
    )
    has_fields(reply.json["object_totals"], "channels", "connections", "consumers", "exchanges", "queues")
    has_fields(reply.json["queue_totals"], "messages", "messages_ready", "messages_unacknowledged")
    assert {t["name"] for t in reply.json["exchange_types"]} >= {"direct", "fanout", "topic", "headers"}
    assert {listener["protocol"] for listener in reply.json["listeners"]} >= {"amqp", "http"}


def test_overview_columns(api: Http) -> None:
    reply = api.get("/api/overview?columns=rabbitmq_version,cluster_name")
    assert reply.status == 200
    assert sorted(reply.json) == ["cluster_name", "rabbitmq_version"]


def test_nodes_fields(api: Http) -> None:
    reply = api.get("/api/nodes")
    assert reply.status == 200 and len(reply.json) == 1
    has_fields(
        reply.json[0],
        "name",
        "type",
        "running",
        "mem_used",
        "mem_limit",
        "mem_alarm",
        "disk_free",
        "disk_free_limit",
        "disk_free_alarm",
        "fd_used",
        "fd_total",
        "sockets_used",
        "sockets_total",
        "proc_used",
        "proc_total",
        "uptime",
        "run_queue",
        "processors",
        "os_pid",
        "partitions",
        "exchange_types",
        "auth_mechanisms",
        "applications",
        "contexts",
        "rates_mode",
        "net_ticktime",
    )
    assert api.get(f"/api/nodes/{q(reply.json[0]['name'])}").status == 200


def test_whoami_cluster_name_and_health(api: Http) -> None:
    assert api.get("/api/whoami").json == {"name": "guest", "tags": ["administrator"]}
    assert "name" in api.get("/api/cluster-name").json
    assert api.get("/api/health/checks/alarms").json == {"status": "ok"}
    assert api.get("/api/health/checks/local-alarms").json == {"status": "ok"}
    assert api.get("/api/health/checks/virtual-hosts").json == {"status": "ok"}
    assert api.get("/api/aliveness-test/%2F").json == {"status": "ok"}
    assert api.get("/api/aliveness-test/no-such-vhost").status == 404


def test_unknown_path_and_authentication(api: Http) -> None:
    assert api.get("/api/no-such-thing").json == {"error": "Object Not Found", "reason": "Not Found"}
    refused = api.as_user("guest", "wrong").get("/api/overview")
    assert refused.status == 401
    assert refused.json == {"error": "not_authorized", "reason": "Login failed"}
    assert "Basic" in refused.headers.get("www-authenticate", refused.headers.get("WWW-Authenticate", ""))


# --- vhosts, users, permissions -------------------------------------------------------------------


def test_vhost_lifecycle(api: Http, unique: Callable[[str], str]) -> None:
    name = unique("vh")
    assert api.put(f"/api/vhosts/{q(name)}", {"description": "test vhost"}).status == 201
    assert api.put(f"/api/vhosts/{q(name)}", {"description": "test vhost"}).status == 204
    reply = api.get(f"/api/vhosts/{q(name)}")
    assert reply.status == 200
    has_fields(reply.json, "name", "description", "tags", "tracing", "cluster_state")
    assert reply.json["description"] == "test vhost"
    assert any(v["name"] == name for v in api.get("/api/vhosts").json)
    # A new vhost's message figures appear with RabbitMQ's next statistics round; "/" has them.
    default = next(v for v in api.get("/api/vhosts").json if v["name"] == "/")
    has_fields(default, "name", "messages", "messages_ready", "messages_unacknowledged", "tracing")
    # The creator gets full permissions on the new vhost.
    permission = api.get(f"/api/permissions/{q(name)}/guest")
    assert permission.status == 200 and permission.json["configure"] == ".*"
    assert api.delete(f"/api/vhosts/{q(name)}").status == 204
    assert api.delete(f"/api/vhosts/{q(name)}").status == 404
    assert api.get(f"/api/vhosts/{q(name)}").status == 404


def test_user_lifecycle(api: Http, unique: Callable[[str], str]) -> None:
    name = unique("user")
    assert api.put(f"/api/users/{q(name)}", {"password": "secret", "tags": "monitoring"}).status == 201
    assert api.put(f"/api/users/{q(name)}", {"password": "secret", "tags": "monitoring,management"}).status == 204
    reply = api.get(f"/api/users/{q(name)}")
    assert reply.status == 200
    has_fields(reply.json, "name", "password_hash", "hashing_algorithm", "tags")
    assert reply.json["tags"] == ["monitoring", "management"]
    assert reply.json["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert any(u["name"] == name for u in api.get("/api/users").json)
    assert api.get(f"/api/users/{q(name)}/permissions").json == []
    assert api.delete(f"/api/users/{q(name)}").status == 204
    assert api.delete(f"/api/users/{q(name)}").status == 404
    assert api.get(f"/api/users/{q(name)}").status == 404


def test_permission_lifecycle(api: Http, unique: Callable[[str], str]) -> None:
    user = unique("user")
    api.put(f"/api/users/{q(user)}", {"password": "pw", "tags": ""})
    path = f"/api/permissions/%2F/{q(user)}"
    try:
        assert api.put(path, {"configure": "^x", "write": ".*", "read": ".*"}).status == 201
        assert api.put(path, {"configure": "^y", "write": ".*", "read": ".*"}).status == 204
        reply = api.get(path)
        assert reply.json == {"user": user, "vhost": "/", "configure": "^y", "write": ".*", "read": ".*"}
        assert api.put(path, {"configure": ".*", "write": ".*"}).json == {
            "error": "bad_request",
            "reason": "[{key_missing,read}]",
        }
        missing = api.put(f"/api/permissions/no-such-vhost/{q(user)}", {"configure": "", "write": "", "read": ""})
        assert missing.json == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
        assert any(p["user"] == user for p in api.get("/api/permissions").json)
        assert any(p["user"] == user for p in api.get("/api/vhosts/%2F/permissions").json)
        assert api.delete(path).status == 204
        assert api.delete(path).status == 404
    finally:
        api.delete(f"/api/users/{q(user)}")


def test_tags_decide_what_a_user_may_see(api: Http, unique: Callable[[str], str]) -> None:
    monitor, manager, nobody = unique("mon"), unique("mgr"), unique("none")
    api.put(f"/api/users/{q(monitor)}", {"password": "pw", "tags": "monitoring"})
    api.put(f"/api/users/{q(manager)}", {"password": "pw", "tags": "management"})
    api.put(f"/api/users/{q(nobody)}", {"password": "pw", "tags": ""})
    try:
        as_monitor, as_manager = api.as_user(monitor, "pw"), api.as_user(manager, "pw")
        assert as_monitor.get("/api/whoami").json == {"name": monitor, "tags": ["monitoring"]}
        assert as_monitor.get("/api/nodes").status == 200
        assert as_monitor.get("/api/users").json == {"error": "not_authorised", "reason": "Not administrator user"}
        assert as_manager.get("/api/nodes").json == {"error": "not_authorised", "reason": "Not monitor user"}
        assert as_manager.get("/api/vhosts").json == []
        assert as_manager.get("/api/queues/%2F").json == {
            "error": "not_authorised",
            "reason": "User not authorised to access virtual host",
        }
        assert api.as_user(nobody, "pw").get("/api/overview").status == 401
    finally:
        for name in (monitor, manager, nobody):
            api.delete(f"/api/users/{q(name)}")


# --- queues --------------------------------------------------------------------------------------

QUEUE_FIELDS = (
    "name",
    "vhost",
    "durable",
    "auto_delete",
    "exclusive",
    "arguments",
    "node",
    "state",
    "type",
    "consumers",
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "messages_details",
    "messages_ready_details",
    "messages_unacknowledged_details",
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "consumer_capacity",
    "consumer_utilisation",
    "policy",
    "exclusive_consumer_tag",
)


@pytest.fixture
def queue(api: Http, unique: Callable[[str], str]) -> Iterator[str]:
    name = unique("q")
    assert api.put(f"/api/queues/%2F/{q(name)}", {"durable": False, "arguments": {}}).status == 201
    yield name
    api.delete(f"/api/queues/%2F/{q(name)}")


def test_queue_declare_codes(api: Http, queue: str) -> None:
    assert api.put(f"/api/queues/%2F/{q(queue)}", {"durable": False}).status == 204
    inequivalent = api.put(f"/api/queues/%2F/{q(queue)}", {"durable": True})
    where = f"for queue '{queue}' in vhost '/'"
    assert inequivalent.json == {
        "error": "bad_request",
        "reason": f"inequivalent arg 'durable' {where}: received 'true' but current is 'false'",
    }
    assert api.put(f"/api/queues/no-such-vhost/{q(queue)}").json == {"error": "not_found", "reason": "vhost_not_found"}
    assert api.call("PUT", f"/api/queues/%2F/{q(queue)}x", b"not json").json == {
        "error": "bad_request",
        "reason": "not_json",
    }
    api.delete(f"/api/queues/%2F/{q(queue)}x")


def test_queue_fields(api: Http, queue: str) -> None:
    api.post(
        "/api/exchanges/%2F/amq.default/publish",
        {"routing_key": queue, "payload": "hi", "payload_encoding": "string", "properties": {}},
    )
    path = f"/api/queues/%2F/{q(queue)}"
    # RabbitMQ fills a new queue's figures in over a statistics round or two.
    assert eventually(lambda: all(name in api.get(path).json for name in QUEUE_FIELDS))
    assert eventually(lambda: api.get(path).json.get("messages") == 1)
    detail = api.get(path)
    assert detail.status == 200
    has_fields(detail.json, *QUEUE_FIELDS, "consumer_details", "incoming", "deliveries")
    listed = [item for item in api.get("/api/queues/%2F").json if item["name"] == queue]
    assert len(listed) == 1
    has_fields(listed[0], *QUEUE_FIELDS)
    assert api.get("/api/queues/%2F/no-such-queue").status == 404
    assert api.get("/api/queues/no-such-vhost").status == 404


def test_quorum_queue_fields(api: Http, unique: Callable[[str], str]) -> None:
    """A quorum queue on one node: that node leads it and is its only member, online."""
    name = unique("qq")
    path = f"/api/queues/%2F/{q(name)}"
    arguments = {"x-queue-type": "quorum", "x-delivery-limit": 5}
    assert api.put(path, {"durable": True, "arguments": arguments}).status == 201
    try:
        assert eventually(lambda: "members" in api.get(path).json)
        detail = api.get(path).json
        node = api.get("/api/overview").json["node"]
        assert (detail["type"], detail["durable"], detail["arguments"]) == (
            "quorum",
            True,
            {"x-queue-type": "quorum", "x-delivery-limit": 5},
        )
        assert (detail["leader"], detail["members"], detail["online"]) == (node, [node], [node])
        (listed,) = [item for item in api.get("/api/queues/%2F").json if item["name"] == name]
        assert (listed["type"], listed["leader"], listed["members"]) == ("quorum", node, [node])
    finally:
        api.delete(path)


def test_quorum_queue_delivery_limit_is_shown(api: Http, unique: Callable[[str], str]) -> None:
    """RabbitMQ 4.x shows the effective delivery limit (20 unless set)."""
    if os.environ.get("MANAGEMENT_URL"):
        pytest.skip("RabbitMQ 3.10 does not show delivery_limit (4.x does)")
    name = unique("qq")
    path = f"/api/queues/%2F/{q(name)}"
    api.put(path, {"durable": True, "type": "quorum"})
    try:
        detail = api.get(path).json
        assert (detail["delivery_limit"], detail["messages_dlx"], detail["message_bytes_dlx"]) == (20, 0, 0)
    finally:
        api.delete(path)


def test_queue_list_columns_and_sort(api: Http, unique: Callable[[str], str]) -> None:
    names = [unique("sortq") for _ in range(3)]
    for name in names:
        api.put(f"/api/queues/%2F/{q(name)}", {"durable": False})
    try:
        rows = api.get("/api/queues/%2F?columns=name,messages&sort=name&sort_reverse=true").json
        mine = [row for row in rows if row["name"] in names]
        assert [row["name"] for row in mine] == sorted(names, reverse=True)
        # RabbitMQ leaves out figures it has not collected yet, so "messages" may be missing.
        assert all("name" in row and set(row) <= {"messages", "name"} for row in rows)
    finally:
        for name in names:
            api.delete(f"/api/queues/%2F/{q(name)}")


def test_queue_get_purge_and_delete(api: Http, queue: str) -> None:
    for body, props in (("one", {}), ("two", {"content_type": "text/plain", "headers": {"h": "v"}})):
        routed = api.post(
            "/api/exchanges/%2F/amq.default/publish",
            {"routing_key": queue, "payload": body, "payload_encoding": "string", "properties": props},
        )
        assert routed.json == {"routed": True}
    get = f"/api/queues/%2F/{q(queue)}/get"
    first = api.post(get, {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert first.status == 200
    assert first.json == [
        {
            "payload_bytes": 3,
            "redelivered": False,
            "exchange": "",
            "routing_key": queue,
            "message_count": 1,
            "properties": [],
            "payload": "one",
            "payload_encoding": "string",
        }
    ]
    both = api.post(get, {"count": 5, "ackmode": "ack_requeue_false", "encoding": "base64"}).json
    assert [m["payload"] for m in both] == ["b25l", "dHdv"]
    assert both[0]["redelivered"] is True
    assert both[1]["properties"] == {"content_type": "text/plain", "headers": {"h": "v"}}
    assert api.post(get, {"count": 1, "ackmode": "ack_requeue_true"}).json == {
        "error": "bad_request",
        "reason": "[{key_missing,encoding}]",
    }
    api.post(
        "/api/exchanges/%2F/amq.default/publish",
        {"routing_key": queue, "payload": "x", "payload_encoding": "string", "properties": {}},
    )
    not_empty = api.delete(f"/api/queues/%2F/{q(queue)}?if-empty=true")
    assert not_empty.json == {"error": "bad_request", "reason": f"queue '{queue}' in vhost '/' not empty"}
    assert api.delete(f"/api/queues/%2F/{q(queue)}/contents").status == 204
    assert api.post(get, {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}).json == []
    assert api.delete(f"/api/queues/%2F/{q(queue)}").status == 204
    assert api.delete(f"/api/queues/%2F/{q(queue)}").status == 404


# --- exchanges and publishing --------------------------------------------------------------------


def test_exchange_lifecycle(api: Http, unique: Callable[[str], str]) -> None:
    name = unique("x")
    path = f"/api/exchanges/%2F/{q(name)}"
    assert api.put(path, {"type": "topic", "durable": False}).status == 201
    assert api.put(path, {"type": "topic", "durable": False}).status == 204
    reply = api.get(path)
    has_fields(reply.json, "name", "vhost", "type", "durable", "auto_delete", "internal", "arguments")
    assert (reply.json["type"], reply.json["durable"]) == ("topic", False)
    assert any(x["name"] == name for x in api.get("/api/exchanges/%2F").json)
    assert api.put(f"/api/exchanges/%2F/{q(name)}2", {"type": "bogus"}).json == {
        "error": "bad_request",
        "reason": "unknown exchange type 'bogus'",
    }
    assert api.put("/api/exchanges/%2F/amq.lapine-test", {"type": "direct"}).status == 401
    assert api.delete("/api/exchanges/%2F/amq.direct").status == 401
    assert api.delete(path).status == 204
    assert api.delete(path).status == 404
    assert api.get("/api/exchanges/%2F/amq.default").json["name"] == ""


def test_publish_routed_and_errors(api: Http, unique: Callable[[str], str]) -> None:
    message = {"routing_key": "nobody-listens", "payload": "x", "payload_encoding": "string", "properties": {}}
    assert api.post("/api/exchanges/%2F/amq.direct/publish", message).json == {"routed": False}
    no_exchange = api.post(f"/api/exchanges/%2F/{q(unique('nox'))}/publish", message)
    assert no_exchange.status == 400
    assert "404 NOT_FOUND - no exchange" in no_exchange.json["reason"]
    incomplete = {k: v for k, v in message.items() if k != "payload_encoding"}
    assert api.post("/api/exchanges/%2F/amq.direct/publish", incomplete).json == {
        "error": "bad_request",
        "reason": "[{key_missing,payload_encoding}]",
    }



def test_publish_checks_the_properties_as_a_channel_does(api: Http, unique: Callable[[str], str]) -> None:
    """The API's publish goes through a channel's checks: CC and BCC add routing keys (BCC is
    dropped), a user-id must be the user's, an expiration must be a whole number of ms."""
    main, copy = unique("cc-main"), unique("cc-copy")
    for queue in (main, copy):
        api.put(f"/api/queues/%2F/{q(queue)}", {"durable": False, "auto_delete": False})
    try:
        properties = {"headers": {"CC": [copy], "BCC": [copy]}}
        message = {"routing_key": main, "payload": "x", "payload_encoding": "string", "properties": properties}
        assert api.post("/api/exchanges/%2F/amq.default/publish", message).json == {"routed": True}
        get = {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"}
        assert eventually(lambda: api.get(f"/api/queues/%2F/{q(copy)}").json.get("messages") == 1)
        [got] = api.post(f"/api/queues/%2F/{q(copy)}/get", get).json
        assert got["properties"]["headers"] == {"CC": [copy]}
        wrong_user = dict(message, properties={"user_id": "someone-else"})
        refused = api.post("/api/exchanges/%2F/amq.default/publish", wrong_user)
        assert refused.status == 400
        assert "user_id property set to 'someone-else' but authenticated user was 'guest'" in refused.json["reason"]
        bad_expiration = dict(message, properties={"expiration": "soon"})
        refused = api.post("/api/exchanges/%2F/amq.default/publish", bad_expiration)
        assert refused.status == 400
        assert "invalid expiration 'soon'" in refused.json["reason"]
    finally:
        for queue in (main, copy):
            api.delete(f"/api/queues/%2F/{q(queue)}")


# --- bindings ------------------------------------------------------------------------------------

BINDING_FIELDS = ("source", "vhost", "destination", "destination_type", "routing_key", "arguments", "properties_key")


def test_binding_lifecycle(api: Http, queue: str, unique: Callable[[str], str]) -> None:
    exchange = unique("bx")
    api.put(f"/api/exchanges/%2F/{q(exchange)}", {"type": "direct", "durable": False})
    try:
        base = f"/api/bindings/%2F/e/{q(exchange)}/q/{q(queue)}"
        created = api.post(base, {"routing_key": "rk", "arguments": {}})
        assert created.status == 201
        assert created.headers.get("location", created.headers.get("Location", "")).endswith("rk")
        listed = api.get(base).json
        assert len(listed) == 1
        has_fields(listed[0], *BINDING_FIELDS)
        assert listed[0]["properties_key"] == "rk"
        with_args = api.post(base, {"routing_key": "rk2", "arguments": {"a": 1}})
        assert with_args.status == 201
        props = next(b for b in api.get(base).json if b["routing_key"] == "rk2")["properties_key"]
        assert props.startswith("rk2~")
        assert api.get(f"{base}/{q(props)}").json["arguments"] == {"a": 1}
        all_bindings = api.get("/api/bindings/%2F").json
        assert any(b["source"] == "" and b["destination"] == queue for b in all_bindings)
        assert len(api.get(f"/api/queues/%2F/{q(queue)}/bindings").json) == 3
        assert len(api.get(f"/api/exchanges/%2F/{q(exchange)}/bindings/source").json) == 2
        assert api.delete(f"{base}/rk").status == 204
        assert api.delete(f"{base}/rk").status == 404
        assert api.post(f"/api/bindings/%2F/e/{q(exchange)}/q/no-such-queue", {"routing_key": "x"}).json == {
            "error": "not_found",
            "reason": "no queue 'no-such-queue' in vhost '/'",
        }
        to_exchange = api.post(f"/api/bindings/%2F/e/{q(exchange)}/e/amq.fanout", {"routing_key": "e2e"})
        assert to_exchange.status == 201
        destination = api.get("/api/exchanges/%2F/amq.fanout/bindings/destination").json
        assert any(b["source"] == exchange and b["destination_type"] == "exchange" for b in destination)
    finally:
        api.delete(f"/api/exchanges/%2F/{q(exchange)}")


# --- connections, channels, consumers ------------------------------------------------------------

CONNECTION_FIELDS = (
    "name",
    "node",
    "vhost",
    "user",
    "state",
    "channels",
    "peer_host",
    "peer_port",
    "host",
    "port",
    "protocol",
    "client_properties",
    "connected_at",
    "frame_max",
    "channel_max",
    "timeout",
    "recv_oct",
    "send_oct",
    "recv_oct_details",
    "send_oct_details",
    "auth_mechanism",
    "ssl",
    "type",
    "user_provided_name",
)
CHANNEL_FIELDS = (
    "name",
    "number",
    "node",
    "connection_details",
    "vhost",
    "user",
    "state",
    "confirm",
    "transactional",
    "consumer_count",
    "messages_unacknowledged",
    "messages_unconfirmed",
    "messages_uncommitted",
    "acks_uncommitted",
    "prefetch_count",
    "global_prefetch_count",
)
CONSUMER_FIELDS = (
    "consumer_tag",
    "queue",
    "channel_details",
    "ack_required",
    "exclusive",
    "prefetch_count",
    "arguments",
    "active",
)


def _find_connection(api: Http, user_name: str) -> dict[str, Any] | None:
    rows = api.get("/api/connections").json
    return next((c for c in rows if c.get("user_provided_name") == user_name), None)


def test_connections_channels_consumers(
    api: Http, queue: str, connect: Callable[..., Any], unique: Callable[[str], str]
) -> None:
    tag = unique("conn")
    connection = connect(client_properties={"connection_name": tag})
    channel = connection.channel()
    channel.basic_qos(prefetch_count=7)
    channel.basic_consume(queue, lambda *args: None, consumer_tag=tag)
    found = eventually(lambda: _find_connection(api, tag))
    assert found is not None
    has_fields(found, *CONNECTION_FIELDS)
    assert (found["user"], found["vhost"], found["protocol"]) == ("guest", "/", "AMQP 0-9-1")
    assert api.get(f"/api/connections/{q(found['name'])}").status == 200
    channels = eventually(lambda: api.get(f"/api/connections/{q(found['name'])}/channels").json)
    assert len(channels) == 1
    has_fields(channels[0], *CHANNEL_FIELDS)
    assert channels[0]["number"] == 1
    consumers = eventually(lambda: [c for c in api.get("/api/consumers").json if c["consumer_tag"] == tag])
    assert len(consumers) == 1
    has_fields(consumers[0], *CONSUMER_FIELDS)
    assert consumers[0]["queue"] == {"name": queue, "vhost": "/"}
    assert consumers[0]["prefetch_count"] == 7


def test_close_connection_with_reason(api: Http, connect: Callable[..., Any], unique: Callable[[str], str]) -> None:
    tag = unique("closeme")
    connection = connect(client_properties={"connection_name": tag})
    found = eventually(lambda: _find_connection(api, tag))
    assert found is not None
    reply = api.delete(f"/api/connections/{q(found['name'])}", headers={"X-Reason": "bye now"})
    assert reply.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(50):
            connection.process_data_events(0.1)
    assert (closed.value.reply_code, closed.value.reply_text) == (320, "CONNECTION_FORCED - bye now")
    assert api.delete("/api/connections/no-such-connection").status == 404


def test_deleting_a_vhost_or_user_closes_their_connections(
    api: Http, amqp_url: str, connect: Callable[..., Any], unique: Callable[[str], str]
) -> None:
    vhost, user = unique("cvh"), unique("cuser")
    api.put(f"/api/vhosts/{q(vhost)}")
    api.put(f"/api/users/{q(user)}", {"password": "pw", "tags": ""})
    api.put(f"/api/permissions/%2F/{q(user)}", {"configure": ".*", "write": ".*", "read": ".*"})
    in_vhost = connect(url_for(amqp_url, "guest", "guest", vhost))
    as_user = connect(url_for(amqp_url, user, "pw"))
    try:
        assert api.delete(f"/api/vhosts/{q(vhost)}").status == 204
        _expect_forced(in_vhost, f"CONNECTION_FORCED - vhost '{vhost}' is deleted")
        assert api.delete(f"/api/users/{q(user)}").status == 204
        _expect_forced(as_user, f"CONNECTION_FORCED - user '{user}' is deleted")
    finally:
        api.delete(f"/api/vhosts/{q(vhost)}")
        api.delete(f"/api/users/{q(user)}")


def _expect_forced(connection: pika.BlockingConnection, text: str) -> None:
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(50):
            connection.process_data_events(0.1)
    assert (closed.value.reply_code, closed.value.reply_text) == (320, text)


# --- definitions ---------------------------------------------------------------------------------


def test_definitions_export_and_import(api: Http, unique: Callable[[str], str]) -> None:
    exported = api.get("/api/definitions")
    assert exported.status == 200
    has_fields(
        exported.json,
        "rabbit_version",
        "rabbitmq_version",
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "global_parameters",
        "policies",
        "queues",
        "exchanges",
        "bindings",
    )
    queue, exchange, user = unique("dq"), unique("dx"), unique("du")
    definitions = {
        "users": [{"name": user, "password_hash": "", "tags": "management"}],
        "queues": [{"name": queue, "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}],
        "exchanges": [
            {
                "name": exchange,
                "vhost": "/",
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "bindings": [
            {
                "source": exchange,
                "vhost": "/",
                "destination": queue,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        ],
    }
    try:
        assert api.post("/api/definitions", definitions).status == 204
        assert api.get(f"/api/queues/%2F/{q(queue)}").status == 200
        assert api.get(f"/api/exchanges/%2F/{q(exchange)}").json["type"] == "fanout"
        assert api.get(f"/api/users/{q(user)}").json["tags"] == ["management"]
        assert len(api.get(f"/api/bindings/%2F/e/{q(exchange)}/q/{q(queue)}").json) == 1
        again = api.get("/api/definitions").json
        assert any(item["name"] == queue for item in again["queues"])
        per_vhost = api.get("/api/definitions/%2F").json
        has_fields(per_vhost, "queues", "exchanges", "bindings", "policies")
        assert api.call("POST", "/api/definitions", b"{broken").json == {
            "error": "bad_request",
            "reason": "failed_to_parse_json",
        }
    finally:
        api.delete(f"/api/queues/%2F/{q(queue)}")
        api.delete(f"/api/exchanges/%2F/{q(exchange)}")
        api.delete(f"/api/users/{q(user)}")


# --- policies ------------------------------------------------------------------------------------


def test_policy_lifecycle(api: Http, unique: Callable[[str], str]) -> None:
    name, queue = unique("pol"), unique("polq")
    path = f"/api/policies/%2F/{q(name)}"
    body = {"pattern": f"^{queue}$", "definition": {"max-length": 1}, "priority": 1, "apply-to": "queues"}
    try:
        assert api.put(path, body).status == 201
        assert api.put(path, {**body, "definition": {"max-length": 2}}).status == 204
        expected = {
            "vhost": "/",
            "name": name,
            "pattern": f"^{queue}$",
            "apply-to": "queues",
            "definition": {"max-length": 2},
            "priority": 1,
        }
        assert api.get(path).json == expected
        assert expected in api.get("/api/policies").json
        assert expected in api.get("/api/policies/%2F").json
        # The policy applies: a third message pushes out the oldest one.
        api.put(f"/api/queues/%2F/{q(queue)}", {"durable": False})
        message = {"routing_key": queue, "payload": "x", "payload_encoding": "string", "properties": {}}
        for _ in range(3):
            api.post("/api/exchanges/%2F/amq.default/publish", message)
        assert eventually(lambda: api.get(f"/api/queues/%2F/{q(queue)}").json.get("messages") == 2)
        assert api.put(path, {"definition": {"max-length": 1}}).json == {
            "error": "bad_request",
            "reason": "[{key_missing,pattern}]",
        }
        assert api.put(path, {"pattern": "x", "definition": {"bogus": 1}}).status == 400
        assert api.put(f"/api/policies/no-such-vhost/{q(name)}", body).json == {
            "error": "not_found",
            "reason": "vhost_not_found",
        }
        assert api.delete(path).status == 204
        assert api.delete(path).status == 404
        assert api.get(path).status == 404
    finally:
        api.delete(path)
        api.delete(f"/api/queues/%2F/{q(queue)}")


def test_single_active_consumer_is_the_only_active_one(
    api: Http, connect: Callable[..., Any], unique: Callable[[str], str]
) -> None:
    name = unique("sac")
    channel = connect().channel()
    channel.queue_declare(name, durable=True, arguments={"x-single-active-consumer": True})
    try:
        first = channel.basic_consume(name, lambda *args: None, consumer_tag=unique("first"))
        second = channel.basic_consume(name, lambda *args: None, consumer_tag=unique("second"))

        def states() -> dict[str, bool] | None:
            found = {c["consumer_tag"]: c["active"] for c in api.get("/api/consumers").json}
            return found if first in found and second in found else None

        assert eventually(states) == {first: True, second: False}
        queue = eventually(lambda: api.get(f"/api/queues/%2F/{q(name)}").json)
        assert queue["single_active_consumer_tag"] == first
    finally:
        channel.queue_delete(name)
