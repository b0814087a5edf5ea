"""Keycloak partial import (``POST /admin/realms/<realm>/partialImport``): ``users[]`` with
``ifResourceExists`` and credentials whose ``secretData``/``credentialData`` are JSON strings.

Sources: Keycloak's ``PasswordCredentialData``/``PasswordSecretData``
(org.keycloak.models.credential.dto), ``Pbkdf2PasswordHashProvider`` (algorithms ``pbkdf2``,
``pbkdf2-sha256``, ``pbkdf2-sha512``; the derived key size is the stored value's length) and
``Argon2PasswordHashProviderFactory`` (Keycloak 24+: ``argon2`` with ``additionalParameters``
``type``, ``version``, ``hashLength``, ``memory``, ``parallelism``).

bcrypt is no Keycloak algorithm: with ``[target.provider] bcrypt_algorithm = "bcrypt"`` (the
id a bcrypt extension such as keycloak-bcrypt registers) the bcrypt string is the
``secretData`` value and the cost ``hashIterations``; without it, bcrypt goes to the bridge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, b64, drop_none
from ._parts import Parts

_PBKDF2 = {"sha1": "pbkdf2", "sha256": "pbkdf2-sha256", "sha512": "pbkdf2-sha512"}


class Keycloak:
    """Keycloak partial-import files."""

    name: ClassVar[str] = "keycloak"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    settings: ClassVar[tuple[str, ...]] = ("if_resource_exists", "bcrypt_algorithm")
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "if_resource_exists": ("FAIL", "SKIP", "OVERWRITE")
    }

    def __init__(
        self, if_resource_exists: str = "FAIL", bcrypt_algorithm: str | None = None
    ) -> None:
        self.if_resource_exists = if_resource_exists
        self.bcrypt_algorithm = bcrypt_algorithm

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """A Keycloak password credential for ``parts``."""
        if parts.kind == "pbkdf2" and parts.digest in _PBKDF2:
            return Encoded(
                "re-encoded",
                _credential(
                    {"value": b64(parts.hash), "salt": b64(parts.salt), "additionalParameters": {}},
                    {
                        "hashIterations": parts.iterations,
                        "algorithm": _PBKDF2[parts.digest],
                        "additionalParameters": {},
                    },
                ),
            )
        if parts.kind == "argon2" and parts.digest in ("argon2id", "argon2i"):
            params = {
                "type": [parts.digest.removeprefix("argon2")],
                "version": ["1.3"],
                "hashLength": [str(len(parts.hash))],
                "memory": [str(parts.n)],
                "parallelism": [str(parts.p)],
            }
            return Encoded(
                "re-encoded",
                _credential(
                    {"value": b64(parts.hash), "salt": b64(parts.salt), "additionalParameters": {}},
                    {
                        "hashIterations": parts.r,
                        "algorithm": "argon2",
                        "additionalParameters": params,
                    },
                ),
            )
        if parts.kind == "bcrypt" and self.bcrypt_algorithm:
            cost = int(parts.mcf[4:6])
            return Encoded(
                "re-encoded",
                _credential(
                    {"value": parts.mcf, "salt": "", "additionalParameters": {}},
                    {
                        "hashIterations": cost,
                        "algorithm": self.bcrypt_algorithm,
                        "additionalParameters": {},
                    },
                ),
            )
        return None

    def reset_fields(self) -> dict[str, Any]:
        """An account without a usable password must set one at its first login."""
        return {"requiredActions": ["UPDATE_PASSWORD"]}

    def bridge(self) -> dict[str, Any] | None:
        """Bridged accounts are left to the bridge (a user-storage provider), not imported."""
        return None

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """A Keycloak user representation; the legacy key is the ``legacy_key`` attribute."""
        attributes = {"legacy_key": [str(account.key)]}
        if account.name is not None:
            attributes["name"] = [str(account.name)]  # Keycloak has first and last name only
        attributes.update({k: [str(v)] for k, v in account.metadata.items() if v is not None})
        return drop_none(
            {
                "username": account.username or account.email or str(account.key),
                "email": account.email,
                "emailVerified": account.email_verified,
                "firstName": account.given_name,
                "lastName": account.family_name,
                "enabled": True,
                "attributes": attributes,
                **credential,
            }
        )

    def document(self, users: list[dict[str, Any]]) -> Any:
        """The partial-import body."""
        return {"ifResourceExists": self.if_resource_exists, "users": users}


def _credential(secret: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "credentials": [
            {
                "type": "password",
                "secretData": json.dumps(secret, separators=(",", ":")),
                "credentialData": json.dumps(data, separators=(",", ":")),
            }
        ]
    }
