"""HTTP plumbing shared by the API's handlers: JSON in and out, errors, and list parameters.

Errors are answered as RabbitMQ's management plugin answers them: a JSON body
{"error": ..., "reason": ...} with the same status codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from lapine.amqp.errors import AMQPError


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: Any) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason

    def response(self) -> web.Response:
        return json_response({"error": self.error, "reason": self.reason}, status=self.status)


def not_found() -> ApiError:
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: Any) -> ApiError:
    return ApiError(400, "bad_request", reason)


def from_amqp(error: AMQPError) -> ApiError:
    """A refusal from the model, worded as the API words it (the text without the code's name)."""
    if error.reply_code == 404:
        return ApiError(404, "not_found", error.text)
    if error.reply_code == 403:
        return ApiError(401, "not_authorised", "Access refused.")
    return bad_request(error.text)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_json_default),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _json_default(value: Any) -> Any:
    """AMQP tables may hold bytes, decimals and timestamps; show them as RabbitMQ's API does."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def no_content() -> web.Response:
    return web.Response(status=204)


def created() -> web.Response:
    return web.Response(status=201)


async def read_json(request: web.Request, *, default_empty: bool = True) -> dict[str, Any]:
    """The request's JSON object; an empty body counts as {} as in RabbitMQ."""
    text = await request.text()
    if not text.strip():
        if default_empty:
            return {}
        raise bad_request("not_json")
    try:
        data = json.loads(text)
    except ValueError:
        raise bad_request("not_json") from None
    if not isinstance(data, dict):
        raise bad_request("not_json")
    return data


def require_keys(body: Mapping[str, Any], *keys: str) -> None:
    missing = [key for key in keys if key not in body]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{key}}}" for key in missing) + "]")


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def listing(request: web.Request, items: Iterable[dict[str, Any]]) -> web.Response:
    """A list answer with RabbitMQ's query parameters: sort, sort_reverse, columns, and pagination."""
    rows = list(items)
    query = request.query
    sort_key = query.get("sort")
    if sort_key:
        rows.sort(key=_sort_value(sort_key))
    if as_bool(query.get("sort_reverse", "false")):
        rows.reverse()
    columns = query.get("columns")
    if "page" in query:
        return json_response(_page(rows, query, columns))
    if columns:
        rows = [select_columns(row, columns) for row in rows]
    return json_response(rows)


def _sort_value(path: str) -> Callable[[dict[str, Any]], Any]:
    def key(row: dict[str, Any]) -> Any:
        value = dig(row, path)
        # Mixed or missing values sort first, then numbers, then text, as stable tuples.
        if isinstance(value, bool | int | float):
            return (1, value, "")
        if value is None:
            return (0, 0, "")
        return (2, 0, str(value))

    return key


def dig(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def select_columns(row: Mapping[str, Any], columns: str) -> dict[str, Any]:
    """Keep the named columns, as RabbitMQ does: "a.b" keeps field b of object a (a kept, perhaps
    empty, when it has no b); a dotted name under a value that is not an object keeps the value."""
    wanted: dict[str, Any] = {}
    for column in columns.split(","):
        parts = [part for part in column.strip().split(".") if part]
        node = wanted
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            current = node.get(part)
            if current is _ALL:
                break
            if last:
                node[part] = _ALL
            else:
                node = node.setdefault(part, {})
    return {key: _prune(row[key], sub) for key, sub in wanted.items() if key in row}


_ALL: Any = object()


def _prune(value: Any, wanted: Any) -> Any:
    if wanted is _ALL or not isinstance(value, Mapping):
        return value
    return {key: _prune(value[key], sub) for key, sub in wanted.items() if key in value}


def _page(rows: list[dict[str, Any]], query: Mapping[str, str], columns: str | None) -> dict[str, Any]:
    try:
        page = int(query.get("page", "1"))
        size = int(query.get("page_size", "100"))
    except ValueError:
        raise bad_request("page and page_size must be integers") from None
    if page < 1 or not 1 <= size <= 500:
        raise bad_request("page must be >= 1 and page_size between 1 and 500")
    total = len(rows)
    name = query.get("name")
    if name:
        needle = name.lower()
        rows = [row for row in rows if needle in str(row.get("name", "")).lower()]
    selected = rows[(page - 1) * size : page * size]
    if columns:
        selected = [select_columns(row, columns) for row in selected]
    return {
        "filtered_count": len(rows),
        "item_count": len(selected),
        "items": selected,
        "page": page,
        "page_count": max(1, -(-len(rows) // size)),
        "page_size": size,
        "total_count": total,
    }


def one(request: web.Request, item: dict[str, Any]) -> web.Response:
    columns = request.query.get("columns")
    return json_response(select_columns(item, columns) if columns else item)
