"""rollback removes exactly what the migration wrote, and nothing that was there before."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.errors import LockError
from authmigrate.pipeline import Migration, run_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.helpers_verify import (
    OUTBOX_KEY,
    cli,
    execute,
    make_source,
    scalar,
    table_rows,
    write_spec,
)


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


def _count(engine: sa.Engine, query: str) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    except sa.exc.OperationalError:
        return -1  # SQLite busy for a moment: ask again


def test_rollback_killed_midway_finishes_when_run_again_then_a_new_run_verifies(
    tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    src = tmp_path / "legacy.db"
    make_source(src, 800)
    spec_path = write_spec(tmp_path / "m.toml", src, target_url, batch=8, tokens=True, notify=True)
    spec = load_spec(spec_path)
    name = spec.migration_name
    # the table as the live system had it before the migration, with two accounts of its own
    made = Migration(spec)
    made.target.create()
    made.close()
    execute(
        target_url,
        "INSERT INTO accounts (user_id, email, origin) VALUES (10, 'owner@example.com', 'app')",
        "INSERT INTO accounts (user_id, email, origin) VALUES (9000, 'new@example.com', 'app')",
        "INSERT INTO authmigrate_outbox (migration, run_id, source_key, segment, context,"
        " message_id, status, attempts, created_at)"
        " VALUES ('other', 'r', '1', 'reset', '{}', 'm1', 'queued', 0, '2020-01-01')",
    )
    before = table_rows(target_url, "accounts", "user_id")
    first = run_migration(spec)
    assert first.by_reason.get("target.key_exists") == 1  # key 10 was the app's
    migrated = table_rows(target_url, "accounts", "user_id", exclude=("auth_token",))
    batches = scalar(target_url, "SELECT count(*) FROM authmigrate_batches")
    assert batches == 100
    assert scalar(target_url, f"SELECT count(*) FROM authmigrate_outbox WHERE migration = '{name}'")

    # kill -9 the rollback once some batches are gone, but not all
    engine = sa.create_engine(target_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "rollback", str(spec_path), "--yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 60
    left = batches
    while proc.poll() is None and not 0 < left <= batches - 10:
        assert time.monotonic() < deadline
        left = _count(engine, "SELECT count(*) FROM authmigrate_batches") if left else left
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the rollback ended before the kill"
    left = _count(engine, "SELECT count(*) FROM authmigrate_batches")
    engine.dispose()
    assert 0 < left < batches
    # whole batches stay: their accounts are still there, the removed ones' are gone
    assert scalar(target_url, "SELECT count(*) FROM accounts") == (
        len(before)
        + scalar(target_url, "SELECT coalesce(sum(migrated), 0) FROM authmigrate_batches")
    )

    again = cli("rollback", str(spec_path), "--yes", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert table_rows(target_url, "accounts", "user_id") == before
    for table in ("authmigrate_batches", "authmigrate_rejects", "authmigrate_outbox"):
        where = f"SELECT count(*) FROM {table} WHERE migration = '{name}'"
        assert scalar(target_url, where) == 0, table
    assert scalar(target_url, "SELECT count(*) FROM authmigrate_outbox") == 1  # other's stays

    # a new run migrates everything again, exactly as the first did, and verify holds
    rerun = run_migration(spec)
    assert (rerun.this_run["read"], rerun.migrated) == (800, first.migrated)
    assert table_rows(target_url, "accounts", "user_id", exclude=("auth_token",)) == migrated
    verified = cli("verify", str(spec_path), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
