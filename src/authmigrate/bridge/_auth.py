"""Who may call the bridge: the shared secret, sent the ways each provider can send it.

Three schemes, all keyed by the one ``bridge.secret``:

- ``bearer``: ``Authorization: Bearer <secret>`` (Kratos ``api_key``, Okta "HTTP Headers",
  Keycloak plugin "Bearer Token Auth", FusionAuth header, our Auth0 and Cognito templates);
- ``basic``: ``Authorization: Basic base64(<bridge.basic_user>:<secret>)`` (Kratos
  ``basic_auth``, Okta "HTTP Headers" with a Basic value, the Keycloak plugin's "Basic Auth",
  FusionAuth's HTTP authentication user name and password);
- ``hmac``: an HMAC-SHA256 of the timestamp, the path and the body, keyed by the secret, in
  ``X-Authmigrate-Signature: sha256=<hex>`` with ``X-Authmigrate-Timestamp: <unix seconds>``
  (only callers whose code we ship can sign: the Auth0 scripts and the Cognito proxy Lambda).
  A timestamp more than :data:`WINDOW` seconds off, or a signature seen before, is refused.

Each route accepts the schemes its provider can send (:data:`ROUTE_SCHEMES`) that
``bridge.auth`` enables. Every comparison is constant-time (digests of equal length compared
with :func:`hmac.compare_digest`), and every refusal is the same 401 with no detail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

BEARER, BASIC, HMAC = "bearer", "basic", "hmac"
SCHEMES = (BEARER, BASIC, HMAC)

WINDOW = 300
"""Seconds a signed request's timestamp may be off the bridge's clock (either way)."""

SIGNATURE = b"x-authmigrate-signature"
TIMESTAMP = b"x-authmigrate-timestamp"

ROUTE_SCHEMES: Mapping[str, frozenset[str]] = {
    "/kratos": frozenset({BEARER, BASIC}),
    "/okta": frozenset({BEARER, BASIC}),
    "/keycloak/{user}": frozenset({BEARER, BASIC}),
    "/fusionauth": frozenset({BEARER, BASIC}),
    "/cognito": frozenset({BEARER, HMAC}),
    "/auth0/login": frozenset({BEARER, HMAC}),
    "/auth0/get_user": frozenset({BEARER, HMAC}),
}
"""What each provider can send (docs/bridge.md names the provider documentation checked)."""

_OTHER = frozenset({BEARER, BASIC})


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def same(given: bytes, expected: bytes) -> bool:
    """Constant-time equality that does not even tell the length apart."""
    return hmac.compare_digest(_digest(given), _digest(expected))


def sign(secret: str, timestamp: str, path: str, body: bytes) -> str:
    """The signature header's value for a request (what the shipped templates compute).

    Example:
        >>> sign("k" * 16, "1700000000", "/auth0/login", b"{}")[:7]
        'sha256='
    """
    message = f"{timestamp}.{path}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Authenticator:
    """Checks a request's credentials against the shared secret.

    Args:
        secret: the shared secret (the value, not the ``env:`` reference).
        schemes: the schemes ``bridge.auth`` enables.
        basic_user: the user name of the ``basic`` scheme.
        clock: seconds since the epoch (the signed timestamps' clock).
        max_seen: signatures remembered for replay refusal (the oldest are forgotten first).
    """

    def __init__(
        self,
        secret: str,
        *,
        schemes: Iterable[str] = SCHEMES,
        basic_user: str = "authmigrate",
        clock: Callable[[], float] = time.time,
        max_seen: int = 100_000,
    ) -> None:
        self._secret = secret
        self._token = secret.encode()
        self._basic = f"{basic_user}:{secret}".encode()
        self.schemes = frozenset(schemes)
        self.clock = clock
        self.max_seen = max_seen
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return f"Authenticator(schemes={sorted(self.schemes)})"

    def allowed(self, route: str) -> frozenset[str]:
        """The schemes ``route`` accepts."""
        return ROUTE_SCHEMES.get(route, _OTHER) & self.schemes

    def signed(self, route: str, headers: Mapping[bytes, bytes]) -> bool:
        """True when the request is to be judged by its signature (after its body is read)."""
        return HMAC in self.allowed(route) and SIGNATURE in headers

    def header_ok(self, route: str, authorization: bytes) -> bool:
        """True for a right ``Bearer`` or ``Basic`` credential that ``route`` accepts."""
        scheme, _, credential = authorization.strip().partition(b" ")
        scheme, credential = scheme.lower(), credential.strip()
        allowed = self.allowed(route)
        if scheme == b"bearer" and BEARER in allowed:
            return same(credential, self._token)
        if scheme == b"basic" and BASIC in allowed:
            try:
                decoded = base64.b64decode(credential, validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            return same(decoded, self._basic)
        return False

    def body_ok(self, path: str, headers: Mapping[bytes, bytes], body: bytes) -> bool:
        """True for a right signature of a fresh timestamp, never seen before."""
        stamp = headers.get(TIMESTAMP, b"").decode("latin-1").strip()
        given = headers.get(SIGNATURE, b"").strip()
        if not stamp.isdigit() or len(stamp) > 12:
            return False
        now = self.clock()
        if abs(now - int(stamp)) > WINDOW:
            return False
        expected = sign(self._secret, stamp, path, body).encode()
        if not same(given, expected):
            return False
        return self._first_time(expected, now)

    def _first_time(self, signature: bytes, now: float) -> bool:
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)  # expired: outside every window now
            if signature in self._seen:
                return False
            self._seen[signature] = now + 2 * WINDOW
            while len(self._seen) > self.max_seen:
                self._seen.popitem(last=False)
            return True
