"""The credential engine: identify, import, verify, wrap and upgrade legacy password hashes.

The public surface is small::

    identify(credential) -> str
    import_hash(scheme, hash, *, salt=None, **params) -> str
    verify(password, credential, *, keyring=None, profile=None, min_seconds=None) -> bool
    needs_update(credential) -> bool
    verify_and_update(password, credential, *, keyring=None) -> tuple[bool, str | None]
    await verify_and_update_async(password, credential, ...)   # the hash in a thread
    dummy_verify(*, profile=None, min_seconds=None) -> bool     # for an unknown user: False
    set_credential_hook(hook)                                   # told of unusable credentials
    wrap(credential, *, keyring=None) -> str
    schemes() -> list[SchemeInfo]
    prepare_batch(items, policy, keyring=None, workers=None) -> list[Prepared | CredentialError]
    self_test(scheme_id) -> bool

Every scheme family lives in its own module and registers itself on import; the upgrade
target is argon2id with the ``OWASP_2025`` profile (see :mod:`.wrap`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
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
from . import unixcrypt as unixcrypt
from . import werkzeug as werkzeug
from ._base import Example, Keyring, Scheme, all_schemes, get
from ._index import candidates
from ._limits import MAX_PASSWORD_BYTES, MEMORY_GATE, argon2_memory, check_argon2, login_length
from ._login import (
    CredentialHook,
    CredentialProblem,
    Floor,
    dummy_work,
    floor_seconds,
    profile_floor,
    report_problem,
    require_text,
    set_credential_hook,
    sleep_until,
    too_long,
    utf8_length,
)
from .wrap import OWASP_2025, PROFILES, TEST, Profile, hasher, profile_named, wrap_credential

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
    # the schemes in priority order, less those whose declared prefixes rule them out
    for scheme in candidates(credential):
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
    return _import(scheme, hash, salt=salt, **params)[0]


def _import(
    scheme: str, hash: str, *, salt: str | None = None, **params: object
) -> tuple[str, str]:
    """:func:`import_hash`, and the id of the scheme that imported (``scheme``, or the one
    ``auto`` identified in the stripped ``hash``), so that a caller need not identify again."""
    if not isinstance(hash, str) or not hash.strip():
        raise MalformedHashError("empty credential")
    value = hash.strip()
    scheme_id = identify(value) if scheme == "auto" else scheme
    target = _scheme_for(scheme_id)
    try:
        return target.import_hash(value, salt=salt, **params), scheme_id
    except CredentialError as exc:
        if exc.code == "credential.bad_params" and salt is None and _is_canonical(target, value):
            # already canonical (a preset's query built our form): its params are inside it
            return value, scheme_id
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


def _checked_verify(password: str, credential: str, keyring: Keyring | None) -> bool:
    """Verify, raising only CredentialError subclasses."""
    scheme = _scheme_for(identify(credential))
    try:
        with login_length(utf8_length(password)):
            return scheme.verify(password, credential, keyring)
    except CredentialError:
        raise
    except _PARSE_ERRORS:
        raise MalformedHashError(f"not a valid {scheme.id} credential") from None


def _claimed_by(credential: object) -> str | None:
    """The scheme id that claims ``credential``, for the hook; None when none does."""
    try:
        return identify(credential)  # type: ignore[arg-type]
    except UnknownSchemeError:
        return None


def verify(
    password: str,
    credential: str,
    *,
    keyring: Keyring | None = None,
    profile: str | Profile | None = None,
    min_seconds: Floor = None,
) -> bool:
    """True when ``password`` matches ``credential`` (any known scheme, wrapped or not).

    Before any scheme runs, a password over :data:`MAX_PASSWORD_BYTES` (4096 UTF-8 bytes) is
    False: no scheme is then asked to hash a megabyte per round. A scheme whose platform has a
    smaller limit keeps it (Drupal 7: 512 bytes). The work a credential asks for is priced
    with the real password length and refused over the budget (see ``_limits``).

    An unrecognised or malformed credential, or a password over the cap, returns False after
    a dummy argon2id verification at ``profile``, so that a login cannot tell it from a wrong
    password; an unusable credential is also reported to the hook (:func:`set_credential_hook`).

    Args:
        password: what the user typed, as ``str``.
        credential: a canonical credential (any scheme, wrapped or not).
        keyring: key id -> secret, for keyed schemes.
        profile: the argon2id profile the dummy verification and ``"profile"`` floor use
            (default ``OWASP_2025``).
        min_seconds: a timing floor: the call takes at least this long (wall clock, by
            sleeping), so that a fast legacy hash answers no sooner than argon2id.
            ``"profile"`` is the measured time of one verification at ``profile``
            (:func:`profile_floor`). Off by default (bulk use); a login path should pass
            ``"profile"``. See docs/credentials.md for what it hides and what it does not.

    Raises:
        TypeError: ``password`` is not a ``str`` (bytes, None, a number).
        ValueError: ``min_seconds`` is not ``"profile"``, ``None`` or 0 to 3600 seconds.
        MissingKeyError: the credential names a key the keyring lacks (a setup error).

    Example:
        >>> verify("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/")
        False
    """
    require_text(password)
    chosen = profile_named(profile)
    floor = floor_seconds(min_seconds, chosen)
    start = time.perf_counter()
    try:
        if too_long(password):
            dummy_work(chosen)
            return False
        try:
            return _checked_verify(password, credential, keyring)
        except (UnknownSchemeError, MalformedHashError) as exc:
            scheme = None if isinstance(exc, UnknownSchemeError) else _claimed_by(credential)
            report_problem(exc.code, scheme, credential)
            dummy_work(chosen)
            return False
    finally:
        if floor:
            sleep_until(start, floor)


def dummy_verify(*, profile: str | Profile | None = None, min_seconds: Floor = None) -> bool:
    """Spend what a real verification at ``profile`` costs, and answer False.

    For a login with an unknown user name: call it where :func:`verify` would have run, so
    that the response time does not tell a missing account from a wrong password.

    Example:
        >>> dummy_verify()
        False
    """
    chosen = profile_named(profile)
    floor = floor_seconds(min_seconds, chosen)
    start = time.perf_counter()
    dummy_work(chosen)
    if floor:
        sleep_until(start, floor)
    return False


def _argon2_phc(credential: str) -> str | None:
    """The argon2 PHC string inside ``credential`` (Django's ``argon2`` prefix stripped), or
    None when it is not argon2."""
    scheme_id = identify(credential)
    if scheme_id in ("argon2id", "argon2i"):
        return credential
    if scheme_id == "django_argon2":
        return credential[len("argon2") :]
    return None


def _argon2_parameters(phc: str) -> argon2.Parameters:
    try:
        return argon2.extract_parameters(phc)
    except (InvalidHashError, ValueError):
        raise MalformedHashError("not a valid argon2 credential") from None


def needs_update(credential: str, *, profile: str | Profile | None = None) -> bool:
    """True unless ``credential`` is argon2id (v=19) at least as strong as the profile.

    Wrapped, weak and strong-but-not-argon2 credentials all need an update; so does an
    argon2 hash that is argon2i, an older argon2 version, or has less memory, fewer passes, a
    shorter salt or tag than the profile. A stronger argon2id, in its PHC form or behind
    Django's ``argon2`` prefix (Django's 100 MiB, say, or OWASP hashes while a run uses the
    cheap ``TEST`` profile), is current: it is never re-hashed down to the profile.
    ``profile`` defaults to ``OWASP_2025``. A credential carrying a platform login rule
    (:mod:`.rules`) is judged by the credential inside it.

    Raises:
        UnknownSchemeError: the credential is not recognised.
        MalformedHashError: the credential is recognised but does not parse (a broken
            ``$login-rule$`` form, an argon2 string with invalid parameters).
    """
    credential = rules.split_rules(credential)[1]
    phc = _argon2_phc(credential)
    if phc is None:
        return True
    target = profile_named(profile)
    params = _argon2_parameters(phc)
    return not (
        params.type is argon2.Type.ID
        and params.version == argon2.low_level.ARGON2_VERSION
        and params.memory_cost >= target.memory_cost
        and params.time_cost >= target.time_cost
        and params.hash_len >= target.hash_len
        and params.salt_len >= target.salt_len
    )


def upgrade_profile(credential: str, profile: str | Profile | None = None) -> Profile:
    """The parameters :func:`verify_and_update` re-hashes ``credential`` with.

    The profile for anything but argon2. For argon2 (argon2i, an old version, or argon2id
    weaker than the profile on some parameter) each parameter is the larger of the stored one
    and the profile's, so that no re-hash is weaker than what it replaces; when that mix would
    be over the work budget, the stored memory and passes are kept as they are.
    """
    target = profile_named(profile)
    phc = _argon2_phc(credential)
    if phc is None:
        return target
    stored = _argon2_parameters(phc)
    mixed = Profile(
        name=f"{target.name}+stored",
        memory_cost=max(stored.memory_cost, target.memory_cost),
        time_cost=max(stored.time_cost, target.time_cost),
        parallelism=max(stored.parallelism, target.parallelism),
        hash_len=max(stored.hash_len, target.hash_len),
        salt_len=max(stored.salt_len, target.salt_len),
    )
    try:
        check_argon2("argon2id", mixed.memory_cost, mixed.time_cost, mixed.parallelism)
    except MalformedHashError:
        mixed = dataclasses.replace(
            mixed, memory_cost=stored.memory_cost, time_cost=stored.time_cost
        )
    return mixed


def _new_hash(password: str, profile: Profile) -> str:
    with MEMORY_GATE.hold(argon2_memory(profile.memory_cost)):
        return hasher(profile).hash(password)


def verify_and_update(
    password: str,
    credential: str,
    *,
    keyring: Keyring | None = None,
    profile: str | Profile | None = None,
    min_seconds: Floor = None,
) -> tuple[bool, str | None]:
    """Verify, and on success return the replacement credential when one is due.

    Write the replacement with a compare-and-swap (``UPDATE ... SET password = :new WHERE id
    = :id AND password = :old``; :func:`authmigrate.integrations.sqlalchemy.store_upgrade`
    does it), so that a password reset between this call and the write is not undone.

    Args:
        password, credential, keyring, profile, min_seconds: as for :func:`verify`;
            ``profile`` is also the upgrade target.

    Returns:
        ``(False, None)`` for a wrong password (or an unrecognised/malformed credential);
        ``(True, None)`` when the credential is current; ``(True, new)`` otherwise, where
        ``new`` is a plain ``$argon2id$`` PHC string any argon2 library verifies (for an argon2
        credential, with the larger of its parameters and the profile's: never weaker; inside
        the platform's login rule when the credential carries one:
        ``$login-rule$trim=1$$argon2id$`` over the password as the rule turned it, see
        :mod:`.rules`).

    Raises:
        TypeError: ``password`` is not a ``str``.
        MissingKeyError: the credential names a key the keyring lacks.
    """
    if not verify(password, credential, keyring=keyring, profile=profile, min_seconds=min_seconds):
        return False, None
    if not needs_update(credential, profile=profile):
        return True, None
    chosen = upgrade_profile(rules.split_rules(credential)[1], profile)
    return True, rules.upgraded(password, credential, lambda pw: _new_hash(pw, chosen), keyring)


async def verify_and_update_async(
    password: str,
    credential: str,
    *,
    keyring: Keyring | None = None,
    profile: str | Profile | None = None,
    min_seconds: Floor = "profile",
) -> tuple[bool, str | None]:
    """:func:`verify_and_update` for asyncio servers: the hashing runs in a worker thread
    (argon2, bcrypt and hashlib release the GIL), so the event loop keeps serving.

    The timing floor is on by default (``"profile"``: this is a login path) and is waited
    with ``asyncio.sleep``, holding no thread.

    Raises:
        TypeError: ``password`` is not a ``str`` (raised before any thread is used).
    """
    require_text(password)
    chosen = profile_named(profile)
    floor = floor_seconds(min_seconds, chosen)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        return await asyncio.to_thread(
            verify_and_update, password, credential, keyring=keyring, profile=chosen
        )
    finally:
        remaining = floor - (loop.time() - start)
        if remaining > 0:
            await asyncio.sleep(remaining)


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
    "MAX_PASSWORD_BYTES",
    "OWASP_2025",
    "PROFILES",
    "TEST",
    "CredentialHook",
    "CredentialPolicy",
    "CredentialProblem",
    "Example",
    "Keyring",
    "Prepared",
    "Profile",
    "Scheme",
    "SchemeInfo",
    "default_weak",
    "dummy_verify",
    "identify",
    "import_hash",
    "needs_update",
    "prepare_batch",
    "profile_floor",
    "schemes",
    "self_test",
    "set_credential_hook",
    "upgrade_profile",
    "verify",
    "verify_and_update",
    "verify_and_update_async",
    "wrap",
]
