"""Hostile inputs and servers for the MariaDB fast path: its outcome equals the Python path's.

Each test runs the same spec twice (``AUTHMIGRATE_FASTPATH=0`` and ``1``) into fresh databases
of the suite's real MariaDB server (``run_both`` of tests/test_fastpath_mariadb.py) and compares
everything the run leaves behind. Server settings a user's MariaDB may run with (a small
``max_allowed_packet``, ``NO_BACKSLASH_ESCAPES``, ``ANSI_QUOTES``) are set globally for the test
and restored after it (the session's private server; new connections read them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.test_fastpath_mariadb import run_both
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
