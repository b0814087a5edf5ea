"""The pipeline-facing side of the credential engine: a whole batch at once, and self-tests.

:func:`prepare_batch` turns a batch of legacy values into what goes into the target column,
following the spec's ``[credentials]`` policy. It never raises for a bad row: each item
becomes a :class:`Prepared` or the :class:`~authmigrate.errors.CredentialError` that rejects
it (its ``code`` is the reject reason). Wrapping, the only costly step, runs on a thread pool:
argon2-cffi releases the GIL while hashing, so threads use every core without pickling.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from authmigrate.errors import CredentialError, MalformedHashError, UnknownSchemeError

from . import _import, default_weak, identify, import_hash, verify
from ._base import Example, Keyring, get
from ._examples import KNOWN_ANSWERS
from ._unusable import UNUSABLE, UNUSABLE_SCHEME, is_unusable
from .rules import check_rules, split_rules, with_rules
from .wrap import TEST, Profile, profile_named, wrap_credential

POLICIES = ("keep", "wrap", "reset")
Segment = Literal["kept", "wrapped", "reset"]


@dataclass(frozen=True)
class CredentialPolicy:
    """The spec's ``[credentials]`` choices that decide what a batch item becomes.

    Attributes:
        scheme: ``"auto"`` (identify each value) or a scheme id from ``authmigrate schemes``.
        policy: ``keep`` (canonical credential as is), ``wrap`` (argon2id over the digest of
            every scheme in ``weak``, others kept) or ``reset`` (no credential at all).
        weak: the scheme ids to wrap; ``None`` means the default list (each scheme's ``weak``).
        params: passed to ``import_hash`` for every item (e.g. ``key_id``).
        profile: the argon2id profile wrapping uses (``OWASP_2025``, or ``TEST`` for tests).
        rules: the platform's login rules (``trim``, ``html``; see :mod:`.rules`) every
            credential carries, so that it verifies what the platform's login accepted.
        allow_test_profile: allow ``profile = "TEST"`` outside tests (the spec's
            ``allow_test_profile``); refused otherwise (code ``credential.profile``).
    """

    scheme: str = "auto"
    policy: str = "keep"
    weak: frozenset[str] | None = None
    params: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    profile: str = "OWASP_2025"
    rules: tuple[str, ...] = ()
    allow_test_profile: bool = False

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise CredentialError(
                f"unknown credentials policy {self.policy!r}; one of {', '.join(POLICIES)}",
                code="credential.policy",
            )
        profile_named(self.profile, allow_test=self.allow_test_profile)
        object.__setattr__(self, "rules", check_rules(self.rules))


@dataclass
class Prepared:
    """One batch item, ready for the target.

    Attributes:
        credential: the value for the target column (``None`` under ``reset``).
        scheme: the scheme id found (``"unknown"`` when ``reset`` met an unreadable value).
        segment: ``"kept"``, ``"wrapped"`` or ``"reset"``, for the report.
    """

    credential: str | None
    scheme: str
    segment: Segment

    def __repr__(self) -> str:
        shown = None if self.credential is None else "***"
        return f"Prepared(credential={shown!r}, scheme={self.scheme!r}, segment={self.segment!r})"


def _scrubbed(error: CredentialError) -> CredentialError:
    """The error without its traceback: frames would keep the row's values alive."""
    error.__traceback__ = None
    error.__context__ = None
    error.__cause__ = None
    return error


def _import_one(value: str | None, salt: str | None, policy: CredentialPolicy) -> tuple[str, str]:
    """(canonical credential, scheme id) of one legacy value; the scheme id is the legacy
    scheme's, also when the credential carries the platform's login rules."""
    if value is None or not str(value).strip():
        raise CredentialError("no credential in the row", code="credential.missing")
    if is_unusable(str(value)):
        raise CredentialError("the platform marks the password unusable", code=UNUSABLE)
    text = str(value)
    try:
        canonical, found = _import(policy.scheme, text, salt=salt, **dict(policy.params))
        if policy.rules:
            canonical = with_rules(canonical, policy.rules)
        inner = split_rules(canonical)[1]
        if policy.scheme == "auto" and inner == text.strip():
            # what identify(inner) would say: "auto" identified this very string
            scheme_id = found
        else:
            try:
                scheme_id = identify(inner)
            except UnknownSchemeError:
                # A named scheme whose canonical form is ambiguous on its own: trust the spec.
                scheme_id = policy.scheme
    except CredentialError:
        raise
    except Exception:  # noqa: BLE001 - one hostile row must not end the batch
        raise MalformedHashError(f"not a valid {policy.scheme} credential") from None
    return canonical, scheme_id


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def prepare_batch(
    items: Sequence[tuple[str | None, str | None]],
    policy: CredentialPolicy,
    keyring: Keyring | None = None,
    workers: int | None = None,
) -> list[Prepared | CredentialError]:
    """Import every item and apply the policy; one result per item, in order.

    Args:
        items: ``(legacy value, salt column value)`` pairs; the salt may be ``None``.
        policy: what to do (see :class:`CredentialPolicy`).
        keyring: key ids to secrets; not needed to wrap, accepted for keyed imports.
        workers: threads for wrapping; default: every core available.

    Returns:
        A :class:`Prepared` for each good item, the :class:`CredentialError` for each bad one
        (``credential.missing``, ``credential.unrecognized``, ``credential.malformed``...).
        Under ``reset`` nothing is rejected: an unreadable value is reset like any other.
        A value the platform marks as "no usable password" (Django's ``!``..., see
        :mod:`._unusable`) becomes a reset under every policy (scheme ``unusable``).

    Example:
        >>> out = prepare_batch([("md5$$5f4dcc3b5aa765d61d8327deb882cf99", None)],
        ...                     CredentialPolicy(policy="wrap", profile="TEST",
        ...                                      allow_test_profile=True))
        >>> out[0].segment
        'wrapped'
    """
    weak = policy.weak if policy.weak is not None else default_weak()
    profile = profile_named(policy.profile, allow_test=policy.allow_test_profile)
    results: list[Prepared | CredentialError] = []
    pending: list[tuple[int, str, str]] = []
    for index, (value, salt) in enumerate(items):
        try:
            canonical, scheme_id = _import_one(value, salt, policy)
        except CredentialError as error:
            if error.code == UNUSABLE:
                results.append(Prepared(None, UNUSABLE_SCHEME, "reset"))
            elif policy.policy == "reset":
                results.append(Prepared(None, "unknown", "reset"))
            else:
                results.append(_scrubbed(error))
            continue
        if policy.policy == "reset":
            results.append(Prepared(None, scheme_id, "reset"))
        elif policy.policy == "wrap" and scheme_id in weak:
            results.append(Prepared(None, scheme_id, "wrapped"))  # filled in below
            pending.append((index, scheme_id, canonical))
        else:
            results.append(Prepared(canonical, scheme_id, "kept"))
    for index, outcome in zip(
        (i for i, _, _ in pending), _wrap_all(pending, profile, workers), strict=True
    ):
        if isinstance(outcome, CredentialError):
            results[index] = _scrubbed(outcome)
        else:
            prepared = results[index]
            assert isinstance(prepared, Prepared)
            prepared.credential = outcome
    return results


def _wrap_one(scheme_id: str, canonical: str, profile: Profile) -> str | CredentialError:
    try:
        # the profile was resolved (and the TEST guard applied) by prepare_batch
        return wrap_credential(scheme_id, canonical, profile=profile, allow_test_profile=True)
    except CredentialError as error:
        return error
    except Exception:  # noqa: BLE001 - a worker's error is this item's reject, never the batch's
        return MalformedHashError(f"not a valid {scheme_id} credential")


def _wrap_all(
    pending: Sequence[tuple[int, str, str]], profile: Profile, workers: int | None
) -> list[str | CredentialError]:
    """Wrap every pending item, on ``workers`` threads when there is more than one."""
    count = workers or default_workers()
    if count <= 1 or len(pending) <= 1:
        return [_wrap_one(s, c, profile) for _, s, c in pending]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="authmigrate-wrap") as pool:

        def job(item: tuple[int, str, str]) -> str | CredentialError:
            return _wrap_one(item[1], item[2], profile)

        return list(pool.map(job, pending))


def self_test(scheme_id: str) -> bool:
    """Check that a scheme works on this machine before a run relies on it (``unusable``, the
    pseudo-scheme of platforms' "no usable password" markers, checks that they never verify).

    Uses the scheme's known-answer ``examples`` and its vector in ``_examples.KNOWN_ANSWERS``
    (both made by the platform's own code), else hashes a random password with the scheme's
    ``hash`` method when it has one. A correct password must verify, a wrong one must not,
    and the example must be identified as this scheme; a weak scheme must also survive
    wrap-then-verify (with the cheap ``TEST`` profile). False when the scheme is unknown or
    cannot be tested at all; never raises.
    """
    if scheme_id == UNUSABLE_SCHEME:
        # Not a scheme: the markers must be told apart and must never verify anything.
        return is_unusable("!") and not is_unusable("!$6$x$y") and not verify("", "!")
    try:
        scheme = get(scheme_id)
    except KeyError:
        return False
    if scheme_id == "wrap":
        # The wrapper has no vectors of its own: it passes when it wraps a weak scheme's.
        return self_test("django_md5")
    if scheme_id == "login_rule":
        # Nor has the rule: WordPress's phpass vector, trimmed as wp_authenticate does.
        vector = KNOWN_ANSWERS["phpass"]
        case = Example(f" {vector['password']}\t", with_rules(vector["stored"], ["trim"]))
        try:
            return _passes(scheme_id, case)
        except Exception:  # noqa: BLE001 - a self-test reports, it never raises
            return False
    cases: list[Example] = list(getattr(scheme, "examples", ()))
    known = KNOWN_ANSWERS.get(scheme_id)
    if known is not None:
        try:
            imported = import_hash(
                scheme_id,
                known["stored"],
                salt=known["import"].get("salt"),
                **(known["import"].get("params") or {}),
            )
        except CredentialError:
            return False
        cases.append(Example(known["password"], imported, known["keyring"]))
    make = getattr(scheme, "hash", None)
    if not cases and callable(make):
        password = secrets.token_urlsafe(12)
        try:
            cases.append(Example(password, str(make(password))))
        except Exception:  # noqa: BLE001 - a self-test reports, it never raises
            return False
    if not cases:
        return False
    try:
        return all(_passes(scheme_id, case) for case in cases)
    except Exception:  # noqa: BLE001 - a self-test reports, it never raises
        return False


def _passes(scheme_id: str, case: Example) -> bool:
    scheme = get(scheme_id)
    if identify(case.credential) != scheme_id:
        return False
    if not verify(case.password, case.credential, keyring=case.keyring):
        return False
    if verify(case.password + "\x00wrong", case.credential, keyring=case.keyring):
        return False
    if not scheme.weak:
        return True
    # a self-test wraps a known-answer vector, never an account: the cheap profile is right
    wrapped = wrap_credential(scheme_id, case.credential, profile=TEST, allow_test_profile=True)
    return verify(case.password, wrapped, keyring=case.keyring) and not verify(
        case.password + "\x00wrong", wrapped, keyring=case.keyring
    )
