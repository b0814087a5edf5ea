"""The equal-time answer: one place that makes a failed login cost what a real one does.

An unknown user, a malformed stored hash and an account without a password must not answer
faster than a wrong password, or the time tells an attacker which accounts exist. Two tools:

- :func:`dummy_verify` spends one argon2id verification at the upgrade profile (the work a
  real account costs), for the paths that have nothing to verify;
- :class:`AnswerFloor` holds every failed answer back until a floor (by default 1.5 x one
  argon2id verification, measured at start) so fast legacy digests answer no sooner.

:data:`MAX_PASSWORD_BYTES` caps the password at the bridge's door: a longer one is a wrong
password, after the same dummy work.

The dummy work and the password cap are the credential engine's own
(:func:`authmigrate.credentials.dummy_verify`, :data:`MAX_PASSWORD_BYTES`): one place for both.
"""

from __future__ import annotations

import statistics
import time

import anyio

from authmigrate.credentials import MAX_PASSWORD_BYTES, Profile, too_long
from authmigrate.credentials import dummy_verify as _shared_dummy_verify

__all__ = ["MAX_PASSWORD_BYTES", "AnswerFloor", "dummy_verify", "measure_verify"]


def dummy_verify(profile: str | Profile | None = None) -> None:
    """Spend one argon2id verification at ``profile`` (default ``OWASP_2025``), for nothing."""
    _shared_dummy_verify(profile=profile)


def password_too_long(password: str) -> bool:
    """True for a password over :data:`MAX_PASSWORD_BYTES` in UTF-8."""
    return too_long(password)


def measure_verify(profile: str | Profile | None = None, rounds: int = 3) -> float:
    """Median seconds of one argon2id verification at ``profile`` on this machine."""
    dummy_verify(profile)  # warm the cached hash
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        dummy_verify(profile)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class AnswerFloor:
    """A failed answer waits until ``seconds`` after its request started.

    Example:
        >>> floor = AnswerFloor(0.01)
        >>> started = time.perf_counter()
        >>> floor.wait(started)
        >>> time.perf_counter() - started >= 0.01
        True
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @classmethod
    def measured(cls, profile: str | Profile | None = None) -> AnswerFloor:
        """1.5 x one argon2id verification at ``profile``, measured now."""
        return cls(1.5 * measure_verify(profile))

    def remaining(self, started: float) -> float:
        """Seconds left before an answer started at ``started`` (perf_counter) may leave."""
        return max(0.0, started + self.seconds - time.perf_counter())

    def wait(self, started: float) -> None:
        """Sleep out the floor (for synchronous callers)."""
        left = self.remaining(started)
        if left > 0:
            time.sleep(left)

    async def await_(self, started: float) -> None:
        """Sleep out the floor without holding a thread (for the ASGI app)."""
        left = self.remaining(started)
        if left > 0:
            await anyio.sleep(left)
