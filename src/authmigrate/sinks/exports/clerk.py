"""Clerk (``POST /v1/users``): ``password_digest`` with its ``password_hasher``.

Sources: the hasher names are the 21 of Clerk's own migration tool (clerk/migration-tool
``src/types.ts`` ``PASSWORD_HASHERS``) plus ``phpass`` (Clerk's Create User reference and its
BAPI spec, clerk/openapi-specs ``bapi/2025-11-10.yml`` ``PasswordHasher``): 22 in all,
:data:`HASHERS`. The digest form of each is the one clerk/clerk-docs
``clerk-typedoc/backend/create-user-params.mdx`` gives. :data:`HASHERS` says for each whether
we produce it, and if not why not (no form published, or no scheme of ours is that algorithm).

- ``pbkdf2_sha1`` is written in its five-part form ``pbkdf2_sha1$<iterations>$<salt hex>$<hash
  hex>$<key length>``: the four-part form takes a salt that happens to be valid hex as hex and
  defaults the key length to 32, both wrong for Django's 20-byte pbkdf2_sha1.
- ``pbkdf2_sha512_hex`` (salt and hash hex) for PBKDF2-SHA512 with a 64-byte key.
- ``bcrypt_peppered`` (``$2..$<cost>$<salt & hash>$<pepper>``) for Devise's bcrypt, with the
  pepper from the keyring written into the file, as Clerk's form requires (protect ``dir``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, drop_none, firebase_signer, keyring_secret
from ._parts import Parts

HASHERS: dict[str, str] = {
    "argon2i": "argon2i",
    "argon2id": "argon2id",
    "awscognito": "not a hash: Clerk asks a Cognito user pool at the first sign-in",
    "bcrypt": "bcrypt",
    "bcrypt_peppered": "devise_bcrypt (pepper from the keyring)",
    "bcrypt_sha256_django": "django_bcrypt_sha256",
    "hmac_sha256_utf16_b64": "not produced: Clerk publishes no digest form for it",
    "md5": "unsalted md5",
    "md5_salted": "not produced: Clerk's form `salt$hash` does not say where the salt goes",
    "md5_phpass": "not produced: Clerk publishes no digest form for it",
    "ldap_ssha": "not produced: Clerk publishes no digest form for it",
    "pbkdf2_sha1": "every PBKDF2-SHA1 (five-part form, hex salt)",
    "pbkdf2_sha256": "every PBKDF2-SHA256 but Django's",
    "pbkdf2_sha256_django": "django_pbkdf2_sha256",
    "pbkdf2_sha512": "not produced: pbkdf2_sha512_hex carries every salt",
    "pbkdf2_sha512_hex": "PBKDF2-SHA512 with a 64-byte key",
    "phpass": "phpass ($P$)",
    "scrypt_firebase": "firebase_scrypt (signer key from the keyring)",
    "scrypt_werkzeug": "werkzeug_scrypt",
    "sha256": "unsalted sha256",
    "sha256_salted": "not produced: Clerk's form `salt$hash` does not say where the salt goes",
    "sha512_symfony": "not produced: no scheme of ours is Symfony's MessageDigestPasswordEncoder",
}
"""Every ``password_hasher`` Clerk takes, and what authmigrate writes with it."""

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
        if parts.kind == "pbkdf2" and parts.digest == "sha1":
            value = (
                f"pbkdf2_sha1${parts.iterations}${parts.salt.hex()}${parts.hash.hex()}"
                f"${len(parts.hash)}"
            )
            return _digest("re-encoded", value, "pbkdf2_sha1")
        if parts.kind == "pbkdf2" and parts.digest == "sha512" and len(parts.hash) == 64:
            value = f"pbkdf2_sha512_hex${parts.iterations}${parts.salt.hex()}${parts.hash.hex()}"
            return _digest("re-encoded", value, "pbkdf2_sha512_hex")
        if parts.kind == "peppered_bcrypt":
            pepper = keyring_secret(keyring, parts.key_id)
            text = _pepper_text(pepper)
            if text is None:
                return None
            return _digest("re-encoded", f"{parts.mcf}${text}", "bcrypt_peppered")
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
        """A create-user body; the legacy key is ``external_id``; the full name (Clerk has
        first and last name only) is ``private_metadata.name``."""
        return drop_none(
            {
                "external_id": str(account.key),
                "email_address": [account.email] if account.email else None,
                "first_name": account.given_name,
                "last_name": account.family_name,
                "username": account.username,
                "private_metadata": drop_none(
                    {"legacy_key": str(account.key), "name": account.name, **account.metadata}
                ),
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


def _pepper_text(pepper: bytes | None) -> str | None:
    """The pepper as the text Clerk appends, or None when it cannot stand in the digest (no
    key, not UTF-8, or holding the ``$`` that separates the digest's parts)."""
    if not pepper:
        return None
    try:
        text = pepper.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "$" in text or not text.isprintable() else text
