"""Okta user import (``POST /api/v1/users``), one request body per user, files of 1000.

Source: https://developer.okta.com/docs/reference/api/users/#create-user-with-imported-hashed-password
and #create-user-with-password-import-inline-hook: ``credentials.password.hash`` with
``algorithm`` ``BCRYPT`` (``workFactor``, 22-character ``salt``, 31-character ``value``) or
``SHA-1``/``SHA-256``/``SHA-512``/``MD5`` (base64 ``salt`` and ``value``, ``saltOrder``
``PREFIX``/``POSTFIX``) or ``PBKDF2`` (``digestAlgorithm`` ``SHA256_HMAC``/``SHA512_HMAC``,
``iterationCount`` at least 4096, ``keySize`` the derived key's bytes, base64 ``salt`` and
``value``; field descriptions from Okta's management OpenAPI spec, model
``PasswordCredentialHash`` and enum ``DigestAlgorithm``, as okta/okta-sdk-golang generates them);
anything else gets ``credentials.password.hook: {"type": "default"}`` (Okta's password inline
hook calls the bridge at the first login). PBKDF2 over SHA-1, or under 4096 iterations, is
not an Okta algorithm: the hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, b64, drop_none
from ._parts import Parts

_SHA = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}
_PBKDF2 = {"sha256": "SHA256_HMAC", "sha512": "SHA512_HMAC"}
MIN_PBKDF2_ITERATIONS = 4096


class Okta:
    """Okta create-user request bodies."""

    name: ClassVar[str] = "okta"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    settings: ClassVar[tuple[str, ...]] = ()

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """Okta's ``credentials.password.hash`` for ``parts``."""
        if parts.kind == "bcrypt":
            body = parts.mcf[7:]
            hash_ = {
                "algorithm": "BCRYPT",
                "workFactor": int(parts.mcf[4:6]),
                "salt": body[:22],
                "value": body[22:],
            }
            return Encoded("re-encoded", _credentials({"hash": hash_}))
        if parts.kind == "salted":
            hash_ = {"algorithm": _SHA[parts.digest], "value": b64(parts.hash)}
            if parts.salt_position:
                hash_["salt"] = b64(parts.salt)
                hash_["saltOrder"] = "PREFIX" if parts.salt_position == "prefix" else "POSTFIX"
            return Encoded("re-encoded", _credentials({"hash": hash_}))
        if (
            parts.kind == "pbkdf2"
            and parts.digest in _PBKDF2
            and parts.iterations >= MIN_PBKDF2_ITERATIONS
        ):
            pbkdf2 = {
                "algorithm": "PBKDF2",
                "digestAlgorithm": _PBKDF2[parts.digest],
                "iterationCount": parts.iterations,
                "keySize": len(parts.hash),
                "salt": b64(parts.salt),
                "value": b64(parts.hash),
            }
            return Encoded("re-encoded", _credentials({"hash": pbkdf2}))
        return None

    def bridge(self) -> dict[str, Any] | None:
        """Okta's password import inline hook (the bridge) checks the first login."""
        return _credentials({"hook": {"type": "default"}})

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """A create-user body; the legacy key is the ``legacyKey`` profile attribute
        (add it to the Okta user profile schema)."""
        profile = drop_none(
            {
                "login": account.username or account.email,
                "email": account.email,
                "firstName": account.given_name,
                "lastName": account.family_name,
                "displayName": account.name,
                "legacyKey": str(account.key),
            }
        )
        return {"profile": profile, **credential}

    def document(self, users: list[dict[str, Any]]) -> Any:
        """A JSON array of request bodies."""
        return users


def _credentials(password: dict[str, Any]) -> dict[str, Any]:
    return {"credentials": {"password": password}}
