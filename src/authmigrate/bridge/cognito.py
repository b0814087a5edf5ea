"""AWS Cognito user migration Lambda trigger.

Cognito invokes the trigger when a user unknown to the pool signs in
(``UserMigration_Authentication``, with ``request.password``) or starts the forgot-password
flow (``UserMigration_ForgotPassword``, no password). The function returns the event with
``response.userAttributes``, ``response.finalUserStatus`` (``CONFIRMED`` after a verified
password, ``RESET_REQUIRED`` for a forgotten one) and ``response.messageAction = "SUPPRESS"``
(no welcome message); it raises to refuse, and Cognito answers the user "incorrect username or
password".

Two ways to run it:

- in Lambda itself: handler ``authmigrate.bridge.cognito.handler`` with ``AUTHMIGRATE_SPEC``
  naming the spec (the target must be reachable from the Lambda);
- through the HTTP bridge: a five-line proxy Lambda posts the event to ``POST /cognito`` and
  returns the body of a 200 (or throws on 401). See docs/bridge.md#aws-cognito.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import BadRequest, Context, body, endpoint, json_response, profile, text_at
from .core import Account

AUTHENTICATION = "UserMigration_Authentication"
FORGOT_PASSWORD = "UserMigration_ForgotPassword"
REFUSAL = "Bad password"
"""The one message of every refusal: unknown user, wrong password, no password alike."""


class Refused(Exception):  # noqa: N818 - what the Lambda raises so Cognito refuses the login
    """The migration is refused; Cognito tells the user the credentials are wrong."""

    def __init__(self) -> None:
        super().__init__(REFUSAL)


def parse(event: Any) -> tuple[str, str, str | None]:
    """(trigger source, user name, password or None) of a migrate-user event.

    Raises:
        BadRequest: not a migrate-user event.
    """
    trigger = text_at(event, "triggerSource")
    if trigger not in (AUTHENTICATION, FORGOT_PASSWORD):
        raise BadRequest("not a user migration trigger")
    user = text_at(event, "userName")
    password = text_at(event, "request", "password") if trigger == AUTHENTICATION else None
    return trigger, user, password


def respond(event: dict[str, Any], trigger: str, account: Account) -> dict[str, Any]:
    """The event with its ``response`` filled for a migrated account, and without the
    password (Cognito reads only ``response``; the password goes back nowhere)."""
    p = profile(account)
    attributes = {"email": p.email, "email_verified": "true"} if p.email else {}
    if p.first_name:
        attributes["given_name"] = p.first_name
    if p.last_name:
        attributes["family_name"] = p.last_name
    out = copy.deepcopy(event)
    if isinstance(out.get("request"), dict):
        out["request"].pop("password", None)
    response = out.get("response")
    if not isinstance(response, dict):
        response = {}
    response.update(
        {
            "userAttributes": attributes,
            "finalUserStatus": "CONFIRMED" if trigger == AUTHENTICATION else "RESET_REQUIRED",
            "messageAction": "SUPPRESS",
        }
    )
    out["response"] = response
    return out


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point (``authmigrate.bridge.cognito.handler``).

    Raises:
        Refused: unknown user, wrong password, or an account without one (Authentication).
        BadRequest: the event is not a user-migration trigger.
    """
    from . import default_bridge

    trigger, user, password = parse(event)
    bridge = default_bridge()
    if password is not None:
        verdict = bridge.check(user, password)
        account = verdict.account if verdict.ok else None
    else:
        account = bridge.find(user)
    if account is None:
        raise Refused()
    return respond(event, trigger, account)


def routes(ctx: Context) -> list[Route]:
    """``POST /cognito``: the trigger event in, the answered event (200) or 401 out."""

    @endpoint
    async def cognito(request: Request) -> Response:
        event = await body(request)
        trigger, user, password = parse(event)
        if password is not None:
            verdict = await ctx.check(request, user, password)
            account = verdict.account if verdict.ok else None
        else:
            account = await ctx.find(request, user)
        if account is None:
            return json_response({"errorMessage": REFUSAL}, 401)
        return json_response(respond(event, trigger, account))

    return [Route("/cognito", cognito, methods=["POST"])]
