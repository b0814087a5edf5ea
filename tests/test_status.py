"""``authmigrate status``: where the move stands, counted by the databases, on SQLite and
PostgreSQL targets; snapshots recorded by run and status."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate import verify_and_update
from authmigrate.continuity.status import migration_status, read_snapshots
from authmigrate.pipeline import run_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, make_source, write_spec

SCHEME_BY_REMAINDER = {0: "md5_crypt", 1: "phpass", 2: "bcrypt"}
"""make_source(hashes=True) hashes user N with md5_crypt, phpass, bcrypt for N % 3 = 0, 1, 2."""


def _rows(url: str, sql: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


def _write(url: str, sql: str, params: list[dict[str, object]]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def test_status_counts_source_outcomes_and_credentials_by_scheme(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 300, hashes=True)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, credentials="keep"))
    run_migration(spec)

    status = migration_status(spec)

    accounts = _rows(target_url, "SELECT user_id FROM accounts")
    outcomes = _rows(
        target_url, "SELECT outcome, reason, count(*) FROM authmigrate_rejects GROUP BY 1, 2"
    )
    assert status.source_rows == 300
    assert status.migrated == len(accounts)
    assert status.rejected_by_reason == {r: n for o, r, n in outcomes if o == "rejected"}
    assert status.merged_by_reason == {r: n for o, r, n in outcomes if o == "merged"}
    assert status.rejected == sum(status.rejected_by_reason.values()) > 0
    assert status.merged == sum(status.merged_by_reason.values()) > 0
    assert status.migrated + status.rejected + status.merged == 300
    assert status.pending == 0
    expected = Counter(SCHEME_BY_REMAINDER[uid % 3] for (uid,) in accounts)
    assert status.credentials.legacy == dict(expected)
    assert status.credentials.upgraded == status.credentials.reset == 0
    assert status.last_run is not None and status.last_run.status == "done"
    assert status.deleted_in_source == 0  # run keeps per-key state; sync would count deletes


def test_login_upgrade_written_to_the_target_shows_as_upgraded(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 120, hashes=True)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, credentials="keep"))
    run_migration(spec)
    before = migration_status(spec).credentials
    rows = _rows(target_url, "SELECT user_id, password FROM accounts ORDER BY user_id LIMIT 12")

    # the new system's login path: verify_and_update and store the new hash
    upgrades = []
    for uid, cred in rows[:9]:
        ok, new = verify_and_update(f"pw-{uid}", cred)
        assert ok
        if new is not None:
            upgrades.append({"k": uid, "p": new})
    # a platform login rule around a kept and around an upgraded credential: the inner one counts
    uid, cred = rows[9]
    ruled = [{"k": uid, "p": f"$login-rule$trim=1${cred}"}]
    uid, cred = rows[10]
    ok, new = verify_and_update(f"pw-{uid}", cred)
    assert ok and new is not None
    ruled.append({"k": uid, "p": f"$login-rule$trim=1${new}"})
    reset_uid, reset_cred = rows[11]
    _write(target_url, "UPDATE accounts SET password = :p WHERE user_id = :k", upgrades + ruled)
    _write(target_url, "UPDATE accounts SET password = NULL WHERE user_id = :k", [{"k": reset_uid}])

    after = migration_status(spec).credentials

    upgraded_ids = [u["k"] for u in upgrades] + [rows[10][0]]
    by_scheme = Counter(SCHEME_BY_REMAINDER[int(str(k)) % 3] for k in upgraded_ids)
    by_scheme[SCHEME_BY_REMAINDER[int(reset_uid) % 3]] += 1
    assert after.upgraded == len(upgraded_ids) > 5
    assert after.reset == 1
    for scheme, n in before.legacy.items():
        assert after.legacy.get(scheme, 0) == n - by_scheme[scheme]
    assert after.total == before.total


def test_wrapped_credentials_count_by_inner_scheme(tmp_path: Path, target_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 90, hashes=True)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, credentials="wrap"))
    run_migration(spec)

    cred = migration_status(spec).credentials

    accounts = _rows(target_url, "SELECT user_id FROM accounts")
    expected = Counter(SCHEME_BY_REMAINDER[uid % 3] for (uid,) in accounts)
    # the default weak list wraps md5-crypt and phpass; bcrypt is kept
    assert cred.wrapped == {"md5_crypt": expected["md5_crypt"], "phpass": expected["phpass"]}
    assert cred.legacy == {"bcrypt": expected["bcrypt"]}


def test_pending_counts_source_rows_added_after_the_run(tmp_path: Path, target_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 100)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url))
    run_migration(spec)
    conn = sqlite3.connect(src)
    conn.executemany(
        "INSERT INTO legacy_users (user_id, email) VALUES (?, ?)",
        [(1000 + i, f"late{i}@example.com") for i in range(7)],
    )
    conn.commit()
    conn.close()

    status = migration_status(spec)

    assert status.source_rows == 107
    assert status.pending == 7


def test_dormant_counts_accounts_not_upgraded_days_after_their_batch(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 200, hashes=True)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, credentials="keep"))
    run_migration(spec)
    assert migration_status(spec).dormant == 0  # migrated just now
    # the first two batches (keys 1..100) were committed 40 days ago
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=40)
    _write(
        target_url,
        "UPDATE authmigrate_batches SET committed_at = :t WHERE batch_no <= 2",
        [{"t": old}],
    )
    last_old = _rows(target_url, "SELECT last_key FROM authmigrate_batches WHERE batch_no = 2")
    cut = int(last_old[0][0])
    uid, cred = _rows(target_url, f"SELECT user_id, password FROM accounts WHERE user_id <= {cut}")[
        0
    ]
    _, new = verify_and_update(f"pw-{uid}", cred)
    assert new is not None
    _write(
        target_url, "UPDATE accounts SET password = :p WHERE user_id = :k", [{"p": new, "k": uid}]
    )

    status = migration_status(spec, dormant_days=30)

    old_accounts = _rows(target_url, f"SELECT count(*) FROM accounts WHERE user_id <= {cut}")
    assert status.dormant == old_accounts[0][0] - 1 > 0
    assert migration_status(spec, dormant_days=60).dormant == 0
    _write(target_url, "UPDATE authmigrate_batches SET committed_at = :t", [{"t": old}])
    not_upgraded = _rows(
        target_url,
        "SELECT count(*) FROM accounts WHERE password IS NOT NULL "
        "AND password NOT LIKE '$argon2id$%'",
    )
    assert migration_status(spec, dormant_days=30).dormant == not_upgraded[0][0] > status.dormant


def test_run_and_each_status_record_a_snapshot(tmp_path: Path, target_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 60, hashes=True)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, credentials="keep"))
    run_migration(spec)
    migration_status(spec)
    migration_status(spec, record=False)
    status = migration_status(spec)

    snaps = read_snapshots(sa.create_engine(target_url), spec.migration_name)

    assert [s.command for s in snaps] == ["run", "status", "status"]
    assert snaps[-1].legacy == status.credentials.legacy_total > 0
    assert snaps[-1].migrated == status.migrated
    assert snaps[0].taken_at <= snaps[1].taken_at <= snaps[2].taken_at


def test_status_cli_prints_a_table_and_json(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 80, hashes=True)
    dst = f"sqlite:///{tmp_path / 'target.db'}"
    spec = write_spec(tmp_path / "m.toml", src, dst, credentials="keep")
    assert cli("run", str(spec), cwd=tmp_path).returncode in (0, 1)

    as_json = cli("status", str(spec), "--json", cwd=tmp_path)
    table = cli("status", str(spec), cwd=tmp_path)

    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    for key in ("source_rows", "migrated", "rejected", "merged", "pending", "deleted_in_source"):
        assert key in body
    assert body["source_rows"] == 80
    assert body["credentials"]["legacy"] == body["migrated"]
    assert table.returncode == 0, table.stderr
    assert "phpass" in table.stdout and f"{body['migrated']:,}" in table.stdout


def test_status_before_any_run_creates_no_file(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 10)
    target = tmp_path / "never.db"
    spec = load_spec(write_spec(tmp_path / "m.toml", src, f"sqlite:///{target}"))

    status = migration_status(spec)

    assert (status.source_rows, status.migrated, status.pending) == (10, 0, 10)
    assert status.last_run is None
    assert not target.exists()


@pytest.mark.mariadb
@pytest.mark.parametrize("odd_ones", ["last", "first"])
def test_credential_families_are_counted_on_mariadb(mariadb_url: str, odd_ones: str) -> None:
    from tests.mariadb_server import fresh_database

    test_credential_families_in_and_beyond_the_first_rows_are_counted(
        fresh_database(mariadb_url, "status"), odd_ones
    )


@pytest.mark.parametrize("odd_ones", ["last", "first"])
def test_credential_families_in_and_beyond_the_first_rows_are_counted(
    target_url: str, odd_ones: str
) -> None:
    from passlib import hash as h

    from authmigrate.continuity.status import credential_counts

    phpass = h.phpass.using(rounds=7).hash("a")
    md5 = h.md5_crypt.hash("b")
    bcrypt = h.bcrypt.using(rounds=4).hash("c")
    # scan order puts 2,100 phpass rows first: more than the rows read to learn the families
    values = [phpass] * 2100 + [md5] * 50 + [f"$login-rule$trim=1${bcrypt}"] * 30
    mysql41 = h.mysql41.hash("d")
    # WordPress's unusable "*" and Django's "!" beside MySQL's "*<hex>"
    odd = [None] * 10 + ["zzz-not-a-hash"] * 5 + [mysql41] * 7 + ["*"] * 3 + ["!x1"] * 2
    odd += ["*a$b"]  # a "*" value with a "$" in it is not MySQL's: no scheme reads it
    # last: learnt from the first rows are phpass alone, the rest is grouped; first: every
    # family is counted by the one scan of prefix tests
    values = values + odd if odd_ones == "last" else odd + values
    engine = sa.create_engine(target_url)
    table = sa.Table(
        "creds",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("password", sa.Text),
    )
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(), [{"id": i, "password": v} for i, v in enumerate(values, start=1)]
        )

    counts = credential_counts(engine, sa.table("creds", sa.column("password")), "password")
    engine.dispose()

    assert counts.legacy == {
        "phpass": 2100,
        "md5_crypt": 50,
        "bcrypt": 30,
        "mysql41": 7,
        "unknown": 6,
    }
    assert counts.reset == 15 and counts.upgraded == 0 and counts.wrapped == {}


def test_many_snapshots_are_read_as_the_last_of_each_day(tmp_path: Path, target_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 20)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url))
    run_migration(spec)
    for _ in range(4):
        migration_status(spec)
    engine = sa.create_engine(target_url)
    # spread the 5 snapshots over 3 days: ids 1-2 on day 1, 3 on day 2, 4-5 on day 3
    days = {1: 1, 2: 1, 3: 2, 4: 3, 5: 3}
    with engine.begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM authmigrate_snapshots ORDER BY id")).scalars()
        for n, sid in enumerate(list(ids), start=1):
            at = dt.datetime(2026, 10, days[n], 9 + n, 0, 0)
            conn.execute(
                sa.text("UPDATE authmigrate_snapshots SET taken_at = :t WHERE id = :i"),
                {"t": at, "i": sid},
            )

    every = read_snapshots(engine, spec.migration_name)
    daily = read_snapshots(engine, spec.migration_name, limit=3)
    engine.dispose()

    assert len(every) == 5
    assert [(s.taken_at.day, s.taken_at.hour) for s in daily] == [(1, 11), (2, 12), (3, 14)]
