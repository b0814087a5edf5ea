"""New auth tokens for migrated users, stored only as a hash.

Each migrated user gets a token of 256 bits from the OS CSPRNG (:mod:`secrets` for one token,
one ``os.urandom`` call per batch in :class:`TokenStage`: the same source). The target keeps
only a self-describing string::

    $amtok$v=1,alg=sha256,purpose=activation,exp=1767225600,prefix=Xb3kQ9aZ$<digest>

``digest`` is the unpadded base64 of SHA-256 (``alg=sha256``) or HMAC-SHA256 with a server key
(``alg=hmac-sha256``) over the version, purpose, expiry and token, so that editing the purpose or
the expiry in the stored string makes the token fail. ``prefix`` is the token's first
:data:`PREFIX_LENGTH` characters: an index for looking the row up, too short to be of use to
anyone who reads it (the rest still carries 208 bits).

The plaintext exists only on its way to the user: :class:`TokenStage` leaves it on
``Record.token`` (never written to the target), where the outbox stage encrypts it.

    >>> token, stored = issue_token("activation", 3600)
    >>> verify_token(token, stored, purpose="activation")
    True
    >>> verify_token(token + "x", stored)
    False
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from authmigrate.errors import MalformedHashError, MissingKeyError
from authmigrate.pipeline.batch import Batch
from authmigrate.spec import NotifySpec, Spec, TokensSpec, parse_duration, resolve_secret

TOKEN_BYTES = 32
"""Random bytes per token: 256 bits, twice the 128-bit floor."""

PREFIX_LENGTH = 8
"""Characters of the token kept in clear as a lookup prefix."""

VERSION = 1

# fullmatch, ASCII digits and bounded lengths: ``$`` would accept a trailing newline, ``\d``
# any Unicode digit, and an unbounded number of digits makes ``int()`` raise ValueError.
_PURPOSE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_STORED = re.compile(
    r"\$amtok\$v=(?P<v>[0-9]{1,3}),alg=(?P<alg>sha256|hmac-sha256),"
    r"purpose=(?P<purpose>[a-z][a-z0-9_.-]{0,31}),exp=(?P<exp>[0-9]{1,12}),"
    r"prefix=(?P<prefix>[A-Za-z0-9_-]{1,64})\$(?P<digest>[A-Za-z0-9+/]{43})"
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _key_bytes(server_key: str | bytes) -> bytes:
    return server_key.encode("utf-8") if isinstance(server_key, str) else server_key


def _digest(token: str, purpose: str, exp: int, server_key: str | bytes | None) -> bytes:
    message = f"amtok\0{VERSION}\0{purpose}\0{exp}\0{token}".encode()
    if server_key is None:
        return hashlib.sha256(message).digest()
    return hmac.new(_key_bytes(server_key), message, hashlib.sha256).digest()


def token_prefix(token: str) -> str:
    """The short lookup prefix of ``token`` (its first :data:`PREFIX_LENGTH` characters).

    Store it in an indexed column to find the row of a presented token, then check the token
    with :func:`verify_token`.
    """
    return token[:PREFIX_LENGTH]


def issue_token(
    purpose: str,
    ttl_seconds: int,
    server_key: str | bytes | None = None,
    *,
    now: float | None = None,
) -> tuple[str, str]:
    """Make a new token and the string to store for it.

    Args:
        purpose: what the token is for (``activation``, ``password_reset``, ``api``...);
            lower-case letters, digits, ``_ . -``.
        ttl_seconds: how long the token is valid, in seconds (> 0).
        server_key: when given, the stored digest is HMAC-SHA256 with this key, so that a copy
            of the table alone does not allow checking guesses.
        now: the issue time as a Unix timestamp (default: the current time).

    Returns:
        ``(token, stored)``: the URL-safe plaintext for the user, and the hash string for the
        target. The plaintext must never be written anywhere but the user's message.

    Raises:
        ValueError: an invalid purpose or a non-positive ttl.
    """
    _check_issue(purpose, ttl_seconds)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    exp = int(now if now is not None else time.time()) + int(ttl_seconds)
    return token, stored_form(token, purpose, exp, server_key)


def _check_issue(purpose: str, ttl_seconds: int) -> None:
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"token purpose must match {_PURPOSE.pattern}: {purpose!r}")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")


def issue_tokens(
    purpose: str,
    ttl_seconds: int,
    count: int,
    server_key: str | bytes | None = None,
    *,
    now: float | None = None,
) -> list[tuple[str, str]]:
    """``count`` new tokens and their stored strings: :func:`issue_token` for a whole batch.

    Each pair is what :func:`issue_token` would give (a URL-safe token of :data:`TOKEN_BYTES`
    random bytes, its :func:`stored_form`), for a fraction of the cost: one ``os.urandom`` call
    for the batch, cut into 32 bytes per token, and the digest's fixed head hashed once.
    ``os.urandom`` is the OS CSPRNG (``getrandom(2)`` on Linux) that ``secrets`` itself reads:
    ``secrets.token_urlsafe(32)`` is ``os.urandom(32)`` in URL-safe base64, so every token
    keeps its 256 bits from the same source.

    Raises:
        ValueError: an invalid purpose or a non-positive ttl (when ``count`` > 0).
    """
    if count <= 0:
        return []
    _check_issue(purpose, ttl_seconds)
    exp = int(now if now is not None else time.time()) + int(ttl_seconds)
    alg = "sha256" if server_key is None else "hmac-sha256"
    head = f"$amtok$v={VERSION},alg={alg},purpose={purpose},exp={exp},prefix="
    signed = f"amtok\0{VERSION}\0{purpose}\0{exp}\0".encode()  # _digest's message, less the token
    base = (
        hashlib.sha256(signed)
        if server_key is None
        else hmac.new(_key_bytes(server_key), signed, hashlib.sha256)
    )
    pool = os.urandom(TOKEN_BYTES * count)
    # base64.urlsafe_b64encode and _b64, spelled out: their wrappers cost more than the work
    encode, urlsafe = binascii.b2a_base64, _URLSAFE
    issued = []
    for start in range(0, len(pool), TOKEN_BYTES):
        raw = encode(pool[start : start + TOKEN_BYTES], newline=False).translate(urlsafe)
        raw = raw.rstrip(b"=")
        digest = base.copy()
        digest.update(raw)
        token = raw.decode("ascii")
        hashed = encode(digest.digest(), newline=False).rstrip(b"=").decode("ascii")
        issued.append((token, f"{head}{token[:PREFIX_LENGTH]}${hashed}"))
    return issued


_URLSAFE = bytes.maketrans(b"+/", b"-_")
"""Standard base64 to URL-safe base64 (``base64.urlsafe_b64encode``'s table)."""


def stored_form(
    token: str, purpose: str, expires_at: int, server_key: str | bytes | None = None
) -> str:
    """The string :func:`issue_token` stores for ``token`` issued with this purpose and expiry.

    Deterministic: whoever holds the token (``notify``, to find and replace the hash of a
    token that is about to expire) can compute it again.
    """
    alg = "sha256" if server_key is None else "hmac-sha256"
    digest = _b64(_digest(token, purpose, expires_at, server_key))
    return (
        f"$amtok$v={VERSION},alg={alg},purpose={purpose},exp={expires_at},"
        f"prefix={token_prefix(token)}${digest}"
    )


@dataclass(frozen=True, slots=True)
class StoredToken:
    """The parsed fields of a stored token string (nothing secret: the digest is one-way)."""

    version: int
    alg: str
    purpose: str
    expires_at: int
    prefix: str
    digest: str


def parse_stored(stored: str) -> StoredToken:
    """Parse a stored token string.

    Raises:
        MalformedHashError: ``stored`` is not a token string of a known version.
    """
    m = _STORED.fullmatch(stored) if isinstance(stored, str) else None
    if m is None or int(m["v"]) != VERSION:
        raise MalformedHashError("not a stored authmigrate token ($amtok$v=1,...)")
    return StoredToken(int(m["v"]), m["alg"], m["purpose"], int(m["exp"]), m["prefix"], m["digest"])


def verify_token(
    token: str,
    stored: str | None,
    *,
    server_key: str | bytes | None = None,
    purpose: str | None = None,
    now: float | None = None,
) -> bool:
    """Check a presented token against its stored string, in constant time.

    Args:
        token: what the user presented.
        stored: the string :func:`issue_token` returned (from the target's token column).
            ``None`` or ``""`` (a column the application cleared after use) never verifies.
        server_key: the HMAC key, required when the stored string says ``alg=hmac-sha256``.
        purpose: when given, the token must have been issued for this purpose.
        now: the check time as a Unix timestamp (default: the current time).

    Returns:
        True when the token matches, is not expired, and has the expected purpose; False for
        anything else, including a token that is not a string and a cleared (empty) column.

    Raises:
        MalformedHashError: ``stored`` is neither empty nor a stored token string (a value
            that was never written by :func:`issue_token`: a configuration error, not a guess).
        MissingKeyError: the stored string needs a server key and none was given.
    """
    if stored is None or stored == "":
        return False
    parsed = parse_stored(stored)
    if parsed.alg == "hmac-sha256" and server_key is None:
        raise MissingKeyError("this token was stored with HMAC-SHA256: pass server_key")
    key = server_key if parsed.alg == "hmac-sha256" else None
    if not isinstance(token, str):
        return False
    # Always compute the digest, so that a wrong purpose or an expired token takes as long as
    # a wrong token.
    expected = _digest(token, parsed.purpose, parsed.expires_at, key)
    match = hmac.compare_digest(_b64(expected).encode(), parsed.digest.encode())
    fresh = (now if now is not None else time.time()) < parsed.expires_at
    right_purpose = purpose is None or (
        isinstance(purpose, str) and hmac.compare_digest(purpose.encode(), parsed.purpose.encode())
    )
    return match and fresh and right_purpose


def token_segments(
    notify: NotifySpec | Spec | None, *, base_dir: Path | None = None
) -> frozenset[str] | None:
    """The notification segments whose accounts get a token; None when every account does.

    A token is of use only to a user who receives it, so with ``[notify]`` only the accounts
    of a segment whose message carries the token (enabled, and its templates use ``token`` or
    ``reset_link``) get one; the others get NULL. With ``tokens.delivery = "none"`` (no
    ``[notify]``) every account gets one, as the spec asks.

    Args:
        notify: the ``[notify]`` section (None without one).
        base_dir: folder of relative template paths (the spec's folder).

    Raises:
        SpecError: a template of the spec cannot be read or does not compile.
    """
    if isinstance(notify, Spec):  # how earlier versions were called: still understood
        whole = notify
        notify, base_dir = whole.notify, whole.base_dir
    if notify is None:
        return None
    from authmigrate.notify.templates import Templates

    templates = Templates(notify, base_dir=base_dir)
    return frozenset(s for s in templates.enabled if templates.needs_token(s))


class TokenStage:
    """Pipeline stage: gives each record a new token (implements ``batch.Stage``).

    Fills ``spec.column`` with the stored hash string and, when configured,
    ``spec.prefix_column`` with the lookup prefix. The plaintext goes on ``record.token`` only,
    for the outbox stage; it is not a target value and is never written to the target.
    A record outside ``segments`` gets no token: NULL in both columns.

    Args:
        spec: the ``[tokens]`` section.
        segments: the notification segments whose messages carry the token
            (:func:`token_segments`); None (the default) gives every record a token.
        server_key: the HMAC key itself; by default it is read from ``spec.server_key``
            (an ``env:NAME`` reference) when that is set.
        now: clock for the expiry (tests); default :func:`time.time`.

    Raises:
        SpecError: ``tokens.server_key`` names an unset environment variable.
    """

    secret_columns: frozenset[str] = frozenset()

    def __init__(
        self,
        spec: TokensSpec,
        *,
        server_key: str | bytes | None = None,
        now: Any = None,
        segments: frozenset[str] | None = None,
    ) -> None:
        self.spec = spec
        self.segments = segments
        self.ttl_seconds = parse_duration(spec.expires_in)
        if server_key is None and spec.server_key is not None:
            server_key = resolve_secret(spec.server_key, path="tokens.server_key")
        self._server_key = server_key
        self._now = now or time.time

    def __repr__(self) -> str:
        keyed = "hmac" if self._server_key is not None else "sha256"
        return f"TokenStage(column={self.spec.column!r}, purpose={self.spec.purpose!r}, {keyed})"

    def columns(self) -> list[sa.Column[Any]]:
        """The token column (text) and, if configured, the indexed prefix column."""
        cols: list[sa.Column[Any]] = [sa.Column(self.spec.column, sa.Text, nullable=True)]
        if self.spec.prefix_column:
            cols.append(sa.Column(self.spec.prefix_column, sa.String(PREFIX_LENGTH), index=True))
        return cols

    def tables(self, metadata: sa.MetaData) -> None:
        """No side table: the hash lives in the target table."""

    def process(self, batch: Batch) -> None:
        """Issue one token per record of the batch whose message will carry it."""
        now = self._now()
        receiving = []
        for record in batch.records:
            if self.segments is not None and record.segment not in self.segments:
                record.token = None
                record.values[self.spec.column] = None
                if self.spec.prefix_column:
                    record.values[self.spec.prefix_column] = None
                continue
            receiving.append(record)
        issued = issue_tokens(
            self.spec.purpose, self.ttl_seconds, len(receiving), self._server_key, now=now
        )
        for record, (token, stored) in zip(receiving, issued, strict=True):
            record.token = token
            record.values[self.spec.column] = stored
            if self.spec.prefix_column:
                record.values[self.spec.prefix_column] = token_prefix(token)

    def issue_columns(self, count: int) -> dict[str, list[str]]:
        """The token columns (:meth:`columns`) of ``count`` accounts that carry no message:
        what :meth:`process` writes into ``count`` records, without the records (the fast path,
        where the plaintext goes nowhere). Only for a stage that gives every record a token.
        """
        assert self.segments is None, "segments decide per record: use process()"
        issued = issue_tokens(
            self.spec.purpose, self.ttl_seconds, count, self._server_key, now=self._now()
        )
        out = {self.spec.column: [stored for _, stored in issued]}
        if self.spec.prefix_column:
            out[self.spec.prefix_column] = [token_prefix(token) for token, _ in issued]
        return out

    def write(self, conn: sa.Connection, batch: Batch, run_id: str) -> None:
        """Nothing to write: the values travel with the records."""
