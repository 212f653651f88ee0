"""Server-generated names, in RabbitMQ's shape: a prefix and 16 random bytes, URL-safe base64."""

from __future__ import annotations

import base64
import os


def generate_name(prefix: str) -> str:
    token = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    return f"{prefix}-{token}"


def queue_name() -> str:
    return generate_name("amq.gen")


def consumer_tag() -> str:
    return generate_name("amq.ctag")
