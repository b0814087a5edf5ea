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

On a login path (docs/credentials.md, "On a login path")::

    authmigrate.verify(password, credential, min_seconds="profile")   # timing floor
    await authmigrate.verify_and_update_async(password, credential)  # hash in a thread
    authmigrate.dummy_verify()                        # unknown user: same cost, False
    authmigrate.set_credential_hook(callback)         # told of unusable stored values
    authmigrate.integrations.sqlalchemy.store_upgrade(...)  # compare-and-swap write

A password that is not a ``str`` raises TypeError; one over 4096 UTF-8 bytes never verifies.

The batch part is the ``authmigrate`` command (see :mod:`authmigrate.cli`).
"""

TYPE_CHECKING = False  # not typing's: importing typing would slow the command's first moment

__all__ = [
    "MAX_PASSWORD_BYTES",
    "AuthmigrateError",
    "CredentialError",
    "CredentialProblem",
    "LockError",
    "MalformedHashError",
    "SourceError",
    "SpecError",
    "TargetError",
    "UnknownSchemeError",
    "dummy_verify",
    "identify",
    "import_hash",
    "needs_update",
    "set_credential_hook",
    "verify",
    "verify_and_update",
    "verify_and_update_async",
    "verify_token",
    "wrap",
]

_CREDENTIALS = {
    "MAX_PASSWORD_BYTES",
    "CredentialProblem",
    "dummy_verify",
    "identify",
    "import_hash",
    "needs_update",
    "set_credential_hook",
    "verify",
    "verify_and_update",
    "verify_and_update_async",
    "wrap",
}


def __getattr__(name: str) -> object:
    # Loaded on first use: ``import authmigrate`` runs no import at all, so the command can
    # answer Ctrl-C with its own exit code from its first moment (see authmigrate.__main__).
    if name not in __all__:
        raise AttributeError(name)
    import importlib

    if name in _CREDENTIALS:
        module = "credentials"
    elif name == "verify_token":
        module = "pipeline.tokens"
    else:
        module = "errors"
    return getattr(importlib.import_module(f"authmigrate.{module}"), name)


if TYPE_CHECKING:
    from authmigrate.credentials import (
        MAX_PASSWORD_BYTES,
        CredentialProblem,
        dummy_verify,
        identify,
        import_hash,
        needs_update,
        set_credential_hook,
        verify,
        verify_and_update,
        verify_and_update_async,
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
    from authmigrate.pipeline.tokens import verify_token
