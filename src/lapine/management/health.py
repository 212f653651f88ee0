"""Health checks (/api/health/checks/...) and the aliveness test, answered as RabbitMQ does.

A check answers 200 {"status": "ok"} when healthy and 503 {"status": "failed", "reason": ...}
otherwise. Lapine has no quorum queues, so that check passes.
"""

from __future__ import annotations

from aiohttp import web

from lapine.amqp.constants import ACCESS_REFUSED
from lapine.amqp.errors import AMQPError
from lapine.broker.message import Message
from lapine.management.auth import check, vhost_from_path
from lapine.management.context import broker_of, node_of
from lapine.management.http import ApiError, bad_request, json_response
from lapine.management.messages import header_payload

ALIVENESS_QUEUE = "aliveness-test"


def ok(**extra: object) -> web.Response:
    return json_response({"status": "ok", **extra})


def failed(reason: str, **extra: object) -> web.Response:
    return json_response({"status": "failed", "reason": reason, **extra}, status=503)


async def alarms(request: web.Request) -> web.Response:
    """RabbitMQ's answer: 503 and the alarms in effect, or ok."""
    in_effect = sorted(broker_of(request).alarms)
    if in_effect:
        node = node_of(request).name
        alarms = [{"node": node, "resource": resource} for resource in in_effect]
        return failed("There are alarms in effect in the cluster", alarms=alarms)
    return ok()


async def virtual_hosts(request: web.Request) -> web.Response:
    return ok()


async def quorum_critical(request: web.Request) -> web.Response:
    return ok(reason="single node cluster")


async def port_listener(request: web.Request) -> web.Response:
    try:
        port = int(request.match_info["port"])
    except ValueError:
        return failed("port must be an integer")
    ports = [p for _address, p in node_of(request).listeners.values()]
    if port in ports:
        return ok(port=port)
    return failed(f"No active listener on port {port}", port=port, ports=ports, missing=port)


async def protocol_listener(request: web.Request) -> web.Response:
    protocol = request.match_info["protocol"]
    known = {"amqp": "amqp", "amqp091": "amqp", "amqp0-9-1": "amqp", "http": "http", "prometheus": "http/prometheus"}
    name = known.get(protocol.lower(), protocol)
    if name in node_of(request).listeners:
        return ok(protocol=protocol)
    protocols = list(node_of(request).listeners)
    return failed(f"No active listener for protocol {protocol}", protocols=protocols, missing=protocol)


async def aliveness(request: web.Request) -> web.Response:
    """Declare a queue, publish to it and get the message back, as RabbitMQ's aliveness test, with
    the user's configure, write and read permissions as over AMQP.

    Only our own message is taken: when the aliveness-test queue already holds messages (someone
    else's), the test fails rather than take one of them.
    """
    vhost = vhost_from_path(request)
    try:
        for kind, resource, name in (
            ("configure", "queue", ALIVENESS_QUEUE),
            ("write", "exchange", ""),
            ("read", "queue", ALIVENESS_QUEUE),
        ):
            check(request, vhost, kind, resource, name)
        queue = vhost.declare_queue(ALIVENESS_QUEUE, None)
    except AMQPError as error:
        if error.reply_code == ACCESS_REFUSED:
            raise ApiError(401, "not_authorised", error.reply_text) from None
        raise bad_request(f"{error.reply_code} {error.reply_text}") from None
    if queue.message_count or queue.unacked_count:
        return failed(f"queue '{ALIVENESS_QUEUE}' in vhost '{vhost.name}' is not empty")
    body = b"test_message"
    sent = Message("", ALIVENESS_QUEUE, header_payload({}, len(body)), body)
    queue.publish(sent)
    entry = queue.get(no_ack=False)
    if entry is None:
        return failed("aliveness test failed")
    if entry.message is not sent:
        queue.requeue([entry])
        return failed("aliveness test failed")
    queue.settled([entry])
    return ok()


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/health/checks/alarms", alarms),
        web.get("/api/health/checks/local-alarms", alarms),
        web.get("/api/health/checks/virtual-hosts", virtual_hosts),
        web.get("/api/health/checks/node-is-quorum-critical", quorum_critical),
        web.get("/api/health/checks/node-is-mirror-sync-critical", quorum_critical),
        web.get("/api/health/checks/port-listener/{port}", port_listener),
        web.get("/api/health/checks/protocol-listener/{protocol}", protocol_listener),
        web.get("/api/health/checks/certificate-expiration/{within}/{unit}", virtual_hosts),
        web.get("/api/aliveness-test/{vhost}", aliveness),
    ]
