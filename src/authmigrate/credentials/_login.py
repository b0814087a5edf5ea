"""What a login path needs around ``verify``: the password checks, the dummy verification, the
timing floor and the hook told about unusable credentials.

Kept apart from the scheme families: nothing here knows a scheme, and nothing in a scheme
knows it runs on a login path.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from argon2.exceptions import VerificationError

from ._limits import MAX_PASSWORD_BYTES, MEMORY_GATE, argon2_memory
from .wrap import Profile, hasher, password_too_long

_log = logging.getLogger("authmigrate.credentials")

_DUMMY_PASSWORD = "authmigrate-timing-equaliser"

Floor = float | Literal["profile"] | None
"""A ``min_seconds`` argument: seconds, ``"profile"`` (:func:`profile_floor`) or ``None`` (no
floor)."""


def require_text(password: object) -> str:
    """``password`` when it is a ``str``; TypeError naming its type (never its value) otherwise.

    A ``bytes`` password would be read differently by different schemes (some encode, some
    refuse, libpass takes bytes as they are), and ``None`` is a caller's bug, not a wrong
    password: both are refused before any scheme runs.
    """
    if not isinstance(password, str):
        raise TypeError(f"password must be str, not {type(password).__name__}")
    return password


def too_long(password: str) -> bool:
    """True when the password is over :data:`~._limits.MAX_PASSWORD_BYTES` (UTF-8)."""
    return password_too_long(password)


def utf8_length(password: str) -> int:
    """The UTF-8 length of a password already known to be at most the cap."""
    return len(password.encode("utf-8", "surrogatepass"))


@functools.lru_cache(maxsize=8)
def _dummy_hash(profile: Profile) -> str:
    return hasher(profile).hash(_DUMMY_PASSWORD)


def dummy_work(profile: Profile) -> None:
    """One argon2id verification at ``profile`` that fails: what a real verification costs."""
    stored = _dummy_hash(profile)
    try:
        with MEMORY_GATE.hold(argon2_memory(profile.memory_cost)):
            hasher(profile).verify(stored, _DUMMY_PASSWORD + "!")
    except VerificationError:
        pass


FLOOR_MARGIN = 2.0
""":func:`profile_floor` is this many times the fastest of three measured verifications: a
verification on a busy server takes longer than on an idle one, and a floor below it would let
the argon2id accounts answer later than the weak ones again."""


@functools.lru_cache(maxsize=8)
def profile_floor(profile: Profile) -> float:
    """Seconds a verification at ``profile`` takes on this machine, with a margin.

    Measured once per profile and process (three dummy verifications, the fastest times
    :data:`FLOOR_MARGIN`), the first time a floor of ``"profile"`` is asked for.
    """
    fastest = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        dummy_work(profile)
        fastest = min(fastest, time.perf_counter() - start)
    return fastest * FLOOR_MARGIN


def floor_seconds(min_seconds: Floor, profile: Profile) -> float:
    """The floor in seconds for a ``min_seconds`` argument (0 for none).

    Raises:
        ValueError: a negative number or an unknown word.
    """
    if min_seconds is None:
        return 0.0
    if min_seconds == "profile":
        return profile_floor(profile)
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, int | float):
        raise ValueError('min_seconds is a number of seconds, "profile" or None')
    if min_seconds < 0:
        raise ValueError("min_seconds cannot be negative")
    return float(min_seconds)


def sleep_until(start: float, floor: float) -> None:
    """Sleep until ``floor`` seconds have passed since ``start`` (a ``perf_counter`` value)."""
    remaining = floor - (time.perf_counter() - start)
    if remaining > 0:
        time.sleep(remaining)


@dataclass(frozen=True)
class CredentialProblem:
    """What the credential hook is told: never the credential, never the password.

    Attributes:
        code: ``credential.unrecognized`` (no scheme reads it: a truncated column, another
            system's format) or ``credential.malformed`` (a scheme's prefix, but it does not
            parse, or its work factor is over the budget).
        scheme: the scheme id when one claimed the value, else ``None``.
        length: the stored value's length in characters (a truncated column shows here).
    """

    code: str
    scheme: str | None
    length: int


CredentialHook = Callable[[CredentialProblem], None]

_hook: CredentialHook | None = None


def set_credential_hook(hook: CredentialHook | None) -> CredentialHook | None:
    """Call ``hook`` whenever ``verify`` meets a credential it cannot use; returns the previous.

    ``verify`` answers False for an unrecognised or malformed credential, exactly as for a
    wrong password (a login must not tell them apart); the hook is how the operator learns
    that a column was truncated or a row corrupted. It is called in the verifying thread,
    before the dummy verification. An exception from the hook is logged and ignored: a
    metrics outage must not fail logins. ``None`` removes the hook.

    Example:
        >>> seen = []
        >>> previous = set_credential_hook(seen.append)
        >>> from authmigrate.credentials import verify
        >>> verify("password", "$1$saltsalt$short")
        False
        >>> seen[0].code, seen[0].scheme
        ('credential.malformed', 'md5_crypt')
        >>> _ = set_credential_hook(previous)
    """
    global _hook
    previous, _hook = _hook, hook
    return previous


def report_problem(code: str, scheme: str | None, credential: object) -> None:
    """Tell the hook (if any) about an unusable credential."""
    hook = _hook
    if hook is None:
        return
    length = len(credential) if isinstance(credential, str) else 0
    try:
        hook(CredentialProblem(code, scheme, length))
    except Exception:  # noqa: BLE001 - a hook's failure must never fail a login
        _log.exception("the credential hook raised; the login went on")


__all__ = [
    "MAX_PASSWORD_BYTES",
    "CredentialHook",
    "CredentialProblem",
    "Floor",
    "dummy_work",
    "floor_seconds",
    "profile_floor",
    "report_problem",
    "require_text",
    "set_credential_hook",
    "sleep_until",
    "too_long",
    "utf8_length",
]
