"""/api/queues: list, show, declare, delete, purge, get messages, and a queue's bindings."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lapine.amqp.errors import AMQPError
from lapine.broker.broker import Broker
from lapine.broker.connection import Connection
from lapine.broker.queue import Queue, QueuedMessage
from lapine.broker.vhost import VirtualHost
from lapine.management import counters
from lapine.management.auth import act_in, check, scoped_vhosts, vhost_for_write, vhost_from_path
from lapine.management.bindings import all_bindings
from lapine.management.consumers import channel_consumers, consumer_info
from lapine.management.context import broker_of, node_of, sampler_of
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
from lapine.management.messages import encode_payload, properties_to_json
from lapine.management.rates import Sampler

ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false")
GAUGES = ("messages", "messages_ready", "messages_unacknowledged")


def queue_info(
    queue: Queue, sampler: Sampler, node: str, unacked_bytes: int = 0, owner: Connection | None = None
) -> dict[str, Any]:
    ready, unacked = queue.message_count, queue.unacked_count
    # Past its window a queue's backlog is on disk only: RabbitMQ's "paged out".
    paged, paged_bytes = queue.paged, queue.paged_bytes
    ready_bytes = queue.ready_bytes + paged_bytes
    values = counters.of(queue.stats)
    gauges = {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked}
    # A queue type's own fields; its counts (a stream's messages stay when acked) replace these.
    extra = queue.type_info(node)
    gauges.update({key: extra.pop(key) for key in GAUGES if key in extra})
    policy = getattr(queue, "policy", None)
    info: dict[str, Any] = {
        "name": queue.name,
        "vhost": queue.vhost.name,
        "type": queue.type_name,
        "durable": queue.durable,
        "auto_delete": queue.auto_delete,
        "exclusive": queue.exclusive,
        "arguments": dict(queue.arguments),
        "node": node,
        "state": "running",
        "consumers": len(queue.consumers),
        "consumer_capacity": _capacity(queue),
        "consumer_utilisation": _capacity(queue),
        "exclusive_consumer_tag": queue.exclusive_consumer.tag if queue.exclusive_consumer else None,
        "single_active_consumer_tag": queue.active_consumer.tag if queue.active_consumer else None,
        "policy": policy.name if policy is not None else None,
        "operator_policy": None,
        "effective_policy_definition": dict(policy.definition) if policy is not None else {},
        "head_message_timestamp": None,
        "message_bytes": ready_bytes + unacked_bytes,
        "message_bytes_ready": ready_bytes,
        "message_bytes_unacknowledged": unacked_bytes,
        "message_bytes_ram": ready_bytes - paged_bytes + unacked_bytes,
        "message_bytes_paged_out": paged_bytes,
        "messages_ram": ready - paged + unacked,
        "messages_ready_ram": ready - paged,
        "messages_unacknowledged_ram": unacked,
        "messages_paged_out": paged,
        **sampler.details(queue, gauges, GAUGES),
    }
    info.update(extra)
    if owner is not None:
        info["owner_pid_details"] = {"name": owner.name, "peer_host": owner.peer_host, "peer_port": owner.peer_port}
    if counters.any_activity(values, counters.QUEUE_FIELDS):
        info["message_stats"] = sampler.details(queue, values, counters.QUEUE_FIELDS)
    return info


def _capacity(queue: Queue) -> float:
    """How free the consumers are to take messages right now: RabbitMQ's consumer capacity, sampled."""
    if not queue.consumers:
        return 0.0
    return 1.0 if any(consumer.has_room() for consumer in queue.consumers) else 0.0


def unacked_bytes(broker: Broker) -> dict[Queue, int]:
    """Bytes delivered and not yet acked, per queue, from every channel's unacked deliveries."""
    found: dict[Queue, int] = {}
    for channel in counters.channels(broker):
        for delivery in channel.unacked.values():
            found[delivery.queue] = found.get(delivery.queue, 0) + len(delivery.entry.message.body)
    return found


def find(request: web.Request) -> tuple[VirtualHost, Queue]:
    vhost = vhost_from_path(request)
    queue = vhost.queues.get(request.match_info["name"])
    if queue is None:
        raise not_found()
    return vhost, queue


def _infos(request: web.Request, queues: list[Queue]) -> list[dict[str, Any]]:
    broker, sampler, node = broker_of(request), sampler_of(request), node_of(request).name
    unacked = unacked_bytes(broker)
    return [queue_info(q, sampler, node, unacked.get(q, 0), _owner(broker, q)) for q in queues]


def _owner(broker: Broker, queue: Queue) -> Connection | None:
    vhost = broker.vhosts.get(queue.vhost.name) if queue.exclusive else None
    return vhost.owner_of(queue) if vhost is not None else None


async def list_queues(request: web.Request) -> web.Response:
    queues = [q for v in scoped_vhosts(request) for q in v.queues.values()]
    return listing(request, _infos(request, queues))


async def get_queue(request: web.Request) -> web.Response:
    _vhost, queue = find(request)
    info = _infos(request, [queue])[0]
    info.update(
        consumer_details=[consumer_info(c, node_of(request).name) for c in channel_consumers(queue)],
        deliveries=[],
        incoming=[],
    )
    return one(request, info)


async def put_queue(request: web.Request) -> web.Response:
    vhost = vhost_for_write(request)
    name = request.match_info["name"]
    body = await read_json(request)
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be an object")
    if "type" in body and "x-queue-type" not in arguments:
        # The management API's "type" field is the x-queue-type argument, as in RabbitMQ.
        arguments = {**arguments, "x-queue-type": body["type"]}
    act_in(request, vhost)
    existed = name in vhost.queues
    try:
        if name.startswith("amq."):
            raise ApiError(401, "not_authorised", "Access refused.")
        check(request, vhost, "configure", "queue", name)
        vhost.declare_queue(
            name,
            None,
            durable=as_bool(body.get("durable", True)),
            auto_delete=as_bool(body.get("auto_delete", False)),
            arguments=arguments,
        )
    except AMQPError as error:
        raise from_amqp(error) from None
    return no_content() if existed else created()


async def delete_queue(request: web.Request) -> web.Response:
    vhost, queue = find(request)
    act_in(request, vhost)
    try:
        check(request, vhost, "configure", "queue", queue.name)
        # The API has no connection: another connection's exclusive queue is locked to it, as over AMQP.
        vhost.check_exclusive(queue, None)
        vhost.delete_queue(
            queue,
            if_unused=as_bool(request.query.get("if-unused", "false")),
            if_empty=as_bool(request.query.get("if-empty", "false")),
        )
    except AMQPError as error:
        raise from_amqp(error) from None
    return no_content()


async def purge(request: web.Request) -> web.Response:
    vhost, queue = find(request)
    act_in(request, vhost)
    try:
        check(request, vhost, "read", "queue", queue.name)
        vhost.check_exclusive(queue, None)
        queue.check_purge()
    except AMQPError as error:
        raise from_amqp(error) from None
    queue.purge()
    return no_content()


async def get_messages(request: web.Request) -> web.Response:
    """Take up to ``count`` messages, then ack them or put them back, as the ackmode says.

    Everything in the request is checked before a message is taken, and a message that cannot be
    shown (a content header that does not decode) puts every taken message back: a failed get
    never loses one.
    """
    vhost, queue = find(request)
    body = await read_json(request)
    require_keys(body, "count", "ackmode", "encoding")
    ackmode, encoding = body["ackmode"], body["encoding"]
    if ackmode not in ACKMODES:
        raise bad_request(f"ackmode must be one of {', '.join(ACKMODES)}")
    if encoding not in ("auto", "base64"):
        raise bad_request("encoding must be 'auto' or 'base64'")
    count = _int(body["count"], "count")
    truncate = None if body.get("truncate") is None else _int(body["truncate"], "truncate")
    act_in(request, vhost)
    try:
        check(request, vhost, "read", "queue", queue.name)
    except AMQPError as error:
        raise ApiError(401, "not_authorised", error.reply_text) from None
    try:
        vhost.check_exclusive(queue, None)
    except AMQPError as error:
        raise bad_request(f"{error.reply_code} {error.reply_text}") from None
    try:
        queue.check_get()
    except AMQPError as error:
        raise bad_request(f"{error.reply_code} {error.text}") from None
    taken: list[QueuedMessage] = []
    answers = []
    shown = False
    try:
        for _ in range(max(count, 0)):
            entry = await _next_message(queue)
            if entry is None:
                break
            taken.append(entry)
            answers.append(_answer(entry, queue.message_count, encoding, truncate))
        shown = True
    finally:
        if not shown:
            queue.requeue(taken)
    _settle(vhost, queue, taken, requeue=ackmode.endswith("requeue_true"), acked=ackmode.startswith("ack"))
    return json_response(answers)


async def _next_message(queue: Queue) -> QueuedMessage | None:
    """The queue's head, awaited while it is on disk only: a page read lands it, off the loop."""
    while (landed := _page_read(queue)) is not None:
        await landed
    return queue.get(no_ack=False)


def _page_read(queue: Queue) -> asyncio.Future[None] | None:
    """Set when the page read that brings the queue's head in lands; None if none is needed."""
    landed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def land() -> None:
        if not landed.done():
            landed.set_result(None)

    return landed if queue.wait_for_page(land) else None


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise bad_request(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be an integer") from None


def _answer(entry: QueuedMessage, remaining: int, encoding: str, truncate: int | None) -> dict[str, Any]:
    message = entry.message
    body = message.body if truncate is None else message.body[: max(truncate, 0)]
    try:
        properties = properties_to_json(message.properties)
    except Exception as error:  # a header that arrived broken must not cost the message
        raise ApiError(500, "internal_server_error", f"the message's properties cannot be decoded: {error}") from None
    payload, payload_encoding = encode_payload(body, encoding)
    return {
        "payload_bytes": len(message.body),
        "redelivered": entry.redelivered,
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "message_count": remaining,
        "properties": properties,
        "payload": payload,
        "payload_encoding": payload_encoding,
    }


def _settle(vhost: VirtualHost, queue: Queue, taken: list[QueuedMessage], *, requeue: bool, acked: bool) -> None:
    """Count the gets as a channel's basic.get would, then requeue or drop what was taken."""
    for stats in (queue.stats, vhost.stats):
        stats.get += len(taken)
        stats.redeliver += sum(1 for entry in taken if entry.redelivered)
        if acked and not requeue:
            stats.ack += len(taken)
    if not taken:
        return
    if requeue:
        queue.requeue(taken)
    elif acked:
        queue.settled(taken)
    else:
        queue.rejected(taken)


async def queue_bindings(request: web.Request) -> web.Response:
    vhost, queue = find(request)
    rows = [b for b in all_bindings(vhost) if b["destination"] == queue.name and b["destination_type"] == "queue"]
    return listing(request, rows)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/queues", list_queues),
        web.get("/api/queues/{vhost}", list_queues),
        web.get("/api/queues/{vhost}/{name}", get_queue),
        web.put("/api/queues/{vhost}/{name}", put_queue),
        web.delete("/api/queues/{vhost}/{name}", delete_queue),
        web.delete("/api/queues/{vhost}/{name}/contents", purge),
        web.post("/api/queues/{vhost}/{name}/get", get_messages),
        web.get("/api/queues/{vhost}/{name}/bindings", queue_bindings),
    ]
