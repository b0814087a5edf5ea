"""verify: reconciliation, checksums on SQLite and PostgreSQL, credentials and tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import add_hashes, canonical, row_text, text_hash, verify_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, execute, make_source, scalar, write_spec


def test_verify_holds_after_a_clean_run_and_shows_each_term(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 3000)
    spec = write_spec(tmp_path / "m.toml", src, target_url, batch=400)
    run = run_migration(load_spec(spec))
    result = verify_migration(load_spec(spec), chunk=700)
    assert result.ok, result.as_dict()
    assert (result.source_rows, result.migrated, result.rejected, result.merged) == (
        3000,
        run.migrated,
        run.rejected,
        run.merged,
    )
    assert result.rejected > 0 and result.merged > 0
    assert result.chunks == 5 and result.chunks_bisected == 0
    proc = cli("verify", str(spec), cwd=tmp_path)
    assert proc.returncode == 0
    terms = f"3,000 = {run.migrated:,} + {run.rejected:,} + {run.merged:,}"
    assert terms in proc.stdout


def test_verify_before_any_run_exits_1(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 10)
    spec = write_spec(tmp_path / "m.toml", src, f"sqlite:///{tmp_path}/t.db")
    proc = cli("verify", str(spec), cwd=tmp_path)
    assert proc.returncode == 1
    assert "no run of this migration" in proc.stdout


def test_source_rows_added_after_the_run_are_reported_missing(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 200)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = write_spec(tmp_path / "m.toml", src, dst)
    run_migration(load_spec(spec))
    execute(
        f"sqlite:///{src}",
        "INSERT INTO legacy_users VALUES (201, 'late@example.com', 'Late', NULL, 1, 0, NULL)",
        "DELETE FROM legacy_users WHERE user_id = 5",
    )
    result = verify_migration(load_spec(spec))
    assert result.missing == [201]
    assert result.extra == [5]  # the source no longer has it
    assert not result.ok  # the counts happen to balance (one in, one out); the keys do not


def test_in_database_checksum_matches_the_python_one(target_url: str) -> None:
    execute(
        target_url,
        "CREATE TABLE t (k INTEGER PRIMARY KEY, s TEXT, b BOOLEAN, d TIMESTAMP, n INTEGER)",
    )
    execute(
        target_url,
        "INSERT INTO t VALUES (1, 'a|b\\c ünï', TRUE, '2020-01-02 03:04:05.678901', -3),"
        " (2, NULL, FALSE, NULL, NULL)",
    )
    import sqlalchemy as sa

    from authmigrate.reconcile.target import _Target
    from authmigrate.spec import load_spec_text

    spec = load_spec_text(
        f'[source]\nurl = "sqlite://"\ntable = "x"\nkey = "k"\n'
        f'[target]\nurl = "{target_url}"\ntable = "t"\n'
        '[fields]\nk = "k"\ns = "s"\nb = "b"\nd = "d"\nn = "n"\n'
    )
    engine = sa.create_engine(target_url)
    with engine.connect() as conn:
        target = _Target(spec, engine, conn)
        assert target.in_db
        in_db = target.digest([1, 2])
        target.in_db = False
        streamed = target.digest([1, 2])
        key = target.checksum_key
    engine.dispose()
    python = add_hashes(
        text_hash(row_text([canonical(k, v) for k, v in zip(kinds, row, strict=True)]), key)
        for kinds, row in [
            (
                ("int", "text", "bool", "datetime", "int"),
                (1, "a|b\\c ünï", True, "2020-01-02 03:04:05.678901", -3),
            ),
            (("int", "text", "bool", "datetime", "int"), (2, None, False, None, None)),
        ]
    )
    assert in_db == streamed == python
    assert python[0] == 2


def test_wrapped_kept_credentials_and_tokens_are_checked(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 150, hashes=True)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = write_spec(tmp_path / "m.toml", src, dst, credentials="wrap", tokens=True)
    run_migration(load_spec(spec))
    result = verify_migration(load_spec(spec))
    assert result.ok, result.as_dict()
    assert result.wrapped_total > 0 and result.wrapped_checked == result.wrapped_total
    assert result.credentials_checked == result.migrated == result.tokens_checked

    wrapped_key = scalar(
        dst, "SELECT min(user_id) FROM accounts WHERE password LIKE '$wrap$md5_crypt$%'"
    )
    token_key = scalar(dst, "SELECT max(user_id) FROM accounts")
    kept_key = scalar(dst, "SELECT user_id FROM accounts WHERE password LIKE '$2%' LIMIT 1")
    other_wrapped = scalar(
        dst,
        "SELECT password FROM accounts WHERE password LIKE '$wrap$md5_crypt$%' AND user_id != :k"
        " LIMIT 1",
        {"k": wrapped_key},
    )
    # a wrapped credential of another account: same scheme, but not from this source hash
    execute(
        dst,
        "UPDATE accounts SET password = :p WHERE user_id = :k",
        params={"p": other_wrapped, "k": wrapped_key},
    )
    execute(dst, f"UPDATE accounts SET password = password || 'x' WHERE user_id = {kept_key}")
    execute(dst, f"UPDATE accounts SET auth_token = 'plain-token' WHERE user_id = {token_key}")
    result = verify_migration(load_spec(spec))
    problems = {(p.key, p.column, p.reason) for p in result.credential_problems}
    assert (kept_key, "password", "credential.differs") in problems
    assert (token_key, "auth_token", "token.malformed") in problems
    assert (wrapped_key, "password", "wrap.inner") in problems  # another salt
    assert len(problems) == 3
    assert not result.different  # credentials and tokens are not part of the row checksums


def test_sample_limits_the_argon2_checks(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 90, hashes=True)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = write_spec(tmp_path / "m.toml", src, dst, credentials="wrap")
    run_migration(load_spec(spec))
    result = verify_migration(load_spec(spec), sample=5)
    assert result.ok
    assert result.wrapped_checked == 5 < result.wrapped_total
    proc = cli("verify", str(spec), "--sample", "3", cwd=tmp_path)
    assert proc.returncode == 0
    assert "3 of" in proc.stdout


@pytest.mark.postgres
def test_verify_across_databases_sqlite_source_postgres_target(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 500, hashes=True)
    spec = write_spec(tmp_path / "m.toml", src, pg_url, credentials="keep", tokens=True)
    run_migration(load_spec(spec))
    result = verify_migration(load_spec(spec), chunk=128)
    assert result.ok, result.as_dict()
    assert result.checksums == "in-database"
    execute(
        pg_url,
        "UPDATE accounts SET created_at = created_at + interval '1 second' WHERE user_id = 42",
    )
    result = verify_migration(load_spec(spec), chunk=128)
    assert [(d.key, d.columns) for d in result.different] == [(42, ["created_at"])]


def test_check_wrapped_needs_the_argon2_hash_over_the_legacy_digest() -> None:
    from authmigrate.credentials.wrap import (
        TEST,
        WrappedParts,
        format_wrapped,
        hasher,
        parse_wrapped,
        wrap_credential,
    )
    from authmigrate.reconcile.credentials import check_wrapped

    legacy = "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"
    good = wrap_credential("md5_crypt", legacy, profile=TEST)
    parts = parse_wrapped(good)
    forged = format_wrapped(WrappedParts(parts.scheme, hasher(TEST).hash(b"other"), parts.inner))
    assert check_wrapped(good, legacy, "md5_crypt").ok
    assert check_wrapped(forged, legacy, "md5_crypt").reason == "wrap.digest"
    assert check_wrapped(forged, legacy, "md5_crypt", check_digest=False).ok
    assert check_wrapped(good, legacy, "phpass").reason == "wrap.scheme"
    assert check_wrapped("$wrap$nonsense", legacy, "md5_crypt").reason == "wrap.malformed"


def test_no_false_positive_for_a_csv_source_with_odd_values(
    tmp_path: Path, target_url: str
) -> None:
    """CSV source (staged in SQLite) into SQLite or PostgreSQL, merged duplicates, tokens,
    wrapped credentials, floats, NFD text kept as is and normalized, aware and naive times,
    booleans in many spellings, empty values: a clean run verifies with no chunk bisected."""
    import unicodedata

    from passlib import hash as h

    from authmigrate.spec import load_spec_text

    lines = ["user_id,email,name,created,active,visits,score,password_hash"]
    for i in range(1, 121):
        name = f"Zoë Ångström {i}" if i % 2 else f"Zoë {i}"
        name = unicodedata.normalize("NFD", name) if i % 3 else name
        created = (
            f"2020-01-0{1 + i % 9}T0{i % 10}:00:00+02:00"
            if i % 3
            else f"1999-12-31 23:59:59.{i:06d}"
        )
        active = ["true", "0", "yes", "", "f"][i % 5]
        cred = h.md5_crypt.hash(f"pw{i}") if i % 4 else ""
        lines.append(f'{i},u{i % 80}@example.com,"{name}",{created},{active},{i},{i / 3!r},{cred}')
    (tmp_path / "u.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = load_spec_text(
        f'name = "csv"\n[source]\nurl = "csv:///{tmp_path}/u.csv"\nkey = "user_id"\n'
        f'[target]\nurl = "{target_url}"\ntable = "accounts"\n'
        "[fields]\n"
        'user_id = "user_id"\n'
        'email = { from = "email", normalize = "email" }\n'
        'name = "name"\n'
        'name_nfc = { from = "name", normalize = ["nfc"] }\n'
        'created_at = { from = "created", type = "datetime" }\n'
        'active = { from = "active", type = "boolean" }\n'
        'visits = { from = "visits", type = "integer" }\n'
        'score = { from = "score", type = "float" }\n'
        '[credentials]\ncolumn = "password_hash"\npolicy = "wrap"\nprofile = "TEST"\n'
        '[tokens]\ncolumn = "auth_token"\ndelivery = "none"\n'
        '[run]\nbatch_size = 16\nduplicates = "merge"\n'
    )
    run = run_migration(spec)
    assert run.merged == 40 and run.rejected == 0 and run.migrated == 80
    assert scalar(target_url, "SELECT count(*) FROM accounts WHERE password IS NULL") > 0
    result = verify_migration(spec, chunk=25)
    assert result.ok, result.as_dict()
    assert result.chunks_bisected == 0
    assert result.wrapped_checked == result.wrapped_total > 0
    assert result.tokens_checked == result.credentials_checked == 80


def test_verify_before_any_run_writes_no_target_file(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 10)
    spec = write_spec(tmp_path / "m.toml", src, f"sqlite:///{tmp_path}/t.db")
    proc = cli("verify", str(spec), cwd=tmp_path)
    assert proc.returncode == 1
    assert not (tmp_path / "t.db").exists()
    assert not (tmp_path / "t.db.authmigrate-lock").exists()
