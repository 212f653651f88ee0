"""What a publish is checked for, over AMQP (Channel.publish) and over HTTP (the management
API's publish) alike: the exchange it names, its topic permission, and the properties the broker
acts on (user-id, expiration, CC/BCC). Errors are RabbitMQ's channel errors, with its texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lapine.amqp import spec
from lapine.amqp.constants import ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError

if TYPE_CHECKING:
    from lapine.auth.permissions import Permissions, TopicPermission
    from lapine.broker.exchange import Exchange
    from lapine.broker.message import Message
    from lapine.broker.vhost import VirtualHost


_PUBLISH = spec.BasicPublish.IDS  # the method these errors are about

# Property-flag bits, read straight from the raw content header (user-id in the low byte; the
# others in the high one) so that properties are decoded only when one of them is set.
USER_ID_FLAG = 0x0010
REPLY_TO_FLAG_HIGH = 0x02
INSPECT_FLAGS_HIGH = 0x23  # headers (for CC/BCC), reply-to, expiration


def publish_exchange(vhost: VirtualHost, name: str) -> Exchange:
    """The exchange a publish names: it must exist and not be internal (write access is the
    caller's to check first, as RabbitMQ checks it first)."""
    exchange = vhost.exchanges.get(name)
    if exchange is None:
        raise ChannelError(NOT_FOUND, f"no exchange '{name}' in vhost '{vhost.name}'", *_PUBLISH)
    if exchange.internal:
        raise ChannelError(
            ACCESS_REFUSED, f"cannot publish to internal exchange '{exchange.name}' in vhost '{vhost.name}'", *_PUBLISH
        )
    return exchange


def topic_permission(permissions: Permissions, user: str, exchange: Exchange) -> TopicPermission | None:
    """The user's topic permission on a topic exchange, if one is set."""
    if exchange.type != "topic":
        return None
    return permissions.topic.get((user, exchange.vhost.name, exchange.name))


def check_topic_write(permissions: Permissions, topic: TopicPermission, message: Message) -> None:
    """Every routing key of the message, CC and BCC ones too (as current RabbitMQ checks)."""
    for key in (message.routing_key, *(message.cc or ()), *(message.bcc or ())):
        permissions.check_topic(topic, "write", key)


def inspect_properties(message: Message, user: str) -> None:
    """The properties the broker acts on at publish: user-id must be the user's, expiration
    becomes the message's TTL, CC and BCC add routing keys (BCC is removed)."""
    if message.header_payload[13] & USER_ID_FLAG:
        check_user_id(message, user)
    if message.has_expiration:
        message.ttl = expiration_ms(message.properties.expiration)
    if message.may_name_recipients:
        take_recipients(message)


def check_user_id(message: Message, user: str) -> None:
    user_id = message.properties.user_id
    if user_id is not None and user_id != user:
        raise ChannelError(
            PRECONDITION_FAILED, f"user_id property set to '{user_id}' but authenticated user was '{user}'", *_PUBLISH
        )


def expiration_ms(text: str | None) -> int | None:
    """The expiration property as milliseconds, refused as RabbitMQ refuses it."""
    if text is None:
        return None
    try:
        ttl = int(text) if text.strip() == text and text.lstrip("-").isdigit() else None
    except ValueError:
        ttl = None
    if ttl is None:
        raise ChannelError(PRECONDITION_FAILED, f"invalid expiration '{text}': no_integer", *_PUBLISH)
    if ttl < 0:
        raise ChannelError(PRECONDITION_FAILED, f"invalid expiration '{text}': {{value_negative,{ttl}}}", *_PUBLISH)
    return ttl


def take_recipients(message: Message) -> None:
    """Sender-selected distribution: CC and BCC header keys add routing keys; BCC is removed."""
    properties = message.properties
    headers = properties.headers or {}
    message.cc = _keys(headers.get("CC"))
    message.bcc = _keys(headers.get("BCC"))
    if "BCC" in headers:
        properties.headers = {k: v for k, v in headers.items() if k != "BCC"}
        message.header_payload = message.header_payload[:12] + properties.encode()


def _keys(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [key for key in value if isinstance(key, str)] or None
