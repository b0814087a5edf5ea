"""authmigrate: move user accounts into a new auth system with no password reset and no lost row.

The runtime part, for the new system's login path::

    import authmigrate

    authmigrate.identify(credential)                  # -> scheme id
    authmigrate.import_hash(scheme, hash, salt=...)   # -> canonical credential
    authmigrate.verify(password, credential, keyring=...)
    authmigrate.needs_update(credential)
    authmigrate.verify_and_update(password, credential, keyring=...)  # -> (ok, new or None)
    authmigrate.wrap(credential, keyring=...)         # strong hash over the legacy one
    authmigrate.verify_token(token, stored)           # constant time, honours expiry

The batch part is the ``authmigrate`` command (see :mod:`authmigrate.cli`).
"""

from authmigrate.credentials import (
    identify,
    import_hash,
    needs_update,
    verify,
    verify_and_update,
    wrap,
)
from authmigrate.errors import (
    AuthmigrateError,
    CredentialError,
    LockError,
    MalformedHashError,
    SourceError,
    SpecError,
    TargetError,
    UnknownSchemeError,
)

__all__ = [
    "AuthmigrateError",
    "CredentialError",
    "LockError",
    "MalformedHashError",
    "SourceError",
    "SpecError",
    "TargetError",
    "UnknownSchemeError",
    "identify",
    "import_hash",
    "needs_update",
    "verify",
    "verify_and_update",
    "verify_token",
    "wrap",
]


def __getattr__(name: str) -> object:
    # tokens pull in nothing heavy, but keep the login-path import minimal
    if name == "verify_token":
        from authmigrate.tokens import verify_token

        return verify_token
    raise AttributeError(name)
