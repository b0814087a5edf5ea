"""MariaDB as a target: the whole life of a migration on the suite's private MariaDB server.

``init``, ``plan``, ``run``, ``verify``, ``status`` and ``rollback`` through the CLI; keys of
each type MariaDB holds (integer, text, UUID as 32 hex characters, binary) stopped, resumed,
verified and rolled back; text keys and unique values that differ only in case, which
MariaDB's default collations treat as equal; and a run killed with SIGKILL that resumes.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, make_source, scalar
from tests.keys_matrix import BATCH, ROWS, key_type, keyed_spec
from tests.keys_matrix import make_keyed_source as build_source
from tests.mariadb_server import fresh_database

pytestmark = pytest.mark.mariadb


def _count(url: str, sql: str) -> int:
    return int(scalar(url, sql))


def test_mariadb_target_init_plan_run_verify_status_rollback(
    tmp_path: Path, mariadb_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 1_500, seed=5, hashes=True)
    dst = fresh_database(mariadb_url, "target")
    spec = tmp_path / "m.toml"
    made = cli("init", "--from", f"sqlite:///{src}", "--to", dst, "-o", str(spec), cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    text = spec.read_text().replace("batch_size = 5000", "batch_size = 400")
    spec.write_text(text + '\n[tokens]\ncolumn = "auth_token"\ndelivery = "none"\n')

    plan = cli("plan", str(spec), "--json", cwd=tmp_path)
    planned = json.loads(plan.stdout)
    assert plan.returncode == 1 and planned["rejected"] > 0, plan.stdout + plan.stderr
    run = cli("run", str(spec), cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr  # the source has bad emails: rejects
    migrated = _count(dst, "SELECT count(*) FROM accounts")
    assert migrated == planned["would_migrate"] > 1_400
    rejected = _count(dst, "SELECT count(*) FROM authmigrate_rejects")
    assert migrated + rejected == 1_500

    verify = cli("verify", str(spec), cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verify ok" in verify.stdout
    status = cli("status", str(spec), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["migrated"] == migrated

    gone = cli("rollback", str(spec), "--yes", cwd=tmp_path)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    for table in (
        "accounts",
        "authmigrate_batches",
        "authmigrate_rejects",
        "authmigrate_key_state",
    ):
        assert _count(dst, f"SELECT count(*) FROM {table}") == 0, table


class _Stop(Exception):
    """Raised from the progress callback: the run stops between two batches."""


@pytest.mark.parametrize(
    ("name", "db"),
    [("integer", "sqlite"), ("bigint", "sqlite"), ("text_c", "sqlite"), ("bytea", "sqlite"),
     ("uuid", "postgresql"), ("text_c", "mariadb"), ("timestamp", "sqlite")],
)  # fmt: skip
def test_keys_into_mariadb_resume_verify_and_roll_back(
    name: str, db: str, tmp_path: Path, mariadb_url: str, request: pytest.FixtureRequest
) -> None:
    kt = key_type(name)
    if db == "sqlite":
        src = build_source(db, kt, tmp_path)
    elif db == "postgresql":
        src = build_source(db, kt, request.getfixturevalue("pg_server").create_database("src"))
    else:
        src = build_source(db, kt, fresh_database(mariadb_url, "src"))
    dst = fresh_database(mariadb_url, "target")
    spec = load_spec(keyed_spec(tmp_path / "m.toml", src, dst))

    def stop_after_two_batches(done: int, total: int) -> None:
        if done >= 2 * BATCH:
            raise _Stop

    with pytest.raises(_Stop):
        run_migration(spec, progress=stop_after_two_batches)
    assert _count(dst, "SELECT count(*) FROM accounts") == 2 * BATCH
    resumed = run_migration(spec)
    assert resumed.this_run["read"] == ROWS - 2 * BATCH
    assert (resumed.migrated, resumed.rejected, resumed.merged) == (ROWS, 0, 0)
    assert run_migration(spec).this_run["read"] == 0

    checked = verify_migration(spec, chunk=7)
    assert checked.ok, (checked.different[:2], checked.missing[:2], checked.notes)
    removed = rollback(spec)
    assert (removed.accounts, removed.not_found) == (ROWS, 0)
    assert _count(dst, "SELECT count(*) FROM accounts") == 0
    assert _count(dst, "SELECT count(*) FROM authmigrate_batches") == 0


def _case_source(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE legacy_users (k TEXT PRIMARY KEY, email TEXT, login TEXT)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [
            ("Bob", "bob@example.com", "Bob"),
            ("bob", "other@example.com", "bob"),  # same key and login but for the case
            ("BOB", "third@example.com", "bobby"),
            ("alice", "alice@example.com", "alice"),
        ],
    )
    conn.commit()
    conn.close()


def test_keys_and_unique_values_differing_in_case_stay_distinct_in_mariadb(
    tmp_path: Path, mariadb_url: str
) -> None:
    # MariaDB compares text case-insensitively by default: 'Bob' = 'bob'. The source holds
    # them as two accounts, and so must the tables authmigrate creates.
    src = tmp_path / "legacy.db"
    _case_source(src)
    dst = fresh_database(mariadb_url, "target")
    spec_path = tmp_path / "m.toml"
    spec_path.write_text(
        f"""
name = "case"
[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "k"
[target]
url = "{dst}"
table = "accounts"
unique = ["email", "login"]
[fields]
k = "k"
email = {{ from = "email", normalize = "email" }}
login = "login"
[run]
batch_size = 2
""",
        encoding="utf-8",
    )
    spec = load_spec(spec_path)
    res = run_migration(spec)
    assert (res.status, res.migrated, res.rejected) == ("done", 4, 0), res.as_dict()["rejects"]
    engine = sa.create_engine(dst)
    with engine.connect() as conn:
        keys = sorted(conn.execute(sa.text("SELECT k FROM accounts")).scalars())
    engine.dispose()
    assert keys == ["BOB", "Bob", "alice", "bob"]
    assert verify_migration(spec).ok
    removed = rollback(spec)
    assert (removed.accounts, removed.not_found) == (4, 0)
    assert _count(dst, "SELECT count(*) FROM accounts") == 0


@pytest.mark.slow
def test_mariadb_target_survives_kill_9(tmp_path: Path, mariadb_url: str) -> None:
    from tests.test_key_types import _committed, _kill_mid_way

    src = build_source("sqlite", key_type("text_c"), tmp_path)
    dst = fresh_database(mariadb_url, "target")
    spec_path = keyed_spec(tmp_path / "m.toml", src, dst)
    spec_path.write_text(
        spec_path.read_text().replace(f"batch_size = {BATCH}", "batch_size = 1"), encoding="utf-8"
    )
    spec = load_spec(spec_path)
    for _ in range(3):
        done = _kill_mid_way(spec_path, dst, tmp_path / "run.log")
        if done >= 0:
            break
        rollback(spec)
    assert 1 <= done < ROWS, "the run finished before it could be killed, three times"
    committed = _committed(dst)
    resumed = run_migration(spec)
    assert resumed.this_run["read"] == ROWS - committed
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
    assert _count(dst, "SELECT count(*) FROM accounts") == ROWS
    removed = rollback(spec)
    assert (removed.accounts, removed.not_found) == (ROWS, 0)


def test_existing_native_uuid_key_column_resumes_and_verifies(
    tmp_path: Path, mariadb_url: str, pg_server: object
) -> None:
    # MariaDB 10.7+ has a UUID type, which holds and returns the dashed form
    src = build_source("postgresql", key_type("uuid"), pg_server.create_database("src"))  # type: ignore[attr-defined]
    dst = fresh_database(mariadb_url, "target")
    engine = sa.create_engine(dst)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE accounts (k uuid PRIMARY KEY, email varchar(254) UNIQUE, name text)"
        )
    engine.dispose()
    spec = load_spec(keyed_spec(tmp_path / "m.toml", src, dst))
    res = run_migration(spec)
    assert (res.status, res.migrated, res.rejected) == ("done", ROWS, 0)
    assert run_migration(spec).this_run["read"] == 0
    checked = verify_migration(spec, chunk=7)
    assert checked.ok, (checked.different[:2], checked.missing[:2], checked.notes)
    removed = rollback(spec)
    assert (removed.accounts, removed.not_found) == (ROWS, 0)
