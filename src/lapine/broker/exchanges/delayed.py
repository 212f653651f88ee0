"""The x-delayed-message exchange type (RabbitMQ's rabbitmq_delayed_message_exchange plugin).

It routes as the type its ``x-delayed-type`` argument names (its router is that type's router);
what it adds is that a message with a positive ``x-delay`` header waits (broker/delayed.py)
before that routing happens. This module checks the argument at declare, with the plugin's
texts (rabbit_exchange_type_delayed_message:validate/1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lapine.amqp.constants import PRECONDITION_FAILED
from lapine.amqp.errors import ChannelError

TYPE_NAME = "x-delayed-message"
DESCRIPTION = "Delayed Message Exchange."
ARGUMENT = "x-delayed-type"

_MUST_EXIST = "Invalid argument, 'x-delayed-type' must be an existing exchange type"
_NOT_ITSELF = "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"


def declared_routing_type(arguments: Mapping[str, Any]) -> str:
    """The x-delayed-type of a new exchange, or 406 as the plugin says. Whether the type exists is
    the caller's check, made as for a declare of that type (the plugin calls check_type)."""
    value = arguments.get(ARGUMENT)
    if isinstance(value, bytes | bytearray):  # a byte array or a longstr that is not UTF-8
        value = bytes(value).decode("utf-8", "surrogateescape")
    if not isinstance(value, str):
        raise ChannelError(PRECONDITION_FAILED, _MUST_EXIST)
    if value == TYPE_NAME:
        raise ChannelError(PRECONDITION_FAILED, _NOT_ITSELF)
    return value


def routing_type(type_name: str, arguments: Mapping[str, Any]) -> str | None:
    """For an exchange of this type, the type it routes as; None for any other exchange."""
    if type_name != TYPE_NAME:
        return None
    value = arguments.get(ARGUMENT)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else None
