"""Keys of every type the databases have: run, interrupt or kill -9, resume, verify, rollback.

For each key type (integer, bigint near ±2**62, numeric, text under the C and an ICU collation,
UUID, timestamp, timestamptz, date, bytea) and each source database that has it (SQLite,
PostgreSQL, MariaDB), into a SQLite and a PostgreSQL target: a run stopped after two batches
resumes from its typed checkpoint, ``verify`` finds every row, and ``rollback`` removes every
account and every bookkeeping row of the migration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.helpers_verify import scalar
from tests.keys_matrix import BATCH, ROWS, combinations, icu_collation, key_type, keyed_spec
from tests.keys_matrix import make_keyed_source as build_source
from tests.mariadb_server import fresh_database

BATCHES = -(-ROWS // BATCH)


def _source_url(db: str, name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    kt = key_type(name)
    if db == "sqlite":
        return build_source(db, kt, tmp_path)
    if db == "postgresql":
        url = request.getfixturevalue("pg_server").create_database("src")
        if name == "text_icu" and icu_collation(url) is None:
            pytest.skip("this PostgreSQL has no ICU collation (built without ICU)")
        return build_source(db, kt, url)
    return build_source(db, kt, fresh_database(request.getfixturevalue("mariadb_url")))


def _count(url: str, sql: str) -> int:
    return int(scalar(url, sql))


def _assert_rolled_back(dst: str) -> None:
    assert _count(dst, "SELECT count(*) FROM accounts") == 0
    for table in ("authmigrate_batches", "authmigrate_rejects"):
        assert _count(dst, f"SELECT count(*) FROM {table} WHERE migration = 'keys'") == 0


class _Stop(Exception):
    """Raised from the progress callback: the run stops between two batches."""


@pytest.mark.parametrize(("name", "db"), combinations())
def test_keys_of_every_type_resume_verify_and_roll_back(
    name: str, db: str, target_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    src = _source_url(db, name, tmp_path, request)
    spec = load_spec(keyed_spec(tmp_path / "m.toml", src, target_url))

    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 2 * BATCH:
            raise _Stop

    with pytest.raises(_Stop):
        run_migration(spec, progress=stop_after_two_batches)
    assert _count(target_url, "SELECT count(*) FROM accounts") == 2 * BATCH

    resumed = run_migration(spec)
    assert resumed.status == "done"
    assert resumed.this_run["read"] == ROWS - 2 * BATCH  # from the checkpoint, nothing again
    assert (resumed.migrated, resumed.rejected, resumed.merged) == (ROWS, 0, 0)

    again = run_migration(spec)
    assert again.this_run["read"] == 0

    checked = verify_migration(spec, chunk=7)
    assert checked.ok, checked.as_dict()
    assert checked.migrated == ROWS

    removed = rollback(spec)
    assert (removed.accounts, removed.batches, removed.not_found) == (ROWS, BATCHES, 0)
    _assert_rolled_back(target_url)


def _committed(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT count(*) FROM authmigrate_batches")).scalar_one()
            )
    except sa.exc.DBAPIError:
        return 0  # not created yet
    finally:
        engine.dispose()


def _kill_mid_way(spec: Path, dst: str, log: Path) -> int:
    """Start ``authmigrate run`` with one row per batch, freeze it (SIGSTOP) as soon as a batch
    is committed, then SIGKILL it; returns the batches committed, or -1 if it finished first."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "authmigrate", "run", str(spec)],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            cwd=spec.parent,
        )
    deadline = time.monotonic() + 60
    while _committed(dst) < 1 and proc.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-800:]
        time.sleep(0.002)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGSTOP)
    done = _committed(dst)
    if proc.poll() is not None:
        return -1
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    return done if done < ROWS else -1


@pytest.mark.slow
@pytest.mark.parametrize(("name", "db"), combinations())
def test_keys_of_every_type_survive_kill_9(
    name: str, db: str, target_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    src = _source_url(db, name, tmp_path, request)
    spec_path = keyed_spec(tmp_path / "m.toml", src, target_url)
    # one row per batch: the kill lands between two of twenty commits
    spec_path.write_text(
        spec_path.read_text().replace(f"batch_size = {BATCH}", "batch_size = 1"), encoding="utf-8"
    )
    spec = load_spec(spec_path)
    for _ in range(3):
        done = _kill_mid_way(spec_path, target_url, tmp_path / "run.log")
        if done >= 0:
            break
        rollback(spec)  # it finished before the kill: undo and try again
    assert 1 <= done < ROWS, "the run finished before it could be killed, three times"

    committed = _committed(target_url)  # one row per batch
    resumed = run_migration(spec)
    assert resumed.status == "done"
    assert resumed.this_run["read"] == ROWS - committed  # from the checkpoint, nothing again
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
    assert checked.migrated == ROWS
    assert _count(target_url, "SELECT count(*) FROM accounts") == ROWS

    removed = rollback(spec)
    assert (removed.accounts, removed.not_found) == (ROWS, 0)
    _assert_rolled_back(target_url)
