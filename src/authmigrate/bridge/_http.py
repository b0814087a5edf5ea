"""What every provider adapter shares: the verification call, JSON in and out, profiles."""

from __future__ import annotations

import functools
import json
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from authmigrate.errors import LockError

from ._limits import RateLimit
from .core import Account, Bridge, Verdict

STARTED = "authmigrate.started"
"""Key of the request's start time (perf_counter) in the ASGI scope, set by the guard."""

MAX_FIELD_CHARS = 8192
"""An identifier or password longer than this in a request body is refused (400)."""


class BadRequest(Exception):  # noqa: N818 - a control-flow signal answered with 400
    """The body is not the provider's documented shape."""


class Overloaded(Exception):  # noqa: N818 - answered with 503 and Retry-After
    """Every verification slot is busy and the queue is full: come back in a second."""


class Limited(Exception):  # noqa: N818 - answered with 429
    """The identifier used up its attempts; ``retry_after`` seconds until it may try again."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response; dates and decimals in account fields are written as text."""
    body = json.dumps(data, default=str, separators=(",", ":")).encode()
    return Response(body, status, headers=headers, media_type="application/json")


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class Context:
    """The bridge and its shared limits, given to every adapter.

    ``threads`` bounds the verifications running at once (a CPU-bound argon2id each: as many
    as cores); ``capacity`` bounds those running plus those waiting for a slot. A login over
    capacity is refused at once (:class:`Overloaded`, 503 with ``Retry-After``), so an admitted
    login waits at most ``capacity / workers`` verifications: latency stays bounded under any
    burst, and the provider retries the rest.
    """

    bridge: Bridge
    per_identifier: RateLimit
    threads: anyio.CapacityLimiter
    capacity: int = 1_000_000
    pending: int = 0
    """Verifications running or waiting now (the event loop's own count: no lock needed)."""

    async def _in_pool(self, call: Callable[[], Any]) -> Any:
        if self.pending >= self.capacity:
            raise Overloaded()
        self.pending += 1
        try:
            return await anyio.to_thread.run_sync(call, limiter=self.threads)
        finally:
            self.pending -= 1

    async def check(self, request: Request, identifier: str, password: str) -> Verdict:
        """Verify in the thread pool; failed answers wait out the floor without a thread.

        Raises:
            Limited: the identifier is over its rate limit (nothing is verified).
        """
        retry = self.per_identifier.hit(self.bridge.rate_key(identifier))
        if retry is not None:
            raise Limited(retry)
        started = request.scope.get(STARTED, time.perf_counter())
        verdict: Verdict = await self._in_pool(
            partial(self.bridge.check, identifier, password, pad=False)
        )
        if not verdict.ok:
            await self.bridge.floor.await_(started)
        return verdict

    async def find(self, request: Request, identifier: str) -> Account | None:
        """Look an account up (no password) in the thread pool, rate-limited like a login."""
        retry = self.per_identifier.hit(self.bridge.rate_key(identifier))
        if retry is not None:
            raise Limited(retry)
        found: Account | None = await self._in_pool(partial(self.bridge.find, identifier))
        return found

    def stable_uuid(self, account: Account) -> str:
        """A UUID that is the same for an account on every call and every restart."""
        name = f"authmigrate:{self.bridge.spec.target.table}:{account.key}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


RETRY_AFTER_BUSY = 1
"""Seconds a provider is told to wait after a 503 (overloaded, or the migration's lock held)."""


def busy_response(error: str) -> Response:
    """503 with ``Retry-After``: nothing was verified, nothing written; try again."""
    return json_response({"error": error}, 503, {"Retry-After": str(RETRY_AFTER_BUSY)})


def limited_response(exc: Limited) -> Response:
    """429 with Retry-After in whole seconds."""
    headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return json_response({"error": "rate_limited"}, 429, headers)


async def body(request: Request) -> dict[str, Any]:
    """The request's JSON object (BadRequest for anything else)."""
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        raise BadRequest("not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("not a JSON object")
    return data


def text_at(data: Any, *path: str) -> str:
    """The string at ``path`` in nested objects (BadRequest when missing or not a string)."""
    found = optional_text(data, *path)
    if found is None:
        raise BadRequest(f"missing {'.'.join(path)}")
    return found


def optional_text(data: Any, *path: str) -> str | None:
    """The string at ``path``, or None when absent or null (BadRequest when not a string)."""
    for name in path:
        if not isinstance(data, dict) or name not in data:
            return None
        data = data[name]
    if data is None:
        return None
    if not isinstance(data, str) or len(data) > MAX_FIELD_CHARS:
        raise BadRequest(f"{'.'.join(path)} must be a string")
    return data


_FIRST = ("first_name", "firstname", "given_name", "name_first")
_LAST = ("last_name", "lastname", "family_name", "name_last")


@dataclass(frozen=True)
class Profile:
    """An account's mapped fields sorted into what providers call them."""

    email: str | None
    username: str | None
    first_name: str | None
    last_name: str | None
    email_verified: bool
    extra: dict[str, Any]


def profile(account: Account) -> Profile:
    """Sort an account's fields: email, username, names, email_verified, and the rest."""
    fields = dict(account.fields)

    def take(names: tuple[str, ...]) -> Any:
        for name in names:
            if name in fields:
                return fields.pop(name)
        return None

    email = take(("email",))
    username = take(("username", "login", "user_login"))
    first, last = take(_FIRST), take(_LAST)
    verified = take(("email_verified",))
    extra = {k: v for k, v in fields.items() if v is not None}
    return Profile(
        email=None if email is None else str(email),
        username=None if username is None else str(username),
        first_name=None if first is None else str(first),
        last_name=None if last is None else str(last),
        email_verified=bool(verified),
        extra=extra,
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def endpoint(fn: Endpoint) -> Endpoint:
    """Answer a malformed body with 400 and an identifier over its limit with 429."""

    @functools.wraps(fn)
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except BadRequest:
            return json_response({"error": "bad_request"}, 400)
        except Limited as exc:
            return limited_response(exc)
        except Overloaded:
            return busy_response("overloaded")
        except LockError:  # run or sync is writing: a carry of a new account waits for it
            return busy_response("unavailable")

    return wrapped
