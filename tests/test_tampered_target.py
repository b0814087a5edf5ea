"""A target changed after the migration: verify exits 1 and names exactly the keys touched."""

from __future__ import annotations

import json
from pathlib import Path

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, execute, make_source, scalar, write_spec


def test_tampered_target_makes_verify_exit_1_naming_exactly_those_keys(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 1200)
    spec = write_spec(tmp_path / "m.toml", src, target_url, batch=100)
    assert cli("run", str(spec), cwd=tmp_path).returncode in (0, 1)
    clean = cli("verify", str(spec), cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "verify ok" in clean.stdout

    rejected_key = json.loads(
        scalar(
            target_url,
            "SELECT source_key FROM authmigrate_rejects WHERE outcome = 'rejected' "
            "ORDER BY id LIMIT 1",
        )
    )
    execute(
        target_url,
        "UPDATE accounts SET name = 'Mallory' WHERE user_id = 333",
        "DELETE FROM accounts WHERE user_id = 777",
        "INSERT INTO accounts (user_id, email, origin) VALUES (:k, 'added@example.com', 'legacy')",
        params={"k": rejected_key},
    )
    # a sign-up in the live new system, with a key the source never had, is not the migration's
    execute(target_url, "INSERT INTO accounts (user_id, email) VALUES (5000000, 'new@example.com')")

    proc = cli("verify", str(spec), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = verify_migration(load_spec(spec))
    assert result.missing == [777]
    assert result.extra == [rejected_key]
    assert [(d.key, d.columns) for d in result.different] == [(333, ["name"])]
    assert result.chunks_bisected == 1
    assert result.checksums == "in-database"
    assert not result.reconciled  # one migrated row fewer
    assert result.migrated == result.source_rows - result.rejected - result.merged - 1
    out = proc.stdout
    for key in ("777", str(rejected_key), "333: name"):
        assert key in out
    assert "Mallory" not in out  # values are never shown, only keys and column names


def test_verify_bisects_many_scattered_changes_down_to_the_rows(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 5000)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = write_spec(tmp_path / "m.toml", src, dst, batch=500)
    cli("run", str(spec), cwd=tmp_path)
    changed = [17, 18, 1999, 2000, 4999]
    execute(
        dst,
        f"UPDATE accounts SET visits = visits + 1 WHERE user_id IN ({','.join(map(str, changed))})",
    )
    execute(dst, "UPDATE accounts SET active = NOT active WHERE user_id = 2500")
    result = verify_migration(load_spec(spec), chunk=1000)
    assert sorted(d.key for d in result.different if d.columns == ["visits"]) == changed
    assert [d.key for d in result.different if d.columns == ["active"]] == [2500]
    assert result.reconciled and not result.missing and not result.extra
    assert result.chunks == 5 and result.chunks_bisected == 4


def test_tampered_credentials_and_bookkeeping_are_named_by_key(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 300, hashes=True)
    spec = load_spec(
        write_spec(tmp_path / "m.toml", src, target_url, credentials="wrap", tokens=True)
    )
    run = run_migration(spec)
    assert verify_migration(spec).ok
    wrapped = scalar(
        target_url, "SELECT min(user_id) FROM accounts WHERE password LIKE '$wrap$md5_crypt$%'"
    )
    kept = scalar(target_url, "SELECT min(user_id) FROM accounts WHERE password LIKE '$2%'")
    other = scalar(
        target_url,
        "SELECT password FROM accounts WHERE password LIKE '$wrap$md5_crypt$%' AND user_id != :k"
        " ORDER BY user_id LIMIT 1",
        {"k": wrapped},
    )
    deleted_reject = json.loads(
        scalar(target_url, "SELECT source_key FROM authmigrate_rejects ORDER BY id LIMIT 1")
    )
    doubled = 250  # migrated, and now also claimed by a reject row
    assert scalar(target_url, f"SELECT count(*) FROM accounts WHERE user_id = {doubled}") == 1
    execute(
        target_url,
        "UPDATE accounts SET password = :p WHERE user_id = :k",
        "DELETE FROM authmigrate_rejects WHERE source_key = :r",
        params={"p": other, "k": wrapped, "r": json.dumps(deleted_reject)},
    )
    execute(target_url, f"UPDATE accounts SET password = password || 'x' WHERE user_id = {kept}")
    execute(
        target_url,
        "INSERT INTO authmigrate_rejects (migration, run_id, batch_no, source_key, outcome, reason)"
        " VALUES (:m, 'forged', 1, :k, 'rejected', 'field.invalid_email')",
        params={"m": spec.migration_name, "k": str(doubled)},
    )
    result = verify_migration(spec)
    assert not result.ok
    assert result.missing == [deleted_reject]  # neither migrated nor rejected any more
    assert result.doubled == [doubled]
    assert not result.extra and not result.different
    assert {(p.key, p.reason) for p in result.credential_problems} == {
        (wrapped, "wrap.inner"),
        (kept, "credential.differs"),
    }
    assert (result.migrated, result.rejected + result.merged) == (
        run.migrated,
        run.rejected + run.merged,  # one reject deleted, one forged
    )
    proc = cli("verify", str(tmp_path / "m.toml"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "counted twice" in proc.stdout and f"  {doubled}\n" in proc.stdout
