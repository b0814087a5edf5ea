"""A hostile user's sync: change columns stamped in a shop's own zone, epoch-second change
columns, and other ways a live shop's changes slip past a watermark."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.mariadb_server import fresh_database
from tests.pg_server import PgServer

SPEC = """
name = "hostile"

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
batch_size = 10

[sync]
{sync}
"""


def spec_file(folder: Path, src: str, dst: str, sync: str = "") -> Path:
    path = folder / "m.toml"
    path.write_text(SPEC.format(src=src, dst=dst, sync=sync), encoding="utf-8")
    return path


def shop(url: str, *statements: str, params: dict[str, object] | None = None) -> None:
    """The shop's own session (its own time zone, not authmigrate's UTC one)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(sa.text(stmt), params or {})
    engine.dispose()


def target_value(url: str, key: int, column: str = "email") -> object:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(
            sa.text(f"SELECT {column} FROM accounts WHERE user_id = :k"), {"k": key}
        ).scalar()
    engine.dispose()
    return value


# the shop stamps updated_at with its own local time, five hours behind UTC (New York):
# PostgreSQL's LOCALTIMESTAMP in a database whose timezone is New York, MariaDB's NOW() in a
# session at -05:00 into a DATETIME (PrestaShop's date_upd), SQLite's datetime() of a PHP/Python
# app that writes local time
LOCAL_NOW = {
    "sqlite": "datetime('now', '-5 hours')",
    "postgresql": "LOCALTIMESTAMP",
    "mariadb": "NOW()",
}


@pytest.fixture(params=["sqlite", "postgresql", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def zoned_source(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(source URL, backend, the shop's session setup) for a source in New York's time."""
    backend = request.param
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/legacy.db", backend, ""
    if backend == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.create_database("src")
        name = sa.make_url(url).database
        shop(server.admin_url, f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'")
        return url, backend, ""
    server_url: str = request.getfixturevalue("mariadb_url")
    return fresh_database(server_url), backend, "SET time_zone = '-05:00'"


def test_a_change_column_in_the_shops_own_zone_behind_utc_misses_nothing(
    tmp_path: Path, zoned_source: tuple[str, str, str]
) -> None:
    src, backend, session = zoned_source
    kind = "DATETIME" if backend == "mariadb" else "TIMESTAMP"
    now = LOCAL_NOW[backend]
    setup = [session] if session else []
    shop(
        src,
        *setup,
        f"CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email VARCHAR(100),"
        f" name VARCHAR(100), updated_at {kind})",
    )
    for k in range(1, 21):
        shop(
            src,
            *setup,
            f"INSERT INTO legacy_users VALUES (:k, :e, 'n', {now})",
            params={"k": k, "e": f"u{k}@example.com"},
        )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst, 'changed_column = "updated_at"')
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).mode == "full"  # sets the first watermark
    shop(
        src,
        *setup,
        f"UPDATE legacy_users SET email = 'moved@example.com', updated_at = {now}"
        " WHERE user_id = 7",
    )
    res = sync_migration(load_spec(spec))
    assert res.mode == "changed"
    assert res.updated == [7]
    assert target_value(dst, 7) == "moved@example.com"
    assert verify_migration(load_spec(spec)).ok


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/legacy.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database("src")


def test_an_epoch_seconds_change_column_misses_nothing(tmp_path: Path, source_url: str) -> None:
    """Drupal's ``users_field_data.changed`` and many PHP apps keep the change time as Unix
    seconds in an integer column."""
    import time

    src = source_url
    shop(
        src,
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email VARCHAR(100),"
        " name VARCHAR(100), changed BIGINT)",
    )
    stamp = int(time.time())
    for k in range(1, 21):
        shop(
            src,
            "INSERT INTO legacy_users VALUES (:k, :e, 'n', :t)",
            params={"k": k, "e": f"u{k}@example.com", "t": stamp - 3600},
        )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst, 'changed_column = "changed"')
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).mode == "full"
    shop(
        src,
        "UPDATE legacy_users SET email = 'moved@example.com', changed = :t WHERE user_id = 7",
        params={"t": int(time.time())},
    )
    res = sync_migration(load_spec(spec))
    assert res.mode == "changed"
    assert res.updated == [7]
    assert target_value(dst, 7) == "moved@example.com"
    assert sync_migration(load_spec(spec)).changes == 0
    assert verify_migration(load_spec(spec)).ok


def test_a_text_change_column_ahead_of_utc_is_compared_as_text(
    tmp_path: Path, source_url: str
) -> None:
    """ISO text stamps written by an app in Berlin (ahead of UTC): the watermark is the
    database's clock, and it is bound as text, in the column's own form."""
    src = source_url
    shop(
        src,
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email VARCHAR(100),"
        " name VARCHAR(100), updated_at VARCHAR(40))",
    )
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None)
    for k in range(1, 21):
        shop(
            src,
            "INSERT INTO legacy_users VALUES (:k, :e, 'n', :t)",
            params={"k": k, "e": f"u{k}@example.com", "t": ahead.isoformat()},
        )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst, 'changed_column = "updated_at"')
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).mode == "full"
    later = ahead + dt.timedelta(seconds=5)
    shop(
        src,
        "UPDATE legacy_users SET email = 'moved@example.com', updated_at = :t WHERE user_id = 3",
        params={"t": later.isoformat()},
    )
    res = sync_migration(load_spec(spec))
    assert res.mode == "changed"
    assert res.updated == [3]
    assert verify_migration(load_spec(spec)).ok


def _users(url: str, n: int) -> None:
    shop(
        url,
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email VARCHAR(100),"
        " name VARCHAR(100))",
    )
    for k in range(1, n + 1):
        shop(
            url,
            "INSERT INTO legacy_users VALUES (:k, :e, 'n')",
            params={"k": k, "e": f"u{k}@example.com"},
        )


@pytest.mark.parametrize("duplicates", ["merge", "reject"])
def test_a_key_changed_on_the_shop_leaves_an_account_under_the_new_key(
    tmp_path: Path, source_url: str, duplicates: str
) -> None:
    """The shop renumbers a customer (``UPDATE ... SET user_id``) and another closes their
    account and signs up again with the same email: in one pass the new key meets the old
    account's email, which ``on_delete = "delete"`` removes at the end of the same pass. The
    customer must end with an account, not merged into (or rejected against) one that is gone."""
    src = source_url
    _users(src, 20)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst, 'on_delete = "delete"')
    spec.write_text(
        spec.read_text().replace("[run]\n", f'[run]\nduplicates = "{duplicates}"\n'),
        encoding="utf-8",
    )
    run_migration(load_spec(spec))
    shop(
        src,
        "UPDATE legacy_users SET user_id = 105 WHERE user_id = 5",
        "DELETE FROM legacy_users WHERE user_id = 9",
        "INSERT INTO legacy_users VALUES (109, 'U9@example.com', 'again')",
        # and an existing customer takes the email of one who leaves
        "UPDATE legacy_users SET email = 'u4@example.com' WHERE user_id = 3",
        "DELETE FROM legacy_users WHERE user_id = 4",
    )
    res = sync_migration(load_spec(spec))
    assert res.deleted == {4: "deleted", 5: "deleted", 9: "deleted"}
    assert target_value(dst, 3) == "u4@example.com"
    assert target_value(dst, 105) == "u5@example.com"
    assert target_value(dst, 109) == "u9@example.com"
    assert target_value(dst, 5) is None and target_value(dst, 9) is None
    v = verify_migration(load_spec(spec))
    assert v.ok, v.as_dict()
    assert v.migrated == 19 and v.rejected == 0 and v.merged == 0
    from authmigrate.continuity.status import migration_status

    st = migration_status(load_spec(spec), record=False)
    assert (st.source_rows, st.migrated, st.rejected, st.merged, st.pending) == (19, 19, 0, 0, 0)
    assert (st.deleted_in_source, st.changed) == (3, 0)
    assert sync_migration(load_spec(spec)).changes == 0


def test_sync_after_a_rollback_refuses_and_writes_nothing(tmp_path: Path) -> None:
    """A ``sync --follow`` left running (or a cron job) after the operator rolled the migration
    back must not put every account back: sync carries changes after a run, it is no run."""
    from authmigrate.errors import TargetError
    from authmigrate.rollback import rollback
    from tests.helpers_verify import cli, scalar

    src = f"sqlite:///{tmp_path}/legacy.db"
    _users(src, 20)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst)
    run_migration(load_spec(spec))
    rollback(load_spec(spec))
    runs = scalar(dst, "SELECT count(*) FROM authmigrate_runs")
    with pytest.raises(TargetError, match="authmigrate run"):
        sync_migration(load_spec(spec))
    out = cli("sync", str(spec), "--follow", cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "rolled back" in out.stderr and "authmigrate run" in out.stderr
    assert cli("cutover", str(spec), cwd=tmp_path, timeout=60).returncode == 2
    assert scalar(dst, "SELECT count(*) FROM accounts") == 0
    assert scalar(dst, "SELECT count(*) FROM authmigrate_runs") == runs  # nothing written


def test_sync_before_any_run_refuses_and_creates_nothing(tmp_path: Path) -> None:
    from tests.helpers_verify import cli

    src = f"sqlite:///{tmp_path}/legacy.db"
    _users(src, 5)
    spec = spec_file(tmp_path, src, f"sqlite:///{tmp_path}/t.db")
    out = cli("sync", str(spec), cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "authmigrate run" in out.stderr
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    ("extra", "path", "named"),
    [
        ('disabled_column = "name"', "sync.disabled_column", "name"),  # a mapped field
        ('disabled_column = "note"', "sync.disabled_column", "note"),  # text, not a flag
        ('password_changed_at = "pw_changed"', "sync.password_changed_at", "pw_changed"),
    ],
)
def test_sync_columns_that_do_not_fit_are_refused_before_anything_is_written(
    tmp_path: Path, extra: str, path: str, named: str
) -> None:
    """``disabled_column`` naming a field the migration fills made every updated account's
    ``name`` False (and a deleted one's True); a ``password_changed_at`` the source lacks was
    silently read as 'no time'. Both: exit 2 naming the key and the column, nothing written."""
    from tests.helpers_verify import cli, scalar, table_rows

    src = f"sqlite:///{tmp_path}/legacy.db"
    _users(src, 10)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst, extra)
    run_migration(load_spec(spec))
    shop(dst, "ALTER TABLE accounts ADD COLUMN note TEXT")
    shop(
        src,
        "UPDATE legacy_users SET name = 'renamed' WHERE user_id = 2",
        "DELETE FROM legacy_users WHERE user_id = 3",
    )
    before = table_rows(dst, "accounts", "user_id")
    runs = scalar(dst, "SELECT count(*) FROM authmigrate_runs")
    out = cli("sync", str(spec), cwd=tmp_path, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert path in out.stderr and repr(named) in out.stderr
    assert "internal error" not in out.stderr
    assert table_rows(dst, "accounts", "user_id") == before
    assert scalar(dst, "SELECT count(*) FROM authmigrate_runs") == runs


def test_sunset_disable_refuses_a_disabled_column_the_migration_fills(tmp_path: Path) -> None:
    from tests.helpers_verify import cli, make_source, table_rows, write_spec

    src = tmp_path / "legacy.db"
    make_source(src, 20, hashes=True)
    spec = write_spec(tmp_path / "m.toml", src, f"sqlite:///{tmp_path}/t.db", credentials="keep")
    spec.write_text(
        spec.read_text()
        + '\n[sync]\ndisabled_column = "visits"\n[sunset]\nafter_days = 0\naction = "disable"\n',
        encoding="utf-8",
    )
    run_migration(load_spec(spec))
    before = table_rows(f"sqlite:///{tmp_path}/t.db", "accounts", "user_id")
    out = cli("sunset", str(spec), "--apply", cwd=tmp_path, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "sync.disabled_column" in out.stderr and "'visits'" in out.stderr
    assert table_rows(f"sqlite:///{tmp_path}/t.db", "accounts", "user_id") == before


def test_sync_follow_waits_out_a_lock_held_by_another_command(tmp_path: Path) -> None:
    """An operator runs ``verify`` or a ``run`` while ``sync --follow`` runs as a service: the
    follow waits for the lock and carries on, instead of dying with exit 2."""
    import signal
    import subprocess
    import sys
    import time

    from authmigrate.sinks.sql import TargetLock

    src = f"sqlite:///{tmp_path}/legacy.db"
    _users(src, 10)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst, 'interval = "1s"')
    run_migration(load_spec(spec))
    engine = sa.create_engine(dst)
    lock = TargetLock(engine, "hostile")
    lock.acquire()  # another command of this migration is writing
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "sync", str(spec), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        assert proc.poll() is None, proc.communicate()
        shop(src, "UPDATE legacy_users SET email = 'later@example.com' WHERE user_id = 2")
    finally:
        lock.release()
        engine.dispose()
    deadline = time.monotonic() + 30
    while target_value(dst, 2) != "later@example.com" and time.monotonic() < deadline:
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert target_value(dst, 2) == "later@example.com"
    assert "another run" in err and "waiting" in err


def test_sunset_includes_an_account_whose_later_legacy_change_is_held(tmp_path: Path) -> None:
    """An account whose email change collided (state ``held``) is still a live account on its
    imported legacy hash: past the grace period it is sunset like every other, not skipped
    forever."""
    import datetime as _dt

    from authmigrate.continuity.sunset import sunset
    from tests.helpers_verify import make_source, scalar, write_spec

    src = tmp_path / "legacy.db"
    url = f"sqlite:///{tmp_path}/t.db"
    make_source(src, 20, hashes=True)
    spec = write_spec(tmp_path / "m.toml", src, url, credentials="keep")
    run_migration(load_spec(spec))
    shop(
        f"sqlite:///{src}", "UPDATE legacy_users SET email = 'user.4@example.com' WHERE user_id = 3"
    )
    assert sync_migration(load_spec(spec)).rejected == {3: "duplicate.email"}
    later = _dt.datetime.now(_dt.UTC).replace(tzinfo=None) + _dt.timedelta(days=120)
    found = sunset(load_spec(spec), now=later)
    on_legacy = scalar(url, "SELECT count(*) FROM accounts WHERE password LIKE '$%'")
    assert 3 in found.keys
    assert len(found.keys) == on_legacy


def test_sync_follow_with_a_change_column_keeps_up_with_a_changing_source(
    tmp_path: Path, source_url: str
) -> None:
    """The live-shop test of test_sync_live, with the change column in play: every pass after
    the first is a changed pass (watermark, overlap, key pass), while a thread inserts,
    changes emails and hashes (stamping updated_at) and deletes."""
    import signal
    import subprocess
    import sys
    import time

    from tests.test_sync_live import Churn, assert_in_step, make_legacy
    from tests.test_sync_live import spec_file as live_spec

    src = source_url
    dst = f"sqlite:///{tmp_path}/target.db"
    make_legacy(src, 200)
    spec = live_spec(tmp_path, src, dst, 'changed_column = "updated_at"')
    run_migration(load_spec(spec))
    churn = Churn(src, seed=11)
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "sync", str(spec), "--follow", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    churn.start()
    time.sleep(6)
    churn.halt.set()
    churn.join()
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert '"mode": "changed"' in out  # the passes after the first used the change column
    assert min(churn.done.values()) > 0
    res = sync_migration(load_spec(spec))
    assert res.mode == "changed"
    assert_in_step(src, dst, spec)


def test_a_held_email_change_goes_through_once_the_other_account_lets_go(
    tmp_path: Path, source_url: str
) -> None:
    """Customer 3 takes customer 4's email on the shop before 4 has moved to a new one: held.
    When 4's change arrives in a later pass, 3's waiting change must follow; it did not (3's
    row had not changed again, so nothing looked at it) and 3 stayed held for good."""
    src = source_url
    _users(src, 10)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst)
    run_migration(load_spec(spec))
    shop(src, "UPDATE legacy_users SET email = 'u4@example.com' WHERE user_id = 3")
    assert sync_migration(load_spec(spec)).rejected == {3: "duplicate.email"}
    shop(src, "UPDATE legacy_users SET name = 'renamed' WHERE user_id = 4")
    res = sync_migration(load_spec(spec))
    assert (res.updated, res.rejected) == ([4], {})  # 3 tried again, still held: no news
    shop(src, "UPDATE legacy_users SET email = 'four@example.com' WHERE user_id = 4")
    res = sync_migration(load_spec(spec))
    assert sorted(res.updated) == [3, 4]
    assert res.rejected == {}
    assert target_value(dst, 3) == "u4@example.com"
    assert target_value(dst, 4) == "four@example.com"
    v = verify_migration(load_spec(spec))
    assert v.ok and v.rejected == 0, v.as_dict()
    from authmigrate.continuity.status import migration_status

    st = migration_status(load_spec(spec), record=False)
    assert (st.migrated, st.rejected, st.pending, st.changed) == (10, 0, 0, 0)
    assert sync_migration(load_spec(spec)).changes == 0


@pytest.mark.mariadb
def test_a_zero_or_unreadable_legacy_password_time_is_no_time(
    tmp_path: Path, mariadb_url: str
) -> None:
    """MySQL's ``'0000-00-00 00:00:00'`` (the driver hands it over as text) in the
    ``password_changed_at`` column, met by a login upgrade on the new system: the rule without
    a time applies (the new system wins, listed), instead of sync failing on the value."""
    import authmigrate
    from tests.test_sync_live import HASHES

    src = fresh_database(mariadb_url)
    zero = "SET sql_mode = ''"
    shop(
        src,
        zero,
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email VARCHAR(100),"
        " name VARCHAR(100), password_hash VARCHAR(200), pw_changed DATETIME)",
    )
    for k in range(1, 6):
        shop(
            src,
            zero,
            "INSERT INTO legacy_users VALUES (:k, :e, 'n', :h, '0000-00-00 00:00:00')",
            params={"k": k, "e": f"u{k}@example.com", "h": HASHES[k]},
        )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst, 'password_changed_at = "pw_changed"')
    spec.write_text(
        spec.read_text().replace(
            "[run]\n", '[credentials]\ncolumn = "password_hash"\npolicy = "keep"\n\n[run]\n'
        ),
        encoding="utf-8",
    )
    run_migration(load_spec(spec))
    shop(dst, "ALTER TABLE accounts ADD COLUMN password_changed_at TIMESTAMP")
    ok, new = authmigrate.verify_and_update("pw-2", str(target_value(dst, 2, "password")))
    assert ok and new is not None
    shop(
        dst,
        "UPDATE accounts SET password = :p, password_changed_at = '2026-01-01 10:00:00'"
        " WHERE user_id = 2",
        params={"p": new},
    )
    shop(
        src,
        zero,
        "UPDATE legacy_users SET password_hash = :h WHERE user_id = 2",
        params={"h": HASHES[7]},
    )
    res = sync_migration(load_spec(spec))
    assert [(c.key, c.winner) for c in res.conflicts] == [(2, "new-system")]
    assert target_value(dst, 2, "password") == new
    assert verify_migration(load_spec(spec)).ok


def test_an_account_sunset_disabled_stays_disabled_when_its_legacy_row_changes(
    tmp_path: Path,
) -> None:
    """``sunset`` with ``action = "disable"`` turned off a dormant account; the old shop, still
    open in the grace period, then touched the customer's row (a name). sync set
    ``disabled = false`` on every account it updated, silently undoing the sunset. Only an
    account sync disabled itself (its key deleted in the source) is enabled again, when the key
    comes back."""
    from authmigrate.continuity.sunset import sunset
    from tests.helpers_verify import make_source, write_spec

    src = tmp_path / "legacy.db"
    url = f"sqlite:///{tmp_path}/t.db"
    make_source(src, 20, hashes=True)
    spec = write_spec(tmp_path / "m.toml", src, url, credentials="keep")
    spec.write_text(
        spec.read_text() + '\n[sunset]\nafter_days = 0\naction = "disable"\n', encoding="utf-8"
    )
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).changes == 0  # adds the disabled column
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=5)
    assert 2 in sunset(load_spec(spec), apply=True, now=later).keys
    assert target_value(url, 2, "disabled") in (1, True)
    shop(
        f"sqlite:///{src}",
        "UPDATE legacy_users SET name = 'Renamed' WHERE user_id = 2",
        "DELETE FROM legacy_users WHERE user_id = 5",
    )
    res = sync_migration(load_spec(spec))
    assert res.updated == [2] and res.deleted == {5: "disabled"}
    assert target_value(url, 2, "name") == "Renamed"
    assert target_value(url, 2, "disabled") in (1, True)  # still sunset
    shop(
        f"sqlite:///{src}",
        "INSERT INTO legacy_users VALUES (5, 'user.5@example.com', 'Back',"
        " '2020-01-01 00:00:00', 1, 3, NULL)",
    )
    assert sync_migration(load_spec(spec)).restored == [5]
    assert target_value(url, 5, "disabled") in (0, False)  # sync's own disable undone


def test_dormant_dates_accounts_sync_wrote_by_their_own_batch(tmp_path: Path) -> None:
    """``status``'s dormant counts accounts not upgraded N days after the batch that wrote
    them. Accounts sync wrote (new keys below the checkpoint: UUIDs, gaps; and above) were
    dated by the run's key range instead: a sign-up synced today with a low key counted as
    dormant, and one synced 40 days ago above the checkpoint never did."""
    from authmigrate.continuity.status import migration_status
    from tests.helpers_verify import execute, make_source, scalar, write_spec

    src = tmp_path / "legacy.db"
    url = f"sqlite:///{tmp_path}/t.db"
    make_source(src, 60, hashes=True)
    spec = write_spec(tmp_path / "m.toml", src, url, credentials="keep")
    run_migration(load_spec(spec))
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=40)
    execute(url, "UPDATE authmigrate_batches SET committed_at = :t", params={"t": old})
    hashed = scalar(url, "SELECT password FROM accounts WHERE user_id = 2")
    insert = "INSERT INTO legacy_users VALUES (:k, :e, 'N', '2020-01-01 00:00:00', 1, 1, :h)"
    for k in (5000, 5001):
        shop(f"sqlite:///{src}", insert, params={"k": k, "e": f"above{k}@example.com", "h": hashed})
    assert sync_migration(load_spec(spec)).inserted == [5000, 5001]
    execute(  # that sync was 40 days ago
        url,
        "UPDATE authmigrate_batches SET committed_at = :t WHERE written_keys IS NOT NULL",
        params={"t": old},
    )
    shop(f"sqlite:///{src}", insert, params={"k": 0, "e": "below@example.com", "h": hashed})
    assert sync_migration(load_spec(spec)).inserted == [0]  # today, below the checkpoint
    on_legacy = scalar(url, "SELECT count(*) FROM accounts WHERE password LIKE '$%'")
    st = migration_status(load_spec(spec), record=False, dormant_days=30)
    assert st.credentials.legacy_total == on_legacy
    assert st.dormant == on_legacy - 1  # all but key 0, synced today


def test_a_target_password_changed_at_the_target_lacks_is_refused(tmp_path: Path) -> None:
    """Named in the spec but missing from the target (a typo): sync read it as 'no time' and
    let the new system win every conflict; now exit 2 naming the key and the column. The
    default name, when the target has no such column, stays optional."""
    from tests.helpers_verify import cli, scalar

    src = f"sqlite:///{tmp_path}/legacy.db"
    _users(src, 5)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = spec_file(tmp_path, src, dst)
    run_migration(load_spec(spec))
    assert cli("sync", str(spec), cwd=tmp_path, timeout=60).returncode == 0
    spec.write_text(
        spec.read_text() + 'target_password_changed_at = "pw_changed_on"\n', encoding="utf-8"
    )
    runs = scalar(dst, "SELECT count(*) FROM authmigrate_runs")
    out = cli("sync", str(spec), cwd=tmp_path, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "sync.target_password_changed_at" in out.stderr and "'pw_changed_on'" in out.stderr
    assert scalar(dst, "SELECT count(*) FROM authmigrate_runs") == runs
