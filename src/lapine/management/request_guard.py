"""What a request must look like before anyone reads it: against cross-site requests and DNS rebinding.

* Host: the name the client asked for must be one of this broker's. A DNS-rebinding page reaches
  127.0.0.1 under its own name (Host: evil.example), which is refused; localhost names, IP
  addresses this listener serves, this machine's hostname and ``management_allowed_hosts`` are let
  in.
* Origin: a browser names the page that sent a request. One from another origin is refused:
  the API does not serve other sites (RabbitMQ's CORS is off by default too).
* Content type: a request with a body (POST, PUT, DELETE) must say application/json. A form or a
  text/plain body is what a cross-site page can send without asking; JSON it cannot.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from lapine.management.http import json_response

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
WRITES = frozenset({"POST", "PUT", "DELETE", "PATCH"})
ANY_HOST = "*"


class AllowedHosts:
    """The Host names (ports aside) a listener on ``listen_host`` answers to."""

    def __init__(self, listen_host: str, configured: str) -> None:
        self.names = set(LOCAL_NAMES) | {socket.gethostname().lower()}
        self.names |= {name.strip().lower().strip("[]") for name in configured.split(",") if name.strip()}
        # On every interface any of the machine's addresses may be asked for; IP literals cannot be
        # rebound, so all of them are let in. On one address, only that one (and loopback).
        self.any_address = listen_host in ("", "0.0.0.0", "::")
        self.listen_host = listen_host.lower().strip("[]")
        if self.listen_host:
            self.names.add(self.listen_host)

    def allows(self, host_header: str | None) -> bool:
        if ANY_HOST in self.names:
            return True
        if not host_header:
            return False
        host = _hostname(host_header)
        if host in self.names or host.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return self.any_address or address.is_loopback


def _hostname(host_header: str) -> str:
    """The name in a Host header without its port: "[::1]:15672" -> "::1"."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def refused(status: int, error: str, reason: str) -> web.Response:
    return json_response({"error": error, "reason": reason}, status=status)


def request_guard(allowed: AllowedHosts) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not allowed.allows(request.headers.get("Host")):
            return refused(403, "forbidden", "Host not allowed: add it to management_allowed_hosts")
        origin = request.headers.get("Origin")
        if origin is not None and not _same_origin(origin, request.headers.get("Host", "")):
            return refused(403, "forbidden", "cross-origin requests are not allowed")
        if _is_api_write(request) and _carries_body(request) and request.content_type != "application/json":
            return refused(415, "unsupported_media_type", "a request body must be sent as application/json")
        return await handler(request)

    return guard


def _same_origin(origin: str, host_header: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.strip().lower()


def _is_api_write(request: web.Request) -> bool:
    return request.method in WRITES and request.path.startswith("/api/")


def _carries_body(request: web.Request) -> bool:
    return "Content-Type" in request.headers or request.body_exists
