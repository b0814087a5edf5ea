"""Werkzeug / Flask's ``generate_password_hash`` strings (``werkzeug/security.py``).

``pbkdf2:<hash>:<iterations>$<salt>$<hex>`` and ``scrypt:<n>:<r>:<p>$<salt>$<hex>``; the salt
is text used as UTF-8 bytes, the digest is lower-case hex. Werkzeug's strings are canonical.
"""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar

from ._base import Keyring, register
from ._common import DigestScheme, is_hex, malformed, unhex
from ._limits import check_pbkdf2, check_scrypt, scrypt


class _Werkzeug(DigestScheme):
    """``<method>:<args>$<salt>$<hex>``: shared splitting."""

    weak = False
    method: ClassVar[str]
    pattern: ClassVar[re.Pattern[str]]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What :attr:`pattern` starts with (see :mod:`._index`)."""
        return (self.method + ":",)

    def identify(self, credential: str) -> bool:
        """True for ``<method>:<args>$<salt>$<hex>``."""
        return self.pattern.match(credential) is not None

    def _split(self, credential: str) -> tuple[list[str], str, str]:
        method, sep1, rest = credential.partition("$")
        salt, sep2, hexdigest = rest.partition("$")
        name, *args = method.split(":")
        if not (sep1 and sep2) or name != self.method or "$" in hexdigest:
            raise malformed(self.id)
        return args, salt, hexdigest

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate Werkzeug's string; it is already canonical."""
        value = value.strip()
        if not self.identify(value):
            raise malformed(self.id)
        self.stored_digest(value)
        return value

    def _validate(self, credential: str) -> None:
        """MalformedHashError when the method's parameters are bad or out of bounds."""
        raise NotImplementedError

    def stored_digest(self, credential: str) -> bytes:
        """The raw digest of the hex part (after checking the parameters' bounds)."""
        self._validate(credential)
        _, _, hexdigest = self._split(credential)
        if not is_hex(hexdigest):
            raise malformed(self.id)
        return unhex(hexdigest)

    def strip_digest(self, credential: str) -> str:
        """``<method>:<args>$<salt>$``."""
        self._validate(credential)
        return credential.rpartition("$")[0] + "$"


@register(priority=50)
class WerkzeugPbkdf2(_Werkzeug):
    """``pbkdf2:sha256:600000$salt$hex`` (any hashlib digest name)."""

    id = "werkzeug_pbkdf2"
    description = "Werkzeug pbkdf2:<hash>:<iterations>$salt$hex"
    method = "pbkdf2"
    pattern = re.compile(r"^pbkdf2:[a-z0-9_]+:[0-9]+\$[^$]*\$[0-9a-f]+$")

    def _validate(self, credential: str) -> None:
        """Digest name and iteration count."""
        self._params(credential)

    def _params(self, credential: str) -> tuple[str, int, str]:
        args, salt, _ = self._split(credential)
        if len(args) != 2 or not args[1].isdigit() or int(args[1]) < 1:
            raise malformed(self.id, "expected pbkdf2:<hash>:<iterations>")
        if args[0] not in hashlib.algorithms_guaranteed:
            raise malformed(self.id, "unsupported digest")
        return args[0], check_pbkdf2(self.id, int(args[1]), args[0]), salt

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate the string, including its digest name and iteration count."""
        value = super().import_hash(value)
        name, _, _ = self._params(value)
        if len(self.stored_digest(value)) != hashlib.new(name).digest_size:
            raise malformed(self.id, "digest length")
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """hashlib.pbkdf2_hmac, as Werkzeug computes it."""
        name, iterations, salt = self._params(credential)
        return hashlib.pbkdf2_hmac(name, password.encode("utf-8"), salt.encode("utf-8"), iterations)


@register(priority=51)
class WerkzeugScrypt(_Werkzeug):
    """``scrypt:32768:8:1$salt$hex`` (64-byte output)."""

    id = "werkzeug_scrypt"
    description = "Werkzeug scrypt:<n>:<r>:<p>$salt$hex (Werkzeug's default)"
    method = "scrypt"
    pattern = re.compile(r"^scrypt:[0-9]+:[0-9]+:[0-9]+\$[^$]*\$[0-9a-f]+$")

    def _validate(self, credential: str) -> None:
        """N, r and p."""
        self._params(credential)

    def _params(self, credential: str) -> tuple[int, int, int, str]:
        args, salt, _ = self._split(credential)
        if len(args) != 3 or not all(a.isdigit() for a in args):
            raise malformed(self.id, "expected scrypt:<n>:<r>:<p>")
        n, r, p = (int(a) for a in args)
        check_scrypt(self.id, n, r, p)
        return n, r, p, salt

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate the string, including its parameters."""
        value = super().import_hash(value)
        self._params(value)
        if len(self.stored_digest(value)) != 64:
            raise malformed(self.id, "digest length")
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """hashlib.scrypt, as Werkzeug computes it."""
        n, r, p, salt = self._params(credential)
        return scrypt(password.encode("utf-8"), salt.encode("utf-8"), n, r, p, dklen=64)
