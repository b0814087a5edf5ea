"""Work the fast path's run skips because it cannot change the outcome, and the cases where it
must not skip it: the open-time key scans of a rowid key, the end-of-run count of keys left to
sync when the run read every key of a source that did not change."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.errors import SpecError
from authmigrate.pipeline import run_migration
from authmigrate.pipeline.run import Migration
from authmigrate.spec import load_spec_text


def _spec(src: Path, dst: Path, *, batch: int = 50) -> str:
    return (
        f'[source]\nurl = "sqlite:///{src}"\ntable = "old_users"\nkey = "user_id"\n'
        f'[target]\nurl = "sqlite:///{dst}"\ntable = "new_users"\n'
        '[fields]\nuser_id = "user_id"\nemail = { from = "email", normalize = "email" }\n'
        f"[run]\nbatch_size = {batch}\n"
    )


def _source(path: Path, declared: str, rows: list[tuple[Any, str]]) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE old_users (user_id {declared}, email TEXT)")
    conn.executemany("INSERT INTO old_users VALUES (?, ?)", rows)
    conn.commit()
    conn.close()


class _Statements:
    """Every statement any SQLAlchemy engine runs while it listens (a real listener on the
    real engines, no fake)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self) -> _Statements:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self._on)

    def _on(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        self.seen.append(" ".join(statement.split()))


def test_opening_a_rowid_keyed_source_scans_no_key(tmp_path: Path) -> None:
    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    _source(src, "INTEGER PRIMARY KEY", [(i, f"u{i}@example.com") for i in range(1, 20)])
    with _Statements() as statements:
        m = Migration(load_spec_text(_spec(src, dst)))
        m.close()
    scans = [s for s in statements.seen if "GROUP BY" in s and "old_users" in s]
    assert scans == []
    assert m.key_tag == "int"


@pytest.mark.parametrize(
    "declared",
    ["INTEGER PRIMARY KEY DESC", "INT PRIMARY KEY", "WITHOUT ROWID"],
)
def test_a_primary_key_that_is_no_rowid_alias_is_still_checked_for_mixed_types(
    tmp_path: Path, declared: str
) -> None:
    """These keys are unique but not the rowid: SQLite lets them hold text beside integers,
    which are one key in any target column, so the open-time scan still refuses them."""
    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    conn = sqlite3.connect(src)
    table = f"CREATE TABLE old_users (user_id {declared}, email TEXT)"
    if declared == "WITHOUT ROWID":
        table = "CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT) WITHOUT ROWID"
    conn.execute(table)
    conn.executemany(
        "INSERT INTO old_users VALUES (?, ?)", [(1, "a@example.com"), ("x", "b@example.com")]
    )
    conn.commit()
    conn.close()
    with pytest.raises(SpecError, match="source.key: .*several types"):
        run_migration(load_spec_text(_spec(src, dst)))
