"""Messages through HTTP: properties from and to JSON, payload encodings, and the content header.

The API's JSON names the 14 basic properties as the AMQP spec does (content_type, headers,
delivery_mode, ...). Payloads go as text ("string") or as base64; "auto" picks text when the
body is valid UTF-8, as RabbitMQ does.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from typing import Any

from lapine.amqp.spec import BasicProperties, encode_basic_header
from lapine.management.http import bad_request

_INT_PROPERTIES = ("delivery_mode", "priority", "timestamp")


def properties_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """Checked and converted properties; numbers may arrive as strings from HTML forms."""
    if not isinstance(data, Mapping):
        raise bad_request("properties must be an object")
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name not in BasicProperties.FIELDS:
            raise bad_request(f"unknown property '{name}'")
        if value is None or value == "":
            continue
        if name in _INT_PROPERTIES:
            try:
                out[name] = int(value)
            except (TypeError, ValueError):
                raise bad_request(f"property '{name}' must be an integer") from None
        elif name == "headers":
            if not isinstance(value, Mapping):
                raise bad_request("property 'headers' must be an object")
            out[name] = dict(value)
        else:
            out[name] = str(value)
    return out


def header_payload(properties: Mapping[str, Any], body_size: int) -> bytes:
    """A full content-header payload for a message built here rather than read off a socket.

    JSON takes what AMQP cannot carry (a content_type of 300 octets, a header key too long, an
    integer past 64 bits, a lone surrogate): such properties are the client's error, a 400.
    """
    try:
        return encode_basic_header(body_size, BasicProperties(**properties).encode())
    except (ValueError, struct.error) as error:
        raise bad_request(f"properties cannot be encoded: {error}") from None


def decode_payload(payload: Any, encoding: Any) -> bytes:
    if not isinstance(payload, str):
        raise bad_request("payload must be a string")
    if encoding == "string":
        return payload.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("payload is not valid base64") from None
    raise bad_request(f"payload_encoding must be 'string' or 'base64', not '{encoding}'")


def encode_payload(body: bytes, encoding: str) -> tuple[str, str]:
    """(payload, payload_encoding) for a message given back by /get."""
    if encoding == "auto":
        try:
            return body.decode("utf-8"), "string"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), "base64"


def properties_to_json(properties: BasicProperties) -> dict[str, Any] | list[Any]:
    """The properties that are set; RabbitMQ shows none at all as an empty list."""
    out = {name: getattr(properties, name) for name in BasicProperties.FIELDS if getattr(properties, name) is not None}
    return out or []
