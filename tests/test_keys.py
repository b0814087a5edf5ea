"""Keys across runs: checkpoints of older versions, key types that change, two spellings of one
source, keys of mixed types, a text key column for integer keys, and a COMMIT left in doubt."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.pipeline.batch import Batch, Record
from authmigrate.pipeline.stages import DuplicateStage
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.sinks.sql import SqlTarget
from authmigrate.spec import load_spec, load_spec_text
from tests.helpers_verify import (
    OUTBOX_KEY,
    cli,
    execute,
    make_source,
    scalar,
    write_spec,
)
from tests.keys_matrix import BATCH, ROWS, key_type, keyed_spec, make_keyed_source


class _Stop(Exception):
    """Raised from the progress callback: the run stops between two batches."""


def _stop_after_two_batches(done: int, total: int) -> None:
    if done >= 2 * BATCH:
        raise _Stop


def _old_text(key: Any) -> str:
    """A key as versions before the typed checkpoint stored it (``encode_key`` then)."""
    if isinstance(key, bool) or not isinstance(key, int | str | float):
        key = str(key)
    return json.dumps(key, ensure_ascii=False)


def _old_blob(keys: list[Any]) -> bytes:
    """``written_keys`` as versions before the typed checkpoint packed them."""
    plain = [k if type(k) in (int, str) else json.loads(_old_text(k)) for k in keys]
    return zlib.compress(json.dumps(plain, ensure_ascii=False).encode(), 1)


def _rewrite_as_older_version(dst: str, source_url: str) -> None:
    """Put the bookkeeping of the committed batches back in the untyped form older versions
    wrote (``str(key)`` for a UUID, timestamp, numeric or binary key)."""
    src = sa.create_engine(source_url)
    with src.connect() as conn:
        keys = list(conn.execute(sa.text("SELECT k FROM legacy_users ORDER BY k")).scalars())
    src.dispose()
    engine = sa.create_engine(dst)
    with engine.begin() as conn:
        numbers = sorted(
            conn.execute(sa.text("SELECT batch_no FROM authmigrate_batches")).scalars()
        )
        for n in numbers:
            part = keys[(n - 1) * BATCH : n * BATCH]
            conn.execute(
                sa.text(
                    "UPDATE authmigrate_batches SET first_key = :f, last_key = :l,"
                    " written_keys = :w WHERE batch_no = :n"
                ),
                {"f": _old_text(part[0]), "l": _old_text(part[-1]), "w": _old_blob(part), "n": n},
            )
    engine.dispose()


@pytest.mark.parametrize(
    ("name", "db", "target"),
    [
        ("uuid", "postgresql", "sqlite"),
        ("timestamp", "sqlite", "sqlite"),
        ("numeric", "postgresql", "postgresql"),
        ("bytea", "postgresql", "postgresql"),
        ("timestamptz", "postgresql", "sqlite"),
    ],
)
def test_checkpoint_written_by_an_older_version_still_resumes(
    name: str, db: str, target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pg = request.getfixturevalue("pg_server") if "postgresql" in (db, target) else None
    where: Any = tmp_path if db == "sqlite" else pg.create_database("src")  # type: ignore[union-attr]
    src = make_keyed_source(db, key_type(name), where)
    dst = f"sqlite:///{tmp_path}/t.db" if target == "sqlite" else pg.create_database()  # type: ignore[union-attr]
    spec = load_spec(keyed_spec(tmp_path / "m.toml", src, dst))
    with pytest.raises(_Stop):
        run_migration(spec, progress=_stop_after_two_batches)
    _rewrite_as_older_version(dst, src)

    resumed = run_migration(spec)
    assert resumed.status == "done"
    assert resumed.this_run["read"] == ROWS - 2 * BATCH
    assert resumed.migrated == ROWS and resumed.rejected == 0
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
    removed = rollback(spec)
    assert removed.accounts == ROWS and removed.not_found == 0
    assert scalar(dst, "SELECT count(*) FROM accounts") == 0
    assert scalar(dst, "SELECT count(*) FROM authmigrate_batches") == 0


def test_numeric_unique_column_into_postgresql(tmp_path: Path, pg_url: str) -> None:
    execute(
        pg_url,
        "CREATE TABLE legacy_users (k integer PRIMARY KEY, ref numeric(10,2), email text)",
        "INSERT INTO legacy_users SELECT g, g * 1.5, 'u' || g || '@example.com'"
        " FROM generate_series(1, 30) g",
        "UPDATE legacy_users SET ref = 3.00 WHERE k = 20",  # same ref as k = 2
    )
    dst = f"sqlite:///{tmp_path}/t.db"
    for target in (dst, pg_url):
        spec = load_spec_text(
            f'name = "refs"\n[source]\nurl = "{pg_url}"\ntable = "legacy_users"\nkey = "k"\n'
            f'[target]\nurl = "{target}"\ntable = "accounts"\nunique = ["ref"]\n'
            '[fields]\nk = "k"\nref = "ref"\nemail = "email"\n[run]\nbatch_size = 7\n'
        )
        result = run_migration(spec)
        assert (result.migrated, result.rejected) == (29, 1), target
        assert result.by_reason == {"duplicate.ref": 1}
        assert verify_migration(spec).ok


# -- a key type that changes between runs -----------------------------------------------------


def _csv(path: Path, keys: list[str]) -> None:
    lines = ["user_id,email,name"] + [f"{k},user.{k}@example.com,Name {k}" for k in keys]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


CSV_SPEC = """
name = "csv"
[source]
url = "csv:///{src}"
key = "user_id"
[target]
url = "{dst}"
table = "accounts"
[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}
name = "name"
[run]
batch_size = 10
duplicates = "merge"
[notify]
outbox_key = "env:AUTHMIGRATE_OUTBOX_KEY"
"""


@pytest.mark.parametrize("key_column", ["created by the run", "text, made by the new system"])
def test_csv_keys_that_stop_being_integers_are_refused_naming_why(
    key_column: str, tmp_path: Path
) -> None:
    src, db = tmp_path / "users.csv", tmp_path / "t.db"
    dst = f"sqlite:///{db}"
    if key_column.startswith("text"):
        execute(dst, "CREATE TABLE accounts (user_id TEXT PRIMARY KEY, email TEXT, name TEXT)")
    _csv(src, [str(i) for i in range(1, 41)])
    spec = tmp_path / "m.toml"
    spec.write_text(CSV_SPEC.format(src=src, dst=dst), encoding="utf-8")
    env = {"AUTHMIGRATE_OUTBOX_KEY": OUTBOX_KEY}
    first = cli("run", str(spec), cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    before = {
        t: scalar(dst, f"SELECT count(*) FROM {t}")
        for t in ("accounts", "authmigrate_batches", "authmigrate_rejects", "authmigrate_outbox")
    }

    _csv(src, [str(i) for i in range(1, 41)] + ["A8"])  # a key that is no integer
    second = cli("run", str(spec), cwd=tmp_path, env=env)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "internal error" not in second.stderr
    if key_column.startswith("text"):
        assert "source.key" in second.stderr and "changed" in second.stderr
    else:
        assert "fields.user_id" in second.stderr
    assert "integer" in second.stderr and "text" in second.stderr
    after = {t: scalar(dst, f"SELECT count(*) FROM {t}") for t in before}
    assert after == before  # nothing merged, nothing queued, nothing written
    assert scalar(dst, "SELECT count(*) FROM authmigrate_rejects WHERE outcome = 'merged'") == 0


def test_csv_keys_that_become_integers_are_refused_not_skipped(tmp_path: Path) -> None:
    src, dst = tmp_path / "users.csv", f"sqlite:///{tmp_path}/t.db"
    _csv(src, ["10", "9", "A1"])  # text keys, paged in text order: "10", "9", "A1"
    spec = tmp_path / "m.toml"
    spec.write_text(
        CSV_SPEC.format(src=src, dst=dst).split("[notify]")[0].replace("= 10", "= 2"),
        encoding="utf-8",
    )
    assert cli("run", str(spec), cwd=tmp_path).returncode == 0
    _csv(src, ["10", "9", "11"])  # all integers now: "11" sorts before the checkpoint's "A1"
    again = cli("run", str(spec), cwd=tmp_path)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "source.key" in again.stderr and "changed" in again.stderr
    assert scalar(dst, "SELECT count(*) FROM authmigrate_batches") == 2


def test_an_account_found_as_a_duplicate_of_itself_stops_and_is_never_merged(
    tmp_path: Path,
) -> None:
    """The pipeline rejects a key the target holds before looking for duplicates, so with real
    parts this cannot happen unless keys are compared wrongly: the guard is tested on its own,
    with a lookup answering what the target would hold (the record's own key)."""
    spec = load_spec_text(
        f'[source]\nurl = "sqlite:///{tmp_path}/s.db"\ntable = "u"\nkey = "id"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/t.db"\ntable = "accounts"\n'
        '[fields]\nid = "id"\nemail = "email"\n[run]\nduplicates = "merge"\n'
    )
    stage = DuplicateStage(spec, lambda group, values: {"a@example.com": 7})
    batch = Batch(1, 7, 8, 2)
    batch.records = [
        Record(7, {}, {"id": 7, "email": "a@example.com"}),
        Record(8, {}, {"id": 8, "email": "b@example.com"}),
    ]
    with pytest.raises(RuntimeError, match="duplicate of itself"):
        stage.process(batch)
    assert batch.rejects == []


# -- two spellings of one source --------------------------------------------------------------

NAMELESS = """
[source]
url = "csv:///{src}"
key = "user_id"
[target]
url = "sqlite:///{dst}"
table = "accounts"
[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}
[run]
batch_size = 10
"""


def test_relative_and_absolute_spellings_of_one_source_are_one_migration(
    tmp_path: Path,
) -> None:
    data, one, two = tmp_path / "data", tmp_path / "one", tmp_path / "two"
    for d in (data, one, two):
        d.mkdir()
    _csv(data / "users.csv", [str(i) for i in range(1, 31)])
    dst = tmp_path / "t.db"
    relative = one / "m.toml"
    relative.write_text(NAMELESS.format(src="../data/users.csv", dst=dst), encoding="utf-8")
    absolute = two / "m.toml"
    absolute.write_text(NAMELESS.format(src=data / "users.csv", dst=dst), encoding="utf-8")

    first = run_migration(load_spec(relative))
    assert first.migrated == 30
    second = run_migration(load_spec(absolute))
    assert second.migration == first.migration
    assert second.this_run["read"] == 0
    assert second.rejected == 0 and second.merged == 0
    assert verify_migration(load_spec(absolute)).ok
    assert rollback(load_spec(relative)).accounts == 30


def test_a_name_an_earlier_version_recorded_is_still_found(tmp_path: Path) -> None:
    """Earlier versions named a nameless migration after the source path as spelled, not
    resolved; a target they wrote keeps that name (resume, verify, rollback)."""
    data, one = tmp_path / "data", tmp_path / "one"
    data.mkdir()
    one.mkdir()
    _csv(data / "users.csv", [str(i) for i in range(1, 21)])
    dst = tmp_path / "t.db"
    spec_path = one / "m.toml"
    spec_path.write_text(NAMELESS.format(src="../data/users.csv", dst=dst), encoding="utf-8")
    run_migration(load_spec(spec_path))
    # the name an earlier version gave: the spelled path's hash (as spec.migration_name was)
    spelled = f"csv:///{one / '../data/users.csv'}"
    digest = hashlib.sha256(f"{spelled}|None|None".encode()).hexdigest()[:8]
    old = f"users.csv->accounts@{digest}"
    assert load_spec(spec_path).migration_name != old
    execute(
        f"sqlite:///{dst}",
        *[
            f"UPDATE {t} SET migration = :old"
            for t in ("authmigrate_runs", "authmigrate_batches", "authmigrate_rejects")
        ],
        params={"old": old},
    )
    _csv(data / "users.csv", [str(i) for i in range(1, 26)])

    resumed = run_migration(load_spec(spec_path))
    assert resumed.migration == old
    assert resumed.this_run["read"] == 5  # only the new rows
    assert resumed.migrated == 25 and resumed.rejected == 0
    assert verify_migration(load_spec(spec_path)).ok
    assert rollback(load_spec(spec_path)).accounts == 25
    assert scalar(f"sqlite:///{dst}", "SELECT count(*) FROM accounts") == 0


# -- keys of mixed types, and a text key column for integer keys --------------------------------


def test_sqlite_keys_of_mixed_types_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (k, email TEXT)")  # no type: any value goes
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?)",
        [(1, "one@example.com"), ("1", "text-one@example.com"), (2, "two@example.com")],
    )
    conn.commit()
    conn.close()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "sqlite:///{src}"\ntable = "legacy_users"\nkey = "k"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/t.db"\ntable = "accounts"\n'
        '[fields]\nk = "k"\nemail = "email"\n',
        encoding="utf-8",
    )
    proc = cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "source.key" in proc.stderr and "integer, text" in proc.stderr
    assert not (tmp_path / "t.db").exists()


def test_integer_source_keys_into_an_existing_text_key_column(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 90)
    execute(
        target_url,
        "CREATE TABLE accounts (user_id VARCHAR(40) PRIMARY KEY, email VARCHAR(320) UNIQUE,"
        " name TEXT, created_at TIMESTAMP, active BOOLEAN, visits INTEGER, origin TEXT)",
        "INSERT INTO accounts (user_id, email, origin) VALUES ('10', 'owner@example.com', 'app')",
        "INSERT INTO accounts (user_id, email, origin) VALUES ('x-1', 'x@example.com', 'app')",
    )
    spec_path = write_spec(tmp_path / "m.toml", src, target_url, batch=20)
    spec = load_spec(spec_path)
    result = run_migration(spec)
    assert result.status == "done"
    assert result.by_reason.get("target.key_exists") == 1
    assert "target.constraint" not in result.by_reason
    assert (
        scalar(
            target_url,
            "SELECT reason FROM authmigrate_rejects WHERE source_key = '10'",
        )
        == "target.key_exists"
    )
    assert scalar(target_url, "SELECT email FROM accounts WHERE user_id = '10'") == (
        "owner@example.com"
    )
    assert scalar(target_url, "SELECT count(*) FROM accounts WHERE user_id = '11'") == 1
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
    assert run_migration(spec).this_run["read"] == 0
    removed = rollback(spec)
    assert removed.not_found == 0
    assert _keys(target_url) == ["10", "x-1"]


def test_text_source_keys_into_an_existing_integer_key_column_are_refused(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "users.csv"
    _csv(src, ["a1", "b2", "c3"])
    execute(target_url, "CREATE TABLE accounts (user_id BIGINT PRIMARY KEY, email TEXT)")
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "csv:///{src}"\nkey = "user_id"\n'
        f'[target]\nurl = "{target_url}"\ntable = "accounts"\n'
        '[fields]\nuser_id = "user_id"\nemail = "email"\n',
        encoding="utf-8",
    )
    proc = cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "fields.user_id" in proc.stderr and "cannot be compared" in proc.stderr
    assert scalar(target_url, "SELECT count(*) FROM accounts") == 0


def _keys(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT user_id FROM accounts ORDER BY user_id")
            return list(conn.execute(query).scalars())
    finally:
        engine.dispose()


# -- rollback and its bookkeeping --------------------------------------------------------------


def test_rollback_keeps_the_record_of_rows_it_did_not_remove(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 60)
    spec_path = write_spec(tmp_path / "m.toml", src, target_url, batch=20)
    spec = load_spec(spec_path)
    run_migration(spec)
    # the new system renamed one migrated account's key: rollback cannot find it any more
    execute(target_url, "UPDATE accounts SET user_id = 5005 WHERE user_id = 5")
    proc = cli("rollback", str(spec_path), "--yes", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 keys recorded as written by this migration are not in" in proc.stdout
    kept = scalar(
        target_url,
        "SELECT batch_no FROM authmigrate_batches WHERE migration = 'legacy->accounts'",
    )
    assert kept == 1
    assert scalar(target_url, "SELECT migrated FROM authmigrate_batches") == 1
    assert _keys(target_url) == [5005]
    assert scalar(target_url, "SELECT count(*) FROM authmigrate_runs WHERE status = 'done'") == 1
    # putting the key back lets the rollback finish
    execute(target_url, "UPDATE accounts SET user_id = 5 WHERE user_id = 5005")
    finished = rollback(spec)
    assert (finished.accounts, finished.not_found) == (1, 0)
    assert scalar(target_url, "SELECT count(*) FROM authmigrate_batches") == 0
    assert scalar(target_url, "SELECT count(*) FROM accounts") == 0


# -- a COMMIT whose acknowledgement is lost ----------------------------------------------------


def test_a_commit_whose_acknowledgement_is_lost_is_not_done_twice(
    tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real server cannot be made to drop the acknowledgement of one COMMIT on cue, so the
    fault is injected: batch 4 commits, then its commit call raises as a lost connection
    would (psycopg raises OperationalError when the link drops after COMMIT was sent).
    Injected into the Python path's commit (a SQLite COMMIT has no acknowledgement to lose,
    and the fast path writes SQLite only)."""
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "0")
    src = tmp_path / "legacy.db"
    make_source(src, 100)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, batch=10))
    real_commit = SqlTarget.commit_batch
    lost: list[int] = []

    def commit_then_lose_the_ack(self: SqlTarget, batch: Batch, *args: Any) -> None:
        real_commit(self, batch, *args)
        if batch.number == 4 and not lost:
            lost.append(batch.number)
            raise sa.exc.OperationalError(
                "COMMIT", {}, Exception("server closed the connection unexpectedly")
            )

    monkeypatch.setattr(SqlTarget, "commit_batch", commit_then_lose_the_ack)
    result = run_migration(spec)
    assert lost == [4]
    assert result.status == "done"
    assert result.this_run["read"] == 100  # batch 4 counted once
    assert "target.key_exists" not in result.by_reason
    assert scalar(target_url, "SELECT count(*) FROM authmigrate_batches") == 10
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()


def test_a_key_type_that_cannot_be_checkpointed_is_refused_up_front(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (k TIME PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO legacy_users VALUES ('10:00:00.000000', 'a@example.com')")
    conn.commit()
    conn.close()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "sqlite:///{src}"\ntable = "legacy_users"\nkey = "k"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/t.db"\ntable = "accounts"\n'
        '[fields]\nk = "k"\nemail = "email"\n',
        encoding="utf-8",
    )
    proc = cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "source.key" in proc.stderr and "TIME" in proc.stderr
    assert not (tmp_path / "t.db").exists()
