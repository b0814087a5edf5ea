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

TYPE_CHECKING = False  # not typing's: importing typing would slow the command's first moment

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

_MODULES = {
    "identify": "credentials",
    "import_hash": "credentials",
    "needs_update": "credentials",
    "verify": "credentials",
    "verify_and_update": "credentials",
    "wrap": "credentials",
    "verify_token": "tokens",
}


def __getattr__(name: str) -> object:
    # Loaded on first use: ``import authmigrate`` runs no import at all, so the command can
    # answer Ctrl-C with its own exit code from its first moment (see authmigrate.__main__).
    if name not in __all__:
        raise AttributeError(name)
    import importlib

    module = importlib.import_module(f"authmigrate.{_MODULES.get(name, 'errors')}")
    return getattr(module, name)


if TYPE_CHECKING:
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
    from authmigrate.tokens import verify_token
