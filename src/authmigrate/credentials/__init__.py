"""The credential engine: identify, import, verify, wrap and upgrade legacy password hashes.

The public surface is small::

    identify(credential) -> str
    import_hash(scheme, hash, *, salt=None, **params) -> str
    verify(password, credential, *, keyring=None) -> bool
    needs_update(credential) -> bool
    verify_and_update(password, credential, *, keyring=None) -> tuple[bool, str | None]
    wrap(credential, *, keyring=None) -> str
    schemes() -> list[SchemeInfo]
    prepare_batch(items, policy, keyring=None, workers=None) -> list[Prepared | CredentialError]
    self_test(scheme_id) -> bool

Every scheme family lives in its own module and registers itself on import; the upgrade
target is argon2id with the ``OWASP_2025`` profile (see :mod:`.wrap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError

from authmigrate.errors import CredentialError, MalformedHashError, UnknownSchemeError

# Family modules register their schemes on import; order does not matter (priorities do).
from . import aspnet as aspnet
from . import digest as digest
from . import django as django
from . import idp as idp
from . import modern as modern
from . import rails as rails
from . import rules as rules
from . import shops as shops
from . import werkzeug as werkzeug
from ._base import Example, Keyring, Scheme, all_schemes, get
from .wrap import OWASP_2025, PROFILES, TEST, Profile, hasher, profile_named, wrap_credential

_DUMMY_PASSWORD = "authmigrate-timing-equaliser"

_PARSE_ERRORS = (ValueError, TypeError, IndexError, UnicodeError, ArithmeticError)
"""What a scheme's parsing may raise on a hostile value besides CredentialError (an
OverflowError from hashlib is an ArithmeticError, not a ValueError)."""


@dataclass(frozen=True)
class SchemeInfo:
    """One line of ``authmigrate schemes``."""

    id: str
    description: str
    weak: bool


def _scheme_for(scheme_id: str) -> Scheme:
    try:
        return get(scheme_id)
    except KeyError:
        raise UnknownSchemeError(f"no scheme with id {scheme_id!r}") from None


def identify(credential: str) -> str:
    """The id of the scheme whose canonical form ``credential`` is in.

    Ambiguous legacy values (a bare 32-hex string could be any unsalted MD5) are not
    identified: name the scheme and use :func:`import_hash`.

    Raises:
        UnknownSchemeError: no scheme recognises it (code ``credential.unrecognized``).

    Example:
        >>> identify("$1$saltsalt$hYtMp2GDmBnaa1BNedlXH1")
        'md5_crypt'
    """
    if not isinstance(credential, str) or not credential:
        raise UnknownSchemeError("empty or non-text credential")
    for scheme in all_schemes():
        try:
            if scheme.identify(credential):
                return scheme.id
        except Exception:  # noqa: BLE001, S112 - a scheme's identify must never break identify
            continue
    raise UnknownSchemeError("no known scheme recognises the credential")


def import_hash(scheme: str, hash: str, *, salt: str | None = None, **params: object) -> str:
    """Turn a legacy stored value (plus a salt column and params) into a canonical credential.

    Args:
        scheme: a scheme id, or ``"auto"`` to identify ``hash`` first.
        hash: the value stored by the legacy platform.
        salt: the legacy salt column, for schemes that keep the salt apart.
        params: scheme parameters, e.g. ``key_id`` naming a keyring entry.

    Raises:
        UnknownSchemeError: ``scheme`` is not a known id, or ``auto`` recognises nothing.
        MalformedHashError: ``hash`` does not parse as the scheme.

    Example:
        >>> import_hash("django_unsalted_md5", "5F4DCC3B5AA765D61D8327DEB882CF99")
        'md5$$5f4dcc3b5aa765d61d8327deb882cf99'
    """
    if not isinstance(hash, str) or not hash.strip():
        raise MalformedHashError("empty credential")
    value = hash.strip()
    scheme_id = identify(value) if scheme == "auto" else scheme
    target = _scheme_for(scheme_id)
    try:
        return target.import_hash(value, salt=salt, **params)
    except CredentialError as exc:
        if exc.code == "credential.bad_params" and salt is None and _is_canonical(target, value):
            # already canonical (a preset's query built our form): its params are inside it
            return value
        raise
    except _PARSE_ERRORS:
        raise MalformedHashError(f"not a valid {scheme_id} credential") from None


def _is_canonical(scheme: Scheme, value: str) -> bool:
    """True when ``value`` is in ``scheme``'s canonical form and parses."""
    try:
        if not scheme.identify(value):
            return False
        scheme.stored_digest(value)
    except Exception:  # noqa: BLE001 - any parse failure means "not canonical"
        return False
    return True


def _burn_time() -> None:
    """Spend about what a real verification would, so failures are not faster."""
    hasher(OWASP_2025).hash(_DUMMY_PASSWORD)


def _checked_verify(password: str, credential: str, keyring: Keyring | None) -> bool:
    """Verify, raising only CredentialError subclasses."""
    scheme = _scheme_for(identify(credential))
    try:
        return scheme.verify(password, credential, keyring)
    except CredentialError:
        raise
    except _PARSE_ERRORS:
        raise MalformedHashError(f"not a valid {scheme.id} credential") from None


def verify(password: str, credential: str, *, keyring: Keyring | None = None) -> bool:
    """True when ``password`` matches ``credential`` (any known scheme, wrapped or not).

    An unrecognised or malformed credential returns False after spending about the time of
    a real argon2id verification, so that a login cannot tell it from a wrong password.

    Raises:
        MissingKeyError: the credential names a key the keyring lacks (a setup error).

    Example:
        >>> verify("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/")
        False
    """
    try:
        return _checked_verify(password, credential, keyring)
    except (UnknownSchemeError, MalformedHashError):
        _burn_time()
        return False


def needs_update(credential: str, *, profile: str | Profile | None = None) -> bool:
    """True unless ``credential`` is argon2id (v=19) at least as strong as the profile.

    Wrapped, weak and strong-but-not-argon2id credentials all need an update; so does an
    argon2id hash with less memory, fewer passes, a shorter salt or tag than the profile, or an
    older argon2 version. A stronger argon2id (Django's 100 MiB, say, or OWASP hashes while a
    run uses the cheap ``TEST`` profile) is current: it is never re-hashed down to the profile.
    ``profile`` defaults to ``OWASP_2025``. A credential carrying a platform login rule
    (:mod:`.rules`) is judged by the credential inside it.

    Raises:
        UnknownSchemeError: the credential is not recognised.
    """
    credential = rules.split_rules(credential)[1]
    if identify(credential) != "argon2id":
        return True
    target = profile_named(profile)
    try:
        params = argon2.extract_parameters(credential)
    except (InvalidHashError, ValueError):
        raise MalformedHashError("not a valid argon2id credential") from None
    return not (
        params.type is argon2.Type.ID
        and params.version == argon2.low_level.ARGON2_VERSION
        and params.memory_cost >= target.memory_cost
        and params.time_cost >= target.time_cost
        and params.hash_len >= target.hash_len
        and params.salt_len >= target.salt_len
    )


def verify_and_update(
    password: str,
    credential: str,
    *,
    keyring: Keyring | None = None,
    profile: str | Profile | None = None,
) -> tuple[bool, str | None]:
    """Verify, and on success return the replacement credential when one is due.

    Returns:
        ``(False, None)`` for a wrong password (or an unrecognised/malformed credential);
        ``(True, None)`` when the credential is current; ``(True, new)`` otherwise, where
        ``new`` is a plain ``$argon2id$`` PHC string any argon2 library verifies (inside the
        platform's login rule when the credential carries one: ``$login-rule$trim=1$$argon2id$``
        over the password as the rule turned it, see :mod:`.rules`).
    """
    if not verify(password, credential, keyring=keyring):
        return False, None
    if not needs_update(credential, profile=profile):
        return True, None
    make = hasher(profile_named(profile)).hash
    return True, rules.upgraded(password, credential, make, keyring)


def wrap(
    credential: str, *, keyring: Keyring | None = None, profile: str | Profile | None = None
) -> str:
    """argon2id over the legacy digest of ``credential``, keeping what recomputes it.

    No password is needed. The result verifies with :func:`verify` and upgrades with
    :func:`verify_and_update` like any other credential. ``keyring`` is accepted for
    symmetry: keyed schemes need their key to verify, not to wrap.

    Raises:
        UnknownSchemeError: the credential is not recognised.
        MalformedHashError: it does not parse.
        CredentialError: code ``credential.not_wrappable`` for argon2 (never wrapped) or
            ``credential.wrapped`` for an already wrapped credential.
    """
    scheme_id = identify(credential)
    try:
        return wrap_credential(scheme_id, credential, profile=profile)
    except CredentialError:
        raise
    except _PARSE_ERRORS:
        raise MalformedHashError(f"not a valid {scheme_id} credential") from None


def schemes() -> list[SchemeInfo]:
    """Every supported scheme id with its one-line description, for ``authmigrate schemes``."""
    return [SchemeInfo(s.id, s.description, bool(s.weak)) for s in all_schemes()]


def default_weak() -> frozenset[str]:
    """The scheme ids ``policy = "wrap"`` wraps by default (each scheme's ``weak`` flag)."""
    return frozenset(s.id for s in all_schemes() if s.weak)


from ._batch import CredentialPolicy, Prepared, prepare_batch, self_test  # noqa: E402

__all__ = [
    "OWASP_2025",
    "PROFILES",
    "TEST",
    "CredentialPolicy",
    "Example",
    "Keyring",
    "Prepared",
    "Profile",
    "Scheme",
    "SchemeInfo",
    "default_weak",
    "identify",
    "import_hash",
    "needs_update",
    "prepare_batch",
    "schemes",
    "self_test",
    "verify",
    "verify_and_update",
    "wrap",
]
