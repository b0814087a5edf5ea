"""Hostile stored hashes and passwords: work-factor bounds, odd passwords, batch robustness.

A crafted row must never make one verification run for minutes or take gigabytes: above the
bounds of ``_limits`` a credential is ``credential.malformed`` at import and ``verify`` is False
right away. Each case here took minutes (or raised) before the bounds existed.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import unicodedata

import argon2
import bcrypt
import pytest

import authmigrate.credentials as creds
from authmigrate.credentials import _batch, _limits, shops
from authmigrate.errors import CredentialError, MalformedHashError

B64_32 = base64.b64encode(bytes(32)).decode().rstrip("=")
B64_64 = base64.b64encode(bytes(64)).decode()
BC53 = "abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG"
ARGON_HUGE_M = f"$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ${B64_32}"
ARGON_HUGE_T = f"$argon2id$v=19$m=65536,t=1000,p=1$c29tZXNhbHQ${B64_32}"

HOSTILE: list[tuple[str, str]] = [
    ("phpass", "$P$" + shops.ITOA64[30] + "saltsalt" + "a" * 22),
    ("drupal7", "$S$" + shops.ITOA64[30] + "saltsalt" + "a" * 43),
    ("drupal7", "U$P$" + shops.ITOA64[25] + "saltsalt" + "a" * 22),
    ("bcrypt", "$2b$31$" + BC53),
    ("bcrypt", "$2y$17$" + BC53),
    ("django_bcrypt", "bcrypt$$2b$31$" + BC53),
    ("django_bcrypt_sha256", "bcrypt_sha256$$2b$31$" + BC53),
    ("wordpress_bcrypt", "$wp$2y$31$" + BC53),
    ("devise_bcrypt", "$devise-bcrypt$k=pepper$2a$31$" + BC53),
    ("scrypt", "$scrypt$ln=30,r=8,p=1$HGNMibF2rtWa8/6/NyZECA$" + B64_32),
    ("scrypt", "$scrypt$ln=14,r=8,p=4096$HGNMibF2rtWa8/6/NyZECA$" + B64_32),
    ("pbkdf2_sha256", "$pbkdf2-sha256$4000000000$iRHC.L/33rvXem/NWQuBkA$" + "A" * 43),
    ("pbkdf2_sha1", "$pbkdf2$4000000000$XesdozTGeA/BWAvhXEtJaQ$PosWEYl.l415x4LqMmaSO1b6Z4s"),
    ("sha512_crypt", "$6$rounds=999999999$/fIEIeaiSZI.JQuM$" + "a" * 86),
    (
        "django_pbkdf2_sha256",
        "pbkdf2_sha256$2000000000$salt$" + base64.b64encode(bytes(32)).decode(),
    ),
    ("django_pbkdf2_sha1", "pbkdf2_sha1$99999999999$salt$" + base64.b64encode(bytes(20)).decode()),
    ("django_scrypt", "scrypt$1048576$salt$8$1$" + B64_64),
    ("django_scrypt", "scrypt$16384$salt$8$4096$" + B64_64),
    ("django_argon2", "argon2" + ARGON_HUGE_M),
    ("argon2id", ARGON_HUGE_M),
    ("argon2id", ARGON_HUGE_T),
    # libsodium SENSITIVE (1 GiB x 4 passes, about 4 s of one core): over the work budget
    ("argon2id", f"$argon2id$v=19$m=1048576,t=4,p=1$c29tZXNhbHQ${B64_32}"),
    ("argon2i", ARGON_HUGE_M.replace("argon2id", "argon2i")),
    ("werkzeug_pbkdf2", "pbkdf2:sha256:4000000000$salt$" + "0" * 64),
    ("werkzeug_scrypt", "scrypt:1048576:8:1$salt$" + "0" * 128),
    ("werkzeug_scrypt", "scrypt:2:1:100000000$salt$" + "0" * 128),
    (
        "aspnet_identity_v3",
        base64.b64encode(b"\x01" + struct.pack(">III", 1, 0xFFFFFFFF, 16) + bytes(48)).decode(),
    ),
    ("magento2", "0" * 64 + ":saltsaltsaltsalt:3_32_16_1073741824"),
    ("magento2", "0" * 64 + ":saltsaltsaltsalt:2:2:2:2:3_32_2_67108864"),
    ("shopware5_sha256", "9999999:salt:" + "0" * 64),
    ("authlogic_sha512", "$authlogic-sha512$r=999999$c2FsdA$" + "0" * 128),
    (
        "wrap",
        "$wrap$django_md5" + ARGON_HUGE_M + "$md5$salt$",
    ),
]


@pytest.mark.parametrize(
    ("scheme", "value"), HOSTILE, ids=[f"{s}-{i}" for i, (s, _) in enumerate(HOSTILE)]
)
@pytest.mark.serial
def test_huge_work_factors_are_malformed_and_cost_nothing(scheme: str, value: str) -> None:
    with pytest.raises(MalformedHashError) as info:
        creds.import_hash(scheme, value)
    assert value not in str(info.value)
    start = time.perf_counter()
    assert creds.verify("password", value, keyring={"pepper": "p"}) is False
    assert creds.verify_and_update("password", value, keyring={"pepper": "p"}) == (False, None)
    with pytest.raises(CredentialError):
        creds.wrap(value)
    assert time.perf_counter() - start < 3.0


def test_the_bounds_themselves_are_accepted() -> None:
    """Every platform default fits; the bound values themselves import."""
    accepted = [
        ("bcrypt", f"$2b${_limits.MAX_BCRYPT_COST}$" + BC53),
        ("phpass", "$P$" + shops.ITOA64[_limits.MAX_PHPASS_LOG2] + "saltsalt" + "a" * 22),
        ("drupal7", "$S$D" + "saltsalt" + "a" * 43),  # Drupal 7's default, 2^15
        (
            "django_pbkdf2_sha256",
            "pbkdf2_sha256$1200000$salt$" + base64.b64encode(bytes(32)).decode(),
        ),
        (
            "django_pbkdf2_sha256",
            f"pbkdf2_sha256${_limits.MAX_PBKDF2_ITERATIONS}$salt$"
            + base64.b64encode(bytes(32)).decode(),
        ),
        ("django_scrypt", "scrypt$16384$salt$8$1$" + B64_64),  # Django 5
        ("werkzeug_scrypt", "scrypt:32768:8:1$salt$" + "0" * 128),  # Werkzeug 3
        ("werkzeug_scrypt", "scrypt:131072:8:1$salt$" + "0" * 128),  # OWASP
        ("werkzeug_pbkdf2", "pbkdf2:sha256:1000000$salt$" + "0" * 64),
        ("scrypt", "$scrypt$ln=16,r=8,p=1$HGNMibF2rtWa8/6/NyZECA$" + B64_32),  # libpass
        ("argon2id", f"$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHQ${B64_32}"),  # Django
        ("argon2id", f"$argon2id$v=19$m=262144,t=3,p=1$c29tZXNhbHQ${B64_32}"),  # sodium MODERATE
        ("magento2", "0" * 64 + ":saltsaltsaltsalt:1:2"),
        ("shopware5_sha256", "1000:salt:" + "0" * 64),
        ("sha512_crypt", "$6$rounds=656000$/fIEIeaiSZI.JQuM$" + "a" * 86),
    ]
    for scheme, value in accepted:
        assert creds.import_hash(scheme, value) == value, scheme


def test_firebase_parameters_stay_within_the_scrypt_bounds() -> None:
    fb = creds.get("firebase_scrypt")
    with pytest.raises(MalformedHashError):
        creds.import_hash(
            "firebase_scrypt", B64_32, salt="c2FsdA==", key_id="fb", rounds=8, mem_cost=40,
            salt_separator="Bw==",
        )  # fmt: skip
    assert fb.identify(
        creds.import_hash(
            "firebase_scrypt",
            B64_32,
            salt="c2FsdA==",
            key_id="fb",
            rounds=8,
            mem_cost=14,
            salt_separator="Bw==",
        )  # fmt: skip
    )


@pytest.mark.parametrize(
    "credential",
    [
        "$P$B" + "saltsalt" + "a" * 22,  # phpass: 2^13 rounds over the whole password
        "1000:salt:" + "0" * 64,  # Shopware 5 Sha256: 1001 rounds over the whole password
        "$S$D" + "saltsalt" + "a" * 43,  # Drupal 7: 2^15 rounds
    ],
)
@pytest.mark.serial
def test_a_huge_password_against_a_wrapped_slow_loop_costs_nothing(credential: str) -> None:
    wrapped = creds.wrap(creds.import_hash("auto", credential), profile="TEST")
    start = time.perf_counter()
    assert creds.verify("x" * 5_000_000, wrapped) is False
    assert creds.verify("x" * 5_000_000, credential) is False
    assert time.perf_counter() - start < 2.0


def test_bcrypt_passwords_with_a_nul_never_verify() -> None:
    stored = bcrypt.hashpw(b"pass", bcrypt.gensalt(4)).decode()
    assert creds.verify("pass", stored)
    for password in ("pass\x00word", "pass\x00", "\x00"):
        assert creds.verify(password, stored) is False
        # the wrapped path (policy wrap with bcrypt in the weak list) agrees
        assert creds.get("bcrypt").digest(password, stored) != stored[29:].encode()
    # past the 72 bytes bcrypt reads, a NUL is cut off with the rest: PHP agrees
    long_pw = "a" * 72
    stored_long = bcrypt.hashpw(long_pw.encode(), bcrypt.gensalt(4)).decode()
    assert creds.verify(long_pw + "\x00tail", stored_long)


def test_bcrypt_2x_is_never_taken_for_2a() -> None:
    stored = bcrypt.hashpw("pässword".encode(), bcrypt.gensalt(4, prefix=b"2a")).decode()
    buggy = "$2x$" + stored[4:]
    assert creds.verify("pässword", stored)
    assert creds.verify("pässword", buggy) is False
    with pytest.raises(CredentialError):
        creds.import_hash("bcrypt", buggy)


def test_no_scheme_normalises_the_password() -> None:
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    samples = [
        "md5$s$" + hashlib.md5(("s" + nfd).encode()).hexdigest(),
        bcrypt.hashpw(nfd.encode(), bcrypt.gensalt(4)).decode(),
        argon2.PasswordHasher(memory_cost=64, time_cost=1, parallelism=1).hash(nfd),
        "pbkdf2:sha256:1000$salt$"
        + hashlib.pbkdf2_hmac("sha256", nfd.encode(), b"salt", 1000).hex(),
    ]
    for stored in samples:
        assert creds.verify(nfd, stored), stored[:12]
        assert creds.verify(nfc, stored) is False, stored[:12]
        assert creds.verify(nfd + " ", stored) is False, stored[:12]


def test_wrapped_verify_never_raises_for_a_password_or_an_inner_scheme() -> None:
    latin1 = creds.import_hash(
        "digest", hashlib.md5("pässword".encode("latin-1")).hexdigest(), algorithm="md5",
        password_encoding="latin-1",
    )  # fmt: skip
    wrapped = creds.wrap(latin1, profile="TEST")
    assert creds.verify("pässword", wrapped)
    assert creds.verify("pass\u20acword", wrapped) is False  # not latin-1: False, not an error
    argon_inner = "$wrap$argon2id" + ARGON_HUGE_M.replace("4194304", "64") + "$$argon2id$"
    assert creds.verify("password", argon_inner) is False
    nested = "$wrap$wrap" + ARGON_HUGE_M.replace("4194304", "64") + "$md5$salt$"
    assert creds.verify("password", nested) is False
    with pytest.raises(MalformedHashError):
        creds.import_hash("wrap", nested)


def test_needs_update_never_downgrades_a_stronger_argon2id() -> None:
    stronger = argon2.PasswordHasher(memory_cost=65536, time_cost=3, parallelism=4).hash("pw")
    owasp = argon2.PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash("pw")
    weaker_t = argon2.PasswordHasher(memory_cost=19456, time_cost=1, parallelism=1).hash("pw")
    short_salt = argon2.PasswordHasher(
        memory_cost=19456, time_cost=2, parallelism=1, salt_len=8
    ).hash("pw")
    argon2i = argon2.PasswordHasher(
        memory_cost=65536, time_cost=3, parallelism=1, type=argon2.Type.I
    ).hash("pw")
    assert creds.needs_update(stronger) is False
    assert creds.verify_and_update("pw", stronger) == (True, None)
    assert creds.needs_update(owasp, profile="TEST") is False  # a cheap run never downgrades
    assert creds.verify_and_update("pw", owasp, profile="TEST") == (True, None)
    assert creds.needs_update(weaker_t) is True
    assert creds.needs_update(short_salt) is True
    assert creds.needs_update(argon2i) is True
    assert creds.verify_and_update("wrong", weaker_t) == (False, None)


def test_an_unexpected_error_in_a_worker_is_that_items_reject(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = _batch.wrap_credential
    good = [f"md5$s{i}$" + hashlib.md5(f"s{i}pw".encode()).hexdigest() for i in range(6)]

    def flaky(scheme_id: str, canonical: str, **kw: object) -> str:
        if canonical == good[2]:
            raise RuntimeError("boom")
        if canonical == good[4]:
            raise OverflowError("too big")
        return real(scheme_id, canonical, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_batch, "wrap_credential", flaky)
    for workers in (1, 2, 4):
        out = creds.prepare_batch(
            [(g, None) for g in good], creds.CredentialPolicy(policy="wrap", profile="TEST"),
            workers=workers,
        )  # fmt: skip
        assert [type(o).__name__ for o in out] == [
            "Prepared", "Prepared", "MalformedHashError", "Prepared", "MalformedHashError",
            "Prepared",
        ]  # fmt: skip
        assert all("boom" not in str(o) for o in out)


def test_an_unexpected_error_while_importing_is_that_items_reject(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = _batch._import

    def flaky(scheme: str, value: str, **kw: object) -> tuple[str, str]:
        if value == "explode":
            raise OverflowError("int too large")
        return real(scheme, value, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_batch, "_import", flaky)
    good = "md5$s$" + hashlib.md5(b"spw").hexdigest()
    out = creds.prepare_batch(
        [(good, None), ("explode", None), (good, None)], creds.CredentialPolicy(policy="keep")
    )
    assert isinstance(out[0], creds.Prepared) and isinstance(out[2], creds.Prepared)
    assert isinstance(out[1], MalformedHashError) and out[1].code == "credential.malformed"
    hostile = creds.prepare_batch(
        [(value, None) for _, value in HOSTILE], creds.CredentialPolicy(policy="wrap"), workers=2
    )
    assert all(isinstance(o, CredentialError) for o in hostile)


def test_aspnet_blob_repr_holds_no_salt_or_subkey() -> None:
    from authmigrate.credentials import aspnet

    blob = aspnet._parse(b"\x00" + b"S" * 16 + b"K" * 32)
    assert blob is not None
    assert "SSSS" not in repr(blob) and "KKKK" not in repr(blob)
