"""Export to identity providers: each account's credential in the provider's own import format.

For every account the route engine (:func:`route`) says how it will log in at the provider:

- ``native``: the provider verifies our canonical string as it is (bcrypt ``$2b$`` into Auth0);
- ``re-encoded``: the same hash in the provider's encoding (``$2y$`` renamed ``$2b$``,
  Django's pbkdf2 as a PHC string, Keycloak's JSON-in-JSON);
- ``bridge``: the provider cannot verify it; the account carries the provider's
  migration-hook flag (Kratos, Okta) or is listed apart for the bridge;
- ``reset``: no usable credential: the account needs a password reset.

A credential inside a platform login rule (``$login-rule$trim=1$...``) goes to the bridge: the
provider cannot apply the rule, and whether the rule changes a given user's password cannot be
known without the password; a rule around an unusable marker is a reset. A wrapped credential
(``$wrap$...``) goes to the bridge (no provider runs argon2id over a legacy digest).

One module per provider (:mod:`.auth0`, :mod:`.kratos`, ...); :mod:`._check` holds the
independent verifiers the self-test (:mod:`._selftest`) checks every group with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authmigrate.credentials import identify
from authmigrate.credentials._base import get
from authmigrate.credentials._unusable import is_unusable
from authmigrate.credentials.rules import split_rules
from authmigrate.errors import CredentialError

from ._model import ROUTES, Account, Encoded, Provider
from ._parts import Parts, parts
from .auth0 import Auth0
from .clerk import Clerk
from .firebase import Firebase
from .fusionauth import FusionAuth
from .keycloak import Keycloak
from .kratos import Kratos
from .okta import Okta
from .supabase import Supabase
from .zitadel import Zitadel

PROVIDERS: dict[str, type[Any]] = {
    p.name: p
    for p in (Auth0, Kratos, Firebase, Keycloak, Okta, Zitadel, Supabase, Clerk, FusionAuth)
}
"""Every provider by its ``[target] export`` name."""


def provider_named(name: str, settings: Mapping[str, str] | None = None) -> Provider:
    """The provider ``name`` with its ``[target.provider]`` settings applied.

    Raises:
        KeyError: unknown provider name.
    """
    cls = PROVIDERS[name]
    wanted = dict(settings or {})
    kwargs = {k: v for k, v in wanted.items() if k in _INIT_ARGS.get(name, ())}
    provider: Provider = cls(**kwargs)
    return provider


_INIT_ARGS = {
    "kratos": ("schema_id",),
    "keycloak": ("if_resource_exists", "bcrypt_algorithm"),
}


@dataclass(frozen=True)
class Routed:
    """How one account goes to a provider.

    Attributes:
        route: one of :data:`ROUTES`.
        scheme: our scheme id (None for no credential).
        reason: why an account is bridged or reset (no value in it).
        fields: the provider's credential fields (empty for reset and listed-apart bridge).
        config: the per-file hash configuration (Firebase).
        parts: the credential taken apart (for the self-test), None unless encoded.
    """

    route: str
    scheme: str | None
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict, repr=False)
    config: tuple[tuple[str, str], ...] = ()
    parts: Parts | None = field(default=None, repr=False)

    @property
    def group(self) -> tuple[Any, ...]:
        """The self-test and file group: same scheme and hash configuration."""
        shape = self.parts.group if self.parts is not None else ()
        return (self.route, self.scheme, self.config, shape)


def route(
    provider: Provider,
    credential: str | None,
    keyring: Mapping[str, bytes | str] | None = None,
    scheme_hint: str | None = None,
) -> Routed:
    """How the account holding ``credential`` (canonical, or None) logs in at ``provider``.

    ``scheme_hint`` is the scheme the credential stage found; it saves identifying the
    credential again and is used only when that scheme claims the credential."""
    if credential is None or credential == "" or is_unusable(credential):
        return _reset(provider, None, "no usable credential")
    rules, inner = split_rules(credential)
    if rules:
        if is_unusable(inner):
            return _reset(provider, None, "no usable credential")
        return _bridge(provider, _scheme(inner), "the platform's login rule")
    scheme = scheme_hint if _claims(scheme_hint, credential) else _scheme(credential)
    if scheme is None:
        return _reset(provider, None, "unrecognised credential")
    if scheme == "wrap":
        return _bridge(provider, scheme, "wrapped credential")
    try:
        found = parts(scheme, credential)
    except ValueError:
        return _reset(provider, scheme, "credential does not parse")
    encoded: Encoded | None = None if found is None else provider.encode(found, keyring)
    if encoded is None:
        return _bridge(provider, scheme, f"{provider.name} has no algorithm for {scheme}")
    return Routed(encoded.route, scheme, "", encoded.fields, encoded.config, found)


def _claims(scheme_id: str | None, credential: str) -> bool:
    if scheme_id is None or scheme_id in ("wrap", "login_rule"):
        return False
    try:
        return bool(get(scheme_id).identify(credential))
    except Exception:  # noqa: BLE001 - an unknown hint or a failing identify: identify afresh
        return False


def _scheme(credential: str) -> str | None:
    try:
        return identify(credential)
    except CredentialError:
        return None


def _reset(provider: Provider, scheme: str | None, reason: str) -> Routed:
    """A reset account: no password, and the provider's "update password" flag if it has one."""
    flag = getattr(provider, "reset_fields", None)
    return Routed("reset", scheme, reason, flag() if flag is not None else {})


def _bridge(provider: Provider, scheme: str | None, reason: str) -> Routed:
    return Routed("bridge", scheme, reason, provider.bridge() or {})


__all__ = [
    "PROVIDERS",
    "ROUTES",
    "Account",
    "Routed",
    "provider_named",
    "route",
]
