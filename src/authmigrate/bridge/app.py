"""The HTTP bridge: one ASGI app (Starlette) with every provider's endpoint, served by uvicorn.

Every request passes the guard before any endpoint sees it:

1. the shared secret, as each provider can send it (:mod:`._auth`: ``Authorization: Bearer``,
   ``Authorization: Basic``, or an HMAC-SHA256 signature of the body for the callers whose
   code we ship), compared in constant time (401, no detail, otherwise);
2. the client address's rate limit (429 with ``Retry-After``);
3. the body: a declared ``Content-Length`` over ``bridge.max_body`` is refused (413) before
   anything is read; a streamed body is cut off at the same size; a body that does not arrive
   within :data:`BODY_TIMEOUT` seconds is refused (408).

Passwords are verified in a thread pool (``bridge.workers`` threads, default one per core), so
the event loop never blocks on a hash; at most ``bridge.max_queue`` logins wait for a thread,
and any beyond are answered ``503`` with ``Retry-After`` at once.

One log line per request: method, route (``/keycloak/{user}``, never the
user), status and milliseconds; never a body, a header or an identifier. An unexpected error
is logged by type and first line (SQLAlchemy's parameters stay out) and answered ``503``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from authmigrate.db import first_line
from authmigrate.errors import SpecError
from authmigrate.spec import Spec, resolve_secret

from . import auth0, cognito, fusionauth, keycloak, kratos, okta
from ._auth import Authenticator
from ._http import STARTED, Context, cores, json_response
from ._limits import RateLimit
from .core import Bridge

log = logging.getLogger("authmigrate.bridge")

BODY_TIMEOUT = 10.0
"""Seconds a client has to send its whole body."""

HEAD_TIMEOUT = 10.0
"""Seconds a client has to send a request's head, from connecting or from the end of the
previous answer (uvicorn has no such deadline: a byte now and then would hold a connection
for ever, and a thousand such connections would shut everyone out)."""

PROVIDERS = (kratos, okta, cognito, keycloak, fusionauth, auth0)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):  # noqa: N818 - answered with 413
    """The body is over the limit."""


def route_label(path: str) -> str:
    """The route a path matched, as logged: never a user name or anything a client chose."""
    if path.startswith("/keycloak/"):
        return "/keycloak/{user}"
    known = {"/kratos", "/okta", "/cognito", "/fusionauth", "/auth0/login", "/auth0/get_user"}
    return path if path in known else "(other)"


class Guard:
    """ASGI middleware: authentication, per-address rate limit, bounded body, safe logging."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: Authenticator,
        max_body: int,
        per_address: RateLimit,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.auth = auth
        self.max_body = max_body
        self.per_address = per_address
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope[STARTED] = started
        status = {"code": 0}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no values logged
            log.error(
                "bridge: %s on %s: %s",
                type(exc).__name__,
                route_label(scope["path"]),
                first_line(exc),
            )
            if status["code"] == 0:
                await _answer(tracking_send, 503, b'{"error":"unavailable"}')
        finally:
            client = scope.get("client") or ("-", 0)
            log.info(
                "bridge: %s %s %s %dms client=%s",
                scope["method"],
                route_label(scope["path"]),
                status["code"],
                round((time.perf_counter() - started) * 1000),
                client[0],
            )

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        route = route_label(scope["path"])
        signed = self.auth.signed(route, headers)
        if not signed and not self.auth.header_ok(route, headers.get(b"authorization", b"")):
            await _unauthorized(send)
            return
        client = (scope.get("client") or ("-", 0))[0]
        retry = self.per_address.hit(str(client))
        if retry is not None:
            after = str(max(1, int(retry + 0.999))).encode()
            await _answer(send, 429, b'{"error":"rate_limited"}', [(b"retry-after", after)])
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send, 413, b'{"error":"body_too_large"}', close=True)
            return
        try:
            with anyio.fail_after(self.body_timeout):
                data = await self._read_body(receive)
        except BodyTooLarge:
            await _answer(send, 413, b'{"error":"body_too_large"}', close=True)
            return
        except TimeoutError:
            await _answer(send, 408, b'{"error":"timeout"}', close=True)
            return
        if signed and not self.auth.body_ok(scope["path"], headers, data):
            await _unauthorized(send)
            return
        await self.app(scope, _replay(data, receive), send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


async def _unauthorized(send: Send) -> None:
    """The one refusal of a missing or wrong credential, whatever the scheme: no detail."""
    await _answer(send, 401, b'{"error":"unauthorized"}', [(b"www-authenticate", b"Bearer")])


def _replay(data: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()

    return replay


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    close: bool = False,
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


async def _unavailable(request: Request, exc: Exception) -> Response:
    """An unexpected error's answer (Starlette then re-raises it to the guard, which logs it)."""
    return json_response({"error": "unavailable"}, 503)


def create_app(bridge: Bridge, *, secret: str, body_timeout: float = BODY_TIMEOUT) -> ASGIApp:
    """The bridge's ASGI app: every provider's routes behind the guard.

    Args:
        bridge: the opened migration target.
        secret: the shared secret (the value ``bridge.secret`` names, not the reference).
        body_timeout: seconds a client has to send its whole body.
    """
    settings = bridge.settings
    workers = settings.workers or cores()
    ctx = Context(
        bridge=bridge,
        per_identifier=RateLimit(settings.per_identifier),
        threads=anyio.CapacityLimiter(workers),
        capacity=workers + settings.max_queue,
    )
    routes: list[BaseRoute] = [r for provider in PROVIDERS for r in provider.routes(ctx)]
    app = Starlette(routes=routes, exception_handlers={Exception: _unavailable})
    auth = Authenticator(secret, schemes=settings.auth, basic_user=settings.basic_user)
    return Guard(
        app,
        auth=auth,
        max_body=settings.max_body,
        per_address=RateLimit(settings.per_address),
        body_timeout=body_timeout,
    )


MIN_SECRET_CHARS = 16


def _head_timeout_protocol() -> type:
    """uvicorn's h11 protocol with :data:`HEAD_TIMEOUT` on every request head."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutH11Protocol(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._expire)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expire(self) -> None:
            self._head_timer = None
            in_flight = self.cycle is not None and not self.cycle.response_complete
            if not in_flight and not self.transport.is_closing():
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # a head arrived: the body has its own deadline

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeadTimeoutH11Protocol


def make_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> Any:
    """A uvicorn server for the app (``.run()`` serves until SIGINT/SIGTERM).

    HTTP/1.1 via h11 with its 16 KiB cap on the request head, :data:`HEAD_TIMEOUT` seconds
    to send it, keep-alive connections closed after 5 idle seconds, at most 1,000 connections
    at once (503 beyond), no access log (the guard logs routes, never paths), TLS when
    ``certfile``/``keyfile`` are given.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_head_timeout_protocol(),
        lifespan="off",
        access_log=False,
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        limit_concurrency=1000,
        h11_max_incomplete_event_size=16 * 1024,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    return uvicorn.Server(config)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8085`` for IPv6) -> (host, port).

    Raises:
        SpecError: (``--listen``) not HOST:PORT with a port in 1..65535.
    """
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError("--listen", "expected HOST:PORT, e.g. 127.0.0.1:8085")
    return host, int(port)


def bridge_command(
    spec: Spec, listen: str, *, certfile: str | None = None, keyfile: str | None = None
) -> None:
    """``authmigrate bridge SPEC --listen HOST:PORT``: check everything, then serve.

    Raises:
        SpecError: no ``[bridge]`` section, the secret's variable unset or too short, a bad
            ``--listen``, or only one of ``--certfile``/``--keyfile``.
    """
    host, port = parse_listen(listen)
    if spec.bridge is None:
        raise SpecError("bridge", 'add a [bridge] section with secret = "env:NAME"')
    secret = resolve_secret(spec.bridge.secret, path="bridge.secret")
    if len(secret) < MIN_SECRET_CHARS:
        raise SpecError(
            "bridge.secret", f"the secret is shorter than {MIN_SECRET_CHARS} characters"
        )
    if bool(certfile) != bool(keyfile):
        raise SpecError("--certfile", "give both --certfile and --keyfile, or neither")
    bridge = Bridge(spec)
    if not certfile and host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("bridge: serving plain HTTP on %s: put TLS in front (docs/bridge.md)", host)
    try:
        make_server(
            create_app(bridge, secret=secret),
            host=host,
            port=port,
            certfile=certfile,
            keyfile=keyfile,
        ).run()
    finally:
        bridge.close()
