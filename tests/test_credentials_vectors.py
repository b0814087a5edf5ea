"""Every known-answer vector under tests/vectors/, made by each platform's own code.

For each vector: the import gives a canonical credential identified as the vector's scheme,
the platform's own answers (right password verifies, wrong ones do not) are reproduced, the
wrapped credential answers the same, and verify_and_update upgrades to an argon2id string
that argon2-cffi itself accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import argon2
import pytest

import authmigrate.credentials as creds
from authmigrate.errors import CredentialError

VECTORS = Path(__file__).parent / "vectors"
NOT_WRAPPABLE = {"argon2id", "argon2i", "django_argon2"}


def _load() -> list[Any]:
    params = []
    for path in sorted(VECTORS.glob("*.json")):
        for i, vector in enumerate(json.loads(path.read_text("utf-8"))["vectors"]):
            params.append(pytest.param(vector, id=f"{path.stem}-{vector['scheme']}-{i}"))
    return params


ALL = _load()


def _canonical(vector: dict[str, Any]) -> str:
    imp = vector.get("import") or {}
    return creds.import_hash(
        vector["scheme"], vector["stored"], salt=imp.get("salt"), **(imp.get("params") or {})
    )


def _keyring(vector: dict[str, Any]) -> dict[str, str] | None:
    return vector.get("keyring")


@pytest.mark.parametrize("vector", ALL)
def test_import_gives_a_credential_identified_as_the_vectors_scheme(vector: dict[str, Any]) -> None:
    canonical = _canonical(vector)
    assert creds.identify(canonical) == vector["scheme"]
    if "canonical" in vector:
        assert canonical == vector["canonical"]


@pytest.mark.parametrize("vector", ALL)
def test_verify_gives_the_platforms_own_answers(vector: dict[str, Any]) -> None:
    canonical = _canonical(vector)
    for check in vector["checks"]:
        got = creds.verify(check["password"], canonical, keyring=_keyring(vector))
        assert got is check["ok"], repr(check["password"])


@pytest.mark.parametrize("vector", ALL)
def test_wrapped_credential_gives_the_same_answers(vector: dict[str, Any]) -> None:
    canonical = _canonical(vector)
    if vector["scheme"] in NOT_WRAPPABLE:
        with pytest.raises(CredentialError) as info:
            creds.wrap(canonical, profile="TEST")
        assert info.value.code == "credential.not_wrappable"
        return
    wrapped = creds.wrap(canonical, profile="TEST")
    assert creds.identify(wrapped) == "wrap"
    assert creds.needs_update(wrapped)
    for check in vector["checks"]:
        got = creds.verify(check["password"], wrapped, keyring=_keyring(vector))
        assert got is check["ok"], repr(check["password"])


@pytest.mark.parametrize("vector", ALL)
def test_verify_and_update_yields_argon2id_that_argon2_cffi_accepts(
    vector: dict[str, Any],
) -> None:
    canonical = _canonical(vector)
    candidates = [canonical]
    if vector["scheme"] not in NOT_WRAPPABLE:
        candidates.append(creds.wrap(canonical, profile="TEST"))
    right = next(c["password"] for c in vector["checks"] if c["ok"])
    for credential in candidates:
        ok, new = creds.verify_and_update(
            right, credential, keyring=_keyring(vector), profile="TEST"
        )
        assert ok
        if not creds.needs_update(credential, profile="TEST"):
            assert new is None  # already argon2id with exactly these parameters
            continue
        assert new is not None
        assert new.startswith("$argon2id$")
        assert argon2.PasswordHasher().verify(new, right)
        assert not creds.needs_update(new, profile="TEST")
        assert creds.verify_and_update(
            "not the password", credential, keyring=_keyring(vector)
        ) == (
            False,
            None,
        )
