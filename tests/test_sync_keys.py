"""sync with keys that are not integers (UUIDs from PostgreSQL, text on SQLite), compared
through the key codec as run compares them; and sync reads only the columns it uses."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import sqlalchemy as sa

from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import scalar

SPEC = """
[source]
url = "{src}"
table = "legacy_users"
key = "user_id"

[target]
url = "{dst}"
table = "accounts"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email", required = true }}
name = "name"

[run]
batch_size = 4
{extra}
"""


def write_spec(tmp_path: Path, src: str, dst: str, extra: str = "") -> Path:
    path = tmp_path / "m.toml"
    path.write_text(SPEC.format(src=src, dst=dst, extra=extra), encoding="utf-8")
    return path


def execute(url: str, sql: str, params: dict[str, object] | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params or {})
    engine.dispose()


def target_keys(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        keys = [str(k) for k in conn.execute(sa.text("SELECT user_id FROM accounts")).scalars()]
    engine.dispose()
    return sorted(keys)


def test_sync_with_uuid_keys_from_postgresql(tmp_path: Path, pg_url: str, target_url: str) -> None:
    """UUID keys (PostgreSQL's own type) into a PostgreSQL target (native uuid) and into a
    SQLite target (32 hex digits): an update, a delete and a new key are each carried once,
    and a second sync finds the target in step."""
    ids = sorted(uuid.uuid4() for _ in range(10))
    execute(
        pg_url,
        "CREATE TABLE legacy_users (user_id uuid PRIMARY KEY, email text, name text)",
    )
    for i, k in enumerate(ids):
        execute(
            pg_url,
            "INSERT INTO legacy_users VALUES (:k, :e, :n)",
            {"k": k, "e": f"u{i}@example.com", "n": f"User {i}"},
        )
    spec = write_spec(tmp_path, pg_url, target_url)
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).changes == 0

    new = uuid.UUID(int=1)  # sorts before every key the run read: past no checkpoint
    execute(
        pg_url,
        "UPDATE legacy_users SET email = 'moved@example.com' WHERE user_id = :k",
        {"k": ids[3]},
    )
    execute(pg_url, "DELETE FROM legacy_users WHERE user_id = :k", {"k": ids[7]})
    execute(
        pg_url,
        "INSERT INTO legacy_users VALUES (:k, 'new@example.com', 'New')",
        {"k": new},
    )
    res = sync_migration(load_spec(spec))
    assert res.updated == [ids[3]]
    assert res.inserted == [new]
    assert list(res.deleted) == [ids[7]]
    assert not res.rejected
    assert res.conflicts == []
    assert sync_migration(load_spec(spec)).changes == 0
    assert verify_migration(load_spec(spec)).ok
    engine = sa.create_engine(target_url)
    with engine.connect() as conn:
        emails = sorted(conn.execute(sa.text("SELECT email FROM accounts")).scalars())
    engine.dispose()
    assert "moved@example.com" in emails and "new@example.com" in emails
    assert "u3@example.com" not in emails
    assert len(emails) == 11  # the deleted key is disabled (the default), not removed


def test_sync_with_text_keys_on_sqlite(tmp_path: Path) -> None:
    """Text keys whose text order is not their number order ('10' < '9'), one that looks
    like a number with a leading zero, and one with spaces: each is carried as itself."""
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (user_id TEXT PRIMARY KEY, email TEXT, name TEXT)")
    keys = ["A8", "b 2", "10", "9", "007", "zz"]
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [(k, f"u{i}@example.com", f"User {i}") for i, k in enumerate(keys)],
    )
    conn.commit()
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = write_spec(tmp_path, f"sqlite:///{src}", dst)
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).changes == 0

    conn.execute("UPDATE legacy_users SET email = 'moved@example.com' WHERE user_id = '007'")
    conn.execute("DELETE FROM legacy_users WHERE user_id = '10'")
    conn.execute("INSERT INTO legacy_users VALUES ('7', 'seven@example.com', 'Seven')")
    conn.commit()
    conn.close()
    res = sync_migration(load_spec(spec))
    assert res.updated == ["007"]
    assert res.inserted == ["7"]
    assert list(res.deleted) == ["10"]
    assert sync_migration(load_spec(spec)).changes == 0
    assert verify_migration(load_spec(spec)).ok
    assert scalar(dst, "SELECT email FROM accounts WHERE user_id = '007'") == "moved@example.com"
    assert scalar(dst, "SELECT email FROM accounts WHERE user_id = '7'") == "seven@example.com"
    assert target_keys(dst) == sorted([*keys, "7"])


def test_sync_reads_only_the_columns_it_uses(tmp_path: Path) -> None:
    """An unmapped column holding text that is not UTF-8 is never read, by run or by sync's
    change-column and key passes (before, sync read every column of the rows it fetched)."""
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute(
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT, name TEXT,"
        " junk TEXT, updated_at TEXT)"
    )
    bad = "CAST(X'C328' AS TEXT)"  # invalid UTF-8, stored as TEXT
    for i in range(1, 7):
        conn.execute(
            f"INSERT INTO legacy_users VALUES (?, ?, ?, {bad}, '2020-01-01 00:00:00')",
            (i, f"u{i}@example.com", f"User {i}"),
        )
    conn.commit()
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = write_spec(tmp_path, f"sqlite:///{src}", dst, '[sync]\nchanged_column = "updated_at"')
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).mode == "full"  # the first sets the watermark
    conn.execute(
        "UPDATE legacy_users SET email = 'moved@example.com', updated_at = datetime('now')"
        " WHERE user_id = 2"
    )
    conn.execute(f"INSERT INTO legacy_users VALUES (0, 'zero@example.com', 'Zero', {bad}, NULL)")
    conn.commit()
    conn.close()
    res = sync_migration(load_spec(spec))
    assert res.mode == "changed"
    assert res.updated == [2]
    assert res.inserted == [0]  # found by the key pass, fetched by key
    assert scalar(dst, "SELECT email FROM accounts WHERE user_id = 2") == "moved@example.com"
    assert scalar(dst, "SELECT email FROM accounts WHERE user_id = 0") == "zero@example.com"
