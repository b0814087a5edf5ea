"""Upper bounds on the work factors a stored credential may ask for.

A stored hash carries its own cost (bcrypt cost, PBKDF2 iterations, scrypt N/r/p, argon2
memory...). A crafted or corrupt row could ask for minutes of CPU or gigabytes of memory per
verification, so every scheme checks its parameters against these bounds when it parses a
credential, before any hashing: above them the credential is ``credential.malformed`` at
import and ``verify`` returns False (after the usual dummy hash) without doing the work.

Every real platform's default fits under them with a wide margin (docs/credentials.md lists
the defaults each bound was chosen against); the worst case allowed costs a few seconds of one
core and at most 1 GiB of memory.
"""

from __future__ import annotations

import hashlib

import argon2
from argon2.exceptions import InvalidHashError

from ._common import malformed

MAX_PBKDF2_ITERATIONS = 10_000_000
"""PBKDF2 (Django, Werkzeug, libpass, ASP.NET V3). Django 6.0: 1,200,000; Werkzeug 3.1:
1,000,000; OWASP 2025 PBKDF2-SHA1: 1,300,000; ASP.NET Core 7+: 100,000."""

MAX_SHA_CRYPT_ROUNDS = 10_000_000
"""``$5$``/``$6$`` rounds. glibc default 5,000; libpass 535,000 / 656,000."""

MAX_BCRYPT_COST = 16
"""bcrypt log2 cost. PHP 8.4 / Django / Devise / Laravel / Rails: 12; PHP < 8.4: 10."""

MIN_PHPASS_LOG2 = 7
MAX_PHPASS_LOG2 = 20
"""phpass / Drupal 7 log2 round count. WordPress 13 (``$P$B``), phpBB 11, Drupal 7 15
(``$S$D``); phpass and Drupal themselves accept 7..30."""

MAX_SCRYPT_MEMORY = 512 * 1024 * 1024
"""scrypt memory, ``128 * r * (N + p + 2)`` bytes (OpenSSL's figure). Django 5: 16 MiB,
Werkzeug 3: 32 MiB, libpass: 64 MiB, Firebase: 16 MiB, OWASP (N=2^17, r=8): 128 MiB."""

MAX_SCRYPT_WORK = 1 << 23
"""scrypt ``N * r * p``. Django 2^17, Werkzeug 2^18, libpass 2^19, OWASP 2^20."""

MAX_ARGON2_MEMORY_KIB = 1024 * 1024
"""argon2 memory in KiB (1 GiB). OWASP 19 MiB, PHP / argon2-cffi / Magento 2: 64 MiB,
Django: 100 MiB, libsodium MODERATE 256 MiB, SENSITIVE 1 GiB."""

MAX_ARGON2_WORK_KIB = 4 * 1024 * 1024
"""argon2 ``memory * time`` in KiB passes (4 GiB-passes): libsodium SENSITIVE (1 GiB x 4) is
the largest default; Django's is 200 MiB-passes."""

MAX_ARGON2_TIME = 16
MAX_ARGON2_PARALLELISM = 32
"""argon2 passes and lanes. Defaults: t=2..4, p=1..8."""

MAX_MAGENTO2_CHAIN = 4
"""Versions in one Magento 2 ``hash:salt:v1:v2...`` chain (real upgraded rows have 2 or 3)."""

MAX_SHOPWARE_ITERATIONS = 100_000
"""Shopware 5 ``Sha256`` encoder (default 1,000 iterations)."""

MAX_AUTHLOGIC_STRETCHES = 100_000
"""Authlogic SHA-512 stretches (default 20, also in Spree and Solidus)."""

MAX_SLOW_LOOP_PASSWORD_BYTES = 4096
"""Passwords longer than this never verify for schemes that hash the password once per round
in a Python loop (phpass via ``digest``, Shopware 5 ``Sha256``), where the cost is rounds times
the password length. WordPress, libpass and Django's old cap are the same 4096 bytes."""


def check_pbkdf2(scheme_id: str, iterations: int) -> int:
    """``iterations`` when within bounds, else MalformedHashError."""
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise malformed(scheme_id, "iteration count out of range")
    return iterations


def check_bcrypt_cost(scheme_id: str, cost: int) -> int:
    """``cost`` when within bounds, else MalformedHashError."""
    if not 4 <= cost <= MAX_BCRYPT_COST:
        raise malformed(scheme_id, "bcrypt cost out of range")
    return cost


def check_scrypt(scheme_id: str, n: int, r: int, p: int) -> None:
    """MalformedHashError unless N is a power of two > 1 and memory and work are bounded."""
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        raise malformed(scheme_id, "bad scrypt parameters")
    if scrypt_maxmem(n, r, p) > MAX_SCRYPT_MEMORY + 1024 * 1024 or n * r * p > MAX_SCRYPT_WORK:
        raise malformed(scheme_id, "scrypt parameters out of range")


def scrypt_maxmem(n: int, r: int, p: int) -> int:
    """The ``maxmem`` to give hashlib.scrypt for bounded parameters (OpenSSL's own estimate)."""
    return 128 * r * (n + p + 2) + 1024 * 1024


def scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    """hashlib.scrypt with the ``maxmem`` of :func:`scrypt_maxmem`, for parameters already
    checked by :func:`check_scrypt`."""
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=scrypt_maxmem(n, r, p), dklen=dklen
    )


def check_argon2(scheme_id: str, memory_kib: int, time_cost: int, parallelism: int) -> None:
    """MalformedHashError unless argon2's memory, passes and lanes are within bounds."""
    if not (
        1 <= time_cost <= MAX_ARGON2_TIME
        and 1 <= parallelism <= MAX_ARGON2_PARALLELISM
        and 8 * parallelism <= memory_kib <= MAX_ARGON2_MEMORY_KIB
        and memory_kib * time_cost <= MAX_ARGON2_WORK_KIB
    ):
        raise malformed(scheme_id, "argon2 parameters out of range")


def check_argon2_phc(scheme_id: str, phc: str) -> None:
    """Parse an argon2 PHC string's parameters and check them (MalformedHashError)."""
    try:
        params = argon2.extract_parameters(phc)
    except (InvalidHashError, ValueError):
        raise malformed(scheme_id) from None
    check_argon2(scheme_id, params.memory_cost, params.time_cost, params.parallelism)
