"""Supabase Auth (GoTrue): rows for ``auth.users`` / the admin API's ``password_hash``.

Sources: supabase/auth ``internal/crypto/password.go`` (``CompareHashAndPassword`` accepts
bcrypt ``$2a$``/``$2b$``/``$2y$``, argon2 ``$argon2i$``/``$argon2id$`` PHC strings and
Firebase scrypt as ``$fbscrypt$v=1,n=<mem_cost>,r=<rounds>,p=1,ss=<separator>,sk=<signer
key>$<salt>$<hash>``, padded base64; its password_test.go ``TestScrypt`` vector) and the
admin API (``POST /auth/v1/admin/users`` with ``password_hash``). The ``auth.users`` columns
used (``encrypted_password``, ``email_confirmed_at``, ``raw_app_meta_data``,
``raw_user_meta_data``) are from supabase/auth ``migrations/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._model import Account, Encoded, b64, drop_none, firebase_signer
from ._parts import Parts


class Supabase:
    """Supabase admin-API user bodies."""

    name: ClassVar[str] = "supabase"
    max_users: ClassVar[int] = 1000
    max_bytes: ClassVar[int | None] = None
    settings: ClassVar[tuple[str, ...]] = ()

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """Supabase's ``password_hash`` for ``parts``."""
        if parts.kind == "bcrypt":
            return Encoded(
                "native" if parts.scheme == "bcrypt" else "re-encoded", {"password_hash": parts.mcf}
            )
        if parts.kind == "argon2" and parts.digest in ("argon2id", "argon2i"):
            route = "native" if parts.mcf == parts.credential else "re-encoded"
            return Encoded(route, {"password_hash": parts.mcf})
        if parts.kind == "firebase_scrypt":
            signer = firebase_signer(keyring, parts.key_id)
            if signer is None:
                return None
            value = (
                f"$fbscrypt$v=1,n={parts.n},r={parts.r},p=1,ss={b64(parts.separator)},"
                f"sk={b64(signer)}${b64(parts.salt)}${b64(parts.hash)}"
            )
            return Encoded("re-encoded", {"password_hash": value})
        return None

    def bridge(self) -> dict[str, Any] | None:
        """Bridged accounts are listed apart (Supabase has no migration hook)."""
        return None

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """An admin-API user; the legacy key is ``app_metadata.legacy_key``."""
        return drop_none(
            {
                "email": account.email,
                "email_confirm": bool(account.email_verified),
                "user_metadata": drop_none(
                    {
                        "name": account.name,
                        "given_name": account.given_name,
                        "family_name": account.family_name,
                        **account.metadata,
                    }
                ),
                "app_metadata": {"legacy_key": str(account.key)},
                **credential,
            }
        )

    def document(self, users: list[dict[str, Any]]) -> Any:
        """A JSON array of user bodies."""
        return users
