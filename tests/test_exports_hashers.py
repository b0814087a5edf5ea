"""The hashers the providers publish beyond the first nine encoders: Auth0's scrypt, hmac and
password encodings, Okta's PBKDF2, FusionAuth's salted and PBKDF2 schemes, Clerk's full list.

Each case is a known password hashed with the source scheme's algorithm (hashlib/hmac here, or
a vector made by the platform's own code), exported, and checked twice: by the export
self-test (what a run does before writing the group) and by the independent verifier that
follows the provider's published algorithm (sinks/exports/_check.py). A wrong password must be
refused too."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from authmigrate import credentials
from authmigrate.credentials._examples import KNOWN_ANSWERS
from authmigrate.sinks.exports import provider_named, route
from authmigrate.sinks.exports._check import check
from authmigrate.sinks.exports._selftest import group_passes, resolved_config
from authmigrate.sinks.exports.clerk import HASHERS

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "pässwort 42"


def known(scheme: str) -> tuple[str, Any, str]:
    """A platform-made vector of ``scheme``: (canonical credential, keyring, password)."""
    v = KNOWN_ANSWERS[scheme]
    imp = v["import"]
    cred = credentials.import_hash(
        scheme, v["stored"], salt=imp.get("salt"), **(imp.get("params") or {})
    )
    return cred, v["keyring"], v["password"]


def digest(value: bytes, salt: bytes | None = None, **params: Any) -> tuple[str, Any, str]:
    """A ``digest`` credential of ``value`` (computed by the caller with hashlib/hmac)."""
    salt_b64 = base64.b64encode(salt).decode() if salt else None
    cred = credentials.import_hash(
        "digest", value.hex(), salt=salt_b64, salt_encoding="base64", encoding="hex", **params
    )
    return cred, params.get("keyring"), PASSWORD


def _django_pbkdf2(name: str, rounds: int, salt: str) -> str:
    raw = hashlib.pbkdf2_hmac(name, PASSWORD.encode(), salt.encode(), rounds)
    return f"pbkdf2_{name}${rounds}${salt}${base64.b64encode(raw).decode()}"


PW = PASSWORD.encode()
SALT = b"\x00\x9fsalt\xff$"
MAC_KEY = {"mac1": "an-hmac-key-for-tests"}

CASES: list[tuple[str, str, tuple[str, Any, str], str]] = [
    # (provider, label, credential, what the provider's field must say)
    ("auth0", "scrypt passlib", known("scrypt"), "scrypt"),
    ("auth0", "scrypt django", known("django_scrypt"), "scrypt"),
    ("auth0", "scrypt werkzeug", known("werkzeug_scrypt"), "scrypt"),
    (
        "auth0",
        "hmac keyed with the salt",
        digest(
            hmac.new(SALT, PW, "sha256").digest(), SALT, algorithm="sha256", key_mode="hmac-salt"
        ),
        "hmac",
    ),
    (
        "auth0",
        "md5 of a latin-1 password",
        digest(
            hashlib.md5(PASSWORD.encode("latin-1")).digest(),
            algorithm="md5",
            password_encoding="latin-1",
        ),
        "md5",
    ),
    (
        "auth0",
        "sha1 of salt + UTF-16LE password",
        digest(
            hashlib.sha1(SALT + PASSWORD.encode("utf-16-le")).digest(),
            SALT,
            algorithm="sha1",
            salt_position="before",
            password_encoding="utf-16le",
        ),
        "sha1",
    ),
    ("auth0", "Devise bcrypt + pepper", known("devise_bcrypt"), "bcrypt"),
    (
        "okta",
        "pbkdf2-sha256 (Django, 4096 rounds)",
        (
            credentials.import_hash(
                "django_pbkdf2_sha256", _django_pbkdf2("sha256", 4096, "s4ltS4lt")
            ),
            None,
            PASSWORD,
        ),
        "PBKDF2",
    ),
    ("fusionauth", "Joomla md5(password + salt)", known("joomla"), "salted-md5"),
    (
        "fusionauth",
        "sha256(password + salt)",
        digest(hashlib.sha256(PW + SALT).digest(), SALT, algorithm="sha256", salt_position="after"),
        "salted-sha256",
    ),
    (
        "fusionauth",
        "hmac-sha256 keyed with the salt",
        digest(
            hmac.new(SALT, PW, "sha256").digest(), SALT, algorithm="sha256", key_mode="hmac-salt"
        ),
        "salted-hmac-sha256",
    ),
    (
        "fusionauth",
        "pbkdf2-sha512 64-byte key",
        known("pbkdf2_sha512"),
        "salted-pbkdf2-hmac-sha512-512",
    ),
    ("clerk", "pbkdf2_sha1 Django", known("django_pbkdf2_sha1"), "pbkdf2_sha1"),
    ("clerk", "pbkdf2_sha1 passlib (raw salt)", known("pbkdf2_sha1"), "pbkdf2_sha1"),
    ("clerk", "pbkdf2_sha512 passlib", known("pbkdf2_sha512"), "pbkdf2_sha512_hex"),
    ("clerk", "Devise bcrypt + pepper", known("devise_bcrypt"), "bcrypt_peppered"),
]


def _label(provider: str, fields: dict[str, Any]) -> str:
    if provider == "auth0":
        return str(fields["custom_password_hash"]["algorithm"])
    if provider == "okta":
        return str(fields["credentials"]["password"]["hash"]["algorithm"])
    if provider == "fusionauth":
        return str(fields["encryptionScheme"])
    return str(fields["password_hasher"])


@pytest.mark.parametrize(
    ("provider", "label", "case", "hasher"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_each_added_hasher_passes_the_self_test_and_the_providers_published_algorithm(
    provider: str, label: str, case: tuple[str, Any, str], hasher: str
) -> None:
    cred, keyring, password = case
    p = provider_named(provider)
    r = route(p, cred, keyring)
    assert r.route == "re-encoded", (label, r.reason)
    assert _label(provider, r.fields) == hasher
    config = resolved_config(r, keyring)
    assert check(provider, r.fields, config, password)
    assert not check(provider, r.fields, config, password + "x")
    assert group_passes(p, r, cred, keyring)  # the self-test a run does before writing


def test_auth0_hmac_with_a_keyring_key_writes_the_key_only_because_auth0_needs_it() -> None:
    key = MAC_KEY["mac1"].encode()
    cred, _, password = digest(
        hmac.new(key, PW, "sha512").digest(), algorithm="sha512", key_id="mac1"
    )
    r = route(provider_named("auth0"), cred, MAC_KEY)
    h = r.fields["custom_password_hash"]["hash"]
    assert (h["digest"], base64.b64decode(h["key"]["value"])) == ("sha512", key)
    assert check("auth0", r.fields, {}, password)
    assert group_passes(provider_named("auth0"), r, cred, MAC_KEY)
    # the other providers have no place for the key: none of them gets it
    for other in ("kratos", "firebase", "okta", "clerk", "fusionauth", "zitadel", "supabase"):
        assert route(provider_named(other), cred, MAC_KEY).route == "bridge", other
    # without the key in the keyring Auth0 cannot get it either: the bridge
    assert route(provider_named("auth0"), cred, {}).route == "bridge"


def test_auth0_scrypt_and_hmac_users_follow_the_published_schema() -> None:
    schema = json.loads((FIXTURES / "auth0_bulk_import_schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    auth0 = provider_named("auth0")
    for _, _, case, _ in (c for c in CASES if c[0] == "auth0"):
        r = route(auth0, case[0], case[1])
        from authmigrate.sinks.exports._model import Account

        validator.validate(auth0.user(Account(key=1, email="a@example.com"), r.fields))


def test_clerk_pbkdf2_sha1_survives_a_salt_that_looks_like_hex() -> None:
    # Clerk reads a four-part pbkdf2_sha1 salt as hex when it is valid hex, with a 32-byte key:
    # a Django salt such as "deadbeefcafe" written that way never verifies. The five-part form
    # (hex salt, explicit key length) does.
    cred = credentials.import_hash(
        "django_pbkdf2_sha1",
        "pbkdf2_sha1$1000$deadbeefcafe$"
        + base64.b64encode(hashlib.pbkdf2_hmac("sha1", PW, b"deadbeefcafe", 1000)).decode(),
    )
    r = route(provider_named("clerk"), cred)
    assert r.fields["password_digest"].count("$") == 4
    assert check("clerk", r.fields, {}, PASSWORD)
    assert group_passes(provider_named("clerk"), r, cred, None)


def test_okta_pbkdf2_needs_4096_rounds_else_the_hook() -> None:
    okta = provider_named("okta")
    weak = credentials.import_hash(
        "django_pbkdf2_sha256", _django_pbkdf2("sha256", 1000, "s4ltS4lt")
    )
    assert route(okta, weak).fields == {"credentials": {"password": {"hook": {"type": "default"}}}}
    sha1 = credentials.import_hash("django_pbkdf2_sha1", _django_pbkdf2("sha1", 5000, "s4lt"))
    assert route(okta, sha1).route == "bridge"  # Okta's PBKDF2 digests are SHA-256/512 only


def test_fusionauth_salted_md5_only_with_the_salt_after_the_password() -> None:
    # FusionAuth's salted-md5 is md5(password + salt): Django's md5(salt + password) is not it
    fa = provider_named("fusionauth")
    cred, _, _ = known("django_md5")
    assert route(fa, cred).route == "bridge"
    assert route(fa, known("joomla")[0]).route == "re-encoded"


def test_clerk_lists_the_22_hashers_clerk_publishes() -> None:
    published = json.loads((FIXTURES / "clerk_password_hashers.json").read_text())
    assert len(published["hashers"]) == 22
    assert sorted(HASHERS) == sorted(published["hashers"])


def test_clerk_salted_digests_stay_with_the_bridge_while_the_salt_position_is_unpublished() -> None:
    clerk = provider_named("clerk")
    cred, _, _ = known("django_md5")  # md5(salt + password)
    assert route(clerk, cred).route == "bridge"
