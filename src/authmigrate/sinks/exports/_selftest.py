"""The export self-test: before a group of accounts is written, a known password is hashed
with the group's own scheme and parameters (our credential engine, with the group's salt),
exported like the group, and checked by :mod:`._check`'s independent verifier.

The twin keeps everything of a real credential of the group but its digest, which the scheme
recomputes for the known password (``Scheme.digest``), so the test covers the group's exact
parameters (iterations, cost, salt length, separator), not just the scheme's vector.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import argon2

from authmigrate import credentials
from authmigrate.credentials._base import get
from authmigrate.errors import CredentialError

from . import Routed, route
from ._check import check
from ._model import Provider, firebase_signer

KNOWN_PASSWORD = "Kn0wn-pässwörd 42"


def twin(credential: str, keyring: Mapping[str, bytes | str] | None) -> str | None:
    """A credential of the same scheme and parameters as ``credential`` for
    :data:`KNOWN_PASSWORD`, or None when the scheme cannot make one."""
    scheme_id = credentials.identify(credential)
    if scheme_id in ("argon2id", "argon2i", "django_argon2"):
        return _argon2_twin(credential, scheme_id)
    scheme = get(scheme_id)
    try:
        stripped = scheme.strip_digest(credential)
        stored = scheme.stored_digest(credential)
        fresh = scheme.digest(KNOWN_PASSWORD, credential, keyring)
    except (CredentialError, ValueError):
        return None
    special = _SPECIAL.get(scheme_id)
    if special is not None:
        made = special(credential, fresh)
        return made if credentials.verify(KNOWN_PASSWORD, made, keyring=keyring) else None
    if not credential.startswith(stripped):
        return None
    tail = credential[len(stripped) :]
    sep = "$" if tail.startswith("$") else ""
    tail = tail[len(sep) :]
    stripped += sep
    for encode, decode in _ENCODINGS:
        try:
            if decode(tail) != stored or encode(stored) != tail:
                continue
            made = stripped + encode(fresh)
        except (ValueError, UnicodeError):
            continue
        # an alphabet can look like another on one value: the engine decides
        if credentials.verify(KNOWN_PASSWORD, made, keyring=keyring):
            return made
    return None


def _argon2_twin(credential: str, scheme_id: str) -> str:
    phc = credential.removeprefix("argon2") if scheme_id == "django_argon2" else credential
    p = argon2.extract_parameters(phc)
    salt_b64 = phc.split("$")[-2]
    salt = base64.b64decode(salt_b64 + "=" * (-len(salt_b64) % 4))
    made = argon2.low_level.hash_secret(
        KNOWN_PASSWORD.encode(),
        salt,
        time_cost=p.time_cost,
        memory_cost=p.memory_cost,
        parallelism=p.parallelism,
        hash_len=p.hash_len,
        type=p.type,
        version=p.version,
    ).decode()
    return ("argon2" + made) if scheme_id == "django_argon2" else made


def _ldap_twin(credential: str, fresh: bytes) -> str:
    tag, body = credential.split("}", 1)
    raw = base64.b64decode(body)
    return tag + "}" + base64.b64encode(fresh + raw[len(fresh) :]).decode()


def _aspnet_twin(credential: str, fresh: bytes) -> str:
    raw = base64.b64decode(credential)
    return base64.b64encode(raw[: len(raw) - len(fresh)] + fresh).decode()


_SPECIAL = {
    **dict.fromkeys(
        ("ldap_salted_md5", "ldap_salted_sha1", "ldap_salted_sha256", "ldap_salted_sha512"),
        _ldap_twin,
    ),
    "aspnet_identity_v2": _aspnet_twin,
    "aspnet_identity_v3": _aspnet_twin,
}


def _b64pad(b: bytes) -> str:
    return base64.b64encode(b).decode()


_ENCODINGS = (
    (lambda b: b.decode("ascii"), lambda t: t.encode("ascii")),
    (lambda b: b.hex(), bytes.fromhex),
    (lambda b: b.hex().upper(), bytes.fromhex),
    (_b64pad, lambda t: base64.b64decode(t, validate=True)),
    (
        lambda b: _b64pad(b).rstrip("=").replace("+", "."),
        lambda t: base64.b64decode(t.replace(".", "+") + "=" * (-len(t) % 4), validate=True),
    ),
    (
        lambda b: _b64pad(b).rstrip("="),
        lambda t: base64.b64decode(t + "=" * (-len(t) % 4), validate=True),
    ),
)


def resolved_config(routed: Routed, keyring: Mapping[str, bytes | str] | None) -> dict[str, str]:
    """The group's file configuration with ``env:`` key references replaced by the key."""
    config = dict(routed.config)
    if routed.parts is not None and "hash-key" in config:
        raw = firebase_signer(keyring, routed.parts.key_id)
        if raw is not None:
            config["hash-key"] = base64.b64encode(raw).decode()
    return config


def group_passes(
    provider: Provider, routed: Routed, credential: str, keyring: Mapping[str, bytes | str] | None
) -> bool:
    """True when a known-password twin of ``credential`` exported like ``routed`` is accepted
    by the provider's independent verifier, and a wrong password is refused."""
    made = twin(credential, keyring)
    if made is None:
        return False
    exported = route(provider, made, keyring)
    if exported.route != routed.route or exported.config and exported.group[2:] != routed.group[2:]:
        return False
    config = resolved_config(exported, keyring)
    right = check(provider.name, exported.fields, config, KNOWN_PASSWORD)
    wrong = check(provider.name, exported.fields, config, KNOWN_PASSWORD + "x")
    return right and not wrong
