"""Checking a migrated credential against the legacy hash it came from, without a password.

``verify`` needs to prove that each target credential is the one the spec's policy makes from
the source row's legacy hash:

- a kept credential is the canonical form of the legacy hash, byte for byte;
- a wrapped credential (``$wrap$<scheme>$argon2id...$<inner>``, see
  :mod:`authmigrate.credentials.wrap`) names the legacy scheme, keeps the legacy credential minus
  its digest as ``<inner>``, and its argon2id hash verifies the legacy *stored digest*. That is
  exactly how :func:`~authmigrate.credentials.wrap.wrap_credential` computed it, so no password
  is needed, only the argon2id work (which is why ``verify --sample N`` exists).

Nothing here returns or logs a credential: results are booleans and stable reason codes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from authmigrate.credentials._base import get
from authmigrate.credentials.rules import split_rules
from authmigrate.credentials.wrap import WRAP_PREFIX, parse_wrapped
from authmigrate.errors import CredentialError

_ARGON2 = argon2.PasswordHasher()


@dataclass(frozen=True)
class WrapCheck:
    """The outcome of comparing a wrapped credential with a legacy one.

    Attributes:
        ok: True when every part checked matches.
        reason: ``""`` when ok, else a stable code: ``wrap.malformed``, ``wrap.scheme``,
            ``wrap.inner`` (the kept salt/parameters, or the platform's login rules, differ)
            or ``wrap.digest`` (the argon2id hash is not over the legacy digest).
    """

    ok: bool
    reason: str = ""


def is_wrapped(credential: str | None) -> bool:
    """True for a credential in the wrapped form (also inside a platform's login rule)."""
    if not isinstance(credential, str):
        return False
    try:
        return split_rules(credential)[1].startswith(WRAP_PREFIX)
    except CredentialError:
        return False


def check_wrapped(
    wrapped: str, canonical: str, scheme_id: str, *, check_digest: bool = True
) -> WrapCheck:
    """Check that ``wrapped`` was made from the canonical legacy credential ``canonical``.

    Args:
        wrapped: the target's credential (``$wrap$...``).
        canonical: the source row's legacy hash, imported (``authmigrate.import_hash``).
        scheme_id: the scheme id ``canonical`` was identified as.
        check_digest: also run argon2id over the legacy digest (costly: the profile's memory and
            time); without it only the structure (scheme and inner part) is compared.

    Returns:
        A :class:`WrapCheck`; never raises for a bad credential.

    Example:
        >>> from authmigrate.credentials.wrap import wrap_credential
        >>> legacy = "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"
        >>> w = wrap_credential("md5_crypt", legacy, profile="TEST")
        >>> check_wrapped(w, legacy, "md5_crypt").ok
        True
    """
    try:
        wrapped_rules, wrapped = split_rules(wrapped)
        legacy_rules, canonical = split_rules(canonical)
        parts = parse_wrapped(wrapped)
    except CredentialError:
        return WrapCheck(False, "wrap.malformed")
    if wrapped_rules != legacy_rules:
        return WrapCheck(False, "wrap.inner")
    if parts.scheme != scheme_id:
        return WrapCheck(False, "wrap.scheme")
    try:
        scheme = get(scheme_id)
        inner = scheme.strip_digest(canonical)
        digest = scheme.stored_digest(canonical) if check_digest else b""
    except (KeyError, CredentialError, ValueError, TypeError, IndexError):
        return WrapCheck(False, "wrap.malformed")
    if not hmac.compare_digest(inner.encode("utf-8"), parts.inner.encode("utf-8")):
        return WrapCheck(False, "wrap.inner")
    if not check_digest:
        return WrapCheck(True)
    try:
        _ARGON2.verify(parts.argon2_hash, digest)
    except VerificationError:
        return WrapCheck(False, "wrap.digest")
    except InvalidHashError:
        return WrapCheck(False, "wrap.malformed")
    return WrapCheck(True)
