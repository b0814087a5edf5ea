"""Okta password import inline hook.

Okta posts ``com.okta.user.credential.password.import`` events whose
``data.context.credential`` holds ``username`` and ``password``; the answer is always ``200``
with one ``com.okta.action.update`` command whose ``value.credential`` is ``VERIFIED`` (Okta
then stores the password) or ``UNVERIFIED``. See docs/bridge.md#okta.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import Context, body, endpoint, json_response, text_at

UPDATE = "com.okta.action.update"


def command(verified: bool) -> dict[str, object]:
    """The response body Okta reads."""
    credential = "VERIFIED" if verified else "UNVERIFIED"
    return {"commands": [{"type": UPDATE, "value": {"credential": credential}}]}


def routes(ctx: Context) -> list[Route]:
    """``POST /okta``."""

    @endpoint
    async def okta(request: Request) -> Response:
        data = await body(request)
        username = text_at(data, "data", "context", "credential", "username")
        password = text_at(data, "data", "context", "credential", "password")
        verdict = await ctx.check(request, username, password)
        return json_response(command(verdict.ok))

    return [Route("/okta", okta, methods=["POST"])]
