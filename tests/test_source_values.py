"""Values real sources hold: undecodable text, time zones, values the target refuses,
case variants of what the target already holds (issue 9, items 6, 7, 8, 10)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers_verify import cli, execute, scalar
from tests.pg_server import PgServer

HASH = "$1$abcdefgh$" + "x" * 22
"""An md5_crypt-shaped hash: the spec reads it with ``scheme = "auto"``."""


def sqlite_users(path: Path, rows: int = 100) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE legacy_users (id INTEGER PRIMARY KEY, email TEXT, name TEXT,"
        " password_hash TEXT)"
    )
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?, ?)",
        [(i, f"u{i}@example.com", f"name {i}", HASH) for i in range(1, rows + 1)],
    )
    conn.commit()
    conn.close()


def spec_text(src: str, dst: str, *, fields: str = "", extra: str = "", table: str = "") -> str:
    return (
        f'[source]\nurl = "{src}"\n{table or "table = " + chr(34) + "legacy_users" + chr(34)}\n'
        f'key = "id"\n'
        f'[target]\nurl = "{dst}"\ntable = "accounts"\n'
        f'[fields]\nid = "id"\n{fields or "email = " + chr(34) + "email" + chr(34)}\n'
        f"{extra}\n[run]\nbatch_size = 30\n"
    )


# -- item 7: one non-UTF-8 byte in a SQLite source -------------------------------------------


def test_non_utf8_sqlite_text_is_rejected_per_row_and_never_shown(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    sqlite_users(src)
    secret_bytes = "24317365637265742dff"  # "$1$secret-" + 0xff: a hash with a bad byte
    conn = sqlite3.connect(src)
    conn.execute(
        f"UPDATE legacy_users SET password_hash = CAST(x'{secret_bytes}' AS TEXT) WHERE id = 50"
    )
    conn.execute("UPDATE legacy_users SET name = CAST(x'5a71ff78' AS TEXT) WHERE id = 70")
    conn.commit()
    conn.close()
    dst = f"sqlite:///{tmp_path}/target.db"
    spec = tmp_path / "m.toml"
    spec.write_text(
        spec_text(
            f"sqlite:///{src}",
            dst,
            fields='email = "email"\nname = "name"',
            extra='[credentials]\ncolumn = "password_hash"',
        )
    )
    res = cli("run", str(spec), cwd=tmp_path)
    assert res.returncode == 1, res.stderr  # ran, with rejects
    rejects = scalar_rows(
        dst, "SELECT source_key, reason, column_name FROM authmigrate_rejects ORDER BY id"
    )
    assert sorted(rejects) == [
        ("50", "field.invalid_encoding", "password_hash"),
        ("70", "field.invalid_encoding", "name"),
    ]
    assert scalar(dst, "SELECT count(*) FROM accounts") == 98
    assert scalar(dst, "SELECT max(id) FROM accounts") == 100  # went on past rows 50 and 70
    shown = res.stdout + res.stderr + str(scalar(dst, "SELECT error FROM authmigrate_runs"))
    for leak in ("$1$secret", "secret-", "Zq"):
        assert leak not in shown
    # and a second run finds nothing left to do
    again = cli("run", str(spec), cwd=tmp_path)
    assert again.returncode in (0, 1) and "secret" not in again.stderr
    assert scalar(dst, "SELECT count(*) FROM authmigrate_rejects") == 2


def scalar_rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


# -- item 6: time zones ----------------------------------------------------------------------

NOON_UTC = 1591012800  # 2020-06-01T12:00:00Z
ZONES = {"Europe/Berlin": 2, "America/New_York": -4}  # their UTC offsets in June


def _database_name(url: str) -> str:
    return sa.make_url(url).database or ""


@pytest.fixture
def server_zone(pg_server: PgServer) -> Iterator[Callable[[str], None]]:
    """Sets the PostgreSQL server's own ``timezone`` (``ALTER SYSTEM``) for one test."""
    admin = sa.create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")

    def set_zone(zone: str) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f"ALTER SYSTEM SET timezone = '{zone}'"))
            conn.execute(sa.text("SELECT pg_reload_conf()"))
        time.sleep(0.3)  # the postmaster re-reads its configuration asynchronously

    try:
        yield set_zone
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("ALTER SYSTEM RESET timezone"))
            conn.execute(sa.text("SELECT pg_reload_conf()"))
        admin.dispose()


@pytest.mark.parametrize("where", ["database", "server"])
@pytest.mark.parametrize("zone", sorted(ZONES))
def test_timestamptz_target_stores_the_instant_whatever_the_zone(
    tmp_path: Path,
    pg_server: PgServer,
    server_zone: Callable[[str], None],
    zone: str,
    where: str,
) -> None:
    src, dst = pg_server.create_database(), pg_server.create_database()
    if where == "server":
        server_zone(zone)
    else:
        for url in (src, dst):
            execute(
                pg_server.admin_url,
                f"ALTER DATABASE \"{_database_name(url)}\" SET timezone = '{zone}'",
            )
    assert scalar(dst, "SHOW timezone") == zone
    execute(
        src,
        "CREATE TABLE legacy_users (id integer PRIMARY KEY, email text, aware text, naive text,"
        " seen timestamptz)",
        "INSERT INTO legacy_users VALUES"
        " (1, 'a@example.com', '2020-06-01T12:00:00+00:00', '2020-06-01 12:00:00',"
        "  '2020-06-01T12:00:00+00:00'),"
        " (2, 'b@example.com', '2020-06-01T14:00:00+02:00', '2020-06-01T12:00:00',"
        "  '2020-06-01T08:00:00-04:00')",
    )
    execute(
        dst,
        "CREATE TABLE accounts (id integer PRIMARY KEY, email text, aware_at timestamptz,"
        " naive_at timestamptz, seen_at timestamptz)",
    )
    spec = tmp_path / "m.toml"
    spec.write_text(
        spec_text(
            src,
            dst,
            fields='email = "email"\n'
            'aware_at = { from = "aware", type = "datetime" }\n'
            'naive_at = { from = "naive", type = "datetime" }\n'
            'seen_at = "seen"',
        )
    )
    res = cli("run", str(spec), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    epochs = scalar_rows(
        dst,
        "SELECT extract(epoch FROM aware_at)::bigint, extract(epoch FROM naive_at)::bigint,"
        " extract(epoch FROM seen_at)::bigint FROM accounts ORDER BY id",
    )
    assert epochs == [(NOON_UTC,) * 3, (NOON_UTC,) * 3]
    ok = cli("verify", str(spec), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # the instant the old code stored (noon read as the zone's wall time) is found wrong
    wrong = f"2020-06-01T{12 - ZONES[zone]:02d}:00:00+00:00"
    execute(dst, "UPDATE accounts SET aware_at = :t WHERE id = 2", params={"t": wrong})
    bad = cli("verify", str(spec), cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "different" in bad.stdout


@pytest.mark.parametrize("zone", sorted(ZONES))
def test_sqlite_source_and_target_keep_utc_whatever_the_process_zone(
    tmp_path: Path, zone: str
) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (id INTEGER PRIMARY KEY, email TEXT, at TEXT)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [
            (1, "a@example.com", "2020-06-01T12:00:00+00:00"),
            (2, "b@example.com", "2020-06-01T14:00:00+02:00"),
            (3, "c@example.com", "2020-06-01 12:00:00"),
        ],
    )
    conn.commit()
    conn.close()
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = tmp_path / "m.toml"
    fields = 'email = "email"\nat = { from = "at", type = "datetime" }'
    spec.write_text(spec_text(f"sqlite:///{src}", dst, fields=fields))
    res = cli("run", str(spec), cwd=tmp_path, env={"TZ": zone})
    assert res.returncode == 0, res.stderr
    stored = scalar_rows(dst, "SELECT DISTINCT at FROM accounts")
    assert stored == [("2020-06-01 12:00:00.000000",)]
    assert cli("verify", str(spec), cwd=tmp_path, env={"TZ": zone}).returncode == 0


def test_aware_source_into_sqlite_is_stored_as_utc(tmp_path: Path, pg_server: PgServer) -> None:
    src = pg_server.create_database()
    zone = "America/New_York"
    execute(
        pg_server.admin_url, f"ALTER DATABASE \"{_database_name(src)}\" SET timezone = '{zone}'"
    )
    execute(
        src,
        "CREATE TABLE legacy_users (id integer PRIMARY KEY, email text, seen timestamptz)",
        "INSERT INTO legacy_users VALUES (1, 'a@example.com', '2020-06-01T12:00:00+00:00')",
    )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = tmp_path / "m.toml"
    spec.write_text(spec_text(src, dst, fields='email = "email"\nseen_at = "seen"'))
    res = cli("run", str(spec), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert scalar(dst, "SELECT seen_at FROM accounts") == "2020-06-01 12:00:00.000000"
    assert cli("verify", str(spec), cwd=tmp_path).returncode == 0


# -- item 8: values the target's columns refuse ------------------------------------------------

LONG_EMAIL = "much.too.long.for.twenty@example.com"


def refused_values_source(path: Path) -> None:
    """60 users; user 10's email does not fit varchar(20), user 40's visits is not a number."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE legacy_users (id INTEGER PRIMARY KEY, email TEXT, visits INTEGER)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [(i, f"u{i}@example.com", i) for i in range(1, 61)],
    )
    conn.execute("UPDATE legacy_users SET email = ? WHERE id = 10", (LONG_EMAIL,))
    conn.execute("UPDATE legacy_users SET visits = 'lots-of-visits' WHERE id = 40")
    conn.commit()
    conn.close()


def check_refused_rows_are_rejected_with_their_column(
    tmp_path: Path, dst: str, expected: list[tuple[str, str, str]]
) -> None:
    src = tmp_path / "legacy.db"
    refused_values_source(src)
    spec = tmp_path / "m.toml"
    spec.write_text(spec_text(f"sqlite:///{src}", dst, fields='email = "email"\nvisits = "visits"'))
    res = cli("run", str(spec), cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr  # ran, with rejects
    assert sorted(scalar_rows(dst, "SELECT id FROM accounts")) == [
        (i,) for i in range(1, 61) if str(i) not in {k for k, _, _ in expected}
    ]
    got = scalar_rows(
        dst, "SELECT source_key, reason, column_name, detail FROM authmigrate_rejects ORDER BY 1"
    )
    assert [g[:3] for g in got] == expected
    shown = res.stdout + res.stderr + " ".join(str(g[3]) for g in got)
    assert LONG_EMAIL not in shown and "lots-of-visits" not in shown
    again = cli("run", str(spec), cwd=tmp_path)
    assert again.returncode in (0, 1) and "error" not in again.stderr, again.stderr
    assert scalar(dst, "SELECT count(*) FROM authmigrate_rejects") == len(expected)


def test_values_postgresql_refuses_are_rejected_per_row_with_the_column(
    tmp_path: Path, pg_url: str
) -> None:
    # A VARCHAR(20) email column is refused up front by plan/run (issue 11's target check), so
    # the row the database itself refuses is the word in an integer column.
    execute(
        pg_url, "CREATE TABLE accounts (id integer PRIMARY KEY, email varchar(320), visits integer)"
    )
    check_refused_rows_are_rejected_with_their_column(
        tmp_path, pg_url, [("40", "target.invalid_value", "visits")]
    )


def test_values_a_strict_sqlite_table_refuses_are_rejected_with_the_column(tmp_path: Path) -> None:
    dst = f"sqlite:///{tmp_path}/t.db"
    execute(
        dst, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT, visits INTEGER) STRICT"
    )
    check_refused_rows_are_rejected_with_their_column(
        tmp_path, dst, [("40", "target.invalid_value", "visits")]
    )


def test_values_mariadb_refuses_are_rejected_per_row_with_the_column(
    tmp_path: Path, mariadb_url: str
) -> None:
    from tests.mariadb_server import fresh_database

    dst = fresh_database(mariadb_url, prefix="t")
    execute(
        dst, "CREATE TABLE accounts (id integer PRIMARY KEY, email varchar(320), visits integer)"
    )
    check_refused_rows_are_rejected_with_their_column(
        tmp_path, dst, [("40", "target.invalid_value", "visits")]
    )


def test_outbox_holds_text_keys_longer_than_255(tmp_path: Path, pg_url: str) -> None:
    from tests.helpers_verify import OUTBOX_KEY

    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (id TEXT PRIMARY KEY, email TEXT, password_hash TEXT)")
    keys = [f"{i:03d}-" + "k" * 296 for i in range(1, 6)]  # 300 characters each
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [(k, f"u{i}@example.com", HASH) for i, k in enumerate(keys)],
    )
    conn.commit()
    conn.close()
    spec = tmp_path / "m.toml"
    spec.write_text(
        spec_text(
            f"sqlite:///{src}",
            pg_url,
            extra='[credentials]\ncolumn = "password_hash"\npolicy = "wrap"\nprofile = "TEST"\n'
            '[tokens]\ncolumn = "auth_token"\n'
            '[notify]\noutbox_key = "env:AUTHMIGRATE_OUTBOX_KEY"',
        )
    )
    res = cli("run", str(spec), cwd=tmp_path, env={"AUTHMIGRATE_OUTBOX_KEY": OUTBOX_KEY})
    assert res.returncode == 0, res.stdout + res.stderr
    queued = scalar_rows(pg_url, "SELECT source_key FROM authmigrate_outbox ORDER BY 1")
    assert queued == [(k,) for k in keys]


# -- item 10: case variants of what the new system wrote itself --------------------------------


def target_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/t.db"
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    from tests.mariadb_server import fresh_database

    return fresh_database(request.getfixturevalue("mariadb_url"), prefix="t")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_duplicates_match_app_rows_written_in_another_case(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    dst = target_database(backend, tmp_path, request)
    execute(
        dst,
        "CREATE TABLE accounts (id integer PRIMARY KEY, email text)",
        # written by the new system since the last run, not normalized
        "INSERT INTO accounts VALUES (9005, 'U5@Example.com'), (9007, ' u7@EXAMPLE.com')",
    )
    src = tmp_path / "legacy.db"
    sqlite_users(src, rows=10)
    spec = tmp_path / "m.toml"
    spec.write_text(
        spec_text(
            f"sqlite:///{src}",
            dst,
            fields='email = { from = "email", normalize = "email" }',
        ).replace("[run]\n", '[run]\nduplicates = "merge"\n')
    )
    plan = cli("plan", str(spec), cwd=tmp_path)
    assert "duplicate.email" in plan.stdout, plan.stdout + plan.stderr
    res = cli("run", str(spec), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr  # merges are no problem
    merged = scalar_rows(
        dst,
        "SELECT source_key, outcome, reason, merged_into FROM authmigrate_rejects ORDER BY 1",
    )
    assert merged == [
        ("5", "merged", "duplicate.email", "9005"),
        ("7", "merged", "duplicate.email", "9007"),
    ]
    emails = [e for (e,) in scalar_rows(dst, "SELECT lower(trim(email)) FROM accounts")]
    assert sorted(emails) == sorted({e.lower().strip() for e in emails})  # one account each
