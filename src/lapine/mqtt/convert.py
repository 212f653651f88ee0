"""An MQTT PUBLISH as an AMQP message and back, with the property mapping RabbitMQ uses (mc_mqtt):

- QoS 1 is delivery_mode 2 (persistent), QoS 0 is delivery_mode 1; an AMQP message is QoS 1 when
  persistent, and a subscriber gets the lower of that and its subscription's QoS;
- Content Type <-> content_type, Correlation Data <-> correlation_id (or the x-correlation-id
  header when it is no short string), Response Topic <-> the x-reply-to-topic header (as an
  AMQP routing key), Message Expiry Interval (s) <-> expiration (ms), User Properties <-> headers.
"""

from __future__ import annotations

from typing import Any

from lapine.amqp.codec import LongStr
from lapine.amqp.spec import BasicProperties, encode_basic_header
from lapine.broker.message import Message
from lapine.mqtt import topics
from lapine.mqtt.packets import Publish

REPLY_TO_TOPIC = "x-reply-to-topic"
# What dead-lettering adds (a delayed will is dead-lettered): not the publisher's user properties.
_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")
CORRELATION_ID = "x-correlation-id"


class MqttMessage(Message):
    """A message published over MQTT: it remembers its RETAIN flag, for subscriptions with Retain
    As Published (RabbitMQ keeps the MQTT message itself for that). A message read back from disk
    is a plain Message again and is delivered with RETAIN 0."""

    __slots__ = ("retain",)

    def __init__(self, exchange: str, routing_key: str, header_payload: bytes, body: bytes, retain: bool) -> None:
        super().__init__(exchange, routing_key, header_payload, body)
        self.retain = retain


# The properties of a PUBLISH without MQTT 5 properties, by QoS: encoded once.
_PLAIN = {qos: BasicProperties(delivery_mode=2 if qos else 1).encode() for qos in (0, 1)}


def to_message(exchange: str, publish: Publish, v5: bool) -> Message:
    """The AMQP message for a PUBLISH (its topic already resolved from any alias)."""
    body = publish.payload
    if not (v5 and publish.properties):
        header = encode_basic_header(len(body), _PLAIN[publish.qos])
        return MqttMessage(exchange, topics.to_amqp(publish.topic), header, body, publish.retain)
    properties = BasicProperties(delivery_mode=2 if publish.qos else 1)
    _map_properties(publish.properties, properties)
    header = encode_basic_header(len(body), properties.encode())
    message = MqttMessage(exchange, topics.to_amqp(publish.topic), header, body, publish.retain)
    if properties.expiration is not None:
        message.ttl = int(properties.expiration)
    return message


def _map_properties(props: dict[str, Any], properties: BasicProperties) -> None:
    headers: dict[str, Any] = {}
    for name, value in props.get("user_property", ()):
        if len(name.encode()) <= 255:
            headers[name] = value
    content_type = props.get("content_type")
    if content_type is not None and content_type.isascii() and len(content_type) <= 255:
        properties.content_type = content_type
    response_topic = props.get("response_topic")
    if response_topic is not None:
        headers[REPLY_TO_TOPIC] = topics.to_amqp(response_topic)
    correlation = props.get("correlation_data")
    if correlation is not None:
        text = _short_string(correlation)
        if text is not None:
            properties.correlation_id = text
        else:
            headers[CORRELATION_ID] = LongStr(correlation)
    expiry = props.get("message_expiry_interval")
    if expiry is not None:
        properties.expiration = str(expiry * 1000)
    if headers:
        properties.headers = dict(sorted(headers.items()))


def _short_string(data: bytes) -> str | None:
    if len(data) > 255:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def message_qos(message: Message) -> int:
    return 1 if message.persistent else 0


def publish_properties(message: Message) -> dict[str, Any]:
    """The MQTT 5 properties of a delivery, from the message's AMQP properties."""
    amqp = message.properties
    props: dict[str, Any] = {}
    if amqp.content_type is not None:
        props["content_type"] = amqp.content_type
    headers = dict(amqp.headers or {})
    reply_topic = headers.pop(REPLY_TO_TOPIC, None)
    if isinstance(reply_topic, str | bytes):
        props["response_topic"] = topics.to_mqtt(_text(reply_topic))
    correlation_header = headers.pop(CORRELATION_ID, None)
    if amqp.correlation_id is not None:
        props["correlation_data"] = amqp.correlation_id.encode("utf-8", "surrogateescape")
    elif isinstance(correlation_header, str | bytes):
        props["correlation_data"] = (
            bytes(correlation_header)
            if isinstance(correlation_header, bytes)
            else (correlation_header.encode("utf-8", "surrogateescape"))
        )
    if amqp.expiration is not None and amqp.expiration.isdigit():
        props["message_expiry_interval"] = int(amqp.expiration) // 1000
    pairs = [
        (name, text)
        for name, value in headers.items()
        if not name.startswith(_DEATH_HEADERS) and (text := _header_text(value)) is not None
    ]
    if pairs:
        props["user_property"] = pairs
    return props


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def _header_text(value: Any) -> str | None:
    """A header as a user property's string, as RabbitMQ converts them; tables and arrays are left out."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return ""
    if isinstance(value, str | bytes):
        try:
            text = value if isinstance(value, str) else bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return None if "\x00" in text else text
    return None
