"""Small helpers shared by the scheme families: encodings, keyring lookup, digest schemes.

Nothing here knows about a particular scheme. The encodings are the ones of the PHC string
format (standard base64 alphabet, no padding), which our own canonical forms use.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import ClassVar

from authmigrate.errors import CredentialError, MalformedHashError, MissingKeyError

from ._base import Keyring


def b64encode(data: bytes) -> str:
    """PHC base64: standard alphabet, no padding."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Inverse of :func:`b64encode`; raises ValueError on anything else."""
    if "=" in text or len(text) % 4 == 1:
        raise ValueError("bad base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("bad base64") from exc


def unhex(text: str) -> bytes:
    """Bytes of a hex string (either case); raises ValueError on anything else."""
    if len(text) % 2 or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise ValueError("bad hex")
    return bytes.fromhex(text)


def is_hex(text: str, length: int | None = None) -> bool:
    """True when ``text`` is hex digits (of exactly ``length`` characters when given)."""
    if length is not None and len(text) != length:
        return False
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def secret_for(keyring: Keyring | None, key_id: str) -> bytes:
    """The secret named ``key_id`` as bytes.

    Raises:
        MissingKeyError: the keyring has no such key (the message names the id, never a key).
    """
    if keyring is None or key_id not in keyring:
        raise MissingKeyError(f"keyring has no key with id {key_id!r}")
    secret = keyring[key_id]
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def malformed(scheme_id: str, what: str = "") -> MalformedHashError:
    """The error for a value that does not parse as ``scheme_id`` (never quotes the value)."""
    detail = f": {what}" if what else ""
    return MalformedHashError(f"not a valid {scheme_id} credential{detail}")


def bad_params(scheme_id: str, message: str) -> CredentialError:
    """The error for import parameters a scheme cannot use (``credential.bad_params``)."""
    return CredentialError(f"{scheme_id}: {message}", code="credential.bad_params")


def reject_params(scheme_id: str, params: dict[str, object]) -> None:
    """Raise :func:`bad_params` naming the import parameters left over, if any."""
    if params:
        names = ", ".join(sorted(params))
        raise bad_params(scheme_id, f"unknown import parameter(s): {names}")


def stored_hex(scheme_id: str, digest: str) -> bytes:
    """The raw bytes of a stored digest already checked as hex.

    ``digest`` is ``""`` for the stripped form (:meth:`Scheme.strip_digest`), which has no
    digest to compare: MalformedHashError.
    """
    if not digest:
        raise malformed(scheme_id, "no digest")
    return bytes.fromhex(digest)


def not_wrappable(scheme_id: str) -> CredentialError:
    """The error for a scheme whose digest cannot be recomputed on its own."""
    return CredentialError(f"scheme {scheme_id} cannot be wrapped", code="credential.not_wrappable")


class NeverWrapped:
    """For argon2, the wrapping hash itself: there is no legacy digest to wrap."""

    id: ClassVar[str]

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """Not supported: argon2 is never wrapped."""
        raise not_wrappable(self.id)

    def stored_digest(self, credential: str) -> bytes:
        """Not supported: argon2 is never wrapped."""
        raise not_wrappable(self.id)

    def strip_digest(self, credential: str) -> str:
        """Not supported: argon2 is never wrapped."""
        raise not_wrappable(self.id)


def same(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two byte strings."""
    return hmac.compare_digest(a, b)


class DigestScheme:
    """Base for schemes verified by recomputing their digest and comparing it.

    A subclass sets ``id``, ``description``, ``weak`` and implements ``identify``,
    ``import_hash``, ``digest``, ``stored_digest`` and ``strip_digest``; ``verify`` is
    the constant-time comparison of the two digests.
    """

    id: ClassVar[str]
    description: ClassVar[str]
    weak: ClassVar[bool]

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """Recompute the digest (subclasses override)."""
        raise NotImplementedError

    def stored_digest(self, credential: str) -> bytes:
        """The stored digest (subclasses override)."""
        raise NotImplementedError

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """True when ``password`` reproduces the stored digest (constant-time comparison)."""
        return same(self.digest(password, credential, keyring), self.stored_digest(credential))

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"
