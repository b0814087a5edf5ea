"""The PostgreSQL fast path reads and decides the next page while a batch commits.

The server writes a batch while the client reads the next page and splits it
(``pipeline.fast._ReadAhead``); the page read ahead is used only where the loop asks for the
page after the key it was read after. A shop writing to the source while a batch goes to the
Python path is a timing no real part can be made to show on demand, so these tests wrap the
fast path's own write (as tests/test_fastpath_postgres.py's interruption test does) to run
code at that moment; the server, the source and the run are real.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from authmigrate.pipeline import run_migration
from authmigrate.pipeline.fast import _NotFast
from authmigrate.pipeline.fast_server import PostgresFastPath
from authmigrate.reconcile import verify_migration
from authmigrate.sources.arrow import SqliteArrowPages
from authmigrate.spec import load_spec
from tests.test_fastpath import SPEC
from tests.test_fastpath_postgres import dump, make_source


def _spec(src: Path, url: str, work: Path, batch: int) -> Path:
    spec_file = work / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=batch, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    return spec_file


def test_postgres_fast_path_reads_the_next_page_while_a_batch_commits(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the first batch (keys 1-20) is inside its write, the reader is asked for the
    page after key 20."""
    src = tmp_path / "legacy.db"
    make_source(src, [(k, f"u{k}@x.org", None) for k in range(1, 61)])
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    asked = threading.Event()
    page, write = SqliteArrowPages.page, PostgresFastPath._write
    seen: list[bool] = []

    def reading(self: SqliteArrowPages, after: Any, limit: int) -> Any:
        if after == 20:
            asked.set()
        return page(self, after, limit)

    def writing(self: PostgresFastPath, conn: Any, number: int, *args: Any) -> Any:
        if not seen:
            seen.append(asked.wait(timeout=10))
        return write(self, conn, number, *args)

    monkeypatch.setattr(SqliteArrowPages, "page", reading)
    monkeypatch.setattr(PostgresFastPath, "_write", writing)
    result = run_migration(load_spec(_spec(src, pg_url, tmp_path, batch=20)))
    assert seen == [True]
    assert (result.migrated, result.unsynced) == (60, 0)


def test_a_page_read_ahead_is_dropped_when_the_python_path_read_other_rows(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch is read (even keys 2-40), the shop adds key 15, and the batch goes to
    the Python path, which reads keys 2-38 and 15: the page read ahead after key 40 is not the
    page after 38, so key 40 is read again, not skipped."""
    src = tmp_path / "legacy.db"
    make_source(src, [(k, f"u{k}@x.org", None) for k in range(2, 122, 2)])
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    write = PostgresFastPath._write
    calls: list[int] = []

    def refused(self: PostgresFastPath, conn: Any, number: int, *args: Any) -> Any:
        calls.append(number)
        if len(calls) == 1:
            shop = sqlite3.connect(src)
            shop.execute("INSERT INTO old_users VALUES (15, 'u15@x.org', NULL)")
            shop.commit()
            shop.close()
            raise _NotFast("the test's target refused the batch")
        return write(self, conn, number, *args)

    monkeypatch.setattr(PostgresFastPath, "_write", refused)
    spec_file = _spec(src, pg_url, tmp_path, batch=20)
    result = run_migration(load_spec(spec_file))
    assert result.migrated == 61
    keys = [row[0] for row in dump(pg_url)["accounts"]]
    assert keys == sorted([15, *range(2, 122, 2)])
    assert verify_migration(load_spec(spec_file)).ok
