"""What an export produces for one credential, and the seam every provider implements."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ._parts import Parts

ROUTES = ("native", "re-encoded", "bridge", "reset")
"""How an exported account logs in at the provider (docs/exports.md)."""


@dataclass(frozen=True)
class Encoded:
    """A provider's credential for one account.

    Attributes:
        route: ``native`` (the provider verifies our canonical string as it is) or
            ``re-encoded`` (same hash, the provider's encoding).
        fields: what goes into the provider's user object (``password_hash``...); values are
            hashes, so this object's repr never shows them.
        config: the per-file hash configuration (Firebase's ``--hash-algo`` flags), as
            ``(name, value)`` pairs; empty for providers that carry it per user.
    """

    route: str
    fields: dict[str, Any] = field(repr=False)
    config: tuple[tuple[str, str], ...] = ()


class Provider(Protocol):
    """One identity provider's import format.

    ``encode`` turns the parts of a credential into the provider's representation, or returns
    None when the provider cannot verify it (the account then goes to the bridge);
    ``user`` builds the provider's user object; ``bridge`` says what a bridged account
    carries (a migration-hook flag), or None when such accounts are left out of the import
    files and listed apart for the bridge.
    """

    name: ClassVar[str]
    max_users: ClassVar[int]
    """Users per file (the provider's per-call or per-file limit)."""
    max_bytes: ClassVar[int | None]
    """Bytes per file, when the provider limits the file size."""
    settings: ClassVar[tuple[str, ...]]
    """Keys accepted under ``[target.provider]``."""

    def encode(self, parts: Parts, keyring: Mapping[str, bytes | str] | None) -> Encoded | None:
        """The provider's form of ``parts``, or None when it cannot verify it."""
        ...

    def bridge(self) -> dict[str, Any] | None:
        """Credential fields of a bridged account, or None to leave it out of the import."""
        ...

    def user(self, account: Account, credential: dict[str, Any]) -> dict[str, Any]:
        """The provider's user object for ``account`` with ``credential`` fields merged."""
        ...

    def document(self, users: list[dict[str, Any]]) -> Any:
        """The JSON document of one file holding ``users``."""
        ...


@dataclass
class Account:
    """One migrated account as the export sink sees it (values never shown in a repr)."""

    key: Any
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    username: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)


def b64(data: bytes) -> str:
    """Standard base64 with padding (what Firebase, Okta, Keycloak read)."""
    return base64.b64encode(data).decode("ascii")


def b64_raw(data: bytes) -> str:
    """Standard base64 without padding (PHC strings)."""
    return b64(data).rstrip("=")


def firebase_signer(keyring: Mapping[str, bytes | str] | None, key_id: str) -> bytes | None:
    """Firebase's signer key named ``key_id`` as raw bytes, read as the credential engine reads
    it (base64 text, as Firebase shows it, else the raw key); None when the keyring lacks it."""
    if keyring is None or key_id not in keyring:
        return None
    secret = keyring[key_id]
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        return raw


def keyring_secret(keyring: Mapping[str, bytes | str] | None, key_id: str) -> bytes | None:
    """The keyring's key ``key_id`` as the bytes the credential engine uses (a text key as
    UTF-8), or None when the keyring lacks it."""
    if keyring is None or key_id not in keyring:
        return None
    secret = keyring[key_id]
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def drop_none(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without its None values."""
    return {k: v for k, v in obj.items() if v is not None}
