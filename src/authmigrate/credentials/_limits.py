"""Upper bounds on the work a stored credential may ask for, measured in work.

A stored hash carries its own cost (bcrypt cost, PBKDF2 iterations, scrypt N/r/p, argon2
memory...), and for several schemes the cost also grows with the password (SHA-crypt, phpass,
Drupal 7 and Shopware 5 hash the whole password once per round). A crafted or corrupt row
could ask for minutes of CPU or gigabytes of memory per verification, so every scheme prices
its parameters with the model below before any hashing and refuses what is over the budget:
at import the credential is ``credential.malformed``, at login ``verify`` is False (after the
usual dummy hash) without doing the work.

The budget (:data:`WORK_BUDGET_SECONDS`) is about one second of one core of the reference
machine (an AMD EPYC core, 2026; ``bench/bench_login.py`` re-measures the model). It is
applied twice:

- at import, with a nominal password of :data:`NOMINAL_PASSWORD_BYTES` (the password is not
  known yet);
- at login, with the length of the password actually typed when it is longer: never looser
  than at import, tighter for long passwords, so a 4 KiB password against
  ``$6$rounds=656000`` (libpass's default) is refused at login although the credential imports
  and verifies shorter passwords.

Memory is bounded per verification (:data:`MAX_ARGON2_MEMORY_KIB`, :data:`MAX_SCRYPT_MEMORY`)
and across concurrent verifications by :data:`MEMORY_GATE`: 32 crafted logins at once hold at
most :data:`MAX_MEMORY_IN_FLIGHT` bytes, the others wait their turn.

docs/credentials.md lists the defaults of the real platforms the budget admits.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import threading
from collections.abc import Iterator

import argon2
from argon2.exceptions import InvalidHashError

from ._common import malformed

WORK_BUDGET_SECONDS = 1.0
"""The most one verification may cost, in seconds of one reference core."""

NOMINAL_PASSWORD_BYTES = 64
"""The password length the import bound assumes (the login bound uses the real one)."""

MAX_PASSWORD_BYTES = 4096
"""No password longer than this (UTF-8 bytes) ever verifies: ``verify`` answers False before
any scheme runs. WordPress, libpass and Django's old cap are the same 4096 bytes; platforms with
a smaller limit keep it (Drupal 7: 512)."""

# -- the cost model: seconds of one reference core ---------------------------------------------
# Measured with bench/bench_login.py --calibrate on the reference machine. Each figure is the
# slope of the scheme's cost; what grows with the password has a per-byte term.

_PBKDF2_ITERATION = {"sha1": 0.19e-6, "sha224": 0.19e-6, "sha256": 0.19e-6}
_PBKDF2_ITERATION_WIDE = 0.41e-6  # sha384 / sha512 (and anything else: priced high)
_BCRYPT_COST_10 = 0.052
_SCRYPT_NRP = 0.27e-6
_ARGON2_KIB_PASS = 0.95e-6
_SHA_CRYPT_ROUND = {"sha256": (0.29e-6, 1.0e-9), "sha512": (0.39e-6, 1.75e-9)}
_LOOP_ROUND = {"md5": (0.50e-6, 1.25e-9), "sha256": (0.45e-6, 1.0e-9), "sha512": (0.62e-6, 1.0e-9)}

_PASSWORD_BYTES: contextvars.ContextVar[int] = contextvars.ContextVar(
    "authmigrate_password_bytes", default=NOMINAL_PASSWORD_BYTES
)


def password_bytes() -> int:
    """The password length the work model uses now: the real one inside :func:`login_length`,
    :data:`NOMINAL_PASSWORD_BYTES` otherwise (import, wrap)."""
    return _PASSWORD_BYTES.get()


@contextlib.contextmanager
def login_length(length: int) -> Iterator[None]:
    """Price the work of the verifications inside with a password of ``length`` bytes, or the
    nominal length when shorter: a login is never allowed more work than an import."""
    token = _PASSWORD_BYTES.set(max(length, NOMINAL_PASSWORD_BYTES))
    try:
        yield
    finally:
        _PASSWORD_BYTES.reset(token)


def check_work(scheme_id: str, seconds: float) -> None:
    """MalformedHashError when ``seconds`` (the model's price) is over the budget."""
    if seconds > WORK_BUDGET_SECONDS:
        raise malformed(scheme_id, "work factor above the work budget")


def pbkdf2_seconds(hash_name: str, iterations: int) -> float:
    """The model's price of PBKDF2-HMAC-``hash_name``."""
    return iterations * _PBKDF2_ITERATION.get(hash_name, _PBKDF2_ITERATION_WIDE)


def bcrypt_seconds(cost: int) -> float:
    """The model's price of bcrypt at ``cost`` (log2 rounds)."""
    return _BCRYPT_COST_10 * 2.0 ** (cost - 10)


def scrypt_seconds(n: int, r: int, p: int) -> float:
    """The model's price of scrypt (linear in ``N * r * p``)."""
    return n * r * p * _SCRYPT_NRP


def argon2_seconds(memory_kib: int, time_cost: int) -> float:
    """The model's price of argon2 (linear in memory times passes, all lanes on one core)."""
    return memory_kib * time_cost * _ARGON2_KIB_PASS


def sha_crypt_seconds(hash_name: str, rounds: int, length: int) -> float:
    """The model's price of SHA-crypt ``$5$``/``$6$``: rounds times the password length."""
    fixed, per_byte = _SHA_CRYPT_ROUND[hash_name]
    return rounds * (fixed + per_byte * length)


def loop_seconds(hash_name: str, rounds: int, length: int) -> float:
    """The model's price of a Python loop hashing the whole password each round (phpass,
    Drupal 7, Shopware 5 ``Sha256``)."""
    fixed, per_byte = _LOOP_ROUND[hash_name]
    return rounds * (fixed + per_byte * length)


def _largest(fits: object, low: int, high: int) -> int:
    """The largest integer in ``[low, high]`` for which ``fits`` is true (monotone)."""
    assert callable(fits)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


MAX_PBKDF2_ITERATIONS = _largest(
    lambda i: pbkdf2_seconds("sha256", i) <= WORK_BUDGET_SECONDS, 1, 10**9
)
"""PBKDF2-SHA256 iterations the budget admits (about 5.2 million; SHA-512 about half).
Django 6.0: 1,200,000; Werkzeug 3.1: 1,000,000; OWASP 2025 PBKDF2-SHA1: 1,300,000; ASP.NET
Core 7+: 100,000 (SHA-512)."""

MAX_SHA_CRYPT_ROUNDS = _largest(
    lambda r: sha_crypt_seconds("sha512", r, NOMINAL_PASSWORD_BYTES) <= WORK_BUDGET_SECONDS,
    1000,
    999_999_999,
)
"""``$6$`` rounds the budget admits at import (about 2 million for a 64-byte password; at login
the real length counts). glibc default 5,000; libpass 535,000 / 656,000."""

MAX_BCRYPT_COST = _largest(lambda c: bcrypt_seconds(c) <= WORK_BUDGET_SECONDS, 4, 31)
"""bcrypt log2 cost the budget admits (14). PHP 8.4 / Django / Devise / Laravel / Rails: 12;
PHP < 8.4: 10."""

MIN_PHPASS_LOG2 = 7
MAX_PHPASS_LOG2 = 20
"""phpass / Drupal 7 log2 round count, also priced by the model (``$S$`` at 2^20 with a long
password is over). WordPress 13 (``$P$B``), phpBB 11, Drupal 7 15 (``$S$D``); phpass and
Drupal themselves accept 7..30."""

MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
"""scrypt memory, ``128 * r * (N + p + 2)`` bytes (OpenSSL's figure). Django 5: 16 MiB,
Werkzeug 3: 32 MiB, libpass: 64 MiB, Firebase: 16 MiB, OWASP (N=2^17, r=8): 128 MiB."""

MAX_SCRYPT_WORK = _largest(lambda w: scrypt_seconds(w, 1, 1) <= WORK_BUDGET_SECONDS, 1, 1 << 40)
"""scrypt ``N * r * p`` the budget admits (about 3.7 million). Django 2^17, Werkzeug 2^18,
libpass 2^19, OWASP 2^20."""

MAX_ARGON2_MEMORY_KIB = 256 * 1024
"""argon2 memory in KiB per verification (256 MiB). OWASP 19 MiB, PHP / argon2-cffi /
Magento 2: 64 MiB, Django: 100 MiB, libsodium MODERATE 256 MiB. libsodium SENSITIVE (1 GiB x 4
passes, about 4 s) is over the budget."""

MAX_ARGON2_WORK_KIB = _largest(lambda w: argon2_seconds(w, 1) <= WORK_BUDGET_SECONDS, 1, 1 << 40)
"""argon2 ``memory * time`` in KiB-passes the budget admits (about 1 GiB-pass): libsodium
MODERATE (256 MiB x 3) is the largest default admitted; Django's is 200 MiB-passes."""

MAX_ARGON2_TIME = 16
MAX_ARGON2_PARALLELISM = 32
"""argon2 passes and lanes. Defaults: t=2..4, p=1..8."""

MAX_MEMORY_IN_FLIGHT = 1024 * 1024 * 1024
"""The memory (bytes) every argon2 and scrypt verification of this process may hold at once:
four at the largest bound; beyond it, verifications wait for memory instead of taking more."""

MAX_MAGENTO2_CHAIN = 4
"""Versions in one Magento 2 ``hash:salt:v1:v2...`` chain (real upgraded rows have 2 or 3)."""

MAX_SHOPWARE_ITERATIONS = 100_000
"""Shopware 5 ``Sha256`` encoder (default 1,000 iterations), also priced by the model."""

MAX_AUTHLOGIC_STRETCHES = 100_000
"""Authlogic SHA-512 stretches (default 20, also in Spree and Solidus)."""

MAX_SLOW_LOOP_PASSWORD_BYTES = MAX_PASSWORD_BYTES
"""Passwords longer than this never verify for schemes that hash the password once per round
in a Python loop (phpass via ``digest``, Shopware 5 ``Sha256``)."""


class MemoryGate:
    """Admits memory-hard hashing while the memory held by all threads stays under a limit.

    A verification asks for its memory before hashing and gives it back after; when the
    others hold too much it waits. One request larger than the limit runs alone.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._peak = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the duration of the block."""
        with self._cond:
            while self._held and self._held + nbytes > self.limit:
                self._cond.wait()
            self._held += nbytes
            self._peak = max(self._peak, self._held)
        try:
            yield
        finally:
            with self._cond:
                self._held -= nbytes
                self._cond.notify_all()

    @property
    def peak(self) -> int:
        """The most memory held at once since the gate was made (or :meth:`reset_peak`)."""
        return self._peak

    def reset_peak(self) -> None:
        """Start measuring :attr:`peak` again."""
        with self._cond:
            self._peak = self._held


MEMORY_GATE = MemoryGate(MAX_MEMORY_IN_FLIGHT)
"""The process-wide gate of argon2 and scrypt verifications (see :class:`MemoryGate`)."""


def argon2_memory(memory_kib: int) -> int:
    """Bytes an argon2 hash of ``memory_kib`` holds (for :data:`MEMORY_GATE`)."""
    return memory_kib * 1024


def check_pbkdf2(scheme_id: str, iterations: int, hash_name: str = "sha256") -> int:
    """``iterations`` when within the budget, else MalformedHashError."""
    if not 1 <= iterations <= 10**9:
        raise malformed(scheme_id, "iteration count out of range")
    check_work(scheme_id, pbkdf2_seconds(hash_name, iterations))
    return iterations


def check_bcrypt_cost(scheme_id: str, cost: int) -> int:
    """``cost`` when within the budget, else MalformedHashError."""
    if not 4 <= cost <= MAX_BCRYPT_COST:
        raise malformed(scheme_id, "bcrypt cost out of range")
    return cost


def check_scrypt(scheme_id: str, n: int, r: int, p: int) -> None:
    """MalformedHashError unless N is a power of two > 1 and memory and work are bounded."""
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        raise malformed(scheme_id, "bad scrypt parameters")
    if scrypt_maxmem(n, r, p) > MAX_SCRYPT_MEMORY + 1024 * 1024:
        raise malformed(scheme_id, "scrypt parameters out of range")
    check_work(scheme_id, scrypt_seconds(n, r, p))


def scrypt_maxmem(n: int, r: int, p: int) -> int:
    """The ``maxmem`` to give hashlib.scrypt for bounded parameters (OpenSSL's own estimate)."""
    return 128 * r * (n + p + 2) + 1024 * 1024


def scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    """hashlib.scrypt with the ``maxmem`` of :func:`scrypt_maxmem`, for parameters already
    checked by :func:`check_scrypt`, inside :data:`MEMORY_GATE`."""
    maxmem = scrypt_maxmem(n, r, p)
    with MEMORY_GATE.hold(maxmem):
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)


def check_argon2(scheme_id: str, memory_kib: int, time_cost: int, parallelism: int) -> None:
    """MalformedHashError unless argon2's memory, passes and lanes are within bounds."""
    if not (
        1 <= time_cost <= MAX_ARGON2_TIME
        and 1 <= parallelism <= MAX_ARGON2_PARALLELISM
        and 8 * parallelism <= memory_kib <= MAX_ARGON2_MEMORY_KIB
    ):
        raise malformed(scheme_id, "argon2 parameters out of range")
    check_work(scheme_id, argon2_seconds(memory_kib, time_cost))


def check_argon2_phc(scheme_id: str, phc: str) -> argon2.Parameters:
    """Parse an argon2 PHC string's parameters and check them (MalformedHashError)."""
    try:
        params = argon2.extract_parameters(phc)
    except (InvalidHashError, ValueError):
        raise malformed(scheme_id) from None
    check_argon2(scheme_id, params.memory_cost, params.time_cost, params.parallelism)
    return params
