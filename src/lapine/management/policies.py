"""/api/policies: settings applied by name pattern to queues and exchanges (policymakers only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lapine.broker import definitions, definitions_format
from lapine.broker.policies import erlang_term
from lapine.management.auth import is_policymaker, user_of, vhost_from_path, visible_vhosts
from lapine.management.context import broker_of
from lapine.management.http import (
    ApiError,
    bad_request,
    created,
    listing,
    no_content,
    not_found,
    one,
    read_json,
    require_keys,
)


def require_policymaker(request: web.Request) -> None:
    if not is_policymaker(user_of(request)):
        raise ApiError(401, "not_authorised", "Not policymaker user")


async def list_policies(request: web.Request) -> web.Response:
    require_policymaker(request)
    vhosts = [vhost_from_path(request)] if "vhost" in request.match_info else visible_vhosts(request)
    return listing(request, [definitions_format.policy_definition(p) for v in vhosts for p in v.policies])


async def get_policy(request: web.Request) -> web.Response:
    require_policymaker(request)
    policy = vhost_from_path(request).policies.by_name.get(request.match_info["name"])
    if policy is None:
        raise not_found()
    return one(request, definitions_format.policy_definition(policy))


async def put_policy(request: web.Request) -> web.Response:
    require_policymaker(request)
    name = request.match_info["vhost"]
    if name not in broker_of(request).vhosts:
        raise ApiError(404, "not_found", "vhost_not_found")
    vhost_from_path(request)
    body = await read_json(request)
    require_keys(body, "pattern", "definition")
    problem = _shape_problem(body)
    if problem is not None:
        raise bad_request(f"Validation failed\n\n{problem}\n")
    try:
        was_created = definitions.set_policy(
            broker_of(request),
            name,
            request.match_info["name"],
            pattern=body["pattern"],
            definition=body["definition"],
            priority=int(body.get("priority", 0)),
            apply_to=str(body.get("apply-to", "all")),
        )
    except (definitions.DefinitionError, ValueError) as error:
        raise bad_request(getattr(error, "reason", str(error))) from None
    return created() if was_created else no_content()


def _shape_problem(body: dict[str, Any]) -> str | None:
    """RabbitMQ's words for a priority or definition of the wrong JSON type (the pattern's type is
    checked with the policy, for imports too)."""
    priority, definition = body.get("priority", 0), body["definition"]
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        return f"priority should be a number, actually was {erlang_term(priority)}"
    if not isinstance(definition, dict):
        return f"definition must be a dictionary: {erlang_term(definition)}"
    return None


async def delete_policy(request: web.Request) -> web.Response:
    require_policymaker(request)
    vhost = vhost_from_path(request)
    if not definitions.clear_policy(broker_of(request), vhost.name, request.match_info["name"]):
        raise not_found()
    return no_content()


async def operator_policies(request: web.Request) -> web.Response:
    """Operator policies are not in Lapine's model: there are none."""
    require_policymaker(request)
    return listing(request, [])


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/policies", list_policies),
        web.get("/api/policies/{vhost}", list_policies),
        web.get("/api/policies/{vhost}/{name}", get_policy),
        web.put("/api/policies/{vhost}/{name}", put_policy),
        web.delete("/api/policies/{vhost}/{name}", delete_policy),
        web.get("/api/operator-policies", operator_policies),
    ]
