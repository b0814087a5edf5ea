"""Hostile inputs and servers for the MariaDB fast path: its outcome equals the Python path's.

Each test runs the same spec twice (``AUTHMIGRATE_FASTPATH=0`` and ``1``) into fresh databases
of the suite's real MariaDB server (``run_both`` of tests/test_fastpath_mariadb.py) and compares
everything the run leaves behind. Server settings a user's MariaDB may run with (a small
``max_allowed_packet``, ``NO_BACKSLASH_ESCAPES``, ``ANSI_QUOTES``) are set globally for the test
and restored after it (the session's private server; new connections read them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.mariadb_server import fresh_database
from tests.test_fastpath import SPEC
from tests.test_fastpath_mariadb import DEFAULT_TABLE, run_both
from tests.test_fastpath_postgres import make_source


@contextmanager
def server_setting(server_url: str, name: str, value: Any) -> Iterator[None]:
    """``SET GLOBAL name = value`` for the block (new connections read it), restored after."""
    engine = sa.create_engine(server_url)
    try:
        with engine.connect() as conn:
            before = conn.exec_driver_sql(f"SELECT @@GLOBAL.{name}").scalar()
            conn.exec_driver_sql(f"SET GLOBAL {name} = %s", (value,))
        try:
            yield
        finally:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SET GLOBAL {name} = %s", (before,))
    finally:
        engine.dispose()


def test_mariadb_fast_path_statements_fit_a_small_max_allowed_packet(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server with ``max_allowed_packet = 1M`` (the default of older servers, and a common
    my.cnf line): PyMySQL's ``executemany`` (the Python path) cuts its statements at 1,024,000
    *bytes*; the fast path must not send more, whatever the characters' width (here names of
    two-byte letters) -- the server refuses such a packet and drops the connection."""
    rows = [(i, f"u{i}@x.org", "\u00e9" * 3000) for i in range(1, 401)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    with server_setting(mariadb_url, "max_allowed_packet", 1024 * 1024):
        python, fast, fast_batches = run_both(
            mariadb_url, src, tmp_path, monkeypatch, caplog, batch=400
        )
    assert fast == python
    assert python["runs"][0][2] == 400
    assert fast_batches == 1, "the batch fell back to the Python path"


def test_mariadb_fast_path_ascii_statement_does_not_overshoot_by_a_row(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Long printable-ASCII names (pasted in Arrow): a statement cut only *after* the row that
    crosses 1,024,000 bytes is up to a row longer than the Python path's, over a 1M packet."""
    rows = [(i, f"u{i}@x.org", "n" * 60_000) for i in range(1, 41)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    with server_setting(mariadb_url, "max_allowed_packet", 1024 * 1024):
        python, fast, fast_batches = run_both(
            mariadb_url, src, tmp_path, monkeypatch, caplog, batch=40
        )
    assert fast == python
    assert python["runs"][0][2] == 40
    assert fast_batches == 1, "the batch fell back to the Python path"


HOSTILE = [
    "it's",
    "back\\slash",
    "\\'",
    "''",
    "\\",
    "x\\",
    "tab\there",
    "\x1a",
    "\\Z",
    "\u2019quote\u2018",
    "\uff07fullwidth\uff3c",
    "\u7e3e\u5c71",
    "",
    "   ",
    '"q"',
    "`tick`",
    "é",
    "😀" * 3,
]


@pytest.mark.parametrize(
    "mode",
    [
        "NO_BACKSLASH_ESCAPES",
        "ANSI_QUOTES",
        "NO_BACKSLASH_ESCAPES,ANSI_QUOTES,PAD_CHAR_TO_FULL_LENGTH",
    ],
)
def test_mariadb_fast_path_equals_python_under_the_servers_sql_mode(
    mode: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server's global ``sql_mode`` (the session adds STRICT_ALL_TABLES to it): a quote
    or a backslash in the text must mean the same to the server on both paths."""
    rows = [(i + 1, f"u{i}@x.org", name) for i, name in enumerate(HOSTILE)]
    rows.append((len(HOSTILE) + 1, "clean@x.org", "plain"))
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    with server_setting(mariadb_url, "sql_mode", mode):
        python, fast, fast_batches = run_both(mariadb_url, src, tmp_path, monkeypatch, caplog)
    assert fast_batches == 1
    assert fast == python
    assert [row[2] for row in fast["accounts"]] == [*HOSTILE, "plain"]


# values that only some collations call equal: accents (unicode_ci, general_ci), ß = ss
# (unicode_ci), ü = y (latin1_swedish_ci), trailing spaces (PAD SPACE), case; one value a
# latin1 column cannot hold; empty and whitespace-only
COLLIDING = [
    "e@x.org",
    "é@x.org",
    "E@x.org ",
    "ss@x.org",
    "ß@x.org",
    "y@x.org",
    "ü@x.org",
    "😀@x.org",
    "a",
    "A",
    "a ",
    "",
    "  ",
    "\u00a0",
    "ÉTÉ@x.org",
    "ete@x.org",
]


@pytest.mark.parametrize(
    ("column", "copied"),
    [
        ("VARCHAR(320) COLLATE utf8mb4_general_ci", True),
        ("VARCHAR(320) COLLATE utf8mb4_unicode_ci", True),
        ("VARCHAR(320) COLLATE utf8mb4_unicode_ci", False),
        ("VARCHAR(320) COLLATE utf8mb4_nopad_bin", True),
        ("VARCHAR(320) CHARACTER SET latin1 COLLATE latin1_swedish_ci", True),
        ("VARCHAR(320) CHARACTER SET latin1 COLLATE latin1_swedish_ci", False),
        ("CHAR(255) COLLATE utf8mb4_unicode_ci", False),
    ],
)
def test_mariadb_fast_path_equals_python_under_the_unique_columns_collation(
    column: str,
    copied: bool,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Duplicates only the collation sees, inside a batch, across batches and against an
    account the target holds (copied as they are, or normalized as emails). A value a
    latin1 column cannot hold (the emoji) makes the server refuse the lookup of the whole
    IN list ("Illegal mix of collations"): the lookup halves the list down to that value,
    which matches nothing, and the target then refuses the row itself: one reject, the run
    goes on (it stopped with a TargetError after five retries)."""
    rows = [(i + 1, email, f"n{i}") for i, email in enumerate(COLLIDING)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    table = DEFAULT_TABLE.replace("VARCHAR(320)", column)
    python, fast, fast_batches = run_both(
        mariadb_url,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        before=[(900, "ETE@X.ORG", None), (901, "ss@x.org", None)],
        table=table,
        batch=4,
        copy_email=copied,
    )
    assert fast == python
    emoji = str(COLLIDING.index("😀@x.org") + 1)
    refused = [r for r in python["rejects"] if r[1] == emoji]
    stored = [a for a in python["accounts"] if a[1] == "😀@x.org"]
    if "latin1" in column:
        assert len(refused) == 1 and refused[0][4] == "email", refused
        assert not stored
    else:
        assert stored or refused  # utf8mb4 holds it: migrated, or a collation's duplicate


@pytest.mark.parametrize(
    "name",
    [
        "name TINYTEXT CHARACTER SET latin1",
        "name TEXT CHARACTER SET ascii",
        "name TINYTEXT",
    ],
)
def test_mariadb_fast_path_equals_python_for_narrow_name_columns(
    name: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Values too long for the column (TINYTEXT: 255 bytes), characters the column's charset
    lacks: refused (strict session) or kept alike on both paths. (A column of a declared
    width needs ``max_length`` on the field, which keeps the run on the Python path.)"""
    names = ["ok", "abcdef", "trail   ", "  lead", "x" * 300, "é" * 128, "é" * 200, "😀", ""]
    names += [None, "plain", "text", "here"]
    rows = [(i + 1, f"u{i}@x.org", n) for i, n in enumerate(names)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    table = DEFAULT_TABLE.replace("name TEXT", name)
    python, fast, fast_batches = run_both(
        mariadb_url,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        before=[],
        table=table,
        batch=4,
    )
    assert fast == python


def _run(
    spec_file: Path, text: str, switch: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, ...]:
    spec_file.write_text(text)
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
    result = run_migration(load_spec(spec_file))
    verified = verify_migration(load_spec(spec_file))
    return (result.status, result.this_run, result.by_reason, verified.ok, verified.reconciled)


def _dump_tables(url: str, accounts: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:

            def q(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in conn.exec_driver_sql(sql)]

            return {
                "accounts": q(f"SELECT * FROM {accounts} ORDER BY user_id"),
                "rejects": q(
                    "SELECT migration, batch_no, source_key, outcome, reason, column_name, "
                    "detail, merged_into, raw FROM authmigrate_rejects ORDER BY id"
                ),
                "batches": q(
                    "SELECT migration, batch_no, first_key, last_key, rows_read, migrated, "
                    "rejected, merged, written_keys FROM authmigrate_batches "
                    "ORDER BY migration, batch_no"
                ),
                "state": q(
                    "SELECT migration, source_key, state, fingerprint, credential_fp, target_fp "
                    "FROM authmigrate_key_state ORDER BY migration, source_key"
                ),
            }
    finally:
        engine.dispose()


def test_mariadb_two_migrations_into_one_target_table_equal_python(
    mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two migrations (two names, two sources) into the same table: the second meets the
    first's keys and emails (target.key_exists, duplicates) on both paths alike; then
    rolling back the first leaves the second's accounts, and running it again equals."""
    first = [(i, f"u{i}@x.org", "a") for i in range(1, 30)]
    second = [(i, f"U{i + 10}@X.org", "b") for i in range(20, 50)]
    outcomes = []
    for switch in ("0", "1"):
        work = tmp_path / switch
        work.mkdir()
        url = fresh_database(mariadb_url, "fastmaria")
        said = []
        for name, rows in (("shop_a", first), ("shop_b", second)):
            src = work / f"{name}.db"
            make_source(src, rows)
            text = SPEC.format(
                src=src, dst="X", batch=7, duplicates="reject", extra='name = "name"'
            )
            text = f'name = "{name}"\n' + text.replace('"sqlite:///X"', f'"{url}"')
            said.append(_run(work / f"{name}.toml", text, switch, monkeypatch))
        said.append(rollback(load_spec(work / "shop_a.toml")))
        said.append(
            _run(work / "shop_b.toml", (work / "shop_b.toml").read_text(), switch, monkeypatch)
        )
        said.append(
            _run(work / "shop_a.toml", (work / "shop_a.toml").read_text(), switch, monkeypatch)
        )
        outcomes.append((said, _dump_tables(url, "new_users")))
    python, fast = outcomes
    assert fast[1] == python[1]
    assert fast[0] == python[0]


@pytest.mark.parametrize("table", ["OTHER.new_users", "OTHER.new_users_$x"])
def test_mariadb_fast_path_equals_python_for_a_target_table_in_another_database(
    table: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The accounts table in another database of the server (``db.table``) than the one the
    URL names (where the bookkeeping goes). (A name with a backtick or a space is refused by
    the spec on both paths: ``not a plain SQL identifier``.)"""
    rows = [(i, f"u{i % 17}@x.org", f"n'{i}") for i in range(1, 40)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    outcomes = []
    for switch in ("0", "1"):
        url = fresh_database(mariadb_url, "fastmaria")
        name = table
        if table.startswith("OTHER."):
            other = fresh_database(mariadb_url, "fastother")
            name = table.replace("OTHER", sa.make_url(other).database or "")
        schema, _, bare = name.rpartition(".")
        quoted = (f"`{schema}`." if schema else "") + "`" + bare.replace("`", "``") + "`"
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(DEFAULT_TABLE.replace("new_users", quoted))
            conn.exec_driver_sql(f"INSERT INTO {quoted} VALUES (5, 'old@x.org', NULL)")
            conn.exec_driver_sql(f"INSERT INTO {quoted} VALUES (900, 'U3@X.ORG', NULL)")
        engine.dispose()
        text = SPEC.format(src=src, dst="X", batch=10, duplicates="merge", extra='name = "name"')
        text = 'name = "m"\n' + text.replace('table = "new_users"', f'table = "{name}"')
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            said = _run(
                tmp_path / f"{switch}.toml",
                text.replace('"sqlite:///X"', f'"{url}"'),
                switch,
                monkeypatch,
            )
        fast_batches = sum("fast path," in r.getMessage() for r in caplog.records)
        fast_batches -= sum(r.getMessage().endswith(": Python path") for r in caplog.records)
        outcomes.append((said, _dump_tables(url, quoted), fast_batches))
    (python, python_dump, _), (fast, fast_dump, fast_batches) = outcomes
    assert fast_dump == python_dump
    assert fast == python
    assert fast_batches == 4


@pytest.mark.parametrize(
    "names",
    [
        [1.5, 1e20, 0.1, -0.0, 1.0, 3.0e-7],
        [42, -7, 2**62, 0, 9007199254740993],
        [b"bytes", b"\xff\xfe", "text"],
        [42, "forty-two", 1.5, None],
    ],
    ids=["floats", "integers", "blobs", "mixed"],
)
@pytest.mark.parametrize("column", ["name TEXT", "name TEXT CHARACTER SET latin1", "name BIGINT"])
def test_mariadb_fast_path_equals_python_for_source_values_of_other_types(
    names: list[Any],
    column: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A SQLite source column holds what it is given: numbers and blobs in a text column,
    written into a text or an integer target column."""
    rows = [(i + 1, f"u{i}@x.org", n) for i, n in enumerate(names)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    table = DEFAULT_TABLE.replace("name TEXT", column)
    python, fast, fast_batches = run_both(
        mariadb_url, src, tmp_path, monkeypatch, caplog, before=[], table=table
    )
    assert fast == python


@pytest.mark.parametrize("at", [1, 2, 3])
def test_mariadb_fast_path_connection_killed_mid_batch_equals_python(
    at: int,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``KILL CONNECTION`` from another session (a DBA, a proxy's idle reaper, a failover)
    before the fast path's ``at``-th INSERT of the run: the batch's transaction is gone with
    the connection; the run goes on and ends as the Python path's run ends, with nothing lost
    or doubled."""
    from authmigrate.pipeline.fast_mariadb import MariaDBFastPath

    rows = [(i, f"u{i % 23}@x.org", f"n{i}") for i in range(1, 60)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    original = MariaDBFastPath._insert
    calls = {"n": 0}

    def killed(self: MariaDBFastPath, cur: Any, head: str, texts: list[str]) -> None:
        calls["n"] += 1
        if calls["n"] == at:
            engine = sa.create_engine(mariadb_url)
            with engine.connect() as other:
                other.exec_driver_sql(f"KILL CONNECTION {cur.connection.thread_id()}")
            engine.dispose()
        original(self, cur, head, texts)

    monkeypatch.setattr(MariaDBFastPath, "_insert", killed)
    python, fast, fast_batches = run_both(
        mariadb_url, src, tmp_path, monkeypatch, caplog, batch=10, duplicates="merge"
    )
    assert calls["n"] >= at
    assert fast == python
    assert fast_batches == 5


@pytest.mark.parametrize("writer_ends", ["rollback", "commit"])
def test_mariadb_fast_path_waits_out_a_concurrent_writer_as_python(
    writer_ends: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The shop still writes to the target: a transaction holds an uncommitted account with
    an email of the batch (the unique index's lock) past ``innodb_lock_wait_timeout`` (1 s
    here), then ends. The fast path's INSERT times out; the batch goes on as the Python
    path's does (its retries), and both runs end alike: the account inserted (the writer
    rolled back) or a duplicate of the writer's (it committed)."""
    import threading

    rows = [(i, f"u{i}@x.org", f"n{i}") for i in range(1, 21)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    original = run_migration
    outcomes = []

    def with_writer(spec: Any) -> Any:
        engine = sa.create_engine(str(spec.target.url))
        conn = engine.connect()
        conn.exec_driver_sql("INSERT INTO new_users VALUES (900, 'u7@x.org', 'shop')")
        timer = threading.Timer(2.5, getattr(conn, writer_ends))
        timer.start()
        try:
            return original(spec)
        finally:
            timer.join()
            conn.close()
            engine.dispose()
            outcomes.append(spec)

    monkeypatch.setattr(f"{__name__}.run_migration", with_writer)
    import tests.test_fastpath_mariadb as base

    monkeypatch.setattr(base, "run_migration", with_writer)
    with server_setting(mariadb_url, "innodb_lock_wait_timeout", 1):
        python, fast, fast_batches = run_both(
            mariadb_url, src, tmp_path, monkeypatch, caplog, before=[], batch=10
        )
    assert len(outcomes) == 2
    assert fast == python
    held = [r for r in fast["accounts"] if r[1] == "u7@x.org"]
    assert held == (
        [(900, "u7@x.org", "shop")] if writer_ends == "commit" else [(7, "u7@x.org", "n7")]
    )


def test_mariadb_fast_path_rerun_after_rollback_fix_sync_and_run_equals_python(
    mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run (rejects and duplicates), rollback, the source fixed (a rejected key now valid, a
    duplicate renamed), run again, sync after more changes (the key state the fast path
    wrote is what sync reads), then a run over keys added above the checkpoint."""
    import sqlite3

    from authmigrate.continuity.sync import sync_migration
    from tests.test_fastpath_postgres_hostile import _sync_view

    rows = [
        (1, "a@x.org", "a"),
        (2, "not an email", "b"),
        (3, "A@x.org", "c"),
        (4, "d@x.org", "it's"),
        (5, "e@x.org", None),
        (6, "f@x.org", "f"),
        (7, "E@X.org", "g"),
        (8, "h@x.org", "h"),
    ]
    outcomes = []
    for switch in ("0", "1"):
        work = tmp_path / switch
        work.mkdir()
        src = work / "legacy.db"
        make_source(src, rows)
        url = fresh_database(mariadb_url, "fastmaria")
        text = SPEC.format(src=src, dst="X", batch=3, duplicates="reject", extra='name = "name"')
        text = 'name = "m"\n' + text.replace('"sqlite:///X"', f'"{url}"')
        spec_file = work / "spec.toml"
        steps: list[Any] = [
            _run(spec_file, text, switch, monkeypatch),
            _dump_tables(url, "new_users"),
        ]
        steps.append(rollback(load_spec(spec_file)))
        steps.append(_dump_tables(url, "new_users"))
        conn = sqlite3.connect(src)
        conn.execute("UPDATE old_users SET email = 'b@x.org' WHERE user_id = 2")
        conn.execute("UPDATE old_users SET email = 'c@x.org' WHERE user_id = 3")
        conn.commit()
        steps += [_run(spec_file, text, switch, monkeypatch), _dump_tables(url, "new_users")]
        conn.execute("UPDATE old_users SET email = 'g@x.org' WHERE user_id = 7")
        conn.execute("UPDATE old_users SET name = 'x\\\\y' WHERE user_id = 1")
        conn.execute("INSERT INTO old_users VALUES (9, 'i@x.org', 'i'), (10, 'H@x.org', 'j')")
        conn.commit()
        steps.append(_sync_view(sync_migration(load_spec(spec_file))))
        steps.append(_dump_tables(url, "new_users"))
        conn.execute("INSERT INTO old_users VALUES (11, 'k@x.org', 'k'), (12, 'I@x.org', 'l')")
        conn.commit()
        conn.close()
        steps += [_run(spec_file, text, switch, monkeypatch), _dump_tables(url, "new_users")]
        outcomes.append(steps)
    for i, (python, fast) in enumerate(zip(*outcomes, strict=True)):
        assert fast == python, i


@pytest.mark.parametrize(
    "column", ["name TINYINT(1)", "name INT", "name BIGINT UNSIGNED", "name SMALLINT"]
)
def test_mariadb_fast_path_equals_python_for_text_into_an_integer_column(
    column: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Text values into an integer target column (a boolean ``TINYINT(1)``, an unsigned
    one): a number spelled with spaces, a sign, an exponent, out of range, or not a number,
    refused (strict session) or stored alike on both paths."""
    names = ["1", "0", " 12", "12 ", "-3", "1e3", "0x10", "12abc", "true", "", "99999999999"]
    names += [str(2**64 - 1), str(2**64), "-0", None]
    rows = [(i + 1, f"u{i}@x.org", n) for i, n in enumerate(names)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    table = DEFAULT_TABLE.replace("name TEXT", column)
    python, fast, fast_batches = run_both(
        mariadb_url, src, tmp_path, monkeypatch, caplog, before=[], table=table, batch=5
    )
    assert fast == python


@pytest.mark.parametrize(
    "mode",
    ["PAD_CHAR_TO_FULL_LENGTH", "EMPTY_STRING_IS_NULL", "ORACLE", "TRADITIONAL", "ANSI"],
)
def test_mariadb_fast_path_equals_python_with_a_char_unique_column_under_the_sql_mode(
    mode: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Modes that change what a value reads back as (a CHAR padded to its width, an empty
    string as NULL) or how the statement parses, with a CHAR unique column (emails
    normalized; collisions by case and spaces, an account held), and clean batches the
    fast path takes itself. (A ``max_length`` on the field keeps the run on the Python
    path: checked per row.)"""
    emails = ["a@x.org", "A@x.org ", "", "b@x.org", "  ", "B@X.ORG", "c@x.org", "it's"]
    emails += ["c@x.org", "d@x.org", "e@x.org", "f@x.org", "g@x.org", "h@x.org", "i@x.org"]
    rows = [(i + 1, e, f"n{i}" if i % 3 else "") for i, e in enumerate(emails)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    table = DEFAULT_TABLE.replace("VARCHAR(320)", "CHAR(255)")
    with server_setting(mariadb_url, "sql_mode", mode):
        python, fast, fast_batches = run_both(
            mariadb_url,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            before=[(900, "b@x.org", None)],
            table=table,
            batch=4,
        )
    assert fast == python
    assert fast_batches >= 1


@pytest.mark.parametrize("charset", ["gbk", "sjis", "cp932", "latin1"])
def test_mariadb_fast_path_equals_python_over_a_connection_charset_with_0x5c_trail_bytes(
    charset: str,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The target URL names a legacy connection charset (``?charset=gbk``): letters whose
    second byte is 0x5c (a backslash) beside quotes must reach the server as themselves,
    never end a literal early. Values the charset cannot encode are left out (they fail
    in the driver on both paths)."""
    names = ["乗'", "俓\\", "僜", "ソ'", "予\\'", "兔", "é'", "plain", "it's"]
    names = [n for n in names if _encodes(n, charset)]
    rows = [(i + 1, f"u{i}@x.org", n) for i, n in enumerate(names)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    server = mariadb_url.replace("charset=utf8mb4", f"charset={charset}")
    assert server != mariadb_url
    python, fast, fast_batches = run_both(server, src, tmp_path, monkeypatch, caplog)
    assert fast == python
    assert fast_batches == 1
    read = [row[2] for row in fast["accounts"]]
    if charset == "sjis":  # the server's sjis and Python's differ on a backslash (both paths)
        read = [n.replace("\uff3c", "\\") for n in read]
    assert read == names


def _encodes(value: str, charset: str) -> bool:
    import pymysql.charset

    try:
        value.encode(pymysql.charset.charset_by_name(charset).encoding)
    except UnicodeEncodeError:
        return False
    return True


def test_mariadb_fast_path_account_written_under_a_batch_key_meanwhile_equals_python(
    mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop's new system commits an account under a key of the batch, with the batch's
    email for it, after the fast path read which keys the target holds and before it
    inserts: its insert is refused, and its duplicate lookup then finds the account under
    the batch's own key. The batch must go on as the Python path does it with that account
    there (``target.key_exists``), not stop the run with an internal error."""
    from authmigrate.pipeline.fast_mariadb import MariaDBFastPath
    from tests.test_fastpath_mariadb import dump, make_target

    rows = [(i, f"u{i}@x.org", f"n{i}") for i in range(1, 11)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    shop = (7, "u7@x.org", "shop")
    original = MariaDBFastPath._row_texts
    outcomes = []
    for switch in ("0", "1"):
        url = fresh_database(mariadb_url, "fastmaria")
        make_target(url, [shop] if switch == "0" else [])

        def meanwhile(self: MariaDBFastPath, *args: Any, url: str = url) -> Any:
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT IGNORE INTO new_users VALUES (%s, %s, %s)", shop)
            engine.dispose()
            return original(self, *args)

        monkeypatch.setattr(MariaDBFastPath, "_row_texts", meanwhile)
        text = SPEC.format(src=src, dst="X", batch=10, duplicates="reject", extra='name = "name"')
        said = _run(
            tmp_path / f"{switch}.toml",
            text.replace('"sqlite:///X"', f'"{url}"'),
            switch,
            monkeypatch,
        )
        outcomes.append((said, dump(url)))
    assert outcomes[1] == outcomes[0]
    assert ("7", "target.key_exists") in [(r[1], r[3]) for r in outcomes[1][1]["rejects"]]
