"""Auth0 custom database connection (automatic migration): the two action scripts' backend.

Auth0 runs the connection's Login and Get User scripts (Node); the templates in
docs/bridge.md#auth0 call these endpoints:

- ``POST /auth0/login`` ``{"username": ..., "password": ...}`` -> ``200`` profile or ``401``;
- ``POST /auth0/get_user`` ``{"email": ...}`` -> ``200`` profile or ``404``.

The profile's ``user_id`` is the legacy key (stable), so a retried migration never creates a
second user.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import Context, body, endpoint, json_response, optional_text, profile, text_at
from .core import Account


def profile_json(account: Account) -> dict[str, Any]:
    """Auth0's normalized user profile for an account."""
    p = profile(account)
    out: dict[str, Any] = {"user_id": str(account.key), "email_verified": p.email_verified}
    optional = {
        "email": p.email,
        "username": p.username,
        "given_name": p.first_name,
        "family_name": p.last_name,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def routes(ctx: Context) -> list[Route]:
    """``POST /auth0/login`` and ``POST /auth0/get_user``."""

    @endpoint
    async def login(request: Request) -> Response:
        data = await body(request)
        identifier = optional_text(data, "username") or text_at(data, "email")
        password = text_at(data, "password")
        verdict = await ctx.check(request, identifier, password)
        if not verdict.ok or verdict.account is None:
            return json_response({"error": "invalid_credentials"}, 401)
        return json_response(profile_json(verdict.account))

    @endpoint
    async def get_user(request: Request) -> Response:
        email = text_at(await body(request), "email")
        account = await ctx.find(request, email)
        if account is None:
            return json_response({}, 404)
        return json_response(profile_json(account))

    return [
        Route("/auth0/login", login, methods=["POST"]),
        Route("/auth0/get_user", get_user, methods=["POST"]),
    ]
