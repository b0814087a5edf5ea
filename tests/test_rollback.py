"""rollback removes exactly what the migration wrote, and nothing that was there before."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from authmigrate.errors import LockError
from authmigrate.pipeline import run_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, execute, make_source, scalar, table_rows, write_spec


def test_rollback_removes_only_what_the_migration_wrote(tmp_path: Path, target_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 600)
    spec_path = write_spec(tmp_path / "m.toml", src, target_url, batch=70, tokens=True)
    spec = load_spec(spec_path)
    run_migration(spec)  # creates the table; undone at once, so the table is left empty
    assert rollback(spec).batches == 9
    assert scalar(target_url, "SELECT count(*) FROM accounts") == 0
    # accounts that were in the target before: one with a key the source also has
    execute(
        target_url,
        "INSERT INTO accounts (user_id, email, origin) VALUES (10, 'owner@example.com', 'new-app')",
        "INSERT INTO accounts (user_id, email, origin) VALUES (9000, 'other@example.com', 'new-app')",
    )
    before = table_rows(target_url, "accounts", "user_id")
    # another migration's bookkeeping in the same target must survive too
    execute(
        target_url,
        "INSERT INTO authmigrate_rejects (migration, run_id, batch_no, outcome, reason)"
        " VALUES ('other', 'r', 1, 'rejected', 'x')",
    )
    run_migration(spec)
    assert scalar(target_url, "SELECT count(*) FROM accounts") > 500
    assert (
        scalar(
            target_url,
            "SELECT reason FROM authmigrate_rejects WHERE source_key = '10' AND migration != 'other'",
        )
        == "target.key_exists"
    )
    proc = cli("rollback", str(spec_path), "--yes", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert table_rows(target_url, "accounts", "user_id") == before
    migration = spec.migration_name
    assert (
        scalar(
            target_url, f"SELECT count(*) FROM authmigrate_batches WHERE migration = '{migration}'"
        )
        == 0
    )
    assert (
        scalar(
            target_url, f"SELECT count(*) FROM authmigrate_rejects WHERE migration = '{migration}'"
        )
        == 0
    )
    assert (
        scalar(target_url, "SELECT count(*) FROM authmigrate_rejects WHERE migration = 'other'")
        == 1
    )
    statuses = scalar(
        target_url,
        f"SELECT count(*) FROM authmigrate_runs WHERE migration = '{migration}'"
        " AND command = 'run' AND status != 'rolled_back'",
    )
    assert statuses == 0
    assert (
        scalar(target_url, "SELECT count(*) FROM authmigrate_runs WHERE command = 'rollback'") == 2
    )
    # and the migration can run again from the start
    again = run_migration(spec)
    assert again.this_run["read"] == 600


def test_rollback_needs_yes_when_not_on_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 20)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec_path = write_spec(tmp_path / "m.toml", src, dst)
    run_migration(load_spec(spec_path))
    proc = cli("rollback", str(spec_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--yes" in proc.stderr
    assert scalar(dst, "SELECT count(*) FROM accounts") > 0


def test_rollback_waits_for_no_run_it_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 20)
    dst_file = tmp_path / "t.db"
    spec_path = write_spec(tmp_path / "m.toml", src, f"sqlite:///{dst_file}")
    run_migration(load_spec(spec_path))
    with open(f"{dst_file}.authmigrate-lock", "ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LockError, match="another run"):
            rollback(load_spec(spec_path))
        proc = cli("rollback", str(spec_path), "--yes", cwd=tmp_path)
        assert proc.returncode == 2 and "another run" in proc.stderr
    assert scalar(f"sqlite:///{dst_file}", "SELECT count(*) FROM accounts") > 0
