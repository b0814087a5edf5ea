"""Ory Kratos password migration hook (Kratos >= 1.3).

Kratos calls ``POST {url}`` with ``{"identifier": ..., "password": ...}`` when an identity
imported with ``use_password_migration_hook: true`` signs in; it expects ``200`` with
``{"status": "password_match"}`` when the password is right, and stores the password itself.
Any other answer is a failed login: this bridge answers ``403`` with an empty object.
See docs/bridge.md#ory-kratos.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import Context, body, endpoint, json_response, text_at


def routes(ctx: Context) -> list[Route]:
    """``POST /kratos``."""

    @endpoint
    async def kratos(request: Request) -> Response:
        data = await body(request)
        identifier = text_at(data, "identifier")
        password = text_at(data, "password")
        verdict = await ctx.check(request, identifier, password)
        if verdict.ok:
            return json_response({"status": "password_match"})
        return json_response({}, 403)

    return [Route("/kratos", kratos, methods=["POST"])]
