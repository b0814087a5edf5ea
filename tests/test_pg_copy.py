"""PostgreSQL targets take a batch's accounts with binary COPY, in the batch's transaction.

What the server sees is recorded by a trigger on the accounts table (``current_query()`` of
each statement that inserts rows), so these tests watch the real statements, not our code's
idea of them. The rows must equal those a SQLite target gets from the same source, and a batch
the target refuses must still end in per-row rejects with their reason and column.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.helpers_verify import execute, make_source, scalar, table_rows, write_spec

USERS = 3_000
BATCH = 500

WATCH = """
CREATE TABLE seen_statements (q text);
CREATE FUNCTION note_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO seen_statements VALUES (current_query()); RETURN NULL; END $$;
CREATE TRIGGER note AFTER INSERT ON accounts FOR EACH STATEMENT EXECUTE FUNCTION note_statement();
"""


class _Stop(Exception):
    """Raised from the progress callback: the run stops after its first batch."""


def _stop_after_first(done: int, total: int) -> None:
    if done >= BATCH:
        raise _Stop


def _statements(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT q FROM seen_statements")).scalars()
            return [" ".join(q.split())[:40] for q in rows]
    finally:
        engine.dispose()


def _watched_run(tmp_path: Path, pg_url: str, **spec: Any) -> Path:
    """Run the first batch, put the statement trigger on the accounts table, resume."""
    src = tmp_path / "legacy.db"
    make_source(src, USERS, seed=3, hashes=True)
    path = write_spec(tmp_path / "m.toml", src, pg_url, batch=BATCH, **spec)
    with pytest.raises(_Stop):
        run_migration(load_spec(path), progress=_stop_after_first)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(WATCH)
    engine.dispose()
    assert run_migration(load_spec(path)).status == "done"
    return path


def test_postgres_target_is_written_with_copy_and_equals_a_sqlite_run(
    tmp_path: Path, pg_url: str
) -> None:
    path = _watched_run(tmp_path, pg_url, credentials="keep", tokens=True)
    seen = _statements(pg_url)
    assert len(seen) == USERS // BATCH - 1  # every batch after the first, one statement each
    assert all(q.startswith('COPY "accounts"') or q.startswith("COPY accounts") for q in seen)

    sqlite_dst = f"sqlite:///{tmp_path}/clean.db"
    clean = write_spec(
        tmp_path / "clean.toml",
        tmp_path / "legacy.db",
        sqlite_dst,
        batch=BATCH,
        credentials="keep",
        tokens=True,
    )
    run_migration(load_spec(clean))
    tokens = ("auth_token",)  # random per run; verify checks each against its hash
    ours = table_rows(pg_url, "accounts", "user_id", exclude=tokens)
    theirs = table_rows(sqlite_dst, "accounts", "user_id", exclude=tokens)
    assert len(ours) == len(theirs) > 0
    assert [tuple(map(_plain, r)) for r in ours] == [tuple(map(_plain, r)) for r in theirs]
    assert int(scalar(pg_url, "SELECT count(auth_token) FROM accounts")) == len(ours)

    spec = load_spec(path)
    assert verify_migration(spec).ok
    removed = rollback(spec)
    assert removed.accounts == len(ours) and removed.not_found == 0
    assert int(scalar(pg_url, "SELECT count(*) FROM accounts")) == 0


def _plain(value: Any) -> Any:
    """A value as SQLite returns it (booleans are 0/1 there)."""
    return int(value) if isinstance(value, bool) else value


def test_batch_copy_refuses_falls_back_and_rejects_each_row_with_its_reason(
    tmp_path: Path, pg_url: str
) -> None:
    # a constraint the spec does not know and a value the target refuses: COPY fails, the
    # INSERT path finds the rows
    src = tmp_path / "legacy.db"
    make_source(src, USERS, seed=3)
    path = write_spec(tmp_path / "m.toml", src, pg_url, batch=BATCH)
    with pytest.raises(_Stop):
        run_migration(load_spec(path), progress=_stop_after_first)
    execute(
        pg_url,
        "ALTER TABLE accounts ADD CONSTRAINT no_14 CHECK (visits <> 14) NOT VALID",
        # a value the target refuses as data (a DataError, as an overflow is)
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN RAISE EXCEPTION 'out of range' USING ERRCODE = '22003'; END $$",
        "CREATE TRIGGER refuse_21 BEFORE INSERT ON accounts FOR EACH ROW"
        " WHEN (NEW.visits = 21) EXECUTE FUNCTION refuse()",
    )
    assert run_migration(load_spec(path)).status == "done"

    clean = f"sqlite:///{tmp_path}/clean.db"  # what reaches the write, without the limits
    run_migration(load_spec(write_spec(tmp_path / "c.toml", src, clean, batch=BATCH)))
    engine = sa.create_engine(clean)
    with engine.connect() as conn:
        reached = conn.execute(
            sa.text("SELECT user_id, visits FROM accounts WHERE user_id > :b"),
            {"b": BATCH},
        ).all()
    engine.dispose()
    invalid = {str(k) for k, v in reached if v == 21}
    refused = {str(k) for k, v in reached if v == 14}
    assert invalid and refused

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rejects = conn.execute(
            sa.text(
                "SELECT source_key, reason, column_name FROM authmigrate_rejects"
                " WHERE reason LIKE 'target.%'"
            )
        ).all()
        written = {str(k) for k in conn.execute(sa.text("SELECT user_id FROM accounts")).scalars()}
    engine.dispose()
    assert {k for k, r, c in rejects if r == "target.invalid_value"} == invalid
    assert {k for k, r, c in rejects if r == "target.constraint"} == refused
    assert len(rejects) == len(invalid | refused)
    assert not (invalid | refused) & written
    assert len(written) == len(reached) + BATCH - len(invalid | refused) - _lost_in_first(clean)
    assert verify_migration(load_spec(path)).ok


def _lost_in_first(clean: str) -> int:
    """Rows of the first batch that were rejected or merged (not accounts) in the clean run."""
    return BATCH - int(scalar(clean, f"SELECT count(*) FROM accounts WHERE user_id <= {BATCH}"))


def test_values_binary_copy_cannot_send_take_the_insert_path(tmp_path: Path, pg_url: str) -> None:
    # floats for an existing numeric column: binary COPY cannot send a float as numeric (its
    # digits would be the float's exact binary value), INSERT lets the server convert it
    import decimal
    import sqlite3

    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (id INTEGER PRIMARY KEY, email TEXT, visits REAL)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [(i, f"u{i}@example.com", 40 + i / 10) for i in range(1, 8)],
    )
    conn.commit()
    conn.close()
    execute(
        pg_url,
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text UNIQUE, visits numeric(6,2))",
    )
    spec = tmp_path / "m.toml"
    spec.write_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "id"
[target]
url = "{pg_url}"
table = "accounts"
[fields]
id = "id"
email = {{ from = "email", normalize = "email" }}
visits = {{ from = "visits", type = "float" }}
[run]
batch_size = 3
""",
        encoding="utf-8",
    )
    res = run_migration(load_spec(spec))
    assert (res.status, res.migrated, res.rejected) == ("done", 7, 0)
    assert table_rows(pg_url, "accounts", "id") == [
        (f"u{i}@example.com", i, decimal.Decimal(f"40.{i}0")) for i in range(1, 8)
    ]
    assert verify_migration(load_spec(spec)).ok


def test_verify_of_a_table_with_a_not_valid_check_prints_no_sqlalchemy_warning(
    tmp_path: Path, pg_url: str
) -> None:
    """SQLAlchemy 2.1 warns ("Can't validate argument 'dialect_options'") when it reflects a
    CHECK constraint added ``NOT VALID``, a common way to add one to a live table; the
    operator saw that warning on stderr under every command that reads the target."""
    src = tmp_path / "legacy.db"
    make_source(src, 30, seed=3)
    path = write_spec(tmp_path / "m.toml", src, pg_url, batch=BATCH)
    run_migration(load_spec(path))
    execute(pg_url, "ALTER TABLE accounts ADD CONSTRAINT no_14 CHECK (visits <> 14) NOT VALID")
    proc = subprocess.run(
        [sys.executable, "-m", "authmigrate", "verify", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Warning" not in proc.stderr
