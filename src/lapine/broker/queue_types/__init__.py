"""The queue types a broker offers, by their x-queue-type name (RabbitMQ's rabbit_queue_type).

A declare names its type with ``x-queue-type``; without one the vhost's default queue type
applies when the queue's properties allow it, and classic otherwise, as in RabbitMQ 4.x.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lapine.broker.queue_types.base import QueueType
from lapine.broker.queue_types.classic import CLASSIC
from lapine.broker.queue_types.quorum import QUORUM
from lapine.broker.queue_types.stream import STREAM

QUEUE_TYPES: dict[str, QueueType] = {CLASSIC.name: CLASSIC, QUORUM.name: QUORUM, STREAM.name: STREAM}


def requested_type_name(
    arguments: Mapping[str, Any], default: str, *, durable: bool, exclusive: bool, auto_delete: bool
) -> str:
    """The type a declare asks for: its x-queue-type, else the vhost default if it fits, else classic."""
    value = arguments.get("x-queue-type")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value not in ("", "undefined"):
        return value
    fallback = QUEUE_TYPES.get(default)
    if fallback is not None and fallback.is_compatible(durable, exclusive, auto_delete):
        return default
    return CLASSIC.name


__all__ = ["CLASSIC", "QUEUE_TYPES", "QUORUM", "STREAM", "QueueType", "requested_type_name"]
