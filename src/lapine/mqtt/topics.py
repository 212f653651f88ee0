"""MQTT topics and AMQP routing keys, mapped as RabbitMQ maps them: / -> ., + -> *, # stays."""

from __future__ import annotations


def to_amqp(topic: str) -> str:
    return topic.replace("/", ".").replace("+", "*")


def to_mqtt(routing_key: str) -> str:
    return routing_key.replace("*", "+").replace(".", "/")


def valid_topic_name(topic: str) -> bool:
    """A topic to publish to: not empty and no wildcards."""
    return bool(topic) and "+" not in topic and "#" not in topic


def valid_topic_filter(topic_filter: str) -> bool:
    """A filter to subscribe with: '#' only last and alone in its level, '+' alone in its level."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def matches(topic_filter: str, topic: str) -> bool:
    """Whether a topic falls under a filter (used for subscription options on delivery)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
