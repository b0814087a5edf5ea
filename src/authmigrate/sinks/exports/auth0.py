"""Auth0 bulk user import (``POST /api/v2/jobs/users-imports``): JSON array files of <= 500 KB.

Source: https://auth0.com/docs/manage-users/user-migration/bulk-user-import-schema (the
"User JSON schema" and "custom_password_hash" sections; the schema is committed verbatim as
tests/fixtures/auth0_bulk_import_schema.json, taken from auth0/docs-v2
``main/docs/manage-users/user-migration/bulk-user-import-schema.mdx``).

- bcrypt ``$2a$``/``$2b$`` as ``password_hash`` (native); PHP's ``$2y$`` is the same algorithm
  and is renamed ``$2b$`` (re-encoded).
- ``custom_password_hash``: ``argon2`` (PHC, ``hash.encoding`` utf8), ``pbkdf2`` (PHC
  ``$pbkdf2-<digest>$i=<iterations>,l=<key length>$<salt B64>$<hash B64>``), ``ldap``
  (RFC 2307 ``{MD5}``/``{SMD5}``/``{SHA}``/``{SSHA}``), ``md5``/``sha1``/``sha256``/``sha512``
  (hash base64, salt base64 with ``position`` prefix/suffix, ``password.encoding`` utf8, or
  latin1/utf16le for a ``digest`` whose password is written so).
- ``bcrypt`` with a salt: Devise's bcrypt over password + pepper, the pepper from the keyring as
  ``salt`` (utf8, ``position`` suffix), as Auth0's bcrypt takes it (the pepper is then in the
  file: protect ``dir``).
- ``scrypt``: hash and salt base64, ``keylen`` the digest's length, ``cost`` N, ``blockSize`` r,
  ``parallelization`` p (our scrypt, Django's and Werkzeug's).
- ``hmac``: an HMAC of the password alone, ``hash.digest`` its function and ``hash.key`` the key:
  the salt for a ``digest`` keyed with its salt, or the keyring's key for one keyed with a
  secret (Auth0 needs the key in the file: protect ``dir``; without the key in the keyring the
  account goes to the bridge).
- Accounts for the bridge are not in the import files (an Auth0 custom database connection in
  import mode asks the bridge at first login; a user already imported would not reach it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, b64, b64_raw, drop_none, keyring_secret
from ._parts import Parts

_LDAP_NATIVE = {"ldap_md5", "ldap_salted_md5", "ldap_sha1", "ldap_salted_sha1"}


class Auth0:
    """Auth0 bulk import files."""

    name: ClassVar[str] = "auth0"
    max_users: ClassVar[int] = 100_000
    max_bytes: ClassVar[int | None] = 500 * 1000
    settings: ClassVar[tuple[str, ...]] = ()

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """Auth0's form of ``parts`` (see the module docstring)."""
        if parts.kind == "bcrypt":
            if parts.mcf.startswith("$2y$"):
                return Encoded("re-encoded", {"password_hash": "$2b$" + parts.mcf[4:]})
            route = "native" if parts.scheme == "bcrypt" else "re-encoded"
            return Encoded(route, {"password_hash": parts.mcf})
        if parts.kind == "argon2":
            route = "native" if parts.scheme in ("argon2id", "argon2i") else "re-encoded"
            return Encoded(route, _custom("argon2", {"value": parts.mcf, "encoding": "utf8"}))
        if parts.kind == "pbkdf2":
            value = (
                f"$pbkdf2-{parts.digest}$i={parts.iterations},l={len(parts.hash)}"
                f"${b64_raw(parts.salt)}${b64_raw(parts.hash)}"
            )
            return Encoded("re-encoded", _custom("pbkdf2", {"value": value, "encoding": "utf8"}))
        if parts.kind == "salted":
            if parts.scheme in _LDAP_NATIVE:
                return Encoded("native", _custom("ldap", {"value": parts.mcf, "encoding": "utf8"}))
            custom = _custom(parts.digest, {"value": b64(parts.hash), "encoding": "base64"})
            if parts.salt_position:
                custom["custom_password_hash"]["salt"] = {
                    "value": b64(parts.salt),
                    "encoding": "base64",
                    "position": parts.salt_position,
                }
            return Encoded("re-encoded", custom)
        if parts.kind == "salted_encoded":
            custom = _custom(parts.digest, {"value": b64(parts.hash), "encoding": "base64"})
            custom["custom_password_hash"]["password"] = {"encoding": parts.password_encoding}
            if parts.salt_position:
                custom["custom_password_hash"]["salt"] = {
                    "value": b64(parts.salt),
                    "encoding": "base64",
                    "position": parts.salt_position,
                }
            return Encoded("re-encoded", custom)
        if parts.kind == "peppered_bcrypt":
            pepper = keyring_secret(keyring, parts.key_id)
            try:
                text = None if not pepper else pepper.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None:
                return None
            custom = _custom("bcrypt", {"value": parts.mcf, "encoding": "utf8"})
            custom["custom_password_hash"]["salt"] = {
                "value": text,
                "encoding": "utf8",
                "position": "suffix",
            }
            return Encoded("re-encoded", custom)
        if parts.kind == "scrypt":
            custom = _custom("scrypt", {"value": b64(parts.hash), "encoding": "base64"})
            custom["custom_password_hash"].update(
                salt={"value": b64(parts.salt), "encoding": "base64"},
                keylen=len(parts.hash),
                cost=parts.n,
                blockSize=parts.r,
                parallelization=parts.p,
            )
            return Encoded("re-encoded", custom)
        if parts.kind == "hmac":
            key = (
                parts.salt
                if parts.key_mode == "hmac-salt"
                else keyring_secret(keyring, parts.key_id)
            )
            if key is None:
                return None
            custom = _custom(
                "hmac",
                {
                    "value": b64(parts.hash),
                    "encoding": "base64",
                    "digest": parts.digest,
                    "key": {"value": b64(key), "encoding": "base64"},
                },
            )
            custom["custom_password_hash"]["password"] = {"encoding": parts.password_encoding}
            return Encoded("re-encoded", custom)
        return None

    def bridge(self) -> dict[str, Any] | None:
        """Bridged accounts stay out of the import (the custom database asks the bridge)."""
        return None

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """An Auth0 user object; the legacy key is ``user_id`` and ``app_metadata.legacy_key``."""
        return drop_none(
            {
                "user_id": str(account.key),
                "email": account.email,
                "email_verified": account.email_verified,
                "name": account.name,
                "given_name": account.given_name,
                "family_name": account.family_name,
                "username": account.username,
                "app_metadata": {"legacy_key": str(account.key)},
                "user_metadata": account.metadata or None,
                **credential,
            }
        )

    def document(self, users: list[dict[str, Any]]) -> Any:
        """A JSON array of users."""
        return users


def _custom(algorithm: str, hash_: dict[str, Any]) -> dict[str, Any]:
    return {
        "custom_password_hash": {
            "algorithm": algorithm,
            "hash": hash_,
            "password": {"encoding": "utf8"},
        }
    }
