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


# -- the end-of-run count of keys left to sync -------------------------------------------------

_DIFFERENCE = "counted by difference"


def test_a_run_over_an_unchanged_source_counts_keys_left_without_the_anti_join(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    rows = [(i, f"u{i}@example.com") for i in range(1, 301)]
    rows[10] = (11, "not an email")
    rows[20] = (21, "U1@example.com ")  # a duplicate of account 1
    _source(src, "INTEGER PRIMARY KEY", rows)
    with caplog.at_level("DEBUG", logger="authmigrate"):
        result = run_migration(load_spec_text(_spec(src, dst)))
    assert (result.migrated, result.rejected) == (298, 2)
    assert result.unsynced == 0
    assert _DIFFERENCE in caplog.text


def test_keys_left_are_counted_when_the_source_changed_during_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After the first batch the shop deletes account 1 (already read) and adds account 0
    (below every key read): the source holds as many keys as the key state, yet key 0 is left
    to sync. Only the full count sees it."""
    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    _source(src, "INTEGER PRIMARY KEY", [(i, f"u{i}@example.com") for i in range(1, 301)])
    changed: list[int] = []

    def shop_writes(done: int, total: int) -> None:
        if done and not changed:
            conn = sqlite3.connect(src)
            conn.execute("DELETE FROM old_users WHERE user_id = 1")
            conn.execute("INSERT INTO old_users VALUES (0, 'zero@example.com')")
            conn.commit()
            conn.close()
            changed.append(done)

    with caplog.at_level("DEBUG", logger="authmigrate"):
        result = run_migration(load_spec_text(_spec(src, dst)), progress=shop_writes)
    assert changed and result.migrated == 300
    assert result.unsynced == 1
    assert _DIFFERENCE not in caplog.text


def test_keys_left_are_counted_in_full_after_a_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that resumes did not read the keys below its checkpoint: a key added there
    between the runs is left to sync."""
    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    _source(src, "INTEGER PRIMARY KEY", [(i, f"u{i}@example.com") for i in range(2, 302, 2)])

    def stop_after_one_batch(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_migration(load_spec_text(_spec(src, dst)), progress=stop_after_one_batch)
    conn = sqlite3.connect(src)
    conn.execute("INSERT INTO old_users VALUES (3, 'three@example.com')")  # below the checkpoint
    conn.commit()
    conn.close()
    with caplog.at_level("DEBUG", logger="authmigrate"):
        result = run_migration(load_spec_text(_spec(src, dst)))
    assert result.unsynced == 1
    assert _DIFFERENCE not in caplog.text


def test_a_finished_run_leaves_no_migration_behind(tmp_path: Path) -> None:
    """The fast path remembers a run that read the whole source only until the run ends: a
    library user running migration after migration in one process does not keep every one."""
    import gc

    from authmigrate.pipeline import fast

    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    _source(src, "INTEGER PRIMARY KEY", [(i, f"u{i}@example.com") for i in range(1, 101)])
    run_migration(load_spec_text(_spec(src, dst)))
    gc.collect()
    assert len(fast._READ_WHOLE) == 0
