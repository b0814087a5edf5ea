"""Ory Kratos identities (``PATCH /admin/identities``, at most 1000 per call): files of
identities with ``traits.email`` and ``credentials.password.config.hashed_password``.

Source: ory/kratos ``hash/hash_comparator.go`` (the prefixes and encodings below are what its
``Is...Hash`` regular expressions and ``decode...Hash`` functions read):

- ``$2a$``/``$2b$``/``$2y$`` bcrypt and ``$argon2id$``/``$argon2i$`` PHC (v=19): as they are.
- ``$pbkdf2-sha1|sha256|sha512$i=<iterations>,l=<length>$<salt>$<hash>`` (base64, no
  padding). Never ``pbkdf2-sha224``/``sha384``: Kratos maps those names to SHA-3.
- ``$scrypt$ln=<N>,r=<r>,p=<p>$<salt>$<hash>`` (padded base64): Kratos passes ``ln`` to scrypt
  as N itself, not as log2(N) as passlib's ``$scrypt$`` does, so ours is re-encoded.
- ``$md5-crypt$``, ``$sha256-crypt$``, ``$sha512-crypt$``: crypt(3) ``$1$``/``$5$``/``$6$``
  renamed.
- ``{SSHA}``/``{SSHA256}``/``{SSHA512}``: as they are.
- ``$md5$<hash>`` and ``$md5$pf=<format>$<salt>$<hash>``, ``$sha1|sha256|sha512$pf=...``:
  ``pf`` is base64 of ``{SALT}{PASSWORD}`` or ``{PASSWORD}{SALT}``.
- ``$firescrypt$ln=<mem_cost>,r=<rounds>,p=1$<salt>$<hash>$<separator>$<signer key>`` (the
  signer key from the spec's keyring is written into the file).
- anything else: ``use_password_migration_hook: true`` (the bridge answers Kratos's hook).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, b64, b64_raw, drop_none, firebase_signer
from ._parts import Parts

_CRYPT = {"$1$": "$md5-crypt$", "$5$": "$sha256-crypt$", "$6$": "$sha512-crypt$"}
_SSHA = {"ldap_salted_sha1", "ldap_salted_sha256", "ldap_salted_sha512"}
PBKDF2_DIGESTS = ("sha1", "sha256", "sha512")
"""Never sha224/sha384: Kratos's pbkdf2 maps those names to SHA-3."""


class Kratos:
    """Ory Kratos identity import files."""

    name: ClassVar[str] = "kratos"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    settings: ClassVar[tuple[str, ...]] = ("schema_id",)

    def __init__(self, schema_id: str = "default") -> None:
        self.schema_id = schema_id

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """Kratos's ``hashed_password`` for ``parts`` (see the module docstring)."""
        value, native = self._hashed(parts, keyring)
        if value is None:
            return None
        return Encoded("native" if native else "re-encoded", _password({"hashed_password": value}))

    def _hashed(
        self, parts: Parts, keyring: Mapping[str, bytes | str] | None
    ) -> tuple[str | None, bool]:
        scheme = parts.scheme
        if parts.kind == "bcrypt":
            return parts.mcf, scheme == "bcrypt"
        if parts.kind == "argon2" and parts.digest in ("argon2id", "argon2i"):
            if "$v=19$" not in parts.mcf:
                return None, False
            return parts.mcf, scheme in ("argon2id", "argon2i")
        if parts.kind == "pbkdf2" and parts.digest in PBKDF2_DIGESTS:
            return (
                f"$pbkdf2-{parts.digest}$i={parts.iterations},l={len(parts.hash)}"
                f"${b64_raw(parts.salt)}${b64_raw(parts.hash)}"
            ), False
        if parts.kind == "scrypt":
            return (
                f"$scrypt$ln={parts.n},r={parts.r},p={parts.p}${b64(parts.salt)}${b64(parts.hash)}",
                False,
            )
        if parts.kind == "crypt":
            head = parts.mcf[:3]
            return _CRYPT[head] + parts.mcf[3:], False
        if parts.kind == "salted":
            if scheme in _SSHA:
                return parts.mcf, True
            return _salted(parts), False
        if parts.kind == "firebase_scrypt":
            signer = firebase_signer(keyring, parts.key_id)
            if signer is None:
                return None, False
            return (
                f"$firescrypt$ln={parts.n},r={parts.r},p=1${b64(parts.salt)}${b64(parts.hash)}"
                f"${b64(parts.separator)}${b64(signer)}"
            ), False
        return None, False

    def bridge(self) -> dict[str, Any] | None:
        """Kratos calls the migration hook (the bridge) at the first login."""
        return _password({"use_password_migration_hook": True})

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """A Kratos identity; the legacy key is ``external_id`` and ``metadata_admin``; the full
        name, which the default identity schema has no trait for (``traits.name`` holds
        first/last), is ``metadata_admin.name``."""
        traits = drop_none({"email": account.email, "name": _name(account)})
        identity: dict[str, Any] = {
            "schema_id": self.schema_id,
            "external_id": str(account.key),
            "traits": traits,
            "metadata_admin": drop_none(
                {"legacy_key": str(account.key), "name": account.name, **account.metadata}
            ),
        }
        if account.email and account.email_verified is not None:
            identity["verifiable_addresses"] = [
                {
                    "value": account.email,
                    "via": "email",
                    "verified": bool(account.email_verified),
                    "status": "completed" if account.email_verified else "pending",
                }
            ]
        if credential:
            identity["credentials"] = credential
        return identity

    def document(self, users: list[dict[str, Any]]) -> Any:
        """The body of ``PATCH /admin/identities``."""
        return {"identities": [{"create": u} for u in users]}


def _password(config: dict[str, Any]) -> dict[str, Any]:
    return {"password": {"config": config}}


def _salted(parts: Parts) -> str:
    if not parts.salt_position:
        if parts.digest == "md5":
            return "$md5$" + b64(parts.hash)
        pf = "{PASSWORD}"
    else:
        pf = "{SALT}{PASSWORD}" if parts.salt_position == "prefix" else "{PASSWORD}{SALT}"
    return f"${parts.digest}$pf={b64(pf.encode())}${b64(parts.salt)}${b64(parts.hash)}"


def _name(account: Account) -> dict[str, str] | None:
    name = drop_none({"first": account.given_name, "last": account.family_name})
    return name or None
