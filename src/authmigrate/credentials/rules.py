"""Platform login rules: what a platform does to the typed password before it checks the hash.

WordPress and Drupal 7 trim the typed password at login, and OpenCart 1.5-3 HTML-escapes it.
An account migrated without its platform's rule would refuse a password its platform accepted
(``" secret "`` typed on WordPress logs in as ``"secret"``), so the rule travels with the
account, inside the canonical credential, and :func:`~authmigrate.credentials.verify`, ``wrap``,
``verify_and_update`` and anything that verifies through them apply it.

The form (documented in docs/credentials.md) puts the rule around any canonical credential,
which stays verbatim and last, so a standard form inside stays byte for byte standard::

    $login-rule$trim=1$$P$BXhx3s6Ld2yjMvRjQf0uaOU9MzC9CS/
    $login-rule$html=1$$opencart$a=sha1$c2FsdA$<hex>

Rules (a credential carries one or more, in this order):

- ``trim=1``: PHP ``trim()`` with its default characters (space, ``\\t``, ``\\n``, ``\\r``,
  NUL, ``\\x0b``) before the check (WordPress ``wp_authenticate``, Drupal 7
  ``user_login_authenticate_validate``, PrestaShop 1.6 ``AuthController``).
- ``html=1``: PHP ``htmlspecialchars($pw, ENT_COMPAT)`` first, then the password as typed
  (OpenCart's request filter escapes every POST field, so storefront hashes are of the escaped
  form; hashes set outside the storefront are of the raw one).

Wrapping keeps the rule outside: ``wrap($login-rule$trim=1$<legacy>)`` is
``$login-rule$trim=1$$wrap$...``, and an upgrade on login is ``$login-rule$trim=1$$argon2id$...``
over the password as the rule turned it (so both ``" secret "`` and ``"secret"`` keep working).
A credential without a rule never gets this form: standard forms stay standard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from authmigrate.errors import CredentialError

from . import _phc
from ._base import Example, Keyring, Scheme, all_schemes, register
from ._common import malformed, not_wrappable
from ._limits import MAX_PASSWORD_BYTES, login_length
from .shops import php_htmlspecialchars

RULE_SCHEME = "login_rule"
PREFIX = "$" + _phc.ident(RULE_SCHEME) + "$"

PHP_TRIM = " \t\n\r\0\x0b"
"""The characters PHP's ``trim()`` removes by default."""

RULES: tuple[str, ...] = ("trim", "html")
"""Known rules, in the order they apply."""


def check_rules(rules: Iterable[str]) -> tuple[str, ...]:
    """The rules in their canonical order; CredentialError (``credential.bad_params``) for an
    unknown one."""
    wanted = set(rules)
    unknown = wanted - set(RULES)
    if unknown:
        raise CredentialError(
            f"unknown login rule(s): {', '.join(sorted(unknown))} (known: {', '.join(RULES)})",
            code="credential.bad_params",
        )
    return tuple(r for r in RULES if r in wanted)


def candidates(password: str, rules: Iterable[str]) -> list[str]:
    """The passwords to check, in order, for what was typed (the platform's rule applied).

    Example:
        >>> candidates("  Tom&Jerry ", ["trim", "html"])
        ['Tom&amp;Jerry', 'Tom&Jerry']
    """
    active = set(rules)
    typed = password.strip(PHP_TRIM) if "trim" in active else password
    if "html" not in active:
        return [typed]
    escaped = php_htmlspecialchars(typed)
    return [escaped] if escaped == typed else [escaped, typed]


def verify_candidate(
    scheme: Scheme, candidate: str, inner: str, keyring: Keyring | None = None
) -> bool:
    """``scheme.verify`` of one candidate, its work priced with the candidate's own length.

    A rule may lengthen what was typed (``htmlspecialchars`` makes one ``"`` six bytes): a
    candidate over :data:`~._limits.MAX_PASSWORD_BYTES` never verifies (the other candidates
    are still tried), and a longer one is allowed no more work than its length buys.
    """
    size = len(candidate.encode("utf-8", "surrogatepass"))
    if size > MAX_PASSWORD_BYTES:
        return False
    with login_length(size):
        return scheme.verify(candidate, inner, keyring)


def with_rules(credential: str, rules: Iterable[str]) -> str:
    """``credential`` carrying ``rules`` (unchanged when there is none, or it already has one).

    Example:
        >>> with_rules("$P$BXhx3s6Ld2yjMvRjQf0uaOU9MzC9CS/", ["trim"])
        '$login-rule$trim=1$$P$BXhx3s6Ld2yjMvRjQf0uaOU9MzC9CS/'
    """
    ordered = check_rules(rules)
    if not ordered or credential.startswith(PREFIX):
        return credential
    return PREFIX + ",".join(f"{r}=1" for r in ordered) + "$" + credential


def split_rules(credential: str) -> tuple[tuple[str, ...], str]:
    """``(rules, inner credential)``; ``((), credential)`` for a credential without rules.

    Raises:
        MalformedHashError: a ``$login-rule$`` string with a bad rule list or no inner part.
    """
    if not credential.startswith(PREFIX):
        return (), credential
    head, sep, inner = credential[len(PREFIX) :].partition("$")
    if not sep or not inner:
        raise malformed(RULE_SCHEME, "no inner credential")
    params = _phc.parse_params(RULE_SCHEME, head)
    if not params or any(v != "1" for v in params.values()) or not set(params) <= set(RULES):
        raise malformed(RULE_SCHEME, "bad rule list")
    if inner.startswith(PREFIX):
        raise malformed(RULE_SCHEME, "rules inside rules")
    return check_rules(params), inner


def inner_scheme(inner: str) -> Scheme:
    """The scheme that owns the inner credential (never the rule scheme itself)."""
    for scheme in all_schemes():
        if scheme.id == RULE_SCHEME:
            continue
        try:
            if scheme.identify(inner):
                return scheme
        except Exception:  # noqa: BLE001, S112 - a scheme's identify must never break this
            continue
    raise malformed(RULE_SCHEME, "unrecognised inner credential")


def upgraded(
    password: str,
    credential: str,
    make: Callable[[str], str],
    keyring: Keyring | None = None,
) -> str:
    """The replacement for ``credential`` after ``password`` verified: ``make(password)``, or
    for a credential with rules, ``make`` over the candidate that verified, with the rules kept.
    """
    rules, inner = split_rules(credential)
    if not rules:
        return make(password)
    tried = candidates(password, rules)
    chosen = tried[0]
    if len(tried) > 1:
        scheme = inner_scheme(inner)
        chosen = next((c for c in tried if verify_candidate(scheme, c, inner, keyring)), tried[0])
    return with_rules(make(chosen), rules)


@register(priority=1)
class LoginRule:
    """A credential carrying its platform's login rule (this module's form)."""

    id: ClassVar[str] = RULE_SCHEME
    description: ClassVar[str] = (
        "$login-rule$trim=1$<credential>: the platform's login rule (trim, html) around any form"
    )
    weak: ClassVar[bool] = False
    examples: ClassVar[tuple[Example, ...]] = (
        # bcrypt (the bcrypt library, cost 4) of "password"; WordPress's login trims the typed
        # " password " before checking it
        Example(
            " password ",
            "$login-rule$trim=1$$2b$04$L1ZO/6nL.0b4nX4vDeNUA.96ocrStVNrS7eQ.x4QbLBgvOKKrwX4a",
        ),
    )

    prefixes: ClassVar[tuple[str, ...]] = (PREFIX,)

    def identify(self, credential: str) -> bool:
        """True for the ``$login-rule$`` prefix."""
        return credential.startswith(PREFIX)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Validate a credential already in this form (its inner part must parse)."""
        from . import import_hash

        rules, inner = split_rules(value)
        if not rules or salt is not None or params:
            raise malformed(self.id)
        # the inner part is canonical already (keyed forms too): the API's import accepts it
        return with_rules(import_hash(inner_scheme(inner).id, inner), rules)

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """True when any candidate of the typed password verifies the inner credential."""
        rules, inner = split_rules(credential)
        scheme = inner_scheme(inner)
        return any(verify_candidate(scheme, c, inner, keyring) for c in candidates(password, rules))

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """Not supported: ``wrap`` wraps the inner credential and keeps the rule outside."""
        raise not_wrappable(self.id)

    def stored_digest(self, credential: str) -> bytes:
        """Not supported (see :meth:`digest`)."""
        raise not_wrappable(self.id)

    def strip_digest(self, credential: str) -> str:
        """Not supported (see :meth:`digest`)."""
        raise not_wrappable(self.id)

    def __repr__(self) -> str:
        return "<scheme login_rule>"
