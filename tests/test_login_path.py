"""The login path: what a platform calls on every login must be safe to put there.

Long passwords, crafted work factors, argon2 downgrades, non-text passwords, timing by scheme,
unknown users, a reset racing an upgrade, an asyncio server, unusable stored values, and the
cheap TEST profile leaking into production (issue 10, items 1 to 6).
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import threading
import time
from typing import Any

import argon2
import bcrypt
import pytest
import sqlalchemy as sa
from passlib import hash as ph

import authmigrate
import authmigrate.credentials as creds
from authmigrate.credentials import _limits, shops
from authmigrate.credentials._base import get
from authmigrate.credentials._examples import KNOWN_ANSWERS
from authmigrate.errors import CredentialError, MalformedHashError, SpecError
from authmigrate.integrations.sqlalchemy import store_upgrade
from authmigrate.spec import load_spec_text

MIB = 1024 * 1024
NOT_WRAPPABLE = {"argon2id", "argon2i", "django_argon2"}
B64_32 = base64.b64encode(bytes(32)).decode().rstrip("=")
BC53 = "abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG"


def _one_per_scheme() -> list[Any]:
    """(scheme id, password, canonical credential, keyring) for every registered scheme,
    from the known answers ``self_test`` uses (made by each platform's own code)."""
    out = []
    for info in creds.schemes():
        if info.id == "wrap":
            continue  # the wrapped variant of every other scheme covers it
        examples = list(getattr(get(info.id), "examples", ()))
        if examples:
            ex = examples[0]
            out.append(pytest.param(info.id, ex.password, ex.credential, ex.keyring, id=info.id))
            continue
        known = KNOWN_ANSWERS[info.id]
        imp = known["import"]
        canonical = creds.import_hash(
            info.id, known["stored"], salt=imp.get("salt"), **(imp.get("params") or {})
        )
        out.append(
            pytest.param(info.id, known["password"], canonical, known["keyring"], id=info.id)
        )
    return out


SCHEMES = _one_per_scheme()


def _thread_cpu(fn: Any) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


# -- item 1: one password-length cap before any scheme -----------------------------------------


def test_every_registered_scheme_is_covered_by_the_length_test() -> None:
    covered = {p.values[0] for p in SCHEMES}
    assert covered | {"wrap"} == {s.id for s in creds.schemes()}


@pytest.mark.parametrize(("scheme", "password", "credential", "keyring"), SCHEMES)
def test_a_1_mib_password_is_false_at_the_cost_of_the_dummy_hash(
    scheme: str, password: str, credential: str, keyring: Any
) -> None:
    """The right password followed by 1 MiB: truncating schemes (bcrypt's 72 bytes, DES's 8)
    would say True, and md5-crypt/SHA-crypt/phpass hash the megabyte once per round."""
    assert creds.verify(password, credential, keyring=keyring)  # the vector is right
    huge = password + "x" * MIB
    candidates = [credential]
    if scheme not in NOT_WRAPPABLE:
        candidates.append(creds.wrap(credential, profile="TEST"))
    dummy = min(_thread_cpu(creds.dummy_verify) for _ in range(3))
    for candidate in candidates:
        result: list[bool] = []
        spent = _thread_cpu(
            lambda c=candidate: result.append(creds.verify(huge, c, keyring=keyring))
        )
        assert result == [False]
        assert spent - dummy < 0.050, f"{scheme}: {spent - dummy:.3f} s beyond the dummy hash"
        ok, new = creds.verify_and_update(huge, candidate, keyring=keyring)
        assert (ok, new) == (False, None)


def test_the_cap_is_4096_utf8_bytes_not_characters() -> None:
    stored = ph.sha256_crypt.using(rounds=1000).hash("é" * 2048)  # 4096 bytes: allowed
    assert creds.verify("é" * 2048, stored)
    over = ph.sha256_crypt.using(rounds=1000).hash("é" * 2048 + "a")  # 4097 bytes
    assert creds.verify("é" * 2048 + "a", over) is False
    assert authmigrate.MAX_PASSWORD_BYTES == 4096


def test_the_wrapped_digest_path_refuses_a_long_password_by_itself() -> None:
    """The wrap scheme's own verify (what the bridge's scheme table reaches) caps too."""
    legacy = ph.md5_crypt.hash("secret")
    wrapped = creds.wrap(legacy, profile="TEST")
    spent = _thread_cpu(lambda: get("wrap").verify("x" * 4 * MIB, wrapped))
    assert spent < 0.050


# -- item 2: work-factor bounds measured in work -----------------------------------------------


def _bound_cases() -> list[Any]:
    """(scheme, credential at the bound, credential just over it)."""
    it = _limits.MAX_PBKDF2_ITERATIONS
    rounds = _limits.MAX_SHA_CRYPT_ROUNDS
    cost = _limits.MAX_BCRYPT_COST
    argon_t = _limits.MAX_ARGON2_WORK_KIB // _limits.MAX_ARGON2_MEMORY_KIB  # passes at 256 MiB
    m_max = _limits.MAX_ARGON2_MEMORY_KIB
    scrypt_p = _limits.MAX_SCRYPT_WORK // ((1 << 14) * 8)  # p costs work, hardly memory
    pb = base64.b64encode(bytes(32)).decode()
    return [
        pytest.param(
            "django_pbkdf2_sha256",
            f"pbkdf2_sha256${it}$salt${pb}",
            f"pbkdf2_sha256${it + 1}$salt${pb}",
            id="pbkdf2-iterations",
        ),
        pytest.param(
            "sha512_crypt",
            f"$6$rounds={rounds}$/fIEIeaiSZI.JQuM$" + "a" * 86,
            f"$6$rounds={rounds + 1}$/fIEIeaiSZI.JQuM$" + "a" * 86,
            id="sha-crypt-rounds",
        ),
        pytest.param("bcrypt", f"$2b${cost}$" + BC53, f"$2b${cost + 1}$" + BC53, id="bcrypt"),
        pytest.param(
            "argon2id",
            f"$argon2id$v=19$m={m_max},t={argon_t},p=1$c29tZXNhbHQ${B64_32}",
            f"$argon2id$v=19$m={m_max},t={argon_t + 1},p=1$c29tZXNhbHQ${B64_32}",
            id="argon2-memory-x-time",
        ),
        pytest.param(
            "argon2id",
            f"$argon2id$v=19$m={m_max},t=1,p=1$c29tZXNhbHQ${B64_32}",
            f"$argon2id$v=19$m={m_max + 8},t=1,p=1$c29tZXNhbHQ${B64_32}",
            id="argon2-memory",
        ),
        pytest.param(
            "werkzeug_scrypt",
            f"scrypt:16384:8:{scrypt_p}$salt$" + "0" * 128,
            f"scrypt:16384:8:{scrypt_p + 1}$salt$" + "0" * 128,
            id="scrypt-n-r-p",
        ),
        pytest.param(
            "werkzeug_scrypt",
            "scrypt:131072:15:1$salt$" + "0" * 128,  # 240 MiB
            "scrypt:131072:16:1$salt$" + "0" * 128,  # 256 MiB and a bit: over the memory
            id="scrypt-memory",
        ),
    ]


@pytest.mark.parametrize(("scheme", "at_bound", "over"), _bound_cases())
def test_a_crafted_hash_at_each_bound_imports_and_one_step_over_does_not(
    scheme: str, at_bound: str, over: str
) -> None:
    assert creds.import_hash(scheme, at_bound) == at_bound
    with pytest.raises(MalformedHashError):
        creds.import_hash(scheme, over)
    start = time.thread_time()
    assert creds.verify("password", over) is False
    assert time.thread_time() - start < 0.5  # the dummy hash only, never the crafted work


def test_the_budget_is_about_one_second_and_admits_the_platform_defaults() -> None:
    assert _limits.WORK_BUDGET_SECONDS == 1.0
    defaults = [
        (
            "django_pbkdf2_sha256",
            "pbkdf2_sha256$1200000$salt$" + base64.b64encode(bytes(32)).decode(),
        ),
        ("bcrypt", "$2b$12$" + BC53),
        ("sha512_crypt", "$6$rounds=656000$/fIEIeaiSZI.JQuM$" + "a" * 86),
        ("argon2id", f"$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHQ${B64_32}"),  # Django
        ("argon2id", f"$argon2id$v=19$m=262144,t=3,p=1$c29tZXNhbHQ${B64_32}"),  # sodium MODERATE
        ("werkzeug_scrypt", "scrypt:131072:8:1$salt$" + "0" * 128),  # OWASP
        ("drupal7", "$S$D" + "saltsalt" + "a" * 43),
        ("phpass", "$P$B" + "saltsalt" + "a" * 22),
    ]
    for scheme, value in defaults:
        assert creds.import_hash(scheme, value) == value, scheme
    # libsodium SENSITIVE (1 GiB x 4 passes, about 4 s) is over it
    with pytest.raises(MalformedHashError):
        creds.import_hash("argon2id", f"$argon2id$v=19$m=1048576,t=4,p=1$c29tZXNhbHQ${B64_32}")


def test_login_prices_the_real_password_length_tighter_than_import() -> None:
    """SHA-crypt at libpass's default imports (priced with a 64-byte password) and verifies a
    normal password; at login a 4 KiB password would cost about 5 s: refused at once."""
    normal = "correct horse battery staple"
    stored = ph.sha512_crypt.using(rounds=656000).hash(normal)
    assert creds.import_hash("sha512_crypt", stored) == stored
    assert creds.verify(normal, stored)
    long_password = "y" * 4096
    spent = _thread_cpu(lambda: creds.verify(long_password, stored))
    assert spent < 0.3
    # phpass at 2^20 rounds: fine for a short password, refused for a 4 KiB one
    phpass_max = "$P$" + shops.ITOA64[_limits.MAX_PHPASS_LOG2] + "saltsalt" + "a" * 22
    assert creds.import_hash("phpass", phpass_max) == phpass_max
    assert _thread_cpu(lambda: creds.verify(long_password, phpass_max)) < 0.3


@pytest.mark.slow
def test_verifications_at_the_bounds_stay_within_the_budget() -> None:
    """Real hashes at (or next to) the bounds: each verification costs about a second of one
    core at most (CPU time, so a busy machine does not make it fail)."""
    cost = _limits.MAX_BCRYPT_COST
    stored = bcrypt.hashpw(b"pw", bcrypt.gensalt(cost)).decode()
    argon = argon2.PasswordHasher(
        memory_cost=_limits.MAX_ARGON2_MEMORY_KIB,
        time_cost=_limits.MAX_ARGON2_WORK_KIB // _limits.MAX_ARGON2_MEMORY_KIB,
        parallelism=1,
    ).hash("pw")
    for credential in (stored, argon):
        start = time.process_time()
        assert creds.verify("pw", credential)
        assert time.process_time() - start < 2 * _limits.WORK_BUDGET_SECONDS


@pytest.mark.slow
def test_concurrent_memory_hard_verifications_hold_at_most_the_gate() -> None:
    """Eight crafted 256 MiB argon2 rows verified at once: the gate keeps the memory held by
    all of them under MAX_MEMORY_IN_FLIGHT (1 GiB), the others wait."""
    crafted = argon2.PasswordHasher(
        memory_cost=_limits.MAX_ARGON2_MEMORY_KIB, time_cost=1, parallelism=1
    ).hash("right")
    gate = _limits.MEMORY_GATE
    gate.reset_peak()
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(creds.verify("wrong", crafted)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [False] * 8
    assert 0 < gate.peak <= _limits.MAX_MEMORY_IN_FLIGHT


# -- item 3: no downgrade of stronger argon2 ---------------------------------------------------


def test_a_stronger_django_argon2id_is_current_and_never_rehashed_down() -> None:
    phc = argon2.PasswordHasher(memory_cost=102400, time_cost=2, parallelism=8).hash("secret")
    django = "argon2" + phc
    assert creds.needs_update(django) is False
    assert creds.verify_and_update("secret", django) == (True, None)


def test_argon2i_is_rehashed_as_argon2id_with_the_larger_parameters() -> None:
    stored = argon2.PasswordHasher(
        memory_cost=65536, time_cost=3, parallelism=2, type=argon2.Type.I
    ).hash("secret")
    for credential in (stored, "argon2" + stored):  # plain and behind Django's prefix
        assert creds.needs_update(credential)
        ok, new = creds.verify_and_update("secret", credential)
        assert ok and new is not None
        params = argon2.extract_parameters(new)
        assert params.type is argon2.Type.ID
        assert (params.memory_cost, params.time_cost, params.parallelism) == (65536, 3, 2)
        assert argon2.PasswordHasher().verify(new, "secret")


def test_a_weaker_argon2id_takes_each_parameter_at_its_larger_value() -> None:
    stored = argon2.PasswordHasher(memory_cost=8192, time_cost=6, parallelism=1).hash("secret")
    ok, new = creds.verify_and_update("secret", stored)
    assert ok and new is not None
    params = argon2.extract_parameters(new)
    assert (params.memory_cost, params.time_cost) == (creds.OWASP_2025.memory_cost, 6)


# -- item 4: non-text passwords ----------------------------------------------------------------


@pytest.mark.parametrize("password", [b"password", None, 12345, bytearray(b"password")])
def test_a_password_that_is_not_str_raises_type_error_up_front(password: Any) -> None:
    md5 = "md5$$5f4dcc3b5aa765d61d8327deb882cf99"
    argon = argon2.PasswordHasher(memory_cost=64, time_cost=1).hash("password")
    for credential in (md5, argon, "$2b$04$" + BC53, "garbage"):
        with pytest.raises(TypeError) as info:
            creds.verify(password, credential)
        assert "password" not in str(info.value).replace("password must", "")
        with pytest.raises(TypeError):
            creds.verify_and_update(password, credential)
        with pytest.raises(TypeError):
            asyncio.run(creds.verify_and_update_async(password, credential, min_seconds=None))


# -- item 5: what a login path needs besides verify --------------------------------------------


@pytest.mark.serial
def test_dummy_verify_costs_what_a_real_verification_does() -> None:
    real = argon2.PasswordHasher(
        memory_cost=creds.OWASP_2025.memory_cost,
        time_cost=creds.OWASP_2025.time_cost,
        parallelism=creds.OWASP_2025.parallelism,
    ).hash("secret")
    dummy = statistics.median(_thread_cpu(creds.dummy_verify) for _ in range(5))
    wrong = statistics.median(_thread_cpu(lambda: creds.verify("nope", real)) for _ in range(5))
    assert creds.dummy_verify() is False
    assert 0.6 < dummy / wrong < 1.6


def test_an_unknown_or_malformed_credential_reaches_the_hook_and_nothing_else_does() -> None:
    seen: list[creds.CredentialProblem] = []
    previous = creds.set_credential_hook(seen.append)
    try:
        cut = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ"  # a VARCHAR(40) cut it here
        assert creds.verify("pw", cut) is False
        assert creds.verify("pw", "not a hash at all") is False
        assert creds.verify("wrong", "md5$$5f4dcc3b5aa765d61d8327deb882cf99") is False
    finally:
        creds.set_credential_hook(previous)
    assert [(p.code, p.scheme) for p in seen] == [
        ("credential.malformed", "argon2id"),
        ("credential.unrecognized", None),
    ]
    assert seen[0].length == len(cut)
    assert "c29tZXNhbHQ" not in repr(seen)


def test_a_failing_hook_never_fails_the_login(caplog: pytest.LogCaptureFixture) -> None:
    def broken(problem: creds.CredentialProblem) -> None:
        raise RuntimeError("metrics are down")

    previous = authmigrate.set_credential_hook(broken)
    try:
        assert authmigrate.verify("pw", "$1$saltsalt$short") is False
    finally:
        authmigrate.set_credential_hook(previous)
    assert "credential hook raised" in caplog.text


def _accounts(url: str, password_hash: str) -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, password TEXT)"))
        conn.execute(sa.text("INSERT INTO accounts VALUES (1, :p)"), {"p": password_hash})
    return engine


def test_an_upgrade_racing_a_password_reset_never_brings_the_old_password_back(
    target_url: str,
) -> None:
    """Login verifies the old md5 and computes the upgrade; a reset commits in between on
    another connection; the compare-and-swap write then changes nothing."""
    old = "md5$$" + "5f4dcc3b5aa765d61d8327deb882cf99"  # md5("password")
    engine = _accounts(target_url, old)
    ok, new = creds.verify_and_update("password", old, profile="TEST")
    assert ok and new is not None
    reset = creds.verify_and_update("new secret", "md5$$" + "0" * 32, profile="TEST")
    assert reset == (False, None)
    reset_hash = argon2.PasswordHasher(memory_cost=64, time_cost=1).hash("new secret")
    with engine.begin() as other:  # the reset, on its own connection
        other.execute(sa.text("UPDATE accounts SET password = :p WHERE id = 1"), {"p": reset_hash})
    assert store_upgrade(engine, "accounts", key=1, old=old, new=new) is False
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password FROM accounts WHERE id = 1")).scalar_one()
    assert stored == reset_hash
    assert creds.verify("password", stored) is False
    assert creds.verify("new secret", stored) is True
    engine.dispose()


def test_an_upgrade_with_no_race_is_written(target_url: str) -> None:
    old = "md5$$" + "5f4dcc3b5aa765d61d8327deb882cf99"
    engine = _accounts(target_url, old)
    ok, new = creds.verify_and_update("password", old, profile="TEST")
    assert ok and new is not None
    with engine.connect() as conn:
        assert store_upgrade(conn, "accounts", key=1, old=old, new=new) is True
        conn.commit()
        stored = conn.execute(sa.text("SELECT password FROM accounts WHERE id = 1")).scalar_one()
    assert stored == new and creds.verify("password", stored)
    engine.dispose()


@pytest.mark.serial
def test_the_async_variant_leaves_the_event_loop_free() -> None:
    stored = argon2.PasswordHasher(memory_cost=65536, time_cost=4, parallelism=1).hash("secret")

    async def main() -> tuple[tuple[bool, str | None], float, int]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        result = await creds.verify_and_update_async("secret", stored, min_seconds=None)
        done.set()
        await tick
        return result, max(gaps), len(gaps)

    started = time.perf_counter()
    (ok, new), worst_gap, ticks = asyncio.run(main())
    elapsed = time.perf_counter() - started
    assert ok and new is None  # m=64 MiB, t=4 is stronger than the profile
    assert ticks >= 5  # the loop ran while the hash did
    assert worst_gap < max(0.1, elapsed / 3)


def test_the_test_profile_is_refused_outside_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHMIGRATE_ALLOW_TEST_PROFILE", raising=False)
    legacy = ph.md5_crypt.hash("secret")
    for call in (
        lambda: creds.wrap(legacy, profile="TEST"),
        lambda: creds.verify_and_update("secret", legacy, profile="TEST"),
        lambda: creds.CredentialPolicy(policy="wrap", profile="TEST"),
    ):
        with pytest.raises(CredentialError) as info:
            call()
        assert info.value.code == "credential.profile"
        assert "allow_test_profile" in str(info.value)
    # explicitly allowed, it works; self-tests (no account involved) never need the allowance
    assert creds.CredentialPolicy(policy="wrap", profile="TEST", allow_test_profile=True)
    assert creds.self_test("md5_crypt")


SPEC_WITH_TEST_PROFILE = """
[source]
url = "sqlite:///legacy.db"
table = "users"
key = "id"

[target]
url = "sqlite:///new.db"
table = "accounts"

[fields]
id = "id"

[credentials]
column = "password_hash"
profile = "TEST"
{allow}
"""


def test_a_spec_with_the_test_profile_needs_allow_test_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTHMIGRATE_ALLOW_TEST_PROFILE", raising=False)
    with pytest.raises(SpecError) as info:
        load_spec_text(SPEC_WITH_TEST_PROFILE.format(allow=""))
    assert "credentials.profile" in str(info.value)
    assert "allow_test_profile" in str(info.value)
    spec = load_spec_text(SPEC_WITH_TEST_PROFILE.format(allow="allow_test_profile = true"))
    assert spec.credentials is not None and spec.credentials.profile == "TEST"


# -- item 6: timing by scheme ------------------------------------------------------------------


def _wall(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.serial
def test_with_the_floor_a_weak_md5_and_argon2id_answer_alike() -> None:
    md5 = "md5$$" + "5f4dcc3b5aa765d61d8327deb882cf99"
    argon = argon2.PasswordHasher(
        memory_cost=creds.OWASP_2025.memory_cost, time_cost=creds.OWASP_2025.time_cost
    ).hash("password")
    creds.verify("x", md5, min_seconds="profile")  # measures the floor once
    bare_md5 = statistics.median(_wall(lambda: creds.verify("wrong", md5)) for _ in range(5))
    bare_argon = statistics.median(_wall(lambda: creds.verify("wrong", argon)) for _ in range(5))
    assert bare_md5 < bare_argon / 10  # what an attacker sees without the floor

    def floored(credential: str) -> float:
        return statistics.median(
            _wall(lambda: creds.verify("wrong", credential, min_seconds="profile"))
            for _ in range(7)
        )

    md5_time, argon_time = floored(md5), floored(argon)
    assert abs(md5_time - argon_time) <= 0.35 * max(md5_time, argon_time)


@pytest.mark.serial
def test_a_numeric_floor_is_a_minimum_and_bulk_use_has_none() -> None:
    md5 = "md5$$" + "5f4dcc3b5aa765d61d8327deb882cf99"
    assert _wall(lambda: creds.verify("password", md5, min_seconds=0.2)) >= 0.2
    assert _wall(lambda: creds.dummy_verify(min_seconds=0.2)) >= 0.2
    assert _wall(lambda: creds.verify("password", md5)) < 0.05
    with pytest.raises(ValueError):
        creds.verify("password", md5, min_seconds=-1)


def test_the_async_variant_has_the_profile_floor_by_default() -> None:
    md5 = "md5$$" + "5f4dcc3b5aa765d61d8327deb882cf99"
    floor = creds.profile_floor(creds.OWASP_2025)
    spent = _wall(lambda: asyncio.run(creds.verify_and_update_async("wrong", md5)))
    assert spent >= floor * 0.95
