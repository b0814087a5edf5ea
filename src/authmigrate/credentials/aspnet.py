"""ASP.NET Core Identity's ``PasswordHasher`` (``PasswordHasher.cs``).

The stored value is the base64 of a binary blob, which is the canonical form as is:

- V2 (``0x00``): ``0x00 | salt[16] | subkey[32]``, PBKDF2-HMAC-SHA1, 1000 iterations.
- V3 (``0x01``): ``0x01 | prf u32 | iterations u32 | salt length u32 | salt | subkey``,
  integers big-endian, prf 0 = HMAC-SHA1, 1 = HMAC-SHA256, 2 = HMAC-SHA512.

V2 (1000 iterations of SHA-1) is in the default weak list; V3 is kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from ._base import Keyring, register
from ._common import DigestScheme, malformed
from ._limits import check_pbkdf2

_PRFS = {0: "sha1", 1: "sha256", 2: "sha512"}
_V2_ITERATIONS = 1000
_SUBKEY_LEN = 32


@dataclass(frozen=True, repr=False)
class _Blob:
    version: int
    prf: str
    iterations: int
    salt: bytes
    subkey: bytes

    def __repr__(self) -> str:
        return f"_Blob(version={self.version}, prf={self.prf!r}, iterations={self.iterations})"


def _decode(credential: str) -> bytes | None:
    if not credential or len(credential) % 4:
        return None
    try:
        return base64.b64decode(credential, validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse(raw: bytes | None) -> _Blob | None:
    """The blob's fields, or None. A stripped blob (no subkey) parses with an empty subkey."""
    if not raw:
        return None
    if raw[0] == 0 and len(raw) in (17, 49):
        return _Blob(2, "sha1", _V2_ITERATIONS, raw[1:17], raw[17:])
    if raw[0] == 1 and len(raw) >= 13:
        prf, iterations, salt_len = struct.unpack(">III", raw[1:13])
        subkey = raw[13 + salt_len :]
        if (
            prf in _PRFS
            and iterations > 0
            and salt_len >= 8
            and len(raw) >= 13 + salt_len
            and (len(subkey) == 0 or len(subkey) >= 16)
        ):
            return _Blob(3, _PRFS[prf], iterations, raw[13 : 13 + salt_len], subkey)
    return None


class _AspNet(DigestScheme):
    """Shared parsing of both format markers."""

    version: int
    prefixes = ("A",)  # base64 of a first byte 0x00 or 0x01 (strict: validate=True)

    def _blob(self, credential: str) -> _Blob:
        blob = _parse(_decode(credential))
        if blob is None or blob.version != self.version:
            raise malformed(self.id)
        check_pbkdf2(self.id, blob.iterations, blob.prf)
        return blob

    def identify(self, credential: str) -> bool:
        """True for base64 of a well-formed blob with this version's marker and a subkey."""
        blob = _parse(_decode(credential))
        return blob is not None and blob.version == self.version and bool(blob.subkey)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate the base64 blob; it is already canonical."""
        value = value.strip()
        if not self.identify(value):
            raise malformed(self.id)
        self._blob(value)
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The PBKDF2 subkey for ``password`` with the blob's PRF, iterations and salt."""
        blob = self._blob(credential)
        return hashlib.pbkdf2_hmac(
            blob.prf,
            password.encode("utf-8"),
            blob.salt,
            blob.iterations,
            dklen=len(blob.subkey) or _SUBKEY_LEN,
        )

    def stored_digest(self, credential: str) -> bytes:
        """The blob's subkey."""
        blob = self._blob(credential)
        if not blob.subkey:
            raise malformed(self.id, "no subkey")
        return blob.subkey

    def strip_digest(self, credential: str) -> str:
        """The base64 of the blob without its subkey."""
        raw = _decode(credential) or b""
        blob = self._blob(credential)
        return base64.b64encode(raw[: len(raw) - len(blob.subkey)]).decode("ascii")


@register(priority=60)
class AspNetIdentityV2(_AspNet):
    """ASP.NET Identity V2 (also ASP.NET Identity 2.x on .NET Framework): weak."""

    id = "aspnet_identity_v2"
    description = "ASP.NET Identity V2: base64(0x00|salt16|subkey32), PBKDF2-SHA1 x1000 (weak)"
    weak = True
    version = 2


@register(priority=61)
class AspNetIdentityV3(_AspNet):
    """ASP.NET Core Identity V3."""

    id = "aspnet_identity_v3"
    description = "ASP.NET Core Identity V3: base64(0x01|prf|iter|saltlen|salt|subkey), PBKDF2"
    weak = False
    version = 3
