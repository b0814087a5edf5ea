"""The public credential API: identification, errors, upgrade decisions, timing, secrecy."""

from __future__ import annotations

import hashlib
import statistics
import time

import argon2
import pytest

import authmigrate.credentials as creds
from authmigrate.errors import (
    CredentialError,
    MalformedHashError,
    MissingKeyError,
    UnknownSchemeError,
)

MD5_CRYPT = "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"  # well-formed md5_crypt; password unknown
DJANGO_MD5 = "md5$seasalt$" + hashlib.md5(b"seasaltpassword").hexdigest()
SECRET = "hunter2-SECRET-marker"


def test_every_scheme_has_an_id_a_description_and_a_weak_flag() -> None:
    infos = creds.schemes()
    ids = [info.id for info in infos]
    assert len(ids) == len(set(ids))
    for expected in [
        "argon2id", "argon2i", "bcrypt", "scrypt", "pbkdf2_sha1", "pbkdf2_sha256",
        "pbkdf2_sha512", "sha256_crypt", "sha512_crypt", "md5_crypt", "apr_md5_crypt",
        "django_pbkdf2_sha256", "django_pbkdf2_sha1", "django_argon2", "django_bcrypt_sha256",
        "django_bcrypt", "django_scrypt", "django_sha1", "django_md5", "django_unsalted_md5",
        "django_unsalted_sha1", "aspnet_identity_v2", "aspnet_identity_v3", "werkzeug_pbkdf2",
        "werkzeug_scrypt", "devise_bcrypt", "authlogic_sha512", "wrap",
    ]:  # fmt: skip
        assert expected in ids
    assert all(info.description and "\n" not in info.description for info in infos)
    assert {"md5_crypt", "django_md5", "django_unsalted_md5"} <= creds.default_weak()
    assert not {"argon2id", "bcrypt", "wrap"} & creds.default_weak()


def test_every_scheme_passes_its_self_test() -> None:
    failing = [info.id for info in creds.schemes() if not creds.self_test(info.id)]
    assert failing == []


def test_self_test_of_an_unknown_scheme_is_false() -> None:
    assert creds.self_test("no_such_scheme") is False


def test_a_bare_32_hex_value_is_ambiguous_until_the_scheme_is_named() -> None:
    bare = hashlib.md5(b"password").hexdigest()
    with pytest.raises(UnknownSchemeError) as info:
        creds.identify(bare)
    assert info.value.code == "credential.unrecognized"
    canonical = creds.import_hash("django_unsalted_md5", bare)
    assert canonical == "md5$$" + bare
    assert creds.verify("password", canonical)


@pytest.mark.parametrize("value", ["", "   ", "plain text", "$9$nope$", "md5$x"])
def test_unrecognised_values_raise_unknown_scheme(value: str) -> None:
    with pytest.raises(UnknownSchemeError):
        creds.import_hash("auto", value) if value.strip() else creds.identify(value)


def test_unknown_scheme_id_raises_unknown_scheme() -> None:
    with pytest.raises(UnknownSchemeError):
        creds.import_hash("no_such_scheme", "x")


@pytest.mark.parametrize(
    ("scheme", "value"),
    [
        ("bcrypt", "$2b$12$tooshort"),
        ("django_pbkdf2_sha256", "pbkdf2_sha256$abc$salt$hash"),
        ("django_md5", "md5$salt$nothex"),
        ("werkzeug_scrypt", "scrypt:1000:8:1$salt$00ff"),  # n not a power of two
        ("aspnet_identity_v3", "AQAAAA=="),
        ("authlogic_sha512", "abc"),
        ("argon2id", "$argon2id$v=19$m=x$y$z"),
    ],
)
def test_malformed_values_raise_malformed_hash(scheme: str, value: str) -> None:
    with pytest.raises(MalformedHashError) as info:
        creds.import_hash(scheme, value)
    assert info.value.code == "credential.malformed"


def test_verify_of_an_unrecognised_credential_is_false_not_an_error() -> None:
    assert creds.verify("password", "not a hash at all") is False
    assert creds.verify_and_update("password", "not a hash at all") == (False, None)


@pytest.mark.serial
def test_unknown_credential_takes_about_as_long_as_a_wrong_password_on_argon2id() -> None:
    stored = argon2.PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash("pw")

    def timed(credential: str) -> float:
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            creds.verify("wrong", credential)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    wrong, unknown = timed(stored), timed("garbage-credential")
    assert 0.5 < unknown / wrong < 2.0


def test_keyed_scheme_without_its_key_raises_missing_key_naming_only_the_id() -> None:
    canonical = creds.import_hash(
        "devise_bcrypt", "$2a$04$abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG",
        key_id="devise_pepper",
    )  # fmt: skip
    with pytest.raises(MissingKeyError) as info:
        creds.verify("correct horse", canonical, keyring={})
    assert "devise_pepper" in str(info.value)
    assert creds.verify(
        "correct horse", canonical, keyring={"devise_pepper": "pepper-for-self-test"}
    )


def test_needs_update_says_which_credentials_will_be_upgraded() -> None:
    current = argon2.PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash("pw")
    cheaper = argon2.PasswordHasher(memory_cost=64, time_cost=1, parallelism=1).hash("pw")
    assert creds.needs_update(current) is False
    assert creds.needs_update(cheaper) is True
    assert creds.needs_update(cheaper, profile="TEST") is False
    assert creds.needs_update(MD5_CRYPT) is True
    assert creds.needs_update(creds.wrap(MD5_CRYPT, profile="TEST")) is True
    bcrypt_hash = "$2a$04$abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG"
    assert creds.needs_update(bcrypt_hash) is True


def test_verify_and_update_upgrades_to_owasp_argon2id_by_default() -> None:
    ok, new = creds.verify_and_update("password", DJANGO_MD5)
    assert ok and new is not None
    assert new.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert argon2.PasswordHasher().verify(new, "password")
    assert creds.verify_and_update("password", new) == (True, None)


def test_wrap_keeps_no_legacy_digest_and_verifies() -> None:
    wrapped = creds.wrap(DJANGO_MD5, profile="TEST")
    assert DJANGO_MD5.rsplit("$", 1)[1] not in wrapped
    assert wrapped.startswith("$wrap$django_md5$argon2id$")
    assert wrapped.endswith("$md5$seasalt$")
    assert creds.verify("password", wrapped)
    assert not creds.verify("Password", wrapped)


def test_wrapping_a_wrapped_credential_or_argon2_is_refused_with_a_code() -> None:
    wrapped = creds.wrap(DJANGO_MD5, profile="TEST")
    with pytest.raises(CredentialError) as info:
        creds.wrap(wrapped)
    assert info.value.code == "credential.wrapped"
    with pytest.raises(CredentialError) as info:
        creds.wrap(argon2.PasswordHasher(memory_cost=64, time_cost=1).hash("x"))
    assert info.value.code == "credential.not_wrappable"


def test_unknown_profile_is_a_credential_error_naming_the_known_ones() -> None:
    with pytest.raises(CredentialError) as info:
        creds.wrap(DJANGO_MD5, profile="FAST")
    assert "OWASP_2025" in str(info.value)


def test_exception_text_never_contains_the_password_or_the_credential() -> None:
    salted = f"md5${SECRET}$nothex"
    for call in (
        lambda: creds.import_hash("django_md5", salted),
        lambda: creds.import_hash("auto", SECRET),
        lambda: creds.wrap(SECRET),
        lambda: creds.needs_update(SECRET),
        lambda: creds.import_hash("authlogic_sha512", SECRET, salt=SECRET),
    ):
        with pytest.raises(CredentialError) as info:
            call()
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)


def test_reprs_of_results_mask_the_credential() -> None:
    prepared = creds.prepare_batch([(DJANGO_MD5, None)], creds.CredentialPolicy(policy="keep"))[0]
    assert isinstance(prepared, creds.Prepared)
    assert DJANGO_MD5 not in repr(prepared)


def test_a_canonical_credential_imports_as_itself_even_without_params() -> None:
    """A preset's query may already emit our canonical form; 'auto' must not re-import it."""
    import authmigrate

    canonical = authmigrate.import_hash(
        "prestashop", "5f4dcc3b5aa765d61d8327deb882cf99", key_id="ps"
    )
    assert authmigrate.import_hash("auto", canonical) == canonical
    assert authmigrate.import_hash("prestashop", canonical) == canonical
    with pytest.raises(authmigrate.CredentialError):
        authmigrate.import_hash("auto", "$prestashop$k=ps$not-hex")
