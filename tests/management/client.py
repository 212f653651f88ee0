"""A small HTTP client for the management API in tests: urllib, basic auth, JSON in and out."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import quote


def q(name: str) -> str:
    return quote(name, safe="")


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return self.body


@dataclass
class Http:
    base: str
    user: str = "guest"
    password: str = "guest"

    def as_user(self, user: str, password: str) -> Http:
        return Http(self.base, user, password)

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
        req = urlrequest.Request(self.base + path, data=data, method=method)
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        req.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urlrequest.urlopen(req, timeout=10) as response:
                return _reply(response.status, response.read(), dict(response.headers))
        except urlerror.HTTPError as failure:
            return _reply(failure.code, failure.read(), dict(failure.headers))

    def get(self, path: str) -> Reply:
        return self.call("GET", path)

    def put(self, path: str, body: Any = None) -> Reply:
        return self.call("PUT", path, {} if body is None else body)

    def post(self, path: str, body: Any = None) -> Reply:
        return self.call("POST", path, {} if body is None else body)

    def delete(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.call("DELETE", path, headers=headers)


def _reply(status: int, raw: bytes, headers: dict[str, str]) -> Reply:
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = text
    return Reply(status, body, headers)
