"""The exception tree of authmigrate.

Every error the library raises on purpose derives from :class:`AuthmigrateError`, so a
caller can catch exactly what it means::

    AuthmigrateError
    ├── SpecError          bad spec: names the key path at fault (exit code 2)
    ├── SourceError        the source cannot be read (wrong URL, vanished table, ...)
    ├── TargetError        the target cannot be written or does not match the spec
    ├── LockError          another run holds the migration lock
    └── CredentialError    a credential cannot be parsed or used; carries a reject code
        ├── UnknownSchemeError   code ``credential.unrecognized``
        └── MalformedHashError   code ``credential.malformed``

Messages never contain a password, a token, a key or a whole credential.
"""

from __future__ import annotations


class AuthmigrateError(Exception):
    """Base class of every error authmigrate raises on purpose."""

    exit_code: int = 1


class SpecError(AuthmigrateError, ValueError):
    """The spec (or a CLI argument standing for it) is invalid.

    ``path`` is the dotted key path at fault, e.g. ``fields.email.normalize``.
    """

    exit_code = 2

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class SourceError(AuthmigrateError):
    """The source cannot be reached or read."""

    exit_code = 2


class TargetError(AuthmigrateError):
    """The target cannot be reached, or its table does not match the spec."""

    exit_code = 2


class LockError(AuthmigrateError):
    """Another run of the same migration holds the lock in the target."""

    exit_code = 2


class CredentialError(AuthmigrateError, ValueError):
    """A credential cannot be identified, parsed or used.

    ``code`` is the stable reject reason, e.g. ``credential.malformed``.
    """

    code = "credential.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message)


class UnknownSchemeError(CredentialError):
    """No known scheme recognises the credential."""

    code = "credential.unrecognized"


class MalformedHashError(CredentialError):
    """The credential names a known scheme but does not parse as one."""

    code = "credential.malformed"


class MissingKeyError(CredentialError):
    """The credential needs a key (pepper, cookie key, signer key) the keyring lacks."""

    code = "credential.missing_key"
