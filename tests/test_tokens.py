"""Tokens: 256-bit secrets stored only as a self-describing hash, checked in constant time."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authmigrate.errors import MalformedHashError, MissingKeyError, SpecError
from authmigrate.pipeline.batch import Batch, Record
from authmigrate.pipeline.tokens import (
    PREFIX_LENGTH,
    TokenStage,
    issue_token,
    parse_stored,
    token_prefix,
    verify_token,
)
from authmigrate.spec import TokensSpec, load_spec_text

NOW = 1_800_000_000


def test_issued_token_verifies_and_stored_form_is_self_describing() -> None:
    token, stored = issue_token("activation", 3600, now=NOW)

    assert verify_token(token, stored, now=NOW + 10)
    parsed = parse_stored(stored)
    assert (parsed.version, parsed.alg, parsed.purpose) == (1, "sha256", "activation")
    assert parsed.expires_at == NOW + 3600
    assert parsed.prefix == token_prefix(token) == token[:PREFIX_LENGTH]
    assert re.fullmatch(
        r"\$amtok\$v=1,alg=sha256,purpose=activation,exp=\d+,prefix=\S{8}\$\S+", stored
    )


def test_stored_form_never_contains_the_plaintext() -> None:
    for _ in range(50):
        token, stored = issue_token("api", 60)
        assert token not in stored
        assert token[PREFIX_LENGTH:] not in stored


def test_token_has_at_least_128_bits_and_is_unique() -> None:
    tokens = {issue_token("api", 60)[0] for _ in range(2000)}
    assert len(tokens) == 2000
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
        assert len(token) * 6 >= 256  # URL-safe base64 of 32 random bytes


def test_expired_token_is_refused() -> None:
    token, stored = issue_token("activation", 60, now=NOW)
    assert verify_token(token, stored, now=NOW + 59)
    assert not verify_token(token, stored, now=NOW + 60)


def test_wrong_purpose_is_refused() -> None:
    token, stored = issue_token("activation", 60, now=NOW)
    assert verify_token(token, stored, purpose="activation", now=NOW)
    assert not verify_token(token, stored, purpose="password_reset", now=NOW)


def test_editing_expiry_or_purpose_in_the_stored_string_breaks_it() -> None:
    token, stored = issue_token("activation", 60, now=NOW)
    later = stored.replace(f"exp={NOW + 60}", f"exp={NOW + 10**6}")
    assert not verify_token(token, later, now=NOW)
    other = stored.replace("purpose=activation", "purpose=api")
    assert not verify_token(token, other, now=NOW)


def test_hmac_tokens_need_the_server_key() -> None:
    token, stored = issue_token("api", 60, "server-key", now=NOW)

    assert "alg=hmac-sha256" in stored
    assert verify_token(token, stored, server_key="server-key", now=NOW)
    assert not verify_token(token, stored, server_key="other-key", now=NOW)
    with pytest.raises(MissingKeyError):
        verify_token(token, stored, now=NOW)


def test_malformed_stored_string_raises() -> None:
    token, stored = issue_token("api", 60, now=NOW)
    bad_values: list[object] = [
        "plain-token",
        "$amtok$v=2,alg=sha256,purpose=a,exp=1,prefix=x$abc",
        stored + "\n",  # `$` in a regex would accept this
        stored.replace(f"exp={NOW + 60}", "exp=" + "9" * 5000),  # int() would raise ValueError
        stored.replace(f"exp={NOW + 60}", f"exp=\u0661{NOW + 60}"),  # a non-ASCII digit
        stored[:-1],  # a truncated digest
        stored.replace("purpose=api", "purpose=API"),
        b"bytes",
        12345,
    ]
    for bad in bad_values:
        with pytest.raises(MalformedHashError):
            verify_token(token, bad)  # type: ignore[arg-type]
    assert issubclass(MalformedHashError, ValueError)


def test_cleared_column_never_verifies() -> None:
    """The application clears the column once a token is used: that must fail, not raise."""
    token, _ = issue_token("api", 60, now=NOW)
    assert verify_token(token, None, now=NOW) is False
    assert verify_token(token, "", now=NOW) is False


def test_non_string_token_or_purpose_is_refused_not_an_error() -> None:
    token, stored = issue_token("api", 60, now=NOW)
    for bad in (None, token.encode(), 42):
        assert verify_token(bad, stored, now=NOW) is False  # type: ignore[arg-type]
    assert verify_token(token, stored, purpose=None, now=NOW)
    assert verify_token(token, stored, purpose=b"api", now=NOW) is False  # type: ignore[arg-type]


def test_purpose_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ValueError):
        issue_token("api\n", 60)


def test_expired_wrong_purpose_and_wrong_token_all_do_the_same_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Constant time: the digest is computed and compared with hmac.compare_digest for every
    outcome, so expiry or purpose cannot be told apart from a wrong token by timing."""
    import hmac as hmac_module

    import authmigrate.pipeline.tokens as tokens_module

    token, stored = issue_token("activation", 60, now=NOW)
    calls: list[str] = []
    real_digest, real_compare = tokens_module._digest, hmac_module.compare_digest

    def digest(*args: object) -> bytes:
        calls.append("digest")
        return real_digest(*args)  # type: ignore[arg-type]

    def compare(a: bytes, b: bytes) -> bool:
        calls.append("compare")
        return real_compare(a, b)

    monkeypatch.setattr(tokens_module, "_digest", digest)
    monkeypatch.setattr(tokens_module.hmac, "compare_digest", compare)
    cases = [
        (token, NOW, "activation", True),
        (token, NOW + 60, "activation", False),  # expired
        (token, NOW, "api", False),  # wrong purpose
        ("x" * len(token), NOW, "activation", False),  # wrong token
    ]
    for guess, now, purpose, expected in cases:
        calls.clear()
        assert verify_token(guess, stored, purpose=purpose, now=now) is expected
        assert calls == ["digest", "compare", "compare"]


def test_bad_purpose_and_ttl_are_refused() -> None:
    with pytest.raises(ValueError):
        issue_token("Has Spaces", 60)
    with pytest.raises(ValueError):
        issue_token("api", 0)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_no_other_string_verifies(guess: str) -> None:
    token, stored = issue_token("api", 60, now=NOW)
    if guess != token:
        assert not verify_token(guess, stored, now=NOW)


def test_token_stage_fills_hash_and_prefix_and_keeps_plaintext_off_the_values() -> None:
    stage = TokenStage(
        TokensSpec(
            column="auth_token",
            prefix_column="auth_token_prefix",
            purpose="password_reset",
            expires_in="2d",
        )
    )
    batch = Batch(1, 1, 3, 3, [Record(i, {}, {"email": f"{i}@x"}) for i in range(3)])

    stage.process(batch)

    assert [c.name for c in stage.columns()] == ["auth_token", "auth_token_prefix"]
    for record in batch.records:
        assert record.token is not None
        assert record.token not in repr(record)
        assert record.token not in str(record.values)
        assert record.values["auth_token_prefix"] == token_prefix(record.token)
        assert verify_token(record.token, record.values["auth_token"], purpose="password_reset")
        expires_in = parse_stored(record.values["auth_token"]).expires_at - time.time()
        assert 2 * 86400 - 60 < expires_in <= 2 * 86400
    assert len({r.token for r in batch.records}) == 3


def test_token_stage_reads_the_server_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_TOKEN_KEY", "k" * 32)
    stage = TokenStage(TokensSpec(server_key="env:TEST_TOKEN_KEY"))
    batch = Batch(1, 1, 1, 1, [Record(1, {}, {})])
    stage.process(batch)
    record = batch.records[0]
    assert record.token is not None
    assert verify_token(record.token, record.values["auth_token"], server_key="k" * 32)
    assert "k" * 32 not in repr(stage)

    monkeypatch.delenv("TEST_TOKEN_KEY")
    with pytest.raises(SpecError) as err:
        TokenStage(TokensSpec(server_key="env:TEST_TOKEN_KEY"))
    assert err.value.path == "tokens.server_key"


# --------------------------------------------------------------------------- delivery


def _legacy_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT)")
        conn.executemany(
            "INSERT INTO old_users VALUES (?, ?)", [(i, f"u{i}@example.com") for i in range(1, 6)]
        )


TOKENS_ONLY = """
[source]
url = "sqlite:///{src}"
table = "old_users"
key = "user_id"
[target]
url = "sqlite:///{dst}"
table = "new_users"
[fields]
user_id = "user_id"
email = "email"
[tokens]
column = "auth_token"
{extra}
"""


@pytest.mark.parametrize("command", ["plan", "run"])
def test_tokens_without_delivery_are_refused_before_anything_is_written(
    tmp_path: Path, command: str
) -> None:
    """1,992 token hashes whose plaintext nobody has: the spec must say so or add [notify]."""
    _legacy_db(tmp_path / "legacy.db")
    spec = tmp_path / "m.toml"
    spec.write_text(
        TOKENS_ONLY.format(src=tmp_path / "legacy.db", dst=tmp_path / "new.db", extra="")
    )

    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", command, str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert "tokens.delivery" in said and "[notify]" in said and 'delivery = "none"' in said
    assert (
        not (tmp_path / "new.db").exists()
        or not sqlite3.connect(tmp_path / "new.db")
        .execute("SELECT name FROM sqlite_master WHERE name = 'new_users'")
        .fetchall()
    )


def test_tokens_with_delivery_none_said_explicitly_migrate(tmp_path: Path) -> None:
    _legacy_db(tmp_path / "legacy.db")
    spec = tmp_path / "m.toml"
    spec.write_text(
        TOKENS_ONLY.format(
            src=tmp_path / "legacy.db", dst=tmp_path / "new.db", extra='delivery = "none"'
        )
    )

    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", "run", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    stored = (
        sqlite3.connect(tmp_path / "new.db").execute("SELECT auth_token FROM new_users").fetchall()
    )
    assert len(stored) == 5 and all(parse_stored(s) for (s,) in stored)


def test_delivery_none_beside_a_notify_section_is_a_contradiction() -> None:
    text = TOKENS_ONLY.format(src="l.db", dst="n.db", extra='delivery = "none"\n[notify]\n')
    with pytest.raises(SpecError, match=r'tokens.delivery: "none", but \[notify\]'):
        load_spec_text(text)
    assert load_spec_text(TOKENS_ONLY.format(src="l.db", dst="n.db", extra="[notify]\n"))


def test_readme_spec_example_loads_and_delivers_its_tokens() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (example,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[tokens]" in b]
    spec = load_spec_text(example)
    assert spec.tokens is not None and spec.notify is not None
    assert spec.tokens.delivery == "notify"
