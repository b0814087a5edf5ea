"""Firebase Authentication ``firebase auth:import`` files.

Sources: https://firebase.google.com/docs/cli/auth (``auth:import`` and its ``--hash-algo``
flags) and https://firebase.google.com/docs/auth/admin/import-users (the algorithms and their
parameters; at most 1000 users per ``importUsers`` call).

One hash configuration per file: files are grouped by (algorithm, parameters) and
``import.sh`` beside them runs ``firebase auth:import <file> --hash-algo=... ...`` with each
file's exact flags. ``passwordHash`` and ``salt`` are base64 of the RAW bytes (never of a hex
string: firebase-tools#1617 is a user who can never log in).

- ``BCRYPT``: the bcrypt string's bytes (``$2y$`` renamed ``$2b$``).
- ``STANDARD_SCRYPT`` (``--memory-cost`` N, ``--block-size`` r, ``--parallelization`` p,
  ``--dk-len``); ``SCRYPT``, Firebase's own (``--hash-key`` from the environment variable the
  spec's keyring names, ``--salt-separator``, ``--rounds``, ``--mem-cost``).
- ``PBKDF_SHA1``/``PBKDF2_SHA256`` with ``--rounds`` <= 120000, derived key as long as the
  digest.
- ``MD5``/``SHA1``/``SHA256``/``SHA512`` with ``--rounds=1`` (at most 8192) and
  ``--hash-input-order`` ``SALT_FIRST``/``PASSWORD_FIRST``.
- argon2, crypt(3) and the rest: the bridge (no Firebase hook: left out of the files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, b64, drop_none
from ._parts import Parts

MAX_PBKDF2_ROUNDS = 120_000
MAX_SHA_ROUNDS = 8192
_PBKDF2 = {"sha1": ("PBKDF_SHA1", 20), "sha256": ("PBKDF2_SHA256", 32)}
_SALTED = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256", "sha512": "SHA512"}


class Firebase:
    """Firebase ``auth:import`` files, one hash configuration each."""

    name: ClassVar[str] = "firebase"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    max_key_chars: ClassVar[int] = 128
    """A Firebase uid (``localId``) is at most 128 characters: a longer legacy key is rejected
    (``export.invalid_key``)."""
    settings: ClassVar[tuple[str, ...]] = ()

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """Firebase's user fields and the file's flags for ``parts``."""
        if parts.kind == "bcrypt":
            mcf = "$2b$" + parts.mcf[4:] if parts.mcf.startswith("$2y$") else parts.mcf
            route = "native" if mcf == parts.mcf and parts.scheme == "bcrypt" else "re-encoded"
            return Encoded(route, {"passwordHash": b64(mcf.encode())}, (("hash-algo", "BCRYPT"),))
        config: tuple[tuple[str, str], ...]
        if parts.kind == "scrypt":
            config = (
                ("hash-algo", "STANDARD_SCRYPT"),
                ("memory-cost", str(parts.n)),
                ("block-size", str(parts.r)),
                ("parallelization", str(parts.p)),
                ("dk-len", str(len(parts.hash))),
            )
            return Encoded("re-encoded", _hash_and_salt(parts), config)
        if parts.kind == "firebase_scrypt":
            config = (
                ("hash-algo", "SCRYPT"),
                ("hash-key", f"env:{key_variable(parts.key_id)}"),
                ("salt-separator", b64(parts.separator)),
                ("rounds", str(parts.r)),
                ("mem-cost", str(parts.n)),
            )
            return Encoded("native", _hash_and_salt(parts), config)
        if parts.kind == "pbkdf2" and parts.digest in _PBKDF2:
            algo, size = _PBKDF2[parts.digest]
            if parts.iterations > MAX_PBKDF2_ROUNDS or len(parts.hash) != size:
                return None
            config = (("hash-algo", algo), ("rounds", str(parts.iterations)))
            return Encoded("re-encoded", _hash_and_salt(parts), config)
        if parts.kind == "salted":
            config = (("hash-algo", _SALTED[parts.digest]), ("rounds", "1"))
            if parts.salt_position:
                order = "SALT_FIRST" if parts.salt_position == "prefix" else "PASSWORD_FIRST"
                config += (("hash-input-order", order),)
            return Encoded("re-encoded", _hash_and_salt(parts), config)
        return None

    def bridge(self) -> dict[str, Any] | None:
        """Firebase has no migration hook: bridged accounts are listed apart."""
        return None

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """A Firebase user; the legacy key is ``localId`` and a custom claim."""
        claims = {"legacy_key": str(account.key), **account.metadata}
        import json

        return drop_none(
            {
                "localId": str(account.key),
                "email": account.email,
                "emailVerified": account.email_verified,
                "displayName": account.name,
                "customAttributes": json.dumps(claims, separators=(",", ":"), default=str),
                **credential,
            }
        )

    def document(self, users: list[dict[str, Any]]) -> Any:
        """The ``auth:import`` JSON document."""
        return {"users": users}


def key_variable(key_id: str) -> str:
    """The environment variable ``import.sh`` reads a signer key from (never in a file)."""
    safe = "".join(c if c.isalnum() else "_" for c in key_id).upper()
    return f"FIREBASE_HASH_KEY_{safe}"


def _hash_and_salt(parts: Parts) -> dict[str, Any]:
    fields = {"passwordHash": b64(parts.hash)}
    if parts.salt:
        fields["salt"] = b64(parts.salt)
    return fields
