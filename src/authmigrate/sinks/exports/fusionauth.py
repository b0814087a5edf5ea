"""FusionAuth ``POST /api/user/import``: users with ``password``, ``salt``,
``encryptionScheme`` and ``factor``.

Sources: https://fusionauth.io/docs/apis/users#import-users (the user fields) and
https://fusionauth.io/docs/reference/password-hashes (each scheme's pseudocode; FusionAuth's
site source ``astro/src/content/docs/reference/password-hashes.mdx``):

- ``bcrypt``: the 60-character string split into its 22-character salt and 31-character hash,
  ``factor`` the cost;
- ``salted-pbkdf2-hmac-sha256`` (32-byte key), ``salted-pbkdf2-hmac-sha256-512`` and
  ``salted-pbkdf2-hmac-sha512-512`` (64-byte key): base64 salt and hash, ``factor`` the
  iterations;
- ``salted-md5`` / ``salted-sha256``: ``digest(password + salt)`` iterated ``factor`` times
  (salt after the password only; ours are one round, so ``factor`` 1);
- ``salted-hmac-sha256``: HMAC-SHA256 keyed with the salt over the password (no factor);
- ``phpass-md5``/``phpass-sha512``: not produced (the page leaves the output alphabet of the
  stored hash unstated, and a wrong guess is a user who can never log in).

Anything else runs in FusionAuth only through a password-hashing plugin (a Java class
installed on the FusionAuth server); authmigrate ships none, so those accounts go to the bridge
(a FusionAuth Connector asking the bridge at the first login).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, drop_none
from ._parts import Parts

_PBKDF2 = {
    ("sha256", 32): "salted-pbkdf2-hmac-sha256",
    ("sha256", 64): "salted-pbkdf2-hmac-sha256-512",
    ("sha512", 64): "salted-pbkdf2-hmac-sha512-512",
}
_SALTED = {"md5": "salted-md5", "sha256": "salted-sha256"}


class FusionAuth:
    """FusionAuth user-import bodies."""

    name: ClassVar[str] = "fusionauth"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    settings: ClassVar[tuple[str, ...]] = ()

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """FusionAuth's password fields for ``parts``."""
        if parts.kind == "bcrypt":
            body = parts.mcf[7:]
            return Encoded(
                "re-encoded",
                {
                    "encryptionScheme": "bcrypt",
                    "factor": int(parts.mcf[4:6]),
                    "salt": body[:22],
                    "password": body[22:],
                },
            )
        scheme = _PBKDF2.get((parts.digest, len(parts.hash))) if parts.kind == "pbkdf2" else None
        if scheme is not None:
            return _fields(scheme, parts.iterations, parts.salt, parts.hash)
        if parts.kind == "salted" and parts.digest in _SALTED and parts.salt_position == "suffix":
            return _fields(_SALTED[parts.digest], 1, parts.salt, parts.hash)
        if (
            parts.kind == "hmac"
            and parts.key_mode == "hmac-salt"
            and parts.digest == "sha256"
            and parts.password_encoding == "utf8"
        ):
            return _fields("salted-hmac-sha256", 1, parts.salt, parts.hash)
        return None

    def bridge(self) -> dict[str, Any] | None:
        """Bridged accounts are listed apart (a FusionAuth connector asks the bridge)."""
        return None

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """An import user; the legacy key is ``data.legacy_key``."""
        return drop_none(
            {
                "email": account.email,
                "verified": account.email_verified,
                "username": account.username,
                "firstName": account.given_name,
                "lastName": account.family_name,
                "fullName": account.name,
                "data": {"legacy_key": str(account.key), **account.metadata},
                **credential,
            }
        )

    def document(self, users: list[dict[str, Any]]) -> Any:
        """The import body."""
        return {"users": users, "validateDbConstraints": True}


def _fields(scheme: str, factor: int, salt: bytes, digest: bytes) -> Encoded:
    return Encoded(
        "re-encoded",
        {
            "encryptionScheme": scheme,
            "factor": factor,
            "salt": base64.b64encode(salt).decode(),
            "password": base64.b64encode(digest).decode(),
        },
    )
