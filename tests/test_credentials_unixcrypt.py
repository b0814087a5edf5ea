"""Coverage a migration meets: LDAP {CRYPT}, yescrypt, DES crypt (issue 10, item 12).

The known answers themselves (yescrypt, DES, Joomla 3.2 {SHA256}, Drupal U$ over 512 bytes) are
in tests/vectors/crypt3.json and php_login.json, checked by test_credentials_vectors.py; this
file covers what a vector file cannot say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import authmigrate.credentials as creds
from authmigrate.credentials import unixcrypt
from authmigrate.errors import CredentialError, MalformedHashError, UnknownSchemeError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "crypt3.json").read_text("utf-8"))
YESCRYPT_REFERENCE = "$y$jD5.7$LdJMENpBABJJ3hIHjB1Bi.$HboGM6qPrsK.StKYGt6KErmUYtioHreJd98oIugoNB6"
"""The first $y$ hash of the yescrypt reference implementation's TESTS-OK ("pleaseletmein")."""


@pytest.mark.parametrize(
    "vector", VECTORS["ldap_crypt"], ids=[v["stored"][:12] for v in VECTORS["ldap_crypt"]]
)
def test_ldap_crypt_values_import_as_their_crypt_string_and_verify(vector: dict[str, Any]) -> None:
    stored = vector["stored"]
    assert creds.identify(stored) == "ldap_crypt"
    canonical = creds.import_hash("auto", stored)
    assert canonical == vector["canonical"]
    for check in vector["checks"]:
        assert creds.verify(check["password"], canonical) is check["ok"]
        assert creds.verify(check["password"], stored) is check["ok"]  # as stored, too
    wrapped = creds.wrap(stored, profile="TEST")
    for check in vector["checks"]:
        assert creds.verify(check["password"], wrapped) is check["ok"]


def test_an_ldap_crypt_value_with_something_else_inside_is_malformed() -> None:
    with pytest.raises(MalformedHashError):
        creds.import_hash("auto", "{CRYPT}{SSHA}abc")
    assert creds.verify("x", "{CRYPT}not-a-crypt-string") is False


def test_the_yescrypt_reference_vector_verifies() -> None:
    assert creds.identify(YESCRYPT_REFERENCE) == "yescrypt"
    assert creds.verify("pleaseletmein", YESCRYPT_REFERENCE)
    assert not creds.verify("pleaseletmeout", YESCRYPT_REFERENCE)
    ok, new = creds.verify_and_update("pleaseletmein", YESCRYPT_REFERENCE)
    assert ok and new is not None and new.startswith("$argon2id$")


def test_yescrypt_without_libxcrypt_is_credential_unsupported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fake: this machine has libxcrypt, and a host without it cannot be shown otherwise."""
    monkeypatch.setattr(unixcrypt, "_crypt_rn", lambda: None)
    with pytest.raises(CredentialError) as info:
        creds.import_hash("auto", YESCRYPT_REFERENCE)
    assert info.value.code == "credential.unsupported"
    assert "libxcrypt" in str(info.value)
    assert YESCRYPT_REFERENCE not in str(info.value)
    with pytest.raises(CredentialError) as info:
        creds.verify("pleaseletmein", YESCRYPT_REFERENCE)
    assert info.value.code == "credential.unsupported"
    out = creds.prepare_batch([(YESCRYPT_REFERENCE, None)], creds.CredentialPolicy())
    assert isinstance(out[0], CredentialError) and out[0].code == "credential.unsupported"


@pytest.mark.parametrize(
    "value",
    [
        "$y$jFT$saltsaltsaltsalt$" + "a" * 43,  # N=2^18, r=32: 1 GiB, over the memory bound
        "$y$jDT/Z$saltsaltsaltsalt$" + "a" * 43,  # 256 MiB with t=38: over the work budget
        "$y$jDTB$saltsaltsaltsalt$" + "a" * 43,  # ROM / hash-upgrade bits: never from crypt(3)
        "$y$j!T$saltsaltsaltsalt$" + "a" * 43,  # outside the alphabet
    ],
)
def test_yescrypt_parameters_over_the_bounds_are_refused_before_any_work(value: str) -> None:
    with pytest.raises(MalformedHashError):
        creds.import_hash("yescrypt", value)
    assert creds.verify("password", value) is False


def test_yescrypt_at_256_mib_with_one_extra_pass_is_admitted() -> None:
    value = "$y$jDT/.$saltsaltsaltsalt$" + "a" * 43  # N=2^16, r=32, t=1: about 0.57 s
    assert unixcrypt.yescrypt_params("yescrypt", "jDT/.") == (1 << 16, 32, 1, 1)
    assert creds.import_hash("yescrypt", value) == value


def test_des_crypt_reads_eight_characters_and_is_wrapped_by_default() -> None:
    stored = "abJnggxhB/yWI"  # crypt("password", "ab") of glibc and libxcrypt
    assert creds.identify(stored) == "des_crypt"
    assert creds.verify("password", stored)
    assert creds.verify("password-and-more", stored)  # as crypt(3) itself answers
    assert not creds.verify("passwor", stored)
    assert "des_crypt" in creds.default_weak()
    with pytest.raises(UnknownSchemeError):
        creds.identify("abJnggxhB/yW")  # 12 characters: not DES
