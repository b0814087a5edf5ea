"""``authmigrate sync``: new keys below the checkpoint, changed rows, deletes, rejects retried,
password conflicts with real hashes; verify holds after every sync and rollback removes all."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, make_source, scalar, write_spec


def legacy(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Change the legacy database as the live shop would."""
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def account(url: str, key: int, column: str = "email") -> Any:
    return scalar(url, f"SELECT {column} FROM accounts WHERE user_id = :k", {"k": key})


@pytest.fixture
def migrated(tmp_path: Path, target_url: str) -> tuple[Path, str, Path]:
    """200 legacy users (with 1% invalid and 1% duplicate emails) migrated by ``run``."""
    src = tmp_path / "legacy.db"
    make_source(src, 200, seed=7, hashes=True)
    spec = write_spec(tmp_path / "m.toml", src, target_url, batch=50, credentials="keep")
    run_migration(load_spec(spec))
    return src, target_url, spec


def test_sync_on_an_unchanged_source_changes_nothing(migrated: tuple[Path, str, Path]) -> None:
    src, url, spec = migrated
    res = sync_migration(load_spec(spec))
    assert res.compared == 200
    assert res.changes == 0
    assert verify_migration(load_spec(spec)).ok


def test_new_keys_below_the_checkpoint_are_migrated(migrated: tuple[Path, str, Path]) -> None:
    src, url, spec = migrated
    legacy(src, "DELETE FROM legacy_users WHERE user_id = 5")  # leaves a gap
    res = sync_migration(load_spec(spec))
    assert list(res.deleted) == [5]
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (5, 'late@example.com', 'Late', "
        "'2020-01-01 00:00:00', 1, 3, NULL)",
    )
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (-7, 'neg@example.com', 'Neg', "
        "'2020-01-01 00:00:00', 1, 3, NULL)",
    )
    res = sync_migration(load_spec(spec))
    assert res.inserted == [-7]
    assert res.restored == [5]
    assert account(url, -7) == "neg@example.com"
    assert account(url, 5) == "late@example.com"
    assert verify_migration(load_spec(spec)).ok


def test_run_counts_the_keys_it_left_below_the_checkpoint(
    migrated: tuple[Path, str, Path],
) -> None:
    src, url, spec = migrated
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (0, 'zero@example.com', 'Zero', "
        "'2020-01-01 00:00:00', 1, 3, NULL)",
    )
    legacy(src, "DELETE FROM legacy_users WHERE user_id = 9")  # the row count stays the same
    out = cli("run", str(spec), cwd=spec.parent)
    assert "1 source rows are not migrated yet" in out.stdout
    assert "authmigrate sync" in out.stdout
    sync_migration(load_spec(spec))
    assert account(url, 0) == "zero@example.com"
    out = cli("run", str(spec), cwd=spec.parent)
    assert "not migrated yet" not in out.stdout
    assert verify_migration(load_spec(spec)).ok


def test_email_change_updates_the_same_account(migrated: tuple[Path, str, Path]) -> None:
    src, url, spec = migrated
    legacy(src, "UPDATE legacy_users SET email = 'New.Mail@Example.com' WHERE user_id = 3")
    res = sync_migration(load_spec(spec))
    assert res.updated == [3]
    assert account(url, 3) == "new.mail@example.com"
    assert scalar(url, "SELECT count(*) FROM accounts WHERE user_id = 3") == 1
    assert verify_migration(load_spec(spec)).ok


def test_email_change_onto_another_accounts_email_is_a_reject(
    migrated: tuple[Path, str, Path],
) -> None:
    src, url, spec = migrated
    legacy(src, "UPDATE legacy_users SET email = 'user.4@example.com' WHERE user_id = 3")
    res = sync_migration(load_spec(spec))
    assert res.rejected == {3: "duplicate.email"}
    assert account(url, 3) == "user.3@example.com"  # kept its last good values
    assert account(url, 4) == "user.4@example.com"  # not overwritten
    assert verify_migration(load_spec(spec)).ok
    from authmigrate.continuity.status import migration_status

    assert migration_status(load_spec(spec), record=False).changed == 1  # held back
    legacy(src, "UPDATE legacy_users SET email = 'fixed.3@example.com' WHERE user_id = 3")
    res = sync_migration(load_spec(spec))
    assert res.updated == [3]
    assert migration_status(load_spec(spec), record=False).changed == 0
    assert account(url, 3) == "fixed.3@example.com"
    n = scalar(url, "SELECT count(*) FROM authmigrate_rejects WHERE source_key = '3'")
    assert n == 0
    assert verify_migration(load_spec(spec)).ok


def test_a_rejected_row_fixed_later_is_migrated_and_leaves_the_rejects(
    migrated: tuple[Path, str, Path],
) -> None:
    src, url, spec = migrated
    bad = scalar(
        url,
        "SELECT source_key FROM authmigrate_rejects WHERE reason = 'field.invalid_email' LIMIT 1",
    )
    key = int(bad)
    assert account(url, key) is None
    legacy(
        src, "UPDATE legacy_users SET email = ? WHERE user_id = ?", (f"ok{key}@example.com", key)
    )
    res = sync_migration(load_spec(spec))
    assert res.retried == [key]
    assert account(url, key) == f"ok{key}@example.com"
    gone = scalar(url, f"SELECT count(*) FROM authmigrate_rejects WHERE source_key = '{key}'")
    assert gone == 0
    assert verify_migration(load_spec(spec)).ok


@pytest.mark.parametrize("action", ["disable", "delete", "keep"])
def test_deletes_follow_on_delete(tmp_path: Path, action: str) -> None:
    src = tmp_path / "legacy.db"
    url = f"sqlite:///{tmp_path}/t.db"
    make_source(src, 60, seed=3)
    spec = write_spec(tmp_path / "m.toml", src, url, batch=20)
    spec.write_text(spec.read_text() + f'\n[sync]\non_delete = "{action}"\n')
    run_migration(load_spec(spec))
    legacy(src, "DELETE FROM legacy_users WHERE user_id IN (2, 40)")
    res = sync_migration(load_spec(spec))
    done = {"disable": "disabled", "delete": "deleted", "keep": "kept"}[action]
    assert res.deleted == {2: done, 40: done}
    present = scalar(url, "SELECT count(*) FROM accounts WHERE user_id IN (2, 40)")
    assert present == (0 if action == "delete" else 2)
    if action == "disable":
        assert account(url, 2, "disabled") in (1, True)
        assert account(url, 3, "disabled") in (0, False)
    v = verify_migration(load_spec(spec))
    assert v.ok, v.as_dict()
    assert v.deleted_in_source == 2
    from authmigrate.continuity.status import migration_status

    st = migration_status(load_spec(spec), record=False)
    assert st.deleted_in_source == 2 and st.pending == 0  # sync counted the two gone keys out
    assert sync_migration(load_spec(spec)).changes == 0
    removed = rollback(load_spec(spec))
    assert removed.not_found == 0  # sync's own deletes are not keys rollback failed to find
    assert scalar(url, "SELECT count(*) FROM accounts") == 0
    assert scalar(url, "SELECT count(*) FROM authmigrate_batches") == 0
    assert scalar(url, "SELECT count(*) FROM authmigrate_key_state") == 0


def test_rollback_removes_rows_first_written_by_sync(migrated: tuple[Path, str, Path]) -> None:
    src, url, spec = migrated
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (1000, 'new@example.com', 'N', "
        "'2020-01-01 00:00:00', 1, 3, NULL)",
    )
    sync_migration(load_spec(spec))
    assert account(url, 1000) == "new@example.com"
    rollback(load_spec(spec))
    assert scalar(url, "SELECT count(*) FROM accounts") == 0
    assert scalar(url, "SELECT count(*) FROM authmigrate_key_state") == 0


def test_rollback_forgets_the_key_state_of_each_batch_it_removes(
    migrated: tuple[Path, str, Path],
) -> None:
    """The key state goes with its batch, in the batch's transaction: a rollback that stops
    at a key it cannot find keeps the state of exactly what it kept (the batch's remaining
    keys and rejects), not the whole migration's."""
    from authmigrate.sinks.state import state_key
    from tests.helpers_verify import execute

    src, url, spec = migrated
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (1000, 'new@example.com', 'N', "
        "'2020-01-01 00:00:00', 1, 3, NULL)",
    )
    sync_migration(load_spec(spec))
    # the new system renamed one migrated account's key: rollback cannot find it any more
    execute(url, "UPDATE accounts SET user_id = 5005 WHERE user_id = 5")
    partial = rollback(load_spec(spec))
    assert partial.not_found == 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        states = set(
            conn.execute(sa.text("SELECT source_key FROM authmigrate_key_state")).scalars()
        )
        rejects = set(
            conn.execute(
                sa.text("SELECT source_key FROM authmigrate_rejects WHERE source_key IS NOT NULL")
            ).scalars()
        )
    engine.dispose()
    assert states == {state_key(5)} | rejects
    assert len(states) < 20  # one batch of 50 at most, not the 201 keys
    execute(url, "UPDATE accounts SET user_id = 5 WHERE user_id = 5005")
    assert rollback(load_spec(spec)).not_found == 0
    assert scalar(url, "SELECT count(*) FROM authmigrate_key_state") == 0
    assert scalar(url, "SELECT count(*) FROM accounts") == 0


def test_sync_cli_prints_what_it_did(migrated: tuple[Path, str, Path]) -> None:
    src, url, spec = migrated
    legacy(src, "UPDATE legacy_users SET name = 'Renamed' WHERE user_id = 8")
    out = cli("sync", str(spec), cwd=spec.parent)
    assert out.returncode == 0, out.stderr
    assert "1 change," in out.stdout
    assert "updated (1): 8" in out.stdout
    assert sa is not None


def test_a_target_migrated_before_sync_existed_is_backfilled(
    migrated: tuple[Path, str, Path],
) -> None:
    src, url, spec = migrated
    from tests.helpers_verify import execute

    execute(url, "DELETE FROM authmigrate_key_state")  # as written by an older authmigrate
    accounts = scalar(url, "SELECT count(*) FROM accounts")
    legacy(src, "UPDATE legacy_users SET name = 'Changed' WHERE user_id = 8")
    res = sync_migration(load_spec(spec))
    assert res.inserted == []  # no key taken for new
    # rows rejected before are tried once more (their fingerprint was unknown), and rejected
    # again for the same reasons: never as keys the target already has
    before = scalar(url, "SELECT count(*) FROM authmigrate_rejects")
    assert set(res.rejected.values()) == {"field.invalid_email"}
    assert 8 in res.updated
    assert scalar(url, "SELECT count(*) FROM accounts") == accounts
    assert scalar(url, "SELECT name FROM accounts WHERE user_id = 8") == "Changed"
    assert scalar(url, "SELECT count(*) FROM authmigrate_rejects") == before
    assert verify_migration(load_spec(spec)).ok
    assert sync_migration(load_spec(spec)).changes == 0


def test_rows_with_a_null_key_added_later_are_rejected_by_sync(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute(
        "CREATE TABLE legacy_users (user_id INTEGER, email TEXT, name TEXT, created TEXT,"
        " active INTEGER, visits INTEGER, password_hash TEXT)"
    )
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, 'N', '2020-01-01 00:00:00', 1, 1, NULL)",
        [(k, f"u{k}@example.com") for k in range(1, 21)],
    )
    conn.commit()
    conn.close()
    url = f"sqlite:///{tmp_path}/t.db"
    spec = write_spec(tmp_path / "m.toml", src, url, batch=5)
    run_migration(load_spec(spec))
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (NULL, 'nokey@example.com', 'N', "
        "'2020-01-01 00:00:00', 1, 1, NULL)",
    )
    assert not verify_migration(load_spec(spec)).ok  # 21 source rows, 20 accounted for
    res = sync_migration(load_spec(spec))
    assert res.null_key_rows == 1
    n = scalar(url, "SELECT count(*) FROM authmigrate_rejects WHERE reason = 'source.null_key'")
    assert n == 1
    assert verify_migration(load_spec(spec)).ok
    assert sync_migration(load_spec(spec)).changes == 0


def test_a_change_column_the_source_lacks_is_a_spec_error(
    migrated: tuple[Path, str, Path],
) -> None:
    src, url, spec = migrated
    spec.write_text(spec.read_text() + '\n[sync]\nchanged_column = "updated_on"\n')
    before = scalar(url, "SELECT count(*) FROM authmigrate_runs")
    out = cli("sync", str(spec), cwd=spec.parent)
    assert out.returncode == 2
    assert "sync.changed_column" in out.stderr and "updated_on" in out.stderr
    assert scalar(url, "SELECT count(*) FROM authmigrate_runs") == before  # nothing written


def test_run_after_sync_skips_the_keys_sync_carried_past_the_checkpoint(
    migrated: tuple[Path, str, Path],
) -> None:
    src, url, spec = migrated
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (5000, 'above@example.com', 'A', "
        "'2020-01-01 00:00:00', 1, 3, NULL)",
    )
    assert sync_migration(load_spec(spec)).inserted == [5000]
    res = run_migration(load_spec(spec))
    assert res.this_run["read"] == 0 and res.this_run["rejected"] == 0
    assert scalar(url, "SELECT count(*) FROM authmigrate_rejects WHERE source_key = '5000'") == 0
    v = verify_migration(load_spec(spec))
    assert v.ok and not v.doubled, v.as_dict()
