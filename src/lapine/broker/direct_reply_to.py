"""Direct reply-to: RPC replies straight to the requesting channel, with no queue in between.

A client consumes the pseudo-queue ``amq.rabbitmq.reply-to`` (no-ack) and publishes a request
with that name as reply_to; the broker rewrites reply_to to a name unique to that channel, and a
reply published to that name on the default exchange, in the same vhost, goes straight to the
consumer. The names are kept per vhost: a reply published in another vhost is routed there like any
other message, to no queue (RabbitMQ's volatile queues are vhost resources too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lapine.amqp import spec
from lapine.amqp.constants import PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError
from lapine.broker import names
from lapine.broker.message import Message
from lapine.broker.queue import QueuedMessage

if TYPE_CHECKING:
    from lapine.broker.channel import Channel
    from lapine.broker.vhost import VirtualHost

QUEUE = "amq.rabbitmq.reply-to"
PREFIX = QUEUE + "."


class ReplyConsumer:
    """The consumer of a channel's replies; it quacks like a no-ack Consumer for delivery."""

    __slots__ = ("channel", "name", "no_ack", "tag", "tag_bytes")

    def __init__(self, channel: Channel, tag: str) -> None:
        self.channel = channel
        self.tag = tag
        self.tag_bytes = tag.encode()
        self.no_ack = True
        self.name = PREFIX + names.generate_name("g1h2AA").split("-", 1)[1]

    def rewrite(self, message: Message) -> None:
        properties = message.properties
        properties.reply_to = self.name
        message.header_payload = message.header_payload[:12] + properties.encode()

    def stop(self) -> None:
        self.channel.vhost.reply_consumers.pop(self.name, None)


def start(channel: Channel, tag: str, no_ack: bool) -> ReplyConsumer:
    if not no_ack:
        raise ChannelError(PRECONDITION_FAILED, "reply consumer cannot acknowledge", *spec.BasicConsume.IDS)
    if channel.reply_to is not None:
        raise ChannelError(PRECONDITION_FAILED, "reply consumer already set", *spec.BasicConsume.IDS)
    consumer = ReplyConsumer(channel, tag)
    channel.vhost.reply_consumers[consumer.name] = consumer
    return consumer


def deliver(vhost: VirtualHost, message: Message) -> bool:
    """Hand a reply to its requester's channel; False when no such requester listens in this vhost."""
    consumer = vhost.reply_consumers.get(message.routing_key)
    if consumer is None or consumer.channel.closed:
        return False
    consumer.channel.deliver(consumer, QueuedMessage(message, 0), None)
    return True
