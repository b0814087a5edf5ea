"""Shop and CMS schemes (WordPress, Drupal 7, Magento 1/2, PrestaShop, OpenCart, Joomla,
Shopware 5) against vectors made by the platforms' own PHP code (tests/vectors/gen_php.php).

Each vector carries the platform's own answer for a right and some wrong passwords; the
schemes must give the same answers, recompute the digest from the stripped credential (what a
wrapped credential keeps), and refuse malformed variants with MalformedHashError.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path
from typing import Any

import argon2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import authmigrate.credentials as creds
from authmigrate.credentials import _base, shops
from authmigrate.errors import CredentialError, MalformedHashError, MissingKeyError

VECTORS = Path(__file__).parent / "vectors" / "php.json"
SHOP_SCHEMES = {
    "phpass",
    "wordpress_bcrypt",
    "drupal7",
    "magento1",
    "magento2",
    "prestashop",
    "opencart",
    "joomla",
    "shopware5_sha256",
    "shopware5_md5",
}


def _vectors() -> list[Any]:
    data = json.loads(VECTORS.read_text("utf-8"))["vectors"]
    return [
        pytest.param(v, id=f"{v['scheme']}-{i}")
        for i, v in enumerate(data)
        if v["scheme"] in SHOP_SCHEMES
    ]


VECTOR_PARAMS = _vectors()


def _import(vector: dict[str, Any]) -> str:
    imp = vector["import"]
    scheme = _base.get(vector["scheme"])
    return scheme.import_hash(vector["stored"], salt=imp.get("salt"), **imp.get("params", {}))


def _right(vector: dict[str, Any]) -> str:
    return next(c["password"] for c in vector["checks"] if c["ok"])


def test_every_shop_scheme_has_vectors() -> None:
    covered = {p.values[0]["scheme"] for p in VECTOR_PARAMS}
    assert covered == SHOP_SCHEMES


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_vector_is_identified_as_its_scheme(vector: dict[str, Any]) -> None:
    canonical = _import(vector)
    assert _base.get(vector["scheme"]).identify(canonical)
    # ...and no other registered scheme claims it first
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
    stored = scheme.stored_digest(canonical)
    assert scheme.digest(_right(vector), stripped, keyring) == stored
    assert scheme.digest(_right(vector), canonical, keyring) == stored
    assert scheme.strip_digest(stripped) == stripped


def _malformed_variants(canonical: str) -> list[str]:
    return [canonical + "x", "!" + canonical[1:], canonical[: len(canonical) // 2] + "#"]


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_malformed_variants_raise_malformed(vector: dict[str, Any]) -> None:
    scheme = _base.get(vector["scheme"])
    canonical = _import(vector)
    keyring = vector.get("keyring")
    assert not scheme.identify("!" + canonical[1:])
    for bad in _malformed_variants(canonical):
        with pytest.raises(MalformedHashError):
            scheme.verify(_right(vector), bad, keyring)
        with pytest.raises(MalformedHashError):
            scheme.stored_digest(bad)
    imp = vector["import"]
    with pytest.raises(MalformedHashError):
        scheme.import_hash(
            "!" + vector["stored"][1:], salt=imp.get("salt"), **imp.get("params", {})
        )


def test_wordpress_bcrypt_checks_like_wp_check_password() -> None:
    """wp_hash_password trims; wp_check_password does not; over 4096 bytes never verifies."""
    wp = _base.get("wordpress_bcrypt")
    # made by PHP in gen_php.php from ' spaced out '
    vector = next(
        p.values[0] for p in VECTOR_PARAMS if p.values[0]["checks"][0]["password"] == "spaced out"
    )
    assert wp.verify("spaced out", vector["stored"])
    assert not wp.verify(" spaced out ", vector["stored"])
    assert not wp.verify("x" * 4097, vector["stored"])


def test_phpass_digest_agrees_with_libpass() -> None:
    from passlib.hash import phpass

    scheme = _base.get("phpass")
    for secret in ("", "password", "pässwörd€" * 3):
        for ident in ("P", "H"):
            credential = phpass.using(rounds=9, salt="abcdefgh", ident=ident).hash(secret)
            assert scheme.digest(secret, credential) == scheme.stored_digest(credential)


def test_magento2_chain_recomputes_each_step_with_the_same_salt() -> None:
    salt = "ab"
    step0 = hashlib.md5((salt + "pw").encode()).hexdigest()
    step1 = hashlib.sha256((salt + step0).encode()).hexdigest()
    credential = f"{step1}:{salt}:0:1"
    assert _base.get("magento2").verify("pw", credential)
    assert not _base.get("magento2").verify("pw", f"{step1}:{salt}:1")


def test_magento1_reads_the_version_suffix_of_the_data_migration_tool() -> None:
    digest = hashlib.sha256(b"NaClpw").hexdigest()
    m1 = _base.get("magento1")
    canonical = m1.import_hash(f"{digest}:NaCl:1")
    assert canonical == m1.import_hash(f"{digest}:NaCl")
    assert m1.verify("pw", canonical)
    with pytest.raises(MalformedHashError):
        m1.import_hash(f"{digest}:NaCl:0")  # md5 version with a sha256-sized digest


def test_opencart_sha1_form_needs_its_salt_column() -> None:
    with pytest.raises(MalformedHashError):
        _base.get("opencart").import_hash("a" * 40)


def test_prestashop_import_needs_a_key_id() -> None:
    with pytest.raises(CredentialError) as info:
        _base.get("prestashop").import_hash("a" * 32)
    assert info.value.code == "credential.bad_params"


def test_unknown_import_parameters_are_refused() -> None:
    with pytest.raises(CredentialError) as info:
        _base.get("joomla").import_hash("a" * 32 + ":salt", algoritm="md5")
    assert info.value.code == "credential.bad_params"


KEYED = [p for p in VECTOR_PARAMS if p.values[0].get("keyring")]


@pytest.mark.parametrize("vector", KEYED)
def test_keys_never_appear_in_credentials_or_errors(vector: dict[str, Any]) -> None:
    scheme = _base.get(vector["scheme"])
    canonical = _import(vector)
    keys = list(vector["keyring"].values())
    assert all(key not in canonical and key not in scheme.strip_digest(canonical) for key in keys)
    with pytest.raises(MissingKeyError) as info:
        scheme.verify(_right(vector), canonical, {})
    for bad in _malformed_variants(canonical):
        with pytest.raises(MalformedHashError) as malformed:
            scheme.verify(_right(vector), bad, vector["keyring"])
        assert not any(key in str(malformed.value) for key in keys)
    assert not any(key in str(info.value) or key in repr(scheme) for key in keys)


def test_errors_never_quote_the_credential_or_password() -> None:
    secret_hash = "0123456789abcdef0123456789abcdef:secretsalt"
    for scheme_id in ("magento1", "joomla", "shopware5_md5"):
        with pytest.raises(CredentialError) as info:
            _base.get(scheme_id).verify("hunter2", "$" + scheme_id + "$" + secret_hash)
        assert "secretsalt" not in str(info.value) and "hunter2" not in str(info.value)


# -- parse/format round trips of the canonical forms --------------------------------------

SALT_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=":"), max_size=40
)
HEX32 = st.binary(min_size=16, max_size=16).map(bytes.hex)
HEX40 = st.binary(min_size=20, max_size=20).map(bytes.hex)
HEX64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
ITOA = st.text(alphabet=shops.ITOA64, min_size=8, max_size=8)


def _reassembled_phc(scheme_id: str, canonical: str) -> str:
    scheme = _base.get(scheme_id)
    return scheme.strip_digest(canonical) + "$" + scheme.stored_digest(canonical).hex()


@settings(max_examples=50, deadline=None)
@given(salt=SALT_TEXT, digest=st.one_of(HEX32, HEX64))
def test_magento1_round_trip(salt: str, digest: str) -> None:
    m1 = _base.get("magento1")
    canonical = m1.import_hash(f"{digest}:{salt}")
    assert m1.identify(canonical)
    assert _reassembled_phc("magento1", canonical) == canonical
    assert m1.import_hash(digest, salt=salt) == canonical


@settings(max_examples=50, deadline=None)
@given(salt=SALT_TEXT, digest=HEX32)
def test_joomla_round_trip(salt: str, digest: str) -> None:
    joomla = _base.get("joomla")
    canonical = joomla.import_hash(f"{digest}:{salt}")
    assert _reassembled_phc("joomla", canonical) == canonical


@settings(max_examples=50, deadline=None)
@given(
    salt=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=9),
    digest=HEX40,
    escaped=st.booleans(),
)
def test_opencart_round_trip(salt: str, digest: str, escaped: bool) -> None:
    oc = _base.get("opencart")
    canonical = oc.import_hash(digest, salt=salt, html_escaped=escaped)
    assert _reassembled_phc("opencart", canonical) == canonical


@settings(max_examples=50, deadline=None)
@given(key_id=st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True), digest=HEX32)
def test_prestashop_round_trip(key_id: str, digest: str) -> None:
    ps = _base.get("prestashop")
    canonical = ps.import_hash(digest, key_id=key_id)
    assert canonical == f"$prestashop$k={key_id}${digest}"
    assert _reassembled_phc("prestashop", canonical) == canonical


@settings(max_examples=50, deadline=None)
@given(salt=SALT_TEXT, digest=HEX32, backend=st.booleans())
def test_shopware5_md5_round_trip(salt: str, digest: str, backend: bool) -> None:
    sw = _base.get("shopware5_md5")
    value = digest if backend else f"{digest}:{salt}"
    canonical = sw.import_hash(value, variant="backend" if backend else "customer")
    assert _reassembled_phc("shopware5_md5", canonical) == canonical


@settings(max_examples=50, deadline=None)
@given(
    iterations=st.integers(0, 5000),
    salt=st.text(alphabet=string.ascii_letters + "./=", min_size=1, max_size=30),
    digest=HEX64,
)
def test_shopware5_sha256_round_trip(iterations: int, salt: str, digest: str) -> None:
    sw = _base.get("shopware5_sha256")
    canonical = f"{iterations}:{salt}:{digest}"
    assert sw.import_hash(canonical) == canonical
    assert sw.strip_digest(canonical) + sw.stored_digest(canonical).hex() == canonical


M2_VERSION = st.sampled_from(["0", "1", "2", "3_32_2_67108864", "3_16_1_65536"])


@settings(max_examples=50, deadline=None)
@given(
    salt=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=32),
    versions=st.lists(M2_VERSION, min_size=1, max_size=4),
    data=st.data(),
)
def test_magento2_round_trip(salt: str, versions: list[str], data: st.DataObject) -> None:
    last = versions[-1]
    size = {"0": 16, "1": 32}.get(last, int(last.split("_")[1]) if "_" in last else 32)
    digest = data.draw(st.binary(min_size=size, max_size=size)).hex()
    m2 = _base.get("magento2")
    canonical = f"{digest}:{salt}:{':'.join(versions)}"
    assert m2.identify(canonical)
    assert m2.stored_digest(canonical).hex() + m2.strip_digest(canonical) == canonical


@settings(max_examples=30, deadline=None)
@given(
    log2=st.integers(7, 20),  # MIN..MAX_PHPASS_LOG2,
    salt=ITOA,
    checksum=st.text(alphabet=shops.ITOA64, min_size=22, max_size=22),
)
def test_phpass_and_drupal_round_trip(log2: int, salt: str, checksum: str) -> None:
    setting = "$P$" + shops.ITOA64[log2] + salt
    phpass = _base.get("phpass")
    assert (
        phpass.strip_digest(setting + checksum) + phpass.stored_digest(setting + checksum).decode()
        == setting + checksum
    )
    drupal = _base.get("drupal7")
    credential = "U" + setting + checksum
    assert drupal.identify(credential)
    assert drupal.strip_digest(credential) + drupal.stored_digest(credential).decode() == credential


# -- through the public API: wrap, verify, verify_and_update ------------------------------


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
