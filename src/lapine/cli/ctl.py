"""lapinectl: administer a running Lapine (or RabbitMQ) through its management HTTP API.

In the spirit of rabbitmqctl: ``lapinectl list_queues name messages consumers`` prints a header
and tab-separated rows (``--formatter json`` for JSON). Connection settings come from flags, or
LAPINECTL_HOST, LAPINECTL_PORT, LAPINECTL_USERNAME, LAPINECTL_PASSWORD (localhost:15672,
guest/guest by default). Errors are printed as messages, never as tracebacks.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import quote

# Exit codes as rabbitmqctl uses them (sysexits): usage, no such object, unavailable, data error.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69


class CtlError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Api:
    """A tiny client of the management HTTP API, on the standard library alone."""

    base: str
    username: str
    password: str
    timeout: float = 30.0

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urlrequest.Request(self.base + path, data=data, method=method)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urlrequest.urlopen(req, timeout=self.timeout) as response:
                text = response.read().decode("utf-8")
        except urlerror.HTTPError as failure:
            raise CtlError(_http_error(failure), EX_NOUSER if failure.code == 404 else 1) from None
        except (urlerror.URLError, OSError) as failure:
            reason = getattr(failure, "reason", failure)
            raise CtlError(f"unable to reach the management API at {self.base}: {reason}", EX_UNAVAILABLE) from None
        return json.loads(text) if text.strip() else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)


def _http_error(failure: urlerror.HTTPError) -> str:
    try:
        body = json.loads(failure.read().decode("utf-8"))
        reason = body.get("reason", body)
    except (ValueError, AttributeError):
        reason = failure.reason
    if failure.code == 401:
        return f"not authorised: {reason}"
    if failure.code == 404:
        return f"not found: {reason}"
    return str(reason)


def q(name: str) -> str:
    """A vhost or object name as one URL path segment ("/" becomes %2F)."""
    return quote(name, safe="")


# --- output ---------------------------------------------------------------------------------------


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def pick(row: dict[str, Any], column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def emit(rows: list[dict[str, Any]], columns: Sequence[str], formatter: str) -> None:
    if formatter == "json":
        print(json.dumps([{c: pick(row, c) for c in columns} for row in rows], indent=2))
        return
    print("\t".join(columns))
    for row in rows:
        print("\t".join(cell(pick(row, c)) for c in columns))


# --- list commands ----------------------------------------------------------------------------------


@dataclass
class Listing:
    """A list_* command: where its rows come from, its default columns, and renamed columns."""

    path: Callable[[argparse.Namespace], str]
    defaults: tuple[str, ...]
    aliases: dict[str, Callable[[dict[str, Any]], Any]]
    what: str
    per_vhost: bool = False


def _vhost_path(kind: str) -> Callable[[argparse.Namespace], str]:
    return lambda args: f"/api/{kind}/{q(args.vhost)}"


def _all_path(kind: str) -> Callable[[argparse.Namespace], str]:
    return lambda args: f"/api/{kind}"


LISTINGS: dict[str, Listing] = {
    "list_queues": Listing(_vhost_path("queues"), ("name", "messages"), {}, "queues", per_vhost=True),
    "list_exchanges": Listing(_vhost_path("exchanges"), ("name", "type"), {}, "exchanges", per_vhost=True),
    "list_bindings": Listing(
        _vhost_path("bindings"),
        ("source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"),
        {
            "source_name": lambda row: row.get("source"),
            "source_kind": lambda row: "exchange",
            "destination_name": lambda row: row.get("destination"),
            "destination_kind": lambda row: row.get("destination_type"),
        },
        "bindings",
        per_vhost=True,
    ),
    "list_connections": Listing(
        _all_path("connections"), ("user", "peer_host", "peer_port", "state"), {}, "connections"
    ),
    "list_channels": Listing(
        _all_path("channels"), ("name", "user", "consumer_count", "messages_unacknowledged"), {}, "channels"
    ),
    "list_consumers": Listing(
        _vhost_path("consumers"),
        ("queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "arguments"),
        {
            "queue_name": lambda row: pick(row, "queue.name"),
            "channel_pid": lambda row: pick(row, "channel_details.name"),
        },
        "consumers",
        per_vhost=True,
    ),
    "list_users": Listing(_all_path("users"), ("user", "tags"), {"user": lambda row: row.get("name")}, "users"),
    "list_vhosts": Listing(_all_path("vhosts"), ("name",), {}, "vhosts"),
    "list_policies": Listing(
        _vhost_path("policies"),
        ("vhost", "name", "pattern", "apply-to", "definition", "priority"),
        {},
        "policies",
        per_vhost=True,
    ),
    "list_permissions": Listing(
        lambda args: f"/api/vhosts/{q(args.vhost)}/permissions",
        ("user", "configure", "write", "read"),
        {},
        "permissions",
        per_vhost=True,
    ),
    "list_user_permissions": Listing(
        lambda args: f"/api/users/{q(args.user)}/permissions",
        ("vhost", "configure", "write", "read"),
        {},
        "permissions",
    ),
}


def run_listing(api: Api, args: argparse.Namespace) -> None:
    listing = LISTINGS[args.command]
    columns = list(args.columns) or list(listing.defaults)
    rows = api.get(listing.path(args))
    table = [_with_aliases(row, listing) for row in rows]
    unknown = [c for c in columns if table and all(pick(row, c) is None and c not in row for row in table)]
    if unknown:
        raise CtlError(f"info key(s) not found: {', '.join(unknown)}", EX_USAGE)
    if not args.quiet:
        scope = f" for vhost {args.vhost}" if listing.per_vhost else ""
        print(f"Listing {listing.what}{scope} ...", file=sys.stderr)
    emit(table, columns, args.formatter)


def _with_aliases(row: dict[str, Any], listing: Listing) -> dict[str, Any]:
    extended = dict(row)
    for name, compute in listing.aliases.items():
        extended[name] = compute(row)
    if "tags" in extended and isinstance(extended["tags"], list):
        extended["tags"] = ",".join(extended["tags"])
    return extended


# --- commands that change something ---------------------------------------------------------------


def add_user(api: Api, args: argparse.Namespace) -> str:
    if _exists(api, f"/api/users/{q(args.name)}"):
        raise CtlError(f"user '{args.name}' already exists", EX_DATAERR)
    api.call("PUT", f"/api/users/{q(args.name)}", {"password": args.password, "tags": args.tags or ""})
    return f'Adding user "{args.name}" ...'


def delete_user(api: Api, args: argparse.Namespace) -> str:
    api.call("DELETE", f"/api/users/{q(args.name)}")
    return f'Deleting user "{args.name}" ...'


def change_password(api: Api, args: argparse.Namespace) -> str:
    user = api.get(f"/api/users/{q(args.name)}")
    api.call("PUT", f"/api/users/{q(args.name)}", {"password": args.password, "tags": ",".join(user["tags"])})
    return f'Changing password for user "{args.name}" ...'


def set_user_tags(api: Api, args: argparse.Namespace) -> str:
    user = api.get(f"/api/users/{q(args.name)}")
    body = {"password_hash": user["password_hash"], "hashing_algorithm": user["hashing_algorithm"]}
    api.call("PUT", f"/api/users/{q(args.name)}", {**body, "tags": ",".join(args.tags)})
    return f'Setting tags for user "{args.name}" to [{", ".join(args.tags)}] ...'


def add_vhost(api: Api, args: argparse.Namespace) -> str:
    body: dict[str, Any] = {"description": args.description or ""}
    if args.tags:
        body["tags"] = args.tags
    api.call("PUT", f"/api/vhosts/{q(args.name)}", body)
    return f'Adding vhost "{args.name}" ...'


def delete_vhost(api: Api, args: argparse.Namespace) -> str:
    api.call("DELETE", f"/api/vhosts/{q(args.name)}")
    return f'Deleting vhost "{args.name}" ...'


def set_permissions(api: Api, args: argparse.Namespace) -> str:
    body = {"configure": args.conf, "write": args.write, "read": args.read}
    api.call("PUT", f"/api/permissions/{q(args.vhost)}/{q(args.user)}", body)
    return f'Setting permissions for user "{args.user}" in vhost "{args.vhost}" ...'


def clear_permissions(api: Api, args: argparse.Namespace) -> str:
    api.call("DELETE", f"/api/permissions/{q(args.vhost)}/{q(args.user)}")
    return f'Clearing permissions for user "{args.user}" in vhost "{args.vhost}" ...'


def set_policy(api: Api, args: argparse.Namespace) -> str:
    try:
        definition = json.loads(args.definition)
    except ValueError:
        raise CtlError(f"the definition is not valid JSON: {args.definition}", EX_USAGE) from None
    body = {"pattern": args.pattern, "definition": definition, "priority": args.priority, "apply-to": args.apply_to}
    api.call("PUT", f"/api/policies/{q(args.vhost)}/{q(args.name)}", body)
    return f'Setting policy "{args.name}" for pattern "{args.pattern}" to "{args.definition}" ...'


def clear_policy(api: Api, args: argparse.Namespace) -> str:
    api.call("DELETE", f"/api/policies/{q(args.vhost)}/{q(args.name)}")
    return f'Clearing policy "{args.name}" on vhost "{args.vhost}" ...'


def purge_queue(api: Api, args: argparse.Namespace) -> str:
    api.call("DELETE", f"/api/queues/{q(args.vhost)}/{q(args.name)}/contents")
    return f"Purging queue '{args.name}' in vhost '{args.vhost}' ..."


def delete_queue(api: Api, args: argparse.Namespace) -> str:
    flags = [f for f, on in (("if-empty=true", args.if_empty), ("if-unused=true", args.if_unused)) if on]
    suffix = "?" + "&".join(flags) if flags else ""
    api.call("DELETE", f"/api/queues/{q(args.vhost)}/{q(args.name)}{suffix}")
    return f"Deleting queue '{args.name}' on vhost '{args.vhost}' ..."


def export_definitions(api: Api, args: argparse.Namespace) -> str:
    text = json.dumps(api.get("/api/definitions"), indent=2)
    if args.path == "-":
        print(text)
        return ""
    try:
        with open(args.path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as failure:
        raise CtlError(f"cannot write {args.path}: {failure.strerror}", EX_DATAERR) from None
    return f'Exported definitions to "{args.path}"'


def import_definitions(api: Api, args: argparse.Namespace) -> str:
    try:
        text = sys.stdin.read() if args.path == "-" else open(args.path, encoding="utf-8").read()  # noqa: SIM115
        data = json.loads(text)
    except OSError as failure:
        raise CtlError(f"cannot read {args.path}: {failure.strerror}", EX_DATAERR) from None
    except ValueError:
        raise CtlError(f"{args.path} is not valid JSON", EX_DATAERR) from None
    api.call("POST", "/api/definitions", data)
    return f'Imported definitions from "{args.path}"'


def status(api: Api, args: argparse.Namespace) -> str:
    overview = api.get("/api/overview")
    nodes = api.get("/api/nodes")
    node = nodes[0] if nodes else {}
    facts = {
        "node": overview.get("node"),
        "cluster_name": overview.get("cluster_name"),
        "product": f"{overview.get('product_name')} {overview.get('product_version')}",
        "rabbitmq_version": overview.get("rabbitmq_version"),
        "uptime_seconds": int(node.get("uptime", 0)) // 1000,
        "memory_used_bytes": node.get("mem_used"),
        "listeners": [f"{item['protocol']}:{item['port']}" for item in overview.get("listeners", [])],
        **{f"total_{k}": v for k, v in overview.get("object_totals", {}).items()},
        **{k: v for k, v in overview.get("queue_totals", {}).items() if not k.endswith("_details")},
    }
    if args.formatter == "json":
        print(json.dumps(facts, indent=2))
    else:
        for key, value in facts.items():
            print(f"{key}\t{cell(value)}")
    return ""


def _exists(api: Api, path: str) -> bool:
    try:
        api.get(path)
    except CtlError as failure:
        if failure.code == EX_NOUSER:
            return False
        raise
    return True


ACTIONS: dict[str, Callable[[Api, argparse.Namespace], str]] = {
    "add_user": add_user,
    "delete_user": delete_user,
    "change_password": change_password,
    "set_user_tags": set_user_tags,
    "add_vhost": add_vhost,
    "delete_vhost": delete_vhost,
    "set_permissions": set_permissions,
    "clear_permissions": clear_permissions,
    "set_policy": set_policy,
    "clear_policy": clear_policy,
    "purge_queue": purge_queue,
    "delete_queue": delete_queue,
    "export_definitions": export_definitions,
    "import_definitions": import_definitions,
    "status": status,
}


# --- arguments ------------------------------------------------------------------------------------


def build_parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lapinectl", description="Administer Lapine through its HTTP API.")
    parser.add_argument("--host", default=environ.get("LAPINECTL_HOST", "localhost"))
    parser.add_argument("--port", type=int, default=int(environ.get("LAPINECTL_PORT", "15672")))
    # Own dests: a command's positional "password" must not overwrite the API login's.
    parser.add_argument("--username", "-u", dest="api_username", default=environ.get("LAPINECTL_USERNAME", "guest"))
    parser.add_argument("--password", dest="api_password", default=environ.get("LAPINECTL_PASSWORD", "guest"))
    parser.add_argument("--formatter", "-f", choices=["table", "json"], default="table")
    parser.add_argument("--quiet", "-q", action="store_true", help="no informational messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in LISTINGS:
        sub = commands.add_parser(name, help=f"list {LISTINGS[name].what}")
        if name == "list_user_permissions":
            sub.add_argument("user")
        else:
            _vhost_option(sub)
        sub.add_argument("columns", nargs="*", help="columns to show (API field names)")
    _add_change_commands(commands)
    return parser


def _vhost_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--vhost", "-p", default="/", help="virtual host (default /)")


def _add_change_commands(commands: Any) -> None:
    sub = commands.add_parser("add_user", help="create a user")
    sub.add_argument("name")
    sub.add_argument("password")
    sub.add_argument("--tags", default="", help="comma-separated tags")
    for name in ("delete_user", "delete_vhost"):
        commands.add_parser(name).add_argument("name")
    sub = commands.add_parser("change_password")
    sub.add_argument("name")
    sub.add_argument("password")
    sub = commands.add_parser("set_user_tags")
    sub.add_argument("name")
    sub.add_argument("tags", nargs="*")
    sub = commands.add_parser("add_vhost")
    sub.add_argument("name")
    sub.add_argument("--description", default="")
    sub.add_argument("--tags", default="")
    sub = commands.add_parser("set_permissions")
    _vhost_option(sub)
    for field in ("user", "conf", "write", "read"):
        sub.add_argument(field)
    sub = commands.add_parser("clear_permissions")
    _vhost_option(sub)
    sub.add_argument("user")
    sub = commands.add_parser("set_policy", help="set a policy: NAME PATTERN DEFINITION(JSON)")
    _vhost_option(sub)
    sub.add_argument("--priority", type=int, default=0)
    apply_to = ["all", "queues", "exchanges", "classic_queues", "quorum_queues"]
    sub.add_argument("--apply-to", default="all", choices=apply_to)
    for field in ("name", "pattern", "definition"):
        sub.add_argument(field)
    sub = commands.add_parser("clear_policy")
    _vhost_option(sub)
    sub.add_argument("name")
    sub = commands.add_parser("purge_queue")
    _vhost_option(sub)
    sub.add_argument("name")
    sub = commands.add_parser("delete_queue")
    _vhost_option(sub)
    sub.add_argument("name")
    sub.add_argument("--if-empty", action="store_true")
    sub.add_argument("--if-unused", action="store_true")
    for name in ("export_definitions", "import_definitions"):
        commands.add_parser(name).add_argument("path", help="a JSON file, or - for stdout/stdin")
    commands.add_parser("status", help="the node's overview")


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ) if environ is None else environ
    args = build_parser(environ).parse_args(argv)
    api = Api(f"http://{args.host}:{args.port}", args.api_username, args.api_password)
    try:
        if args.command in LISTINGS:
            run_listing(api, args)
        else:
            message = ACTIONS[args.command](api, args)
            if message and not args.quiet:
                print(message, file=sys.stderr)
    except CtlError as failure:
        print(f"Error: {failure}", file=sys.stderr)
        return failure.code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
