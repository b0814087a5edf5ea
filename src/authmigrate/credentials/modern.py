"""Modern and Unix-crypt schemes whose standard string is their canonical form.

argon2id / argon2i (argon2-cffi), bcrypt ``$2a$ $2b$ $2y$`` (bcrypt), and through libpass:
standard scrypt ``$scrypt$``, PBKDF2 ``$pbkdf2-sha1$ $pbkdf2-sha256$ $pbkdf2-sha512$``,
SHA-crypt ``$5$ $6$``, MD5-crypt ``$1$`` and Apache ``$apr1$``. Each canonical credential is
the library's own string, byte for byte, so any other library verifies it directly.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import argon2
import bcrypt as _bcrypt
from argon2.exceptions import InvalidHashError, VerificationError
from passlib import hash as _ph

from ._base import Example, Keyring, register
from ._common import NeverWrapped, malformed
from ._limits import (
    MEMORY_GATE,
    argon2_memory,
    check_argon2_phc,
    check_bcrypt_cost,
    check_pbkdf2,
    check_scrypt,
    check_work,
    password_bytes,
    scrypt_maxmem,
    sha_crypt_seconds,
)

BCRYPT_MAX_BYTES = 72
"""bcrypt only ever reads the first 72 bytes of a password (PHP, Ruby and OpenBSD agree).

The ``bcrypt`` package (5.x) refuses longer passwords instead of truncating them, so the
schemes here truncate themselves: a hash PHP made from a 100-byte password must verify.
"""

_VERIFIER = argon2.PasswordHasher()


def bcrypt_secret(secret: bytes) -> bytes:
    """``secret`` cut to what bcrypt actually reads (see :data:`BCRYPT_MAX_BYTES`)."""
    return secret[:BCRYPT_MAX_BYTES]


_BCRYPT_RE = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def is_bcrypt(value: str) -> bool:
    """True for a ``$2a$``/``$2b$``/``$2y$`` bcrypt string.

    ``$2x$`` (crypt_blowfish's buggy 8-bit mode) is deliberately not one: the ``bcrypt``
    package would silently verify it as ``$2a$``, which is wrong for any non-ASCII password.
    """
    return _BCRYPT_RE.match(value) is not None


def check_bcrypt(scheme_id: str, value: str) -> str:
    """``value`` when it is a bcrypt string (or its 29-character setting) of bounded cost.

    Raises:
        MalformedHashError: not bcrypt, or a cost above ``MAX_BCRYPT_COST`` (hashing would
            take minutes: rejected before any work).
    """
    if not is_bcrypt(value if len(value) != 29 else value + "." * 31):
        raise malformed(scheme_id)
    check_bcrypt_cost(scheme_id, int(value[4:6]))
    return value


def _refused(secret: bytes) -> bool:
    """True for a secret bcrypt implementations disagree on: a NUL in the bytes bcrypt reads.

    C implementations (PHP, OpenBSD, Ruby) stop at the NUL, the ``bcrypt`` package 5.x does not;
    such a password never verifies rather than verifying against either reading.
    """
    return b"\x00" in bcrypt_secret(secret)


_NO_CHECKSUM = b"!" * 31
"""What :func:`bcrypt_checksum` gives for a refused secret: never a stored checksum."""


def bcrypt_check(secret: bytes, hashed: str) -> bool:
    """bcrypt verification of raw bytes (truncated to 72), constant-time inside bcrypt.

    The caller has checked ``hashed`` with :func:`check_bcrypt` (bounded cost).
    """
    if _refused(secret):
        _bcrypt.checkpw(b"", hashed.encode("ascii"))  # same work as a wrong password
        return False
    try:
        return _bcrypt.checkpw(bcrypt_secret(secret), hashed.encode("ascii"))
    except ValueError:
        return False


def bcrypt_checksum(secret: bytes, config: str) -> bytes:
    """The 31-character bcrypt checksum of ``secret`` under ``config`` (``$2b$12$<salt22>``)."""
    if _refused(secret):
        return _NO_CHECKSUM
    return _bcrypt.hashpw(bcrypt_secret(secret), config[:29].encode("ascii"))[29:]


def argon2_check(scheme_id: str, phc: str, password: str) -> bool:
    """argon2-cffi's verification of an argon2 PHC string, after the parameters' bounds.

    Raises:
        MalformedHashError: parameters out of bounds, or a string argon2-cffi cannot read.
    """
    params = check_argon2_phc(scheme_id, phc)
    try:
        with MEMORY_GATE.hold(argon2_memory(params.memory_cost)):
            return _VERIFIER.verify(phc, password)
    except VerificationError:
        return False
    except InvalidHashError:
        raise malformed(scheme_id) from None


class _Argon2(NeverWrapped):
    """argon2 in its PHC string (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``)."""

    id: ClassVar[str]
    description: ClassVar[str]
    weak: ClassVar[bool] = False
    prefix: ClassVar[str]
    type: ClassVar[argon2.Type]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What :meth:`identify` looks for (see :mod:`._index`)."""
        return (self.prefix,)

    def identify(self, credential: str) -> bool:
        """True for this variant's PHC prefix."""
        return credential.startswith(self.prefix)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate a PHC string; it is already canonical."""
        value = value.strip()
        if not self.identify(value):
            raise malformed(self.id)
        check_argon2_phc(self.id, value)
        return value

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """argon2-cffi's own verification (after the parameters' bounds)."""
        return argon2_check(self.id, credential, password)

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


@register(priority=10)
class Argon2id(_Argon2):
    """argon2id, the upgrade target of every other scheme."""

    id = "argon2id"
    description = "Argon2id PHC string $argon2id$v=19$m=..,t=..,p=..$salt$hash (argon2-cffi)"
    prefix = "$argon2id$"
    type = argon2.Type.ID
    examples = (
        Example(
            "password",
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$cpx6VEQbwTVZvcpxNIxOVUWZ5xnAipUmAe1cg2GMG70",
        ),
    )


@register(priority=11)
class Argon2i(_Argon2):
    """argon2i (older default of several frameworks)."""

    id = "argon2i"
    description = "Argon2i PHC string $argon2i$v=19$m=..,t=..,p=..$salt$hash (argon2-cffi)"
    prefix = "$argon2i$"
    type = argon2.Type.I
    examples = (
        Example(
            "password",
            "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$m+x4L7hN2ZRjBBfcMx29Bo5JdJxIE52dqtM6I/wGjDY",
        ),
    )


@register(priority=12)
class Bcrypt:
    """bcrypt ``$2a$``, ``$2b$``, ``$2y$`` (PHP's ``password_hash``), first 72 bytes only."""

    id = "bcrypt"
    description = "bcrypt $2a$/$2b$/$2y$ (passwords cut to their first 72 bytes, as PHP does)"
    weak = False
    prefixes = ("$2a$", "$2b$", "$2y$")  # _BCRYPT_RE

    def identify(self, credential: str) -> bool:
        """True for a 60-character modular-crypt bcrypt string."""
        return is_bcrypt(credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate a bcrypt string; it is already canonical (``$2y$`` stays ``$2y$``)."""
        return check_bcrypt(self.id, value.strip())

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """bcrypt's own check over the first 72 bytes of the UTF-8 password."""
        check_bcrypt(self.id, credential)
        return bcrypt_check(password.encode("utf-8"), credential)

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The 31-character checksum for ``password`` with the credential's cost and salt."""
        check_bcrypt(self.id, credential[:29])
        return bcrypt_checksum(password.encode("utf-8"), credential)

    def stored_digest(self, credential: str) -> bytes:
        """The 31-character checksum (as ASCII bytes)."""
        check_bcrypt(self.id, credential)
        return credential[29:].encode("ascii")

    def strip_digest(self, credential: str) -> str:
        """``$2b$12$<22-char salt>``."""
        return credential[:29]

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


class _Passlib:
    """A scheme libpass implements; the canonical form is libpass's string."""

    id: ClassVar[str]
    description: ClassVar[str]
    weak: ClassVar[bool] = False
    handler: ClassVar[Any]

    def identify(self, credential: str) -> bool:
        """libpass's identification (prefix based)."""
        try:
            return bool(self.handler.identify(credential))
        except (ValueError, TypeError):
            return False

    def _parse(self, credential: str) -> Any:
        try:
            parsed = self.handler.from_string(credential)
        except (ValueError, TypeError):
            raise malformed(self.id) from None
        self._check_cost(parsed)
        return parsed

    def _check_cost(self, parsed: Any) -> None:
        """MalformedHashError when the parsed hash asks for more work than the bounds allow."""

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate the string; it is already canonical."""
        value = value.strip()
        if not self.identify(value) or self._parse(value).checksum is None:
            raise malformed(self.id)
        return value

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """libpass's verification (constant-time comparison inside), after the cost bounds."""
        self._parse(credential)
        try:
            return bool(self.handler.verify(password, credential))
        except (ValueError, TypeError):
            raise malformed(self.id) from None

    @staticmethod
    def _as_bytes(checksum: str | bytes) -> bytes:
        return checksum.encode("ascii") if isinstance(checksum, str) else checksum

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The checksum for ``password`` with the credential's salt and rounds."""
        return self._as_bytes(self._parse(credential)._calc_checksum(password))

    def stored_digest(self, credential: str) -> bytes:
        """The credential's checksum (raw bytes, or the hash64 characters as ASCII)."""
        checksum = self._parse(credential).checksum
        if checksum is None:
            raise malformed(self.id, "no digest")
        return self._as_bytes(checksum)

    def strip_digest(self, credential: str) -> str:
        """The string up to and including the ``$`` before the checksum (its last field)."""
        self._parse(credential)
        return credential.rsplit("$", 1)[0] + "$"

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


@register(priority=20)
class Scrypt(_Passlib):
    """Standard scrypt as libpass writes it."""

    id = "scrypt"
    description = "scrypt PHC string $scrypt$ln=..,r=..,p=..$salt$hash (libpass)"
    handler = _ph.scrypt
    prefixes = ("$scrypt$", "$7$")  # the handler's ident

    def _check_cost(self, parsed: Any) -> None:
        """N = 2^ln, r and p within the scrypt bounds."""
        if not 1 <= int(parsed.rounds) <= 62:
            raise malformed(self.id, "bad scrypt parameters")
        n = 1 << int(parsed.rounds)
        check_scrypt(self.id, n, int(parsed.block_size), int(parsed.parallelism))

    def _memory(self, credential: str) -> int:
        parsed = self._parse(credential)
        return scrypt_maxmem(1 << int(parsed.rounds), int(parsed.block_size), parsed.parallelism)

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """libpass's verification, inside the memory gate."""
        with MEMORY_GATE.hold(self._memory(credential)):
            return super().verify(password, credential, keyring)

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The checksum, inside the memory gate."""
        with MEMORY_GATE.hold(self._memory(credential)):
            return super().digest(password, credential, keyring)


class _Pbkdf2(_Passlib):
    """A libpass PBKDF2 scheme: its iterations are priced by the work model."""

    hash_name: ClassVar[str]

    def _check_cost(self, parsed: Any) -> None:
        """The iterations within the work budget."""
        check_pbkdf2(self.id, int(parsed.rounds), self.hash_name)


class _ShaCrypt(_Passlib):
    """SHA-crypt: rounds times the password length, priced by the work model."""

    hash_name: ClassVar[str]

    def _check_cost(self, parsed: Any) -> None:
        """The rounds, with the password length of the moment, within the work budget."""
        rounds = int(parsed.rounds)
        if not 1 <= rounds <= 999_999_999:
            raise malformed(self.id, "round count out of range")
        check_work(self.id, sha_crypt_seconds(self.hash_name, rounds, password_bytes()))


@register(priority=21)
class Pbkdf2Sha1(_Pbkdf2):
    """PBKDF2-HMAC-SHA1 in libpass's PHC-like form."""

    id = "pbkdf2_sha1"
    description = "PBKDF2-HMAC-SHA1 $pbkdf2$rounds$salt$hash (libpass, adapted base64)"
    handler = _ph.pbkdf2_sha1
    prefixes = ("$pbkdf2$",)  # the handler's ident
    hash_name = "sha1"


@register(priority=22)
class Pbkdf2Sha256(_Pbkdf2):
    """PBKDF2-HMAC-SHA256 in libpass's PHC-like form."""

    id = "pbkdf2_sha256"
    description = "PBKDF2-HMAC-SHA256 $pbkdf2-sha256$rounds$salt$hash (libpass)"
    handler = _ph.pbkdf2_sha256
    prefixes = ("$pbkdf2-sha256$",)  # the handler's ident
    hash_name = "sha256"


@register(priority=23)
class Pbkdf2Sha512(_Pbkdf2):
    """PBKDF2-HMAC-SHA512 in libpass's PHC-like form."""

    id = "pbkdf2_sha512"
    description = "PBKDF2-HMAC-SHA512 $pbkdf2-sha512$rounds$salt$hash (libpass)"
    handler = _ph.pbkdf2_sha512
    prefixes = ("$pbkdf2-sha512$",)  # the handler's ident
    hash_name = "sha512"


@register(priority=24)
class Sha256Crypt(_ShaCrypt):
    """SHA-256-crypt ``$5$`` (glibc)."""

    id = "sha256_crypt"
    description = "SHA-256-crypt $5$[rounds=N$]salt$hash (glibc crypt)"
    handler = _ph.sha256_crypt
    prefixes = ("$5$",)  # the handler's ident
    hash_name = "sha256"


@register(priority=25)
class Sha512Crypt(_ShaCrypt):
    """SHA-512-crypt ``$6$`` (glibc)."""

    id = "sha512_crypt"
    description = "SHA-512-crypt $6$[rounds=N$]salt$hash (glibc crypt)"
    handler = _ph.sha512_crypt
    prefixes = ("$6$",)  # the handler's ident
    hash_name = "sha512"


@register(priority=26)
class Md5Crypt(_Passlib):
    """MD5-crypt ``$1$`` (FreeBSD/glibc): 1000 MD5 rounds, weak."""

    id = "md5_crypt"
    description = "MD5-crypt $1$salt$hash (weak: wrapped by policy wrap)"
    weak = True
    handler = _ph.md5_crypt
    prefixes = ("$1$",)  # the handler's ident


@register(priority=27)
class AprMd5Crypt(_Passlib):
    """Apache's MD5-crypt variant ``$apr1$`` (htpasswd), weak."""

    id = "apr_md5_crypt"
    description = "Apache MD5-crypt $apr1$salt$hash (htpasswd; weak: wrapped by policy wrap)"
    weak = True
    handler = _ph.apr_md5_crypt
    prefixes = ("$apr1$",)  # the handler's ident
