"""/api/exchanges: list, show, declare, delete, publish, and an exchange's bindings."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lapine.amqp.errors import AMQPError
from lapine.broker import names, publish_checks
from lapine.broker.broker import Broker
from lapine.broker.exchange import Exchange
from lapine.broker.message import Message
from lapine.broker.vhost import VirtualHost
from lapine.management import counters
from lapine.management.auth import act_in, check, scoped_vhosts, user_of, vhost_for_write, vhost_from_path
from lapine.management.bindings import all_bindings
from lapine.management.context import broker_of, sampler_of
from lapine.management.http import (
    ApiError,
    as_bool,
    bad_request,
    created,
    from_amqp,
    json_response,
    listing,
    no_content,
    not_found,
    one,
    read_json,
    require_keys,
)
from lapine.management.messages import decode_payload, header_payload, properties_from_json
from lapine.server.throttle import blocked_reason

DEFAULT_NAME = "amq.default"
# Seconds between looks at the store while a publish waits for its message to be on disk.
STORE_FAILURE_CHECK = 0.5


def path_name(request: web.Request) -> str:
    """The API calls the default exchange "amq.default"."""
    name = request.match_info["name"]
    return "" if name == DEFAULT_NAME else name


def exchange_info(request: web.Request, exchange: Exchange) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": exchange.name,
        "vhost": exchange.vhost.name,
        "type": exchange.type,
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": dict(exchange.arguments),
        "user_who_performed_action": "rmq-internal" if _is_system(exchange) else user_of(request).name,
    }
    policy = getattr(exchange, "policy", None)
    info["policy"] = policy.name if policy is not None else None
    if exchange.delayed_type is not None:
        # The delayed-message plugin's exchange info item.
        info["messages_delayed"] = broker_of(request).delayed.messages_delayed(exchange)
    values = counters.of(exchange.stats)
    if counters.any_activity(values, counters.EXCHANGE_FIELDS):
        info["message_stats"] = sampler_of(request).details(exchange, values, counters.EXCHANGE_FIELDS)
    return info


def _is_system(exchange: Exchange) -> bool:
    return not exchange.name or exchange.name.startswith("amq.")


def find(request: web.Request) -> tuple[VirtualHost, Exchange]:
    vhost = vhost_from_path(request)
    exchange = vhost.exchanges.get(path_name(request))
    if exchange is None:
        raise not_found()
    return vhost, exchange


async def list_exchanges(request: web.Request) -> web.Response:
    return listing(request, [exchange_info(request, x) for v in scoped_vhosts(request) for x in v.exchanges.values()])


async def get_exchange(request: web.Request) -> web.Response:
    _vhost, exchange = find(request)
    info = exchange_info(request, exchange)
    info.update(incoming=[], outgoing=[])
    return one(request, info)


async def put_exchange(request: web.Request) -> web.Response:
    vhost = vhost_for_write(request)
    body = await read_json(request)
    name = path_name(request)
    act_in(request, vhost)
    existed = name in vhost.exchanges
    try:
        if name:
            check(request, vhost, "configure", "exchange", name)
        vhost.declare_exchange(
            name,
            str(body.get("type", "direct")),
            durable=as_bool(body.get("durable", True)),
            auto_delete=as_bool(body.get("auto_delete", False)),
            internal=as_bool(body.get("internal", False)),
            arguments=_arguments(body),
        )
    except AMQPError as error:
        raise from_amqp(error) from None
    return no_content() if existed else created()


def _arguments(body: dict[str, Any]) -> dict[str, Any]:
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be an object")
    return arguments


async def delete_exchange(request: web.Request) -> web.Response:
    vhost, exchange = find(request)
    act_in(request, vhost)
    if _is_system(exchange):
        raise ApiError(401, "not_authorised", "Access refused.")
    try:
        check(request, vhost, "configure", "exchange", exchange.name)
        vhost.delete_exchange(exchange.name, if_unused=as_bool(request.query.get("if-unused", "false")))
    except AMQPError as error:
        raise from_amqp(error) from None
    return no_content()


async def publish(request: web.Request) -> web.Response:
    """Publish one message as a channel with confirms would, and say whether any queue took it.

    As over AMQP: refused while a resource alarm is in effect and when larger than
    max_message_size; answered once the message is on disk when a durable queue keeps it, and
    refused when a queue rejects it (RabbitMQ's "Unable to publish message. Check queue limits.").
    """
    vhost = vhost_from_path(request)
    name = path_name(request)
    broker = broker_of(request)
    body = await read_json(request)
    require_keys(body, "routing_key", "properties", "payload", "payload_encoding")
    routing_key = str(body["routing_key"])
    problem = names.shortstr_problem("routing_key", routing_key)
    if problem is not None:
        raise bad_request(problem)
    properties = properties_from_json(body["properties"])
    payload = decode_payload(body["payload"], body["payload_encoding"])
    act_in(request, vhost)
    limit = broker.config.max_message_size
    if len(payload) > limit:
        size = len(payload)
        raise bad_request(f"406 PRECONDITION_FAILED - message size {size} is larger than configured max size {limit}")
    if broker.alarms:
        raise ApiError(503, "service_unavailable", f"publishing is blocked: {blocked_reason(broker.alarms)}")
    try:
        check(request, vhost, "write", "exchange", name)
        exchange = publish_checks.publish_exchange(vhost, name)
        message = Message(name, routing_key, header_payload(properties, len(payload)), payload)
        user = user_of(request).name
        # As a channel's publish: user-id, expiration and CC/BCC, then the topic permission.
        publish_checks.inspect_properties(message, user)
        topic = publish_checks.topic_permission(broker.permissions, user, exchange)
        if topic is not None:
            publish_checks.check_topic_write(broker.permissions, topic, message)
        routed, accepted = route(vhost, exchange, message)
    except AMQPError as error:
        raise bad_request(f"{error.reply_code} {error.reply_text}") from None
    if accepted and message.durably_written:
        accepted = await _on_disk(broker)
    if not accepted:
        raise bad_request("rejected Unable to publish message. Check queue limits.")
    return json_response({"routed": routed})


async def _on_disk(broker: Broker) -> bool:
    """Wait for the store's next group commit; False when the disk has failed (a publisher's nack)."""
    store = broker.store
    if store is None:
        return True
    if store.failed is not None:
        return False
    written = asyncio.get_running_loop().create_future()

    def on_disk() -> None:
        if not written.done():
            written.set_result(store.failed is None)

    broker.submit_barrier(on_disk)
    # A store that dies never runs its waiting barriers: look at it now and then while waiting.
    while not written.done():
        await asyncio.wait({written}, timeout=STORE_FAILURE_CHECK)
        if store.failed is not None:
            return False
    return bool(written.result())


def route(vhost: VirtualHost, exchange: Exchange, message: Message) -> tuple[bool, bool]:
    """Route and enqueue as a channel's publish does; the vhost keeps the publisher's counts.
    Returns (routed, accepted), accepted False when a queue refused the message."""
    routed, accepted = vhost.publish(exchange, message)
    vhost.stats.publish += 1
    if not routed:
        vhost.stats.drop_unroutable += 1
    return routed, accepted


async def bindings_source(request: web.Request) -> web.Response:
    vhost, exchange = find(request)
    rows = [b for b in all_bindings(vhost) if b["source"] == exchange.name]
    return listing(request, rows)


async def bindings_destination(request: web.Request) -> web.Response:
    vhost, exchange = find(request)
    rows = [b for b in all_bindings(vhost) if b["destination"] == exchange.name and b["destination_type"] == "exchange"]
    return listing(request, rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/exchanges", list_exchanges),
        web.get("/api/exchanges/{vhost}", list_exchanges),
        web.get("/api/exchanges/{vhost}/{name}", get_exchange),
        web.put("/api/exchanges/{vhost}/{name}", put_exchange),
        web.delete("/api/exchanges/{vhost}/{name}", delete_exchange),
        web.post("/api/exchanges/{vhost}/{name}/publish", publish),
        web.get("/api/exchanges/{vhost}/{name}/bindings/source", bindings_source),
        web.get("/api/exchanges/{vhost}/{name}/bindings/destination", bindings_destination),
    ]
