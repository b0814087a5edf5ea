"""Wrapping a legacy credential in argon2id, and the argon2id parameter profiles.

A wrapped credential stores argon2id over the legacy *digest* (not over the password), plus
the legacy credential with its digest removed, so that verification is "recompute the legacy
digest from the password, then verify argon2id over it". No weak digest is left in the store,
and wrapping needs no password: a whole table is wrapped in one batch.

The form (one string, PHC-style, documented in docs/credentials.md)::

    $wrap$<scheme id>$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>$<legacy credential minus digest>

Everything between ``<scheme id>`` and the last field is a plain argon2id PHC string
(without its leading ``$``); the last field is the inner scheme's ``strip_digest`` output,
verbatim, and may itself contain ``$`` (it is last for that reason).

Example::

    $wrap$md5_crypt$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$...$$1$saltsalt$
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import ClassVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from authmigrate.errors import CredentialError

from ._base import Keyring, get, register
from ._common import malformed
from ._limits import MAX_PASSWORD_BYTES, MEMORY_GATE, argon2_memory, check_argon2_phc

WRAP_PREFIX = "$wrap$"


@dataclass(frozen=True)
class Profile:
    """A named set of argon2id parameters.

    Attributes:
        name: the profile's name, as written in a spec (``credentials.profile``).
        memory_cost: KiB of memory.
        time_cost: passes over the memory.
        parallelism: lanes.
        hash_len: tag length in bytes.
        salt_len: salt length in bytes.
    """

    name: str
    memory_cost: int
    time_cost: int
    parallelism: int
    hash_len: int = 32
    salt_len: int = 16


OWASP_2025 = Profile("OWASP_2025", memory_cost=19456, time_cost=2, parallelism=1)
"""OWASP Password Storage Cheat Sheet: argon2id with 19 MiB, 2 iterations, 1 lane."""

TEST = Profile("TEST", memory_cost=64, time_cost=1, parallelism=1)
"""Deliberately cheap, for tests and demos only: never for real accounts."""

PROFILES: dict[str, Profile] = {p.name: p for p in (OWASP_2025, TEST)}
DEFAULT_PROFILE = OWASP_2025

ALLOW_TEST_PROFILE_ENV = "AUTHMIGRATE_ALLOW_TEST_PROFILE"
"""Set to ``1`` to allow the ``TEST`` profile in this process (the test suite's conftest does;
a spec says ``allow_test_profile = true`` instead)."""


def env_allows_test_profile() -> bool:
    """True when the environment allows the ``TEST`` profile (:data:`ALLOW_TEST_PROFILE_ENV`)."""
    return os.environ.get(ALLOW_TEST_PROFILE_ENV, "").strip().lower() in ("1", "true", "yes")


def profile_named(profile: str | Profile | None, *, allow_test: bool = False) -> Profile:
    """The profile for a name (or the profile itself; ``None`` is :data:`DEFAULT_PROFILE`).

    The ``TEST`` profile (64 KiB, one pass: seconds to crack) is refused unless ``allow_test``
    is true or the environment allows it (:data:`ALLOW_TEST_PROFILE_ENV`), so that a spec or
    a login path copied from a test cannot hash real accounts with it.

    Raises:
        CredentialError: unknown profile name, or ``TEST`` not allowed (code
            ``credential.profile``).
    """
    if profile is None:
        return DEFAULT_PROFILE
    if isinstance(profile, Profile):
        chosen = profile
    else:
        try:
            chosen = PROFILES[profile]
        except KeyError:
            raise CredentialError(
                f"unknown argon2 profile {profile!r}; known: {', '.join(PROFILES)}",
                code="credential.profile",
            ) from None
    if chosen.name == TEST.name and not (allow_test or env_allows_test_profile()):
        raise CredentialError(
            "the TEST argon2 profile is for tests only: use OWASP_2025, or allow it explicitly "
            f"(allow_test_profile = true in the spec, or {ALLOW_TEST_PROFILE_ENV}=1)",
            code="credential.profile",
        )
    return chosen


@functools.lru_cache(maxsize=16)
def hasher(profile: Profile) -> argon2.PasswordHasher:
    """argon2-cffi's hasher for a profile (cached: it is immutable and thread-safe)."""
    return argon2.PasswordHasher(
        time_cost=profile.time_cost,
        memory_cost=profile.memory_cost,
        parallelism=profile.parallelism,
        hash_len=profile.hash_len,
        salt_len=profile.salt_len,
        type=argon2.Type.ID,
    )


_WRAP_RE = re.compile(
    r"^\$wrap\$(?P<scheme>[A-Za-z0-9_.-]+)"
    r"\$(?P<argon>argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+)"
    r"\$(?P<inner>.*)$",
    re.DOTALL,
)


@dataclass(frozen=True)
class WrappedParts:
    """The three parts of a wrapped credential."""

    scheme: str
    argon2_hash: str
    inner: str

    def __repr__(self) -> str:
        return f"WrappedParts(scheme={self.scheme!r}, argon2_hash='***', inner='***')"


def parse_wrapped(credential: str) -> WrappedParts:
    """Split a wrapped credential into inner scheme id, argon2id PHC string and inner part.

    Raises:
        MalformedHashError: not a wrapped credential.
    """
    match = _WRAP_RE.match(credential)
    if match is None:
        raise malformed("wrap")
    return WrappedParts(match["scheme"], "$" + match["argon"], match["inner"])


def format_wrapped(parts: WrappedParts) -> str:
    """Inverse of :func:`parse_wrapped`."""
    return f"{WRAP_PREFIX}{parts.scheme}{parts.argon2_hash}${parts.inner}"


def wrap_credential(
    scheme_id: str,
    credential: str,
    *,
    profile: str | Profile | None = None,
    allow_test_profile: bool = False,
) -> str:
    """Wrap a canonical credential of ``scheme_id`` (see :func:`authmigrate.credentials.wrap`).

    A credential carrying a platform login rule (:mod:`.rules`) is wrapped inside its rule:
    ``$login-rule$trim=1$<legacy>`` becomes ``$login-rule$trim=1$$wrap$...``, so the rule still
    applies to the wrapped credential.
    """
    from .rules import inner_scheme, split_rules, with_rules

    rules, bare = split_rules(credential)
    if rules:
        inner_id = inner_scheme(bare).id
        return with_rules(wrap_credential(inner_id, bare, profile=profile), rules)
    scheme = get(scheme_id)
    stored = scheme.stored_digest(credential)
    inner = scheme.strip_digest(credential)
    argon2_hash = hasher(profile_named(profile, allow_test=allow_test_profile)).hash(stored)
    return format_wrapped(WrappedParts(scheme_id, argon2_hash, inner))


def password_too_long(password: str) -> bool:
    """True when ``password`` is over :data:`~._limits.MAX_PASSWORD_BYTES` in UTF-8.

    Counted without encoding a huge string: more characters than the cap is over it already.
    """
    if len(password) > MAX_PASSWORD_BYTES:
        return True
    return len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES


def _wrapped_again() -> CredentialError:
    return CredentialError("a wrapped credential is not wrapped again", code="credential.wrapped")


_VERIFIER = argon2.PasswordHasher()


@register(priority=0)
class Wrapped:
    """A legacy credential wrapped in argon2id (this module's form)."""

    id: ClassVar[str] = "wrap"
    description: ClassVar[str] = (
        "$wrap$<scheme>$argon2id$...$<legacy minus digest>: argon2id over a legacy digest"
    )
    weak: ClassVar[bool] = False
    prefixes: ClassVar[tuple[str, ...]] = (WRAP_PREFIX,)

    def identify(self, credential: str) -> bool:
        """True for the ``$wrap$`` prefix."""
        return credential.startswith(WRAP_PREFIX)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate a wrapped credential; it is already canonical."""
        value = value.strip()
        parts = parse_wrapped(value)
        if parts.scheme == self.id:
            raise malformed(self.id, "unknown inner scheme")
        try:
            get(parts.scheme)
        except KeyError:
            raise malformed(self.id, "unknown inner scheme") from None
        check_argon2_phc(self.id, parts.argon2_hash)
        return value

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """Recompute the inner legacy digest, then verify argon2id over it.

        The argon2id parameters are bounded before any work. A password the inner scheme
        cannot take (``credential.password_encoding``) still costs the argon2id verification
        and is False; an inner scheme that has no digest (argon2, wrap) is malformed.
        """
        parts = parse_wrapped(credential)
        if parts.scheme == self.id:
            raise malformed(self.id, "unknown inner scheme")
        try:
            inner = get(parts.scheme)
        except KeyError:
            raise malformed(self.id, "unknown inner scheme") from None
        params = check_argon2_phc(self.id, parts.argon2_hash)
        if password_too_long(password):
            return False  # checked here too: the inner digest has no cap of its own
        try:
            legacy_digest = inner.digest(password, parts.inner, keyring)
        except CredentialError as exc:
            if exc.code == "credential.password_encoding":
                legacy_digest = b""  # no stored digest is empty: False after the same work
            elif exc.code in ("credential.not_wrappable", "credential.wrapped"):
                raise malformed(self.id, "inner scheme cannot be wrapped") from None
            else:
                raise
        try:
            with MEMORY_GATE.hold(argon2_memory(params.memory_cost)):
                return _VERIFIER.verify(parts.argon2_hash, legacy_digest)
        except VerificationError:
            return False
        except InvalidHashError:
            raise malformed(self.id) from None

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """Not supported: a wrapped credential is never wrapped again."""
        raise _wrapped_again()

    def stored_digest(self, credential: str) -> bytes:
        """Not supported (see :meth:`digest`)."""
        raise _wrapped_again()

    def strip_digest(self, credential: str) -> str:
        """Not supported (see :meth:`digest`)."""
        raise _wrapped_again()

    def __repr__(self) -> str:
        return "<scheme wrap>"
