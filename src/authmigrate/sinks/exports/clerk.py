"""Clerk (``POST /v1/users``): ``password_digest`` with its ``password_hasher``.

Source: Clerk Backend API, Create user (``password_hasher``: bcrypt, bcrypt_sha256_django, md5,
pbkdf2_sha256, pbkdf2_sha256_django, pbkdf2_sha1, phpass, scrypt_firebase, scrypt_werkzeug,
sha256, argon2i, argon2id, and the digest form each expects).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, drop_none, firebase_signer
from ._parts import Parts

_NAMED = {
    "django_bcrypt_sha256": "bcrypt_sha256_django",
    "phpass": "phpass",
    "django_pbkdf2_sha256": "pbkdf2_sha256_django",
    "werkzeug_scrypt": "scrypt_werkzeug",
    "argon2id": "argon2id",
    "argon2i": "argon2i",
}


class Clerk:
    """Clerk create-user bodies."""

    name: ClassVar[str] = "clerk"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    settings: ClassVar[tuple[str, ...]] = ()

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """Clerk's digest and hasher for ``parts``."""
        if parts.scheme in _NAMED and (parts.scheme != "phpass" or parts.credential[:3] == "$P$"):
            return _digest("native", parts.credential, _NAMED[parts.scheme])
        if parts.kind == "bcrypt":
            return _digest(
                "native" if parts.scheme == "bcrypt" else "re-encoded", parts.mcf, "bcrypt"
            )
        if parts.kind == "argon2" and parts.digest in ("argon2id", "argon2i"):
            return _digest("re-encoded", parts.mcf, parts.digest)
        if (
            parts.kind == "pbkdf2"
            and parts.digest == "sha1"
            and parts.scheme == "django_pbkdf2_sha1"
        ):
            value = f"pbkdf2_sha1${parts.iterations}${parts.salt.decode()}${parts.hash.hex()}"
            return _digest("re-encoded", value, "pbkdf2_sha1")
        if parts.kind == "pbkdf2" and parts.digest == "sha256":
            salt, hash_ = (
                base64.b64encode(parts.salt).decode(),
                base64.b64encode(parts.hash).decode(),
            )
            return _digest(
                "re-encoded", f"pbkdf2_sha256${parts.iterations}${salt}${hash_}", "pbkdf2_sha256"
            )
        if parts.kind == "salted" and not parts.salt_position and parts.digest in ("md5", "sha256"):
            return _digest("re-encoded", parts.hash.hex(), parts.digest)
        if parts.kind == "firebase_scrypt":
            signer = firebase_signer(keyring, parts.key_id)
            if signer is None:
                return None
            b = base64.b64encode
            value = "$".join(
                [
                    b(parts.hash).decode(),
                    b(parts.salt).decode(),
                    b(signer).decode(),
                    b(parts.separator).decode(),
                    str(parts.r),
                    str(parts.n),
                ]
            )
            return _digest("re-encoded", value, "scrypt_firebase")
        return None

    def bridge(self) -> dict[str, Any] | None:
        """Bridged accounts are listed apart."""
        return None

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """A create-user body; the legacy key is ``external_id``."""
        return drop_none(
            {
                "external_id": str(account.key),
                "email_address": [account.email] if account.email else None,
                "first_name": account.given_name,
                "last_name": account.family_name,
                "username": account.username,
                "private_metadata": {"legacy_key": str(account.key), **account.metadata},
                "skip_password_checks": True if credential else None,
                "skip_password_requirement": None if credential else True,
                **credential,
            }
        )

    def document(self, users: list[dict[str, Any]]) -> Any:
        """A JSON array of user bodies."""
        return users


def _digest(route: str, value: str, hasher: str) -> Encoded:
    return Encoded(route, {"password_digest": value, "password_hasher": hasher})
