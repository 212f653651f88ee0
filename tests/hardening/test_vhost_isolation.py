"""Vhosts keep their clients apart: nothing published in one vhost reaches a consumer in another.

Direct reply-to names (``amq.rabbitmq.reply-to.<token>``) belong to the vhost of the channel that
was given one, as RabbitMQ's volatile queues are resources of a vhost: a reply published to that
name in another vhost is routed there, to no queue, and the requester never sees it.
"""

from __future__ import annotations

from typing import Any

import pika

from lapine.broker import definitions
from tests.hardening.conftest import StartBroker
from tests.helpers.amqp import pump, wait_until

REPLY_TO = "amq.rabbitmq.reply-to"


def test_a_direct_reply_from_another_vhost_does_not_reach_the_requester(start_broker: StartBroker) -> None:
    broker = start_broker()
    assert broker.server is not None
    model = broker.server.broker
    broker.call(lambda: definitions.add_vhost(model, "other"))
    broker.call(lambda: definitions.set_permissions(model, "guest", "other", ".*", ".*", ".*"))

    requester = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = requester.channel()
    replies: list[bytes] = []

    def on_reply(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        replies.append(body)

    channel.basic_consume(REPLY_TO, on_reply, auto_ack=True)
    requests = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", requests, b"request", pika.BasicProperties(reply_to=REPLY_TO))
    _method, properties, _body = channel.basic_get(requests, auto_ack=True)
    reply_name = properties.reply_to
    assert reply_name.startswith(REPLY_TO + ".")

    outsider = pika.BlockingConnection(pika.URLParameters(broker.url.replace("%2F", "other")))
    outside = outsider.channel()
    outside.confirm_delivery()
    outside.basic_publish("", reply_name, b"forged reply")  # confirmed, routed to nothing
    pump(requester, 0.3)
    assert replies == []

    insider = pika.BlockingConnection(pika.URLParameters(broker.url))
    insider.channel().basic_publish("", reply_name, b"reply")
    assert wait_until(requester, lambda: replies == [b"reply"])
    for connection in (insider, outsider, requester):
        connection.close()
