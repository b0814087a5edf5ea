"""Sources are read-only: at the database level, one statement per query, journal untouched.

A hostile ``source.query`` (stacked statements after a ``;``, or one SELECT calling a function
that writes) must fail clearly, exit 2, and leave the legacy table as it was, on SQLite,
PostgreSQL and MariaDB. A SQLite legacy database keeps its journal mode and its bytes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.errors import SourceError, SpecError
from authmigrate.sources.sql import SqlSource
from authmigrate.spec import SourceSpec, load_spec_text, single_statement
from tests.helpers_verify import cli, execute, make_source, scalar
from tests.mariadb_server import fresh_database

STACKED = (
    "SELECT user_id, email FROM legacy_users) AS x; DELETE FROM legacy_users; COMMIT; "
    "SELECT * FROM (SELECT user_id, email FROM legacy_users"
)


def _spec(path: Path, source_url: str, query: str, target: Path) -> Path:
    text = f"""
name = "hostile"

[source]
url = "{source_url}"
key = "user_id"
query = '''{query}'''

[target]
url = "sqlite:///{target}"
table = "accounts"

[fields]
user_id = "user_id"
email = "email"

[run]
retries = 0
"""
    path.write_text(text, encoding="utf-8")
    return path


def _make_legacy(url: str, rows: int = 30) -> None:
    execute(url, "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email VARCHAR(100))")
    execute(
        url,
        *[
            f"INSERT INTO legacy_users VALUES ({i}, 'user{i}@example.com')"
            for i in range(1, rows + 1)
        ],
    )


def _hostile_fails_and_table_stays(tmp_path: Path, url: str, query: str, cwd: Path) -> None:
    target = tmp_path / "target.db"
    spec = _spec(tmp_path / "m.toml", url, query, target)
    for command in ("plan", "run"):
        done = cli(command, str(spec), cwd=cwd, timeout=120)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "source.query" in done.stderr or "source" in done.stderr, done.stderr
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr
        assert scalar(url, "SELECT count(*) FROM legacy_users") == 30, command


def test_stacked_query_is_refused_and_sqlite_source_stays_intact(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    url = f"sqlite:///{src}"
    _make_legacy(url)
    _hostile_fails_and_table_stays(tmp_path, url, STACKED, tmp_path)


def test_stacked_query_is_refused_and_postgresql_source_stays_intact(
    tmp_path: Path, pg_url: str
) -> None:
    _make_legacy(pg_url)
    _hostile_fails_and_table_stays(tmp_path, pg_url, STACKED, tmp_path)


def test_stacked_query_is_refused_and_mariadb_source_stays_intact(
    tmp_path: Path, mariadb_url: str
) -> None:
    url = fresh_database(mariadb_url, "legacy")
    _make_legacy(url)
    _hostile_fails_and_table_stays(tmp_path, url, STACKED, tmp_path)


def test_postgresql_source_session_is_read_only(tmp_path: Path, pg_url: str) -> None:
    """One SELECT calling a function that deletes: the database itself refuses it."""
    _make_legacy(pg_url)
    execute(
        pg_url,
        "CREATE FUNCTION wipe() RETURNS integer LANGUAGE sql AS "
        "$$ DELETE FROM legacy_users; SELECT 1 $$",
    )
    query = "SELECT user_id, email, wipe() AS w FROM legacy_users"
    _hostile_fails_and_table_stays(tmp_path, pg_url, query, tmp_path)


def test_mariadb_source_session_is_read_only(tmp_path: Path, mariadb_url: str) -> None:
    """MariaDB refuses a function that writes the table its caller reads (error 1442), so
    this one empties another legacy table."""
    url = fresh_database(mariadb_url, "legacy")
    _make_legacy(url)
    execute(
        url,
        "CREATE TABLE legacy_orders (id INTEGER PRIMARY KEY)",
        "INSERT INTO legacy_orders VALUES (1), (2), (3)",
        "CREATE FUNCTION wipe() RETURNS INT MODIFIES SQL DATA "
        "BEGIN DELETE FROM legacy_orders; RETURN 1; END",
    )
    query = "SELECT user_id, email, wipe() AS w FROM legacy_users"
    _hostile_fails_and_table_stays(tmp_path, url, query, tmp_path)
    assert scalar(url, "SELECT count(*) FROM legacy_orders") == 3


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_source_connections_refuse_writes(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'legacy.db'}"
    elif backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = fresh_database(request.getfixturevalue("mariadb_url"), "legacy")
    _make_legacy(url)
    source = SqlSource(SourceSpec(url=url, table="legacy_users", key="user_id"))
    try:
        with pytest.raises(sa.exc.DBAPIError), source.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM legacy_users"))
    finally:
        source.close()
    assert scalar(url, "SELECT count(*) FROM legacy_users") == 30


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 AS user_id; DELETE FROM legacy_users",
        "SELECT E'\\'' AS a ; DELETE FROM legacy_users; SELECT '",
        "SELECT 1 AS user_id /* a */ ; DELETE FROM t",
    ],
)
def test_more_than_one_statement_is_a_spec_error(query: str) -> None:
    with pytest.raises(ValueError, match="one SELECT statement"):
        single_statement(query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT ';' AS user_id",
        'SELECT 1 AS "a;b"',
        "SELECT $$;$$ AS user_id",
        "SELECT 1 AS user_id -- a comment; with a semicolon\n",
        "SELECT 1 AS user_id /* nested /* ; */ ; */",
        "SELECT 1 AS user_id;",
    ],
)
def test_one_statement_with_semicolons_in_quotes_or_comments_is_accepted(query: str) -> None:
    assert ";" not in single_statement(query).rstrip()[-1:]


def _spec_text(src: Path, dst: Path) -> str:
    return f"""
name = "journal"
[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "user_id"
[target]
url = "sqlite:///{dst}"
table = "accounts"
[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}
[credentials]
column = "password_hash"
profile = "TEST"
"""


def test_sqlite_source_keeps_its_journal_mode_bytes_and_mtime(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 300, hashes=True)
    conn = sqlite3.connect(src)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    before = (hashlib.sha256(src.read_bytes()).hexdigest(), os.stat(src).st_mtime_ns)
    spec = tmp_path / "m.toml"
    spec.write_text(_spec_text(src, tmp_path / "target.db"), encoding="utf-8")
    for command in ("plan", "run", "verify"):
        done = cli(command, str(spec), cwd=tmp_path)
        assert done.returncode in (0, 1), (command, done.stderr)
    after = (hashlib.sha256(src.read_bytes()).hexdigest(), os.stat(src).st_mtime_ns)
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("legacy")) == [
        "legacy.db"
    ]
    conn = sqlite3.connect(src)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_source_query_spec_error_names_the_key() -> None:
    with pytest.raises(SpecError, match=r"^source\.query: must be one SELECT"):
        load_spec_text(
            '[source]\nurl = "sqlite:///x.db"\nkey = "id"\nquery = "SELECT 1 AS id; DROP TABLE u"\n'
            '[target]\nurl = "sqlite:///y.db"\ntable = "n"\n[fields]\nid = "id"\n'
        )


def test_stacked_statements_never_reach_postgresql_even_past_the_spec_check(
    pg_url: str,
) -> None:
    """A SourceSpec built without validation (library use): the engine refuses the execute."""
    _make_legacy(pg_url)
    spec = SourceSpec.model_construct(
        url=pg_url,
        table=None,
        query=STACKED,
        key="user_id",
        preset=None,
        encoding="utf-8",
        delimiter=",",
        password=None,
    )
    with pytest.raises(SourceError, match="more than one SQL statement"):
        SqlSource(spec)
    assert scalar(pg_url, "SELECT count(*) FROM legacy_users") == 30
