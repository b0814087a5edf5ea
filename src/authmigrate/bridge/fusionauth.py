"""FusionAuth Generic Connector.

FusionAuth posts ``{"loginId", "password", "applicationId", "ipAddress"}`` to the connector's
Authentication URL and expects the Login API's shape: ``200`` with ``{"user": {...}}`` when
the password is right, ``404`` when the user is unknown or the password wrong. The ``user.id``
must be a UUID and the same on every login: here a UUID v5 of the target table and legacy key.
See docs/bridge.md#fusionauth.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import Context, body, endpoint, json_response, profile, text_at
from .core import Account


def user_json(ctx: Context, account: Account) -> dict[str, Any]:
    """The Login API's ``user`` object for an account."""
    p = profile(account)
    user: dict[str, Any] = {
        "id": ctx.stable_uuid(account),
        "active": True,
        "verified": p.email_verified,
        "data": {"authmigrate": {"legacy_key": str(account.key)}},
    }
    optional = {
        "email": p.email,
        "username": p.username,
        "firstName": p.first_name,
        "lastName": p.last_name,
    }
    user.update({k: v for k, v in optional.items() if v is not None})
    return user


def routes(ctx: Context) -> list[Route]:
    """``POST /fusionauth``."""

    @endpoint
    async def fusionauth(request: Request) -> Response:
        data = await body(request)
        login_id = text_at(data, "loginId")
        password = text_at(data, "password")
        verdict = await ctx.check(request, login_id, password)
        if not verdict.ok or verdict.account is None:
            return json_response({}, 404)
        return json_response({"user": user_json(ctx, verdict.account)})

    return [Route("/fusionauth", fusionauth, methods=["POST"])]
