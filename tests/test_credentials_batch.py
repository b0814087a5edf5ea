"""prepare_batch: the pipeline's one call per batch, and its policies."""

from __future__ import annotations

import hashlib

import argon2
import pytest

import authmigrate.credentials as creds
from authmigrate.errors import CredentialError

BCRYPT = "$2a$04$abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG"


def md5_django(password: str, salt: str = "s4lt") -> str:
    return f"md5${salt}${hashlib.md5((salt + password).encode()).hexdigest()}"


ITEMS: list[tuple[str | None, str | None]] = [
    (md5_django("pw0"), None),
    ("garbage", None),
    (None, None),
    (BCRYPT, None),
    ("$2b$04$broken", None),
    (md5_django("pw5"), None),
]


def test_keep_returns_canonical_credentials_and_per_item_errors_in_order() -> None:
    out = creds.prepare_batch(ITEMS, creds.CredentialPolicy(policy="keep"))
    assert len(out) == len(ITEMS)
    assert isinstance(out[0], creds.Prepared) and out[0].segment == "kept"
    assert out[0].credential == ITEMS[0][0] and out[0].scheme == "django_md5"
    assert isinstance(out[1], CredentialError) and out[1].code == "credential.unrecognized"
    assert isinstance(out[2], CredentialError) and out[2].code == "credential.missing"
    assert isinstance(out[3], creds.Prepared) and out[3].scheme == "bcrypt"
    assert isinstance(out[4], CredentialError) and out[4].code == "credential.unrecognized"
    assert isinstance(out[5], creds.Prepared)


def test_errors_carry_no_traceback_that_would_keep_row_values_alive() -> None:
    out = creds.prepare_batch(ITEMS, creds.CredentialPolicy(policy="keep"))
    errors = [o for o in out if isinstance(o, CredentialError)]
    assert errors and all(e.__traceback__ is None and e.__context__ is None for e in errors)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_wrap_wraps_weak_schemes_only_and_every_wrap_verifies(workers: int) -> None:
    items = [(md5_django(f"pw{i}"), None) for i in range(12)] + [(BCRYPT, None)]
    out = creds.prepare_batch(
        items, creds.CredentialPolicy(policy="wrap", profile="TEST"), workers=workers
    )
    for i, prepared in enumerate(out[:12]):
        assert isinstance(prepared, creds.Prepared)
        assert prepared.segment == "wrapped" and prepared.scheme == "django_md5"
        assert prepared.credential is not None and prepared.credential.startswith("$wrap$")
        assert creds.verify(f"pw{i}", prepared.credential)
        assert not creds.verify(f"pw{i + 1}", prepared.credential)
    last = out[12]
    assert isinstance(last, creds.Prepared) and last.segment == "kept"
    assert last.credential == BCRYPT


def test_wrap_follows_the_specs_weak_list_when_given() -> None:
    policy = creds.CredentialPolicy(policy="wrap", weak=frozenset({"bcrypt"}), profile="TEST")
    out = creds.prepare_batch([(md5_django("a"), None), (BCRYPT, None)], policy)
    assert [p.segment for p in out if isinstance(p, creds.Prepared)] == ["kept", "wrapped"]


def test_wrap_uses_owasp_parameters_by_default() -> None:
    out = creds.prepare_batch([(md5_django("a"), None)], creds.CredentialPolicy(policy="wrap"))
    assert isinstance(out[0], creds.Prepared) and out[0].credential is not None
    assert "$argon2id$v=19$m=19456,t=2,p=1$" in out[0].credential


def test_reset_carries_no_credential_and_rejects_nothing() -> None:
    out = creds.prepare_batch(ITEMS, creds.CredentialPolicy(policy="reset"))
    assert all(isinstance(p, creds.Prepared) for p in out)
    assert all(p.credential is None and p.segment == "reset" for p in out)  # type: ignore[union-attr]
    assert out[0].scheme == "django_md5"  # type: ignore[union-attr]
    assert out[1].scheme == "unknown"  # type: ignore[union-attr]


def test_named_scheme_and_params_reach_import_hash() -> None:
    peppered = creds.prepare_batch(
        [(BCRYPT, None)],
        creds.CredentialPolicy(scheme="devise_bcrypt", params={"key_id": "devise_pepper"}),
    )[0]
    assert isinstance(peppered, creds.Prepared) and peppered.scheme == "devise_bcrypt"
    assert peppered.credential == "$devise-bcrypt$k=devise_pepper" + BCRYPT
    salted = creds.prepare_batch(
        [("ab" * 64, "saltcolumn")], creds.CredentialPolicy(scheme="authlogic_sha512")
    )[0]
    assert isinstance(salted, creds.Prepared) and salted.scheme == "authlogic_sha512"


def test_a_wrapped_batch_item_upgrades_on_login() -> None:
    out = creds.prepare_batch(
        [(md5_django("secret"), None)], creds.CredentialPolicy(policy="wrap", profile="TEST")
    )
    wrapped = out[0].credential  # type: ignore[union-attr]
    ok, new = creds.verify_and_update("secret", wrapped)
    assert ok and new is not None and argon2.PasswordHasher().verify(new, "secret")


@pytest.mark.parametrize("bad", [{"policy": "drop"}, {"profile": "NOPE"}])
def test_a_bad_policy_is_refused_when_built(bad: dict[str, str]) -> None:
    with pytest.raises(CredentialError):
        creds.CredentialPolicy(**bad)  # type: ignore[arg-type]
