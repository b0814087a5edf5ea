"""The PostgreSQL fast path's COPY data built in Arrow (text format), and its end-of-run count.

The text format must carry every value a batch can hold exactly: each test loads values
through a real PostgreSQL ``COPY`` and reads them back, or runs the same migration through the
Python path and the fast path and compares everything left behind (tests/test_fastpath_postgres.py's
``run_both``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authmigrate.pipeline import run_migration
from authmigrate.pipeline.copy_text import NotText, escape, text_column, text_payload
from authmigrate.spec import load_spec
from tests.pg_server import PgServer
from tests.test_fastpath import SEED_EXTRA, SPEC
from tests.test_fastpath_postgres import make_source, run_both

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
"""Any text PostgreSQL can hold (no NUL, no lone surrogate)."""

_HOSTILE = ["", "\\", "\\N", "\\.", "a\tb", "a\nb", "a\rb", "\r\n", "\\t", "x\\", "é ü 漢"]
"""Values the text format reserves or escapes, each on its own."""


def _dsn(pg_server: PgServer) -> str:
    return pg_server.create_database("copytext").replace("postgresql+psycopg://", "postgresql://")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1),
            st.one_of(st.none(), st.sampled_from(_HOSTILE), _TEXT),
            st.one_of(st.none(), st.booleans()),
        ),
        max_size=40,
    )
)
def test_text_payload_round_trips_every_value_through_postgres_copy(
    rows: list[tuple[int, str | None, bool | None]], pg_server: PgServer
) -> None:
    with psycopg.connect(_dsn(pg_server)) as conn:
        conn.execute("CREATE TABLE t (i int8, s text, b bool)")
        fields = [
            text_column(pa.array([r[0] for r in rows], pa.int64()), "int8"),
            text_column(pa.array([r[1] for r in rows], pa.string()), "text"),
            text_column(pa.array([r[2] for r in rows], pa.bool_()), "bool"),
        ]
        with conn.cursor() as cur, cur.copy("COPY t FROM STDIN") as copy:
            copy.write(memoryview(text_payload(fields)))
        got = conn.execute("SELECT i, s, b FROM t").fetchall()
    assert sorted(got, key=repr) == sorted(rows, key=repr)


def test_text_payload_holds_the_reserved_values_and_a_constant_field(pg_server: PgServer) -> None:
    """Each reserved spelling, NULL beside the text ``\\N``, and a field given once for every
    row (escaped by :func:`escape`), read back as they were."""
    values: list[str | None] = [*_HOSTILE, None]
    name = "mig\tra\\tion\n"
    with psycopg.connect(_dsn(pg_server)) as conn:
        conn.execute("CREATE TABLE t (m varchar(50), k int4, s varchar(10))")
        fields = [
            escape(name),
            text_column(pa.array(range(len(values)), pa.int32()), "int4"),
            text_column(pa.array(values, pa.string()), "varchar"),
        ]
        with conn.cursor() as cur, cur.copy("COPY t FROM STDIN") as copy:
            copy.write(memoryview(text_payload(fields)))
        got = conn.execute("SELECT m, k, s FROM t ORDER BY k").fetchall()
    assert got == [(name, i, v) for i, v in enumerate(values)]


def test_text_payload_of_no_rows_is_empty() -> None:
    assert bytes(text_payload([text_column(pa.array([], pa.int64()), "int8"), "x"])) == b""


@pytest.mark.parametrize(
    ("values", "pg_type"),
    [
        (pa.array(["1", "2"]), "int8"),  # text into an integer column: the server converts
        (pa.array([1, 2]), "text"),
        (pa.array([True]), "int4"),
        (pa.array([b"x"]), "text"),
        (pa.array([1.5]), "int8"),
    ],
)
def test_text_column_refuses_a_value_of_another_kind(values: pa.Array, pg_type: str) -> None:
    with pytest.raises(NotText):
        text_column(values, pg_type)


# -- the fast path writes through it ---------------------------------------------------------

_ROUTE = "COPY as text built in Arrow"


def test_postgres_fast_path_writes_hostile_residue_values_as_text_and_equals_python(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Names holding what the text format reserves (tabs, newlines, backslashes, ``\\N``, a
    lone ``\\.``) and non-ASCII text are the residue's: they go in the same text COPY as the
    fast rows, and the run leaves what the Python path leaves."""
    names: list[Any] = [*_HOSTILE, None, "O'Hara", "plain"]
    rows = [(k, f" User.{k}@Example.COM", names[k % len(names)]) for k in range(1, 121)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    python, fast, fast_batches = run_both(pg_server, src, tmp_path, monkeypatch, caplog, batch=40)
    assert fast_batches == 3
    assert caplog.text.count(_ROUTE) == 3
    assert fast == python


def test_postgres_fast_path_writes_the_seed_mapping_as_text_and_equals_python(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The credential kept, the reset flag (a boolean), the token and the fingerprints of
    both, through the text COPY."""
    import hashlib

    rows = [
        (k, f"u{k}@x.org", "n\\" if k % 7 == 0 else None, hashlib.md5(b"%d" % k).hexdigest())
        for k in range(1, 101)
    ]
    src = tmp_path / "legacy.db"
    make_source(src, rows, seed=True)
    python, fast, fast_batches = run_both(
        pg_server, src, tmp_path, monkeypatch, caplog, batch=50, extra=SEED_EXTRA
    )
    assert fast_batches == 2
    assert caplog.text.count(_ROUTE) == 2
    assert fast == python


def test_postgres_fast_path_sends_utf8_text_whatever_pgclientencoding_says(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``PGCLIENTENCODING=LATIN1`` in the environment: the run's connections ask for UTF8
    anyway (authmigrate.db._libpq), so the text data built in Arrow (UTF-8 bytes) is read
    as what it is."""
    rows = [(k, f"u{k}@x.org", "é" if k % 3 else "plain") for k in range(1, 41)]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    python, fast, fast_batches = run_both(pg_server, src, tmp_path, monkeypatch, caplog, batch=20)
    assert fast_batches == 2
    assert caplog.text.count(_ROUTE) == 2
    assert python["runs"][0][2] == 40
    assert fast == python


# -- the end-of-run count of keys left to sync -------------------------------------------------


def test_postgres_target_counts_keys_left_by_difference_after_reading_the_whole_source(
    pg_server: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that read the unchanged source from its first key into an empty key state
    counts what it leaves to sync as a difference (no COPY of every source key to the
    server); a rejected row is known to the key state, so nothing is left."""
    src = tmp_path / "legacy.db"
    make_source(src, [(k, "bad" if k == 5 else f"u{k}@x.org", None) for k in range(1, 61)])
    url = pg_server.create_database("fastpg")
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=25, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    with caplog.at_level(logging.DEBUG, logger="authmigrate"):
        result = run_migration(load_spec(spec_file))
    assert (result.migrated, result.rejected, result.unsynced) == (59, 1, 0)
    assert "counted by difference" in caplog.text
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        known = conn.exec_driver_sql("SELECT count(*) FROM authmigrate_key_state").scalar()
    engine.dispose()
    assert known == 60


def test_postgres_target_counts_keys_in_full_when_the_source_changed_during_the_run(
    pg_server: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The shop deletes an account already read and adds one below every key read: as many
    keys as the key state holds, yet one is left to sync; only the server's count sees it."""
    import sqlite3

    src = tmp_path / "legacy.db"
    make_source(src, [(k, f"u{k}@x.org", None) for k in range(1, 61)])
    url = pg_server.create_database("fastpg")
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=25, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    changed: list[int] = []

    def shop_writes(done: int, total: int) -> None:
        if done and not changed:
            conn = sqlite3.connect(src)
            conn.execute("DELETE FROM old_users WHERE user_id = 1")
            conn.execute("INSERT INTO old_users VALUES (0, 'zero@x.org', NULL)")
            conn.commit()
            conn.close()
            changed.append(done)

    with caplog.at_level(logging.DEBUG, logger="authmigrate"):
        result = run_migration(load_spec(spec_file), progress=shop_writes)
    assert changed and result.migrated == 60
    assert result.unsynced == 1
    assert "counted by difference" not in caplog.text
