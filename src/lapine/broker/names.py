"""Names: the server-generated ones, in RabbitMQ's shape, and the wire's limit on every name.

A generated name is a prefix and 16 random bytes, URL-safe base64.

Exchange, queue and vhost names, routing keys and consumer tags travel as shortstrs: at most 255
octets of UTF-8. Those read off the wire cannot be longer, but the HTTP API, definition imports,
queue arguments and policies take any string; one that reached a basic.deliver would make it
impossible to encode. :func:`shortstr_problem` is the one check every such entry point makes.
"""

from __future__ import annotations

import base64
import os

SHORTSTR_MAX = 255


def generate_name(prefix: str) -> str:
    token = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    return f"{prefix}-{token}"


def queue_name() -> str:
    return generate_name("amq.gen")


def consumer_tag() -> str:
    return generate_name("amq.ctag")


def wire_size(value: str | bytes) -> int | None:
    """Octets of the value as a shortstr, or None for a string with no UTF-8 form.

    Names read off the wire keep their undecodable octets as surrogate escapes, which encode
    back; a lone surrogate from elsewhere (JSON allows them) does not.
    """
    if isinstance(value, bytes):
        return len(value)
    try:
        return len(value.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return None


def shortstr_problem(what: str, value: str | bytes) -> str | None:
    """Why the value cannot be a shortstr, in RabbitMQ's words (rabbit_parameter_validation); or None."""
    size = wire_size(value)
    if size is None:
        return f"{what} should be valid UTF-8"
    if size > SHORTSTR_MAX:
        return f"{what} should be less than {SHORTSTR_MAX} bytes, actually was {size}"
    return None
