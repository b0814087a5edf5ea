"""Django's password hashers (``django/contrib/auth/hashers.py``).

Django's own ``algorithm$...`` strings are the canonical forms, byte for byte, so Django (and
libpass's ``django_*`` handlers) verify them directly. The one exception is the ancient bare
32-hex unsalted MD5, which is ambiguous with any plain MD5: ``import_hash`` turns it into
Django's other accepted spelling, ``md5$$<hex>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import ClassVar

from ._base import Keyring, register
from ._common import DigestScheme, NeverWrapped, is_hex, malformed, unhex
from ._limits import check_argon2_phc, check_pbkdf2, check_scrypt, scrypt
from .modern import argon2_check, bcrypt_check, bcrypt_checksum, check_bcrypt


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("bad base64") from exc


class _Pbkdf2(DigestScheme):
    """``pbkdf2_<digest>$<iterations>$<salt>$<base64 hash>``."""

    weak = False
    algorithm: ClassVar[str]
    hash_name: ClassVar[str]

    def _split(self, credential: str) -> tuple[int, str, str]:
        parts = credential.split("$")
        if len(parts) != 4 or parts[0] != self.algorithm or not parts[1].isdigit():
            raise malformed(self.id)
        iterations = check_pbkdf2(self.id, int(parts[1]), self.hash_name)
        if not parts[2]:
            raise malformed(self.id)
        return iterations, parts[2], parts[3]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What :meth:`identify` looks for (see :mod:`._index`)."""
        return (self.algorithm + "$",)

    def identify(self, credential: str) -> bool:
        """True for ``pbkdf2_<digest>$...``."""
        return credential.startswith(self.algorithm + "$")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate Django's string; it is already canonical."""
        value = value.strip()
        self.stored_digest(value)
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """PBKDF2-HMAC with the credential's salt (UTF-8) and iterations."""
        iterations, salt, _ = self._split(credential)
        return hashlib.pbkdf2_hmac(
            self.hash_name, password.encode("utf-8"), salt.encode("utf-8"), iterations
        )

    def stored_digest(self, credential: str) -> bytes:
        """The base64-decoded hash."""
        _, _, encoded = self._split(credential)
        try:
            raw = _unb64(encoded)
        except ValueError:
            raise malformed(self.id) from None
        if len(raw) != hashlib.new(self.hash_name).digest_size:
            raise malformed(self.id)
        return raw

    def strip_digest(self, credential: str) -> str:
        """``pbkdf2_<digest>$<iterations>$<salt>$``."""
        iterations, salt, _ = self._split(credential)
        return f"{self.algorithm}${iterations}${salt}$"


@register(priority=40)
class DjangoPbkdf2Sha256(_Pbkdf2):
    """Django's default hasher."""

    id = "django_pbkdf2_sha256"
    description = "Django pbkdf2_sha256$iterations$salt$base64 (Django's default)"
    algorithm = "pbkdf2_sha256"
    hash_name = "sha256"


@register(priority=41)
class DjangoPbkdf2Sha1(_Pbkdf2):
    """Django's PBKDF2 with SHA-1."""

    id = "django_pbkdf2_sha1"
    description = "Django pbkdf2_sha1$iterations$salt$base64"
    algorithm = "pbkdf2_sha1"
    hash_name = "sha1"


@register(priority=42)
class DjangoArgon2(NeverWrapped):
    """``argon2$argon2id$v=19$...``: Django's prefix before argon2's PHC string."""

    id = "django_argon2"
    description = "Django argon2$argon2id$v=19$m=..,t=..,p=..$salt$hash (argon2 PHC after 'argon2')"
    weak = False
    prefixes = ("argon2$argon2",)

    def identify(self, credential: str) -> bool:
        """True for ``argon2$argon2...``."""
        return credential.startswith("argon2$argon2")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate Django's string; it is already canonical."""
        value = value.strip()
        if not self.identify(value):
            raise malformed(self.id)
        check_argon2_phc(self.id, value[len("argon2") :])
        return value

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """argon2-cffi over the PHC part (after the parameters' bounds)."""
        if not self.identify(credential):
            raise malformed(self.id)
        return argon2_check(self.id, credential[len("argon2") :], password)

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


class _DjangoBcrypt:
    """``bcrypt$<bcrypt string>`` and ``bcrypt_sha256$<bcrypt string>``."""

    id: ClassVar[str]
    description: ClassVar[str]
    weak: ClassVar[bool] = False
    algorithm: ClassVar[str]

    def _secret(self, password: str) -> bytes:
        return password.encode("utf-8")

    def _inner(self, credential: str) -> str:
        prefix = self.algorithm + "$"
        if not credential.startswith(prefix):
            raise malformed(self.id)
        return credential[len(prefix) :]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What :meth:`identify` looks for (see :mod:`._index`)."""
        return (self.algorithm + "$$2",)

    def identify(self, credential: str) -> bool:
        """True for ``<algorithm>$$2...``."""
        return credential.startswith(self.algorithm + "$$2")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate Django's string; it is already canonical."""
        value = value.strip()
        check_bcrypt(self.id, self._inner(value))
        return value

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """bcrypt over the (pre-hashed, for bcrypt_sha256) password."""
        inner = check_bcrypt(self.id, self._inner(credential))
        return bcrypt_check(self._secret(password), inner)

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The bcrypt checksum for the credential's cost and salt."""
        inner = self._inner(credential)
        check_bcrypt(self.id, inner[:29])
        return bcrypt_checksum(self._secret(password), inner)

    def stored_digest(self, credential: str) -> bytes:
        """The 31-character bcrypt checksum."""
        inner = check_bcrypt(self.id, self._inner(credential))
        return inner[29:].encode("ascii")

    def strip_digest(self, credential: str) -> str:
        """``<algorithm>$$2b$12$<salt>``."""
        return self.algorithm + "$" + self._inner(credential)[:29]

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


@register(priority=43)
class DjangoBcryptSha256(_DjangoBcrypt):
    """bcrypt over the hex SHA-256 of the password (no 72-byte truncation)."""

    id = "django_bcrypt_sha256"
    description = "Django bcrypt_sha256$<bcrypt over hex sha256(password)>"
    algorithm = "bcrypt_sha256"

    def _secret(self, password: str) -> bytes:
        return binascii.hexlify(hashlib.sha256(password.encode("utf-8")).digest())


@register(priority=44)
class DjangoBcrypt(_DjangoBcrypt):
    """Plain bcrypt behind Django's prefix (first 72 bytes of the password)."""

    id = "django_bcrypt"
    description = "Django bcrypt$<bcrypt string> (first 72 bytes of the password)"
    algorithm = "bcrypt"


@register(priority=45)
class DjangoScrypt(DigestScheme):
    """``scrypt$<n>$<salt>$<r>$<p>$<base64 64-byte hash>``."""

    id = "django_scrypt"
    description = "Django scrypt$n$salt$r$p$base64"
    weak = False
    prefixes = ("scrypt$",)

    def _split(self, credential: str) -> tuple[int, str, int, int, str]:
        parts = credential.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise malformed(self.id)
        _, n, salt, r, p, encoded = parts
        if not (n.isdigit() and r.isdigit() and p.isdigit()) or not salt:
            raise malformed(self.id)
        n_, r_, p_ = int(n), int(r), int(p)
        check_scrypt(self.id, n_, r_, p_)
        return n_, salt, r_, p_, encoded

    def identify(self, credential: str) -> bool:
        """True for ``scrypt$<digits>$...`` (Django's, not libpass's ``$scrypt$``)."""
        return credential.startswith("scrypt$") and credential[7:8].isdigit()

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate Django's string; it is already canonical."""
        value = value.strip()
        self.stored_digest(value)
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """hashlib.scrypt with the credential's parameters, 64-byte output."""
        n, salt, r, p, _ = self._split(credential)
        return scrypt(password.encode("utf-8"), salt.encode("utf-8"), n, r, p, dklen=64)

    def stored_digest(self, credential: str) -> bytes:
        """The base64-decoded 64-byte hash."""
        *_, encoded = self._split(credential)
        try:
            raw = _unb64(encoded)
        except ValueError:
            raise malformed(self.id) from None
        if len(raw) != 64:
            raise malformed(self.id)
        return raw

    def strip_digest(self, credential: str) -> str:
        """``scrypt$n$salt$r$p$``."""
        n, salt, r, p, _ = self._split(credential)
        return f"scrypt${n}${salt}${r}${p}$"


class _SaltedHex(DigestScheme):
    """``<algorithm>$<salt>$<hexdigest(salt + password)>`` (Django's sha1 and md5)."""

    weak = True
    algorithm: ClassVar[str]
    hash_name: ClassVar[str]
    salted: ClassVar[bool] = True

    @property
    def _hex_len(self) -> int:
        return hashlib.new(self.hash_name).digest_size * 2

    def _split(self, credential: str) -> tuple[str, str]:
        parts = credential.split("$")
        if len(parts) != 3 or parts[0] != self.algorithm:
            raise malformed(self.id)
        if bool(parts[1]) != self.salted:
            raise malformed(self.id, "salt")
        return parts[1], parts[2]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What :meth:`identify` looks for (see :mod:`._index`)."""
        return (self.algorithm + "$",)

    def identify(self, credential: str) -> bool:
        """True for ``<algorithm>$<salt or nothing>$<hex>`` of this scheme's saltedness."""
        parts = credential.split("$")
        return (
            len(parts) == 3
            and parts[0] == self.algorithm
            and bool(parts[1]) == self.salted
            and is_hex(parts[2], self._hex_len)
        )

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate Django's string; it is already canonical (hex lower-cased)."""
        value = value.strip()
        self.stored_digest(value)
        head, _, hexdigest = value.rpartition("$")
        return f"{head}${hexdigest.lower()}"

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """hash(salt + password), raw."""
        salt, _ = self._split(credential)
        return hashlib.new(self.hash_name, (salt + password).encode("utf-8")).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The raw digest of the hex part."""
        _, hexdigest = self._split(credential)
        if not is_hex(hexdigest, self._hex_len):
            raise malformed(self.id)
        return unhex(hexdigest)

    def strip_digest(self, credential: str) -> str:
        """``<algorithm>$<salt>$``."""
        salt, _ = self._split(credential)
        return f"{self.algorithm}${salt}$"


@register(priority=46)
class DjangoUnsaltedSha1(_SaltedHex):
    """``sha1$$<hex sha1(password)>``."""

    id = "django_unsalted_sha1"
    description = "Django unsalted_sha1: sha1$$hex(sha1(password)) (weak)"
    algorithm = "sha1"
    hash_name = "sha1"
    salted = False


@register(priority=47)
class DjangoUnsaltedMd5(_SaltedHex):
    """``md5$$<hex md5(password)>``; a bare 32-hex value is imported into this form."""

    id = "django_unsalted_md5"
    description = "Django unsalted_md5: md5$$hex(md5(password)); bare 32-hex imported here (weak)"
    algorithm = "md5"
    hash_name = "md5"
    salted = False

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Accept Django's bare 32-hex spelling as well as ``md5$$<hex>``."""
        value = value.strip()
        if is_hex(value, 32):
            return f"md5$${value.lower()}"
        return super().import_hash(value)


@register(priority=48)
class DjangoSha1(_SaltedHex):
    """``sha1$<salt>$<hex sha1(salt + password)>``."""

    id = "django_sha1"
    description = "Django sha1$salt$hex(sha1(salt + password)) (weak)"
    algorithm = "sha1"
    hash_name = "sha1"


@register(priority=49)
class DjangoMd5(_SaltedHex):
    """``md5$<salt>$<hex md5(salt + password)>``."""

    id = "django_md5"
    description = "Django md5$salt$hex(md5(salt + password)) (weak)"
    algorithm = "md5"
    hash_name = "md5"
