"""The declarative plain-digest scheme ``digest``, against digests made by PHP one-liners of
home-grown shops (tests/vectors/gen_php.php), plus property tests of its canonical form."""

from __future__ import annotations

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
from authmigrate.credentials import digest as dg
from authmigrate.errors import (
    CredentialError,
    MalformedHashError,
    MissingKeyError,
    UnknownSchemeError,
)

VECTORS = Path(__file__).parent / "vectors" / "php.json"
SCHEME = _base.get("digest")


def _vectors() -> list[Any]:
    data = json.loads(VECTORS.read_text("utf-8"))["vectors"]
    return [
        pytest.param(v, id=f"{i}-{v['source'][5:40]}")
        for i, v in enumerate(data)
        if v["scheme"] == "digest"
    ]


VECTOR_PARAMS = _vectors()


def _import(vector: dict[str, Any]) -> str:
    imp = vector["import"]
    return SCHEME.import_hash(vector["stored"], salt=imp.get("salt"), **imp.get("params", {}))


def _right(vector: dict[str, Any]) -> str:
    return next(c["password"] for c in vector["checks"] if c["ok"])


def test_vectors_cover_every_descriptor_feature() -> None:
    canonicals = " ".join(_import(p.values[0]) for p in VECTOR_PARAMS)
    for feature in ("a=md5", "a=sha1", "a=sha256", "a=sha512", "e=hex", "e=hexu", "e=b64",
                    "s=before", "s=after", "f=", "m=hmac$", "m=pepper", "m=hmac-salt",
                    "p=latin1", "p=utf16le", "i=2", "c=raw"):  # fmt: skip
        assert feature in canonicals, feature


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_vector_is_identified_and_gives_phps_answers(vector: dict[str, Any]) -> None:
    canonical = _import(vector)
    assert SCHEME.identify(canonical)
    assert creds.identify(canonical) == "digest"
    for check in vector["checks"]:
        got = SCHEME.verify(check["password"], canonical, vector.get("keyring"))
        assert got is check["ok"], (vector["source"], repr(check["password"]))


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_digest_is_recomputed_from_the_stripped_credential(vector: dict[str, Any]) -> None:
    canonical = _import(vector)
    stripped = SCHEME.strip_digest(canonical)
    keyring = vector.get("keyring")
    assert SCHEME.digest(_right(vector), stripped, keyring) == SCHEME.stored_digest(canonical)


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_malformed_variants_raise_malformed(vector: dict[str, Any]) -> None:
    canonical = _import(vector)
    params, _, rest = canonical.rpartition("$")
    for bad in (canonical + "x", params + "$" + rest[:-2], canonical.replace("$a=", "$a=md4")):
        with pytest.raises(MalformedHashError):
            SCHEME.verify(_right(vector), bad, vector.get("keyring"))
    imp = vector["import"]
    with pytest.raises(MalformedHashError):
        SCHEME.import_hash("!" + vector["stored"][1:], salt=imp.get("salt"), **imp["params"])


def test_bare_hex_is_never_identified_but_imports_with_the_scheme_named() -> None:
    bare = hashlib.md5(b"password").hexdigest()
    assert not SCHEME.identify(bare)
    with pytest.raises(UnknownSchemeError):
        creds.identify(bare)
    canonical = creds.import_hash("digest", bare, algorithm="md5")
    assert canonical == "$digest$a=md5,e=hex$$" + bare
    assert creds.verify("password", canonical)


def test_a_password_the_encoding_cannot_hold_does_not_verify() -> None:
    value = hashlib.md5("caf\u00e9".encode("latin-1")).hexdigest()
    canonical = SCHEME.import_hash(value, algorithm="md5", password_encoding="latin-1")
    assert SCHEME.verify("caf\u00e9", canonical)
    assert not SCHEME.verify("caf\u20ac", canonical)


@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "md4"},
        {"algorithm": "md5", "encoding": "base32"},
        {"algorithm": "md5", "key_mode": "pepper"},
        {"algorithm": "md5", "template": "{salt}{password}{pepper}"},
        {"algorithm": "md5", "template": "{password}{password}"},
        {"algorithm": "md5", "template": "{passwd}"},
        {"algorithm": "md5", "iterations": 0},
        {"algorithm": "md5", "salt_position": "middle"},
        {"algorithm": "md5", "pepper": "inline secrets are refused"},
    ],
)
def test_inconsistent_descriptors_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(CredentialError) as info:
        SCHEME.import_hash(hashlib.md5(b"x").hexdigest(), **params)
    assert info.value.code == "credential.bad_params"
    assert "inline secrets" not in str(info.value)


def test_a_salt_without_a_position_is_refused() -> None:
    with pytest.raises(CredentialError):
        SCHEME.import_hash(hashlib.md5(b"x").hexdigest(), salt="s", algorithm="md5")


def test_keys_never_appear_in_credentials_or_errors() -> None:
    key = "Sup3r-Secret-Pepper"
    value = hashlib.sha256(b"pw" + key.encode()).hexdigest()
    canonical = SCHEME.import_hash(value, algorithm="sha256", key_id="pep", key_mode="pepper")
    assert key not in canonical and "k=pep" in canonical
    assert SCHEME.verify("pw", canonical, {"pep": key})
    with pytest.raises(MissingKeyError) as info:
        SCHEME.verify("pw", canonical, {"other": key})
    assert key not in str(info.value) and "pw" not in str(info.value).replace("pep", "")
    wrapped = creds.wrap(canonical, profile="TEST")
    assert key not in wrapped
    assert creds.verify("pw", wrapped, keyring={"pep": key})


# -- parse/format round trip ---------------------------------------------------------------

TOKENS = st.lists(
    st.one_of(st.sampled_from(["salt", "pepper"]), st.binary(min_size=1, max_size=4)),
    max_size=4,
)


@st.composite
def descriptors(draw: st.DrawFn) -> dg.Descriptor:
    algorithm = draw(st.sampled_from(sorted(dg.ALGORITHMS)))
    tokens = draw(TOKENS)
    position = draw(st.integers(0, len(tokens)))
    template = tuple(t for t in tokens if t != "pepper")
    template = (*template[:position], "password", *template[position:])
    pepper = draw(st.booleans())
    key_mode: str | None
    if pepper:
        template = (*template, "pepper")
        key_mode = "pepper"
    else:
        key_mode = draw(st.sampled_from([None, "hmac", "hmac-salt"]))
    key_id = None
    if key_mode in ("hmac", "pepper"):
        key_id = draw(st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True))
    return dg.Descriptor(
        algorithm=algorithm,
        encoding=draw(st.sampled_from(dg.ENCODINGS)),
        template=template,
        key_id=key_id,
        key_mode=key_mode,
        password_encoding=draw(st.sampled_from(sorted(dg.PASSWORD_ENCODINGS))),
        iterations=draw(st.integers(1, 5)),
        raw_chain=draw(st.booleans()),
    ).check()


@settings(max_examples=200, deadline=None)
@given(d=descriptors(), data=st.data())
def test_canonical_form_round_trips(d: dg.Descriptor, data: st.DataObject) -> None:
    salt = data.draw(st.binary(max_size=24)) if d.uses_salt() else b""
    size = dg.ALGORITHMS[d.algorithm]
    raw = data.draw(st.binary(min_size=size, max_size=size))
    canonical = dg.format_credential(d, salt, raw)
    assert dg.parse_credential(canonical) == (d, salt, raw)
    assert SCHEME.identify(canonical)
    stripped = SCHEME.strip_digest(canonical)
    assert dg.parse_credential(stripped) == (d, salt, None)
    assert SCHEME.stored_digest(canonical) == raw


@settings(max_examples=100, deadline=None)
@given(
    password=st.text(max_size=20),
    salt=st.text(min_size=1, max_size=10),
    algorithm=st.sampled_from(sorted(dg.ALGORITHMS)),
    position=st.sampled_from(["before", "after"]),
)
def test_import_of_a_computed_digest_verifies(
    password: str, salt: str, algorithm: str, position: str
) -> None:
    message = salt + password if position == "before" else password + salt
    value = hashlib.new(algorithm, message.encode()).hexdigest()
    canonical = SCHEME.import_hash(value, salt=salt, algorithm=algorithm, salt_position=position)
    assert SCHEME.verify(password, canonical)
    assert SCHEME.import_hash(value.upper(), salt=salt, algorithm=algorithm,
                              salt_position=position) == canonical  # fmt: skip


# -- through the public API ----------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTOR_PARAMS[:4] + VECTOR_PARAMS[7:9])
def test_wrap_then_verify_and_upgrade_through_the_public_api(vector: dict[str, Any]) -> None:
    canonical = _import(vector)
    keyring = vector.get("keyring")
    right = _right(vector)
    wrapped = creds.wrap(canonical, keyring=keyring, profile="TEST")
    for check in vector["checks"]:
        assert creds.verify(check["password"], wrapped, keyring=keyring) is check["ok"]
    ok, new = creds.verify_and_update(right, wrapped, keyring=keyring, profile="TEST")
    assert ok and new is not None
    assert argon2.PasswordHasher().verify(new, right)
    ok, new = creds.verify_and_update(right, canonical, keyring=keyring, profile="TEST")
    assert ok and new is not None and argon2.PasswordHasher().verify(new, right)
