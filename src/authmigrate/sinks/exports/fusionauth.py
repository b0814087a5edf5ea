"""FusionAuth ``POST /api/user/import``: users with ``password``, ``salt``,
``encryptionScheme`` and ``factor``.

Source: https://fusionauth.io/docs/apis/users#import-users (bcrypt: the 60-character string split
into its 22-character salt and 31-character hash, ``factor`` the cost;
``salted-pbkdf2-hmac-sha256``: base64 salt and hash, ``factor`` the iterations, 256-bit key).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, drop_none
from ._parts import Parts


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
        if parts.kind == "pbkdf2" and parts.digest == "sha256" and len(parts.hash) == 32:
            return Encoded(
                "re-encoded",
                {
                    "encryptionScheme": "salted-pbkdf2-hmac-sha256",
                    "factor": parts.iterations,
                    "salt": base64.b64encode(parts.salt).decode(),
                    "password": base64.b64encode(parts.hash).decode(),
                },
            )
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
