"""AMQP field values as tagged JSON, for arguments, policy definitions and parameters.

Plain JSON would confuse bytes with str, int with bool, lose Decimal and datetime, and not
round-trip NaN. Each value becomes [tag, payload]. The codec's LongStr and Timestamp keep their
type, so an argument goes back on the wire with the field type it came with. The text is
canonical (sorted keys), so equal argument tables give equal strings, which binding identity
relies on; it is ASCII, so strings holding surrogate escapes survive.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from lapine.amqp.codec import LongStr, Timestamp


def encode_value(value: Any) -> str:
    return json.dumps(_tag(value), separators=(",", ":"), sort_keys=True)


def decode_value(text: str) -> Any:
    return _untag(json.loads(text))


def _tag(v: Any) -> list[Any]:
    if v is None:
        return ["V", None]
    if isinstance(v, Timestamp):
        return ["P", int(v)]
    if isinstance(v, bool):
        return ["t", v]
    if isinstance(v, int):
        return ["I", int(v)]
    if isinstance(v, float):
        return ["F", repr(v)]
    if isinstance(v, str):
        return ["S", v]
    if isinstance(v, LongStr):
        return ["L", base64.b64encode(v).decode("ascii")]
    if isinstance(v, bytes | bytearray | memoryview):
        return ["x", base64.b64encode(bytes(v)).decode("ascii")]
    if isinstance(v, Decimal):
        return ["D", str(v)]
    if isinstance(v, datetime):
        return ["T", [v.isoformat(), v.fold]]
    if isinstance(v, Mapping):
        for key in v:
            if not isinstance(key, str):
                raise TypeError(f"table keys must be str, not {type(key).__name__}")
        return ["M", {key: _tag(item) for key, item in v.items()}]
    if isinstance(v, list | tuple):
        return ["A", [_tag(item) for item in v]]
    raise TypeError(f"cannot store a value of type {type(v).__name__}")


def _untag(node: list[Any]) -> Any:
    tag, payload = node
    if tag in ("S", "I", "t", "V"):
        return payload
    if tag == "F":
        return float(payload)
    if tag == "x":
        return base64.b64decode(payload)
    if tag == "L":
        return LongStr(base64.b64decode(payload))
    if tag == "P":
        return Timestamp(payload)
    if tag == "D":
        return Decimal(payload)
    if tag == "T":
        text, fold = payload
        return datetime.fromisoformat(text).replace(fold=fold)
    if tag == "M":
        return {key: _untag(item) for key, item in payload.items()}
    if tag == "A":
        return [_untag(item) for item in payload]
    raise ValueError(f"unknown value tag {tag!r}")
