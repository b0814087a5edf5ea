"""Identity-provider and server schemes: Firebase's modified scrypt (vectors from the npm
package firebase-scrypt), LDAP digests (OpenLDAP's slappasswd), MySQL ``PASSWORD()`` (MariaDB)
and PostgreSQL md5 role passwords (the PostgreSQL server's own login check)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import argon2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import authmigrate.credentials as creds
from authmigrate.credentials import _base
from authmigrate.errors import CredentialError, MalformedHashError, MissingKeyError

VECTOR_DIR = Path(__file__).parent / "vectors"
FILES = ("firebase.json", "ldap.json", "servers.json")
IDP_SCHEMES = {
    "firebase_scrypt",
    "ldap_md5",
    "ldap_sha1",
    "ldap_salted_md5",
    "ldap_salted_sha1",
    "ldap_salted_sha256",
    "ldap_salted_sha512",
    "mysql41",
    "postgres_md5",
}


def _vectors() -> list[Any]:
    out = []
    for name in FILES:
        for i, v in enumerate(json.loads((VECTOR_DIR / name).read_text("utf-8"))["vectors"]):
            out.append(pytest.param(v, id=f"{v['scheme']}-{i}"))
    return out


VECTOR_PARAMS = _vectors()


def _import(vector: dict[str, Any]) -> str:
    imp = vector["import"]
    scheme = _base.get(vector["scheme"])
    return scheme.import_hash(vector["stored"], salt=imp.get("salt"), **imp.get("params", {}))


def _right(vector: dict[str, Any]) -> str:
    return next(c["password"] for c in vector["checks"] if c["ok"])


def test_every_idp_scheme_has_vectors() -> None:
    assert {p.values[0]["scheme"] for p in VECTOR_PARAMS} == IDP_SCHEMES


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_vector_is_identified_as_its_scheme(vector: dict[str, Any]) -> None:
    canonical = _import(vector)
    assert _base.get(vector["scheme"]).identify(canonical)
    assert creds.identify(canonical) == vector["scheme"]


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_scheme_gives_the_platforms_own_answers(vector: dict[str, Any]) -> None:
    scheme = _base.get(vector["scheme"])
    canonical = _import(vector)
    for check in vector["checks"]:
        got = scheme.verify(check["password"], canonical, vector.get("keyring"))
        assert got is check["ok"], (vector["source"], repr(check["password"]))


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_digest_is_recomputed_from_the_stripped_credential(vector: dict[str, Any]) -> None:
    scheme = _base.get(vector["scheme"])
    canonical = _import(vector)
    stripped = scheme.strip_digest(canonical)
    assert stripped != canonical
    keyring = vector.get("keyring")
    assert scheme.digest(_right(vector), stripped, keyring) == scheme.stored_digest(canonical)


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_malformed_variants_raise_malformed(vector: dict[str, Any]) -> None:
    scheme = _base.get(vector["scheme"])
    canonical = _import(vector)
    keyring = vector.get("keyring")
    for bad in (canonical + "!", canonical[: len(canonical) // 2] + "#", canonical + "AAAA="):
        with pytest.raises(MalformedHashError):
            scheme.verify(_right(vector), bad, keyring)
        with pytest.raises(MalformedHashError):
            scheme.stored_digest(bad)
    imp = vector["import"]
    with pytest.raises(MalformedHashError):
        scheme.import_hash(vector["stored"] + "!", salt=imp.get("salt"), **imp.get("params", {}))


def test_firebase_documented_example_verifies() -> None:
    """The example of Firebase's own docs for importing scrypt users (firebase/scrypt README)."""
    fb = _base.get("firebase_scrypt")
    canonical = fb.import_hash(
        "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==",
        salt="42xEC+ixf3L2lw==",
        key_id="project",
        rounds=8,
        mem_cost=14,
        salt_separator="Bw==",
    )
    key = "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="
    assert canonical.startswith("$firebase-scrypt$k=project,m=14,r=8,s=Bw$42xEC+ixf3L2lw$")
    assert fb.verify("user1password", canonical, {"project": key})
    assert fb.verify("user1password", canonical, {"project": base64.b64decode(key)})
    assert not fb.verify("user2password", canonical, {"project": key})


def test_firebase_signer_key_never_appears_and_is_required() -> None:
    vector = next(p.values[0] for p in VECTOR_PARAMS if p.values[0]["scheme"] == "firebase_scrypt")
    fb = _base.get("firebase_scrypt")
    canonical = _import(vector)
    key = vector["keyring"]["fb_project"]
    raw_key_b64 = base64.b64encode(base64.b64decode(key)).decode().rstrip("=")
    assert key not in canonical and raw_key_b64 not in canonical
    with pytest.raises(MissingKeyError) as info:
        fb.verify(_right(vector), canonical, {})
    assert key not in str(info.value)
    wrapped = creds.wrap(canonical, profile="TEST")
    assert key not in wrapped and raw_key_b64 not in wrapped


def test_firebase_import_accepts_url_safe_base64_from_list_users() -> None:
    vector = next(p.values[0] for p in VECTOR_PARAMS if p.values[0]["scheme"] == "firebase_scrypt")
    imp = vector["import"]
    url_safe = vector["stored"].replace("+", "-").replace("/", "_").rstrip("=")
    salt = imp["salt"].replace("+", "-").replace("/", "_")
    fb = _base.get("firebase_scrypt")
    assert fb.import_hash(url_safe, salt=salt, **imp["params"]) == _import(vector)


def test_firebase_import_needs_the_project_parameters() -> None:
    with pytest.raises(CredentialError) as info:
        _base.get("firebase_scrypt").import_hash("AAAA", salt="AAAA", key_id="fb")
    assert info.value.code == "credential.bad_params"


def test_postgres_md5_needs_the_role_name_and_never_claims_a_bare_value() -> None:
    pg = _base.get("postgres_md5")
    bare = "md5" + hashlib.md5(b"pwalice").hexdigest()
    assert not pg.identify(bare)
    with pytest.raises(CredentialError):
        pg.import_hash(bare)
    canonical = pg.import_hash(bare, username="alice")
    assert canonical == "$postgres-md5$YWxpY2U$" + bare[3:]
    assert pg.verify("pw", canonical)


def test_ldap_prefix_is_case_insensitive_on_import() -> None:
    sha = _base.get("ldap_salted_sha1")
    raw = hashlib.sha1(b"pwsalt").digest() + b"salt"
    stored = "{ssha}" + base64.b64encode(raw).decode()
    canonical = sha.import_hash(stored)
    assert canonical.startswith("{SSHA}") and sha.verify("pw", canonical)


def test_ldap_and_mysql_canonical_forms_verify_with_libpass() -> None:
    """Standard forms stay standard: another library verifies them directly."""
    from passlib.hash import ldap_salted_sha1, mysql41

    for p in VECTOR_PARAMS:
        vector = p.values[0]
        handler = {"ldap_salted_sha1": ldap_salted_sha1, "mysql41": mysql41}.get(vector["scheme"])
        if handler is not None:
            assert handler.verify(_right(vector), _import(vector))


# -- parse/format round trips --------------------------------------------------------------

B64_BYTES = st.binary(min_size=1, max_size=32)


@settings(max_examples=100, deadline=None)
@given(
    key_id=st.from_regex(r"[A-Za-z0-9_.\-]{1,16}", fullmatch=True),
    rounds=st.integers(1, 16),
    mem_cost=st.integers(1, 16),
    separator=st.binary(max_size=4),
    salt=B64_BYTES,
    digest=st.binary(min_size=1, max_size=64),
)
def test_firebase_round_trip(
    key_id: str, rounds: int, mem_cost: int, separator: bytes, salt: bytes, digest: bytes
) -> None:
    fb = _base.get("firebase_scrypt")
    canonical = fb.import_hash(
        base64.b64encode(digest).decode(),
        salt=base64.b64encode(salt).decode(),
        key_id=key_id,
        rounds=rounds,
        mem_cost=mem_cost,
        salt_separator=base64.b64encode(separator).decode(),
    )
    assert fb.identify(canonical)
    assert fb.stored_digest(canonical) == digest
    stripped = fb.strip_digest(canonical)
    assert stripped + "$" + base64.b64encode(digest).decode().rstrip("=") == canonical


@settings(max_examples=100, deadline=None)
@given(username=st.text(min_size=1, max_size=40), digest=st.binary(min_size=16, max_size=16))
def test_postgres_md5_round_trip(username: str, digest: bytes) -> None:
    pg = _base.get("postgres_md5")
    canonical = pg.import_hash("md5" + digest.hex(), username=username)
    assert pg.strip_digest(canonical) + "$" + pg.stored_digest(canonical).hex() == canonical


LDAP = st.sampled_from(
    [
        ("ldap_md5", "{MD5}", 16, False),
        ("ldap_sha1", "{SHA}", 20, False),
        ("ldap_salted_md5", "{SMD5}", 16, True),
        ("ldap_salted_sha1", "{SSHA}", 20, True),
        ("ldap_salted_sha256", "{SSHA256}", 32, True),
        ("ldap_salted_sha512", "{SSHA512}", 64, True),
    ]
)


@settings(max_examples=100, deadline=None)
@given(spec=LDAP, data=st.data())
def test_ldap_round_trip(spec: tuple[str, str, int, bool], data: st.DataObject) -> None:
    scheme_id, prefix, size, salted = spec
    digest = data.draw(st.binary(min_size=size, max_size=size))
    salt = data.draw(st.binary(min_size=1, max_size=16)) if salted else b""
    canonical = prefix + base64.b64encode(digest + salt).decode()
    scheme = _base.get(scheme_id)
    assert creds.identify(canonical) == scheme_id
    assert scheme.import_hash(canonical) == canonical
    assert scheme.stored_digest(canonical) == digest
    stripped = scheme.strip_digest(canonical)
    assert (
        scheme.digest("pw", stripped)
        == hashlib.new(scheme_id.split("_")[-1], b"pw" + salt).digest()
    )


@settings(max_examples=50, deadline=None)
@given(digest=st.binary(min_size=20, max_size=20))
def test_mysql41_round_trip(digest: bytes) -> None:
    my = _base.get("mysql41")
    canonical = my.import_hash("*" + digest.hex())
    assert canonical == "*" + digest.hex().upper()
    assert my.strip_digest(canonical) + my.stored_digest(canonical).hex().upper() == canonical


# -- through the public API ----------------------------------------------------------------


def _one_vector_per_scheme() -> list[Any]:
    seen: dict[str, Any] = {}
    for p in VECTOR_PARAMS:
        seen.setdefault(p.values[0]["scheme"], p)
    return list(seen.values())


@pytest.mark.parametrize("vector", _one_vector_per_scheme())
def test_wrap_then_verify_and_upgrade_through_the_public_api(vector: dict[str, Any]) -> None:
    canonical = _import(vector)
    keyring = vector.get("keyring")
    right = _right(vector)
    assert creds.verify(right, canonical, keyring=keyring)
    wrapped = creds.wrap(canonical, keyring=keyring, profile="TEST")
    for check in vector["checks"]:
        assert creds.verify(check["password"], wrapped, keyring=keyring) is check["ok"]
    ok, new = creds.verify_and_update(right, wrapped, keyring=keyring, profile="TEST")
    assert ok and new is not None
    assert argon2.PasswordHasher().verify(new, right)
    assert creds.verify_and_update("wrong", canonical, keyring=keyring) == (False, None)
