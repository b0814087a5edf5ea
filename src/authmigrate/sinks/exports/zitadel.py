"""ZITADEL v2 (``POST /v2/users/human``): ``hashedPassword.hash``, a passlib-style MCF string
of at most 200 characters, verified by zitadel/passwap.

Source: github.com/zitadel/passwap (verifiers ``argon2``, ``bcrypt``, ``md5`` crypt ``$1$``,
``sha2`` crypt ``$5$``/``$6$``, ``pbkdf2`` and ``scrypt`` in passlib's forms; the verifiers
other than the configured hasher must be enabled in ZITADEL's ``PasswordHasher.Verifiers``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, drop_none
from ._parts import Parts

MAX_HASH = 200
_PASSLIB_PBKDF2 = {"sha1": "pbkdf2", "sha256": "pbkdf2-sha256", "sha512": "pbkdf2-sha512"}


class Zitadel:
    """ZITADEL v2 human-user bodies."""

    name: ClassVar[str] = "zitadel"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    settings: ClassVar[tuple[str, ...]] = ()

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """ZITADEL's ``hashedPassword`` for ``parts``."""
        value = _mcf(parts)
        if value is None or len(value) > MAX_HASH:
            return None
        route = "native" if value == parts.credential else "re-encoded"
        return Encoded(route, {"hashedPassword": {"hash": value, "changeRequired": False}})

    def bridge(self) -> dict[str, Any] | None:
        """Bridged accounts are listed apart."""
        return None

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """A v2 human user; the legacy key is ``userId`` and a metadata entry."""
        return drop_none(
            {
                "userId": str(account.key),
                "username": account.username or account.email,
                "profile": drop_none(
                    {
                        "givenName": account.given_name or "-",
                        "familyName": account.family_name or "-",
                        "displayName": account.name,
                    }
                ),
                "email": drop_none(
                    {"email": account.email, "isVerified": bool(account.email_verified)}
                ),
                "metadata": [
                    {
                        "key": "legacy_key",
                        "value": base64.b64encode(str(account.key).encode()).decode(),
                    }
                ],
                **credential,
            }
        )

    def document(self, users: list[dict[str, Any]]) -> Any:
        """A JSON array of user bodies."""
        return users


def _ab64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=").replace("+", ".")


def _mcf(parts: Parts) -> str | None:
    if parts.kind in ("bcrypt", "crypt"):
        return parts.mcf
    if parts.kind == "argon2" and parts.digest in ("argon2id", "argon2i"):
        return parts.mcf
    if parts.kind == "pbkdf2" and parts.digest in _PASSLIB_PBKDF2:
        ident = _PASSLIB_PBKDF2[parts.digest]
        return f"${ident}${parts.iterations}${_ab64(parts.salt)}${_ab64(parts.hash)}"
    if parts.kind == "scrypt" and parts.n & (parts.n - 1) == 0 and len(parts.hash) == 32:
        salt = base64.b64encode(parts.salt).decode().rstrip("=")
        digest = base64.b64encode(parts.hash).decode().rstrip("=")
        return f"$scrypt$ln={parts.n.bit_length() - 1},r={parts.r},p={parts.p}${salt}${digest}"
    return None
