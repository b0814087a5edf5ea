"""Keycloak user-migration plugin (daniel-frak/keycloak-user-migration) REST pair.

``GET {restClientUri}/{username_or_email}`` answers the user JSON (``id``, ``username``,
``email``, ``firstName``, ``lastName``, ``enabled``, ``emailVerified``, ``attributes``,
``roles``, ``groups``, ``requiredActions``) or anything but 200 for "not found";
``POST {restClientUri}/{username_or_id}`` with ``{"password": ...}`` answers 200 when the
password is right, anything else (here ``401``) when not. See docs/bridge.md#keycloak.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import Context, body, endpoint, json_response, profile, text_at
from .core import Account


def user_json(account: Account) -> dict[str, Any]:
    """The plugin's user representation; ``id`` is the legacy key (stable)."""
    p = profile(account)
    return {
        "id": str(account.key),
        "username": p.username or p.email or str(account.key),
        "email": p.email,
        "firstName": p.first_name,
        "lastName": p.last_name,
        "enabled": True,
        "emailVerified": p.email_verified,
        "attributes": {name: [str(value)] for name, value in p.extra.items()},
        "roles": [],
        "groups": [],
        "requiredActions": [] if account.has_password else ["UPDATE_PASSWORD"],
    }


def routes(ctx: Context) -> list[Route]:
    """``GET /keycloak/{user}`` and ``POST /keycloak/{user}``."""

    @endpoint
    async def keycloak(request: Request) -> Response:
        user = request.path_params["user"]
        if request.method == "GET":
            account = await ctx.find(request, user)
            if account is None:
                return json_response({}, 404)
            return json_response(user_json(account))
        password = text_at(await body(request), "password")
        verdict = await ctx.check(request, user, password)
        return json_response({}, 200 if verdict.ok else 401)

    return [Route("/keycloak/{user}", keycloak, methods=["GET", "POST"])]
