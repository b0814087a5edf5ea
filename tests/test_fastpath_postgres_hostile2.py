"""More hostile tests of the PostgreSQL fast path, against the Python path it shortcuts.

As in tests/test_fastpath_postgres_hostile.py: the same spec over the same source, once with
``AUTHMIGRATE_FASTPATH=0`` and once with the fast path, each into its own fresh database of the
suite's real PostgreSQL server; everything the run leaves is compared, and the promises (a
reject naming the column, nothing lost, nothing doubled) are asserted directly.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tests.test_fastpath_postgres_hostile as hostile
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.pg_server import PgServer
from tests.test_fastpath import SPEC
from tests.test_fastpath_postgres import dump, make_source
from tests.test_fastpath_postgres_hostile import both, promises

EMOJI = "\U0001f600"


def _utf8(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "client_encoding=utf8"


class EncodedServer:
    """The suite's server, handing out databases of another ``encoding`` (from template0),
    with ``client_encoding`` set on the database if ``client`` is given."""

    def __init__(self, server: PgServer, encoding: str, client: str | None = None) -> None:
        self.server, self.encoding, self.client = server, encoding, client

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.server.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING '{self.encoding}' "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            )
            if self.client is not None:
                conn.exec_driver_sql(
                    f"ALTER DATABASE \"{name}\" SET client_encoding = '{self.client}'"
                )
        engine.dispose()
        return self.server.url(name)


# -- 1. a database encoding other than UTF8, or a client encoding set on the database ------


ENCODED = [
    (1, "a@x.org", "plain"),
    (2, "b@x.org", "café"),  # LATIN1 holds it
    (3, f"{EMOJI}@x.org", "n3"),  # the unique value: LATIN1 cannot hold it
    (4, "d@x.org", "ok"),
    (5, "eé@x.org", "n5"),
    (6, "f@x.org", f"x{EMOJI}"),
    (7, "g@x.org", None),
]


@pytest.mark.parametrize(
    "encoding,client",
    [("LATIN1", None), ("UTF8", "LATIN1"), ("SQL_ASCII", None)],
    ids=["latin1-database", "latin1-client-on-utf8-database", "sql-ascii-database"],
)
def test_database_or_client_encoding_other_than_utf8(
    encoding: str,
    client: str | None,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The run talks UTF-8 to the server whatever the database's encoding or a client
    encoding set on it: a value the database cannot hold is a reject naming its column (it
    stopped the run with a UnicodeEncodeError, and a SQL_ASCII database could not even be
    opened: its text came back as bytes)."""
    src = tmp_path / "legacy.db"
    make_source(src, ENCODED)
    monkeypatch.setattr(hostile, "dump", lambda url: dump(_utf8(url)))
    server: Any = EncodedServer(pg_server, encoding, client)
    python, fast, _ = both(server, src, tmp_path, monkeypatch, caplog, batch=3)
    assert python["result"][0] == "done" and python["verify"] == (True, True)
    promises(python, [k for k, _, _ in ENCODED])
    rejected = [(r[1], r[3], r[4]) for r in python["rejects"]]
    if encoding == "LATIN1":
        assert rejected == [
            ("3", "target.invalid_value", "email"),
            ("6", "target.invalid_value", "name"),
        ]
    else:
        assert rejected == []
        assert (6, "f@x.org", f"x{EMOJI}") in python["accounts"]
    assert (2, "b@x.org", "café") in python["accounts"]
    assert fast == python


@pytest.mark.parametrize("duplicates", ["reject", "merge"])
def test_unique_value_a_latin1_database_cannot_hold_beside_duplicates(
    duplicates: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An emoji email in the batch made the server refuse the whole duplicate lookup (and
    abort the transaction): the batch's duplicates were then found by inserting row by row
    and rejected as ``target.constraint``, never merged. The lookup now halves the values
    down to the one the database cannot hold, which matches nothing."""
    src = tmp_path / "legacy.db"
    rows = [(1, f"{EMOJI}@x.org", "a"), (2, "b@x.org", "b"), (3, "c@x.org", "c")]
    make_source(src, [*rows, (4, "C@x.org", "d")])
    setup = hostile.ddl(
        "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, name TEXT)",
        "INSERT INTO new_users VALUES (900, 'b@x.org', NULL)",
    )
    server: Any = EncodedServer(pg_server, "LATIN1")
    python, fast, _ = both(
        server, src, tmp_path, monkeypatch, caplog, setup=setup, duplicates=duplicates
    )
    outcome = "merged" if duplicates == "merge" else "rejected"
    assert [(r[1], r[2], r[3], r[4], r[6]) for r in python["rejects"]] == [
        ("1", "rejected", "target.invalid_value", "email", None),
        ("2", outcome, "duplicate.email", "email", "900"),
        ("4", outcome, "duplicate.email", "email", "3"),
    ]
    assert [r[0] for r in python["accounts"]] == [3, 900]
    assert fast == python


# -- 2. a column the run does not write, numbered by a sequence ----------------------------


@pytest.mark.parametrize(
    "column",
    ["seq BIGSERIAL", "seq BIGINT GENERATED BY DEFAULT AS IDENTITY"],
    ids=["serial", "identity"],
)
def test_column_numbered_by_a_sequence_gets_the_python_paths_numbers(
    column: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused direct COPY drew a number for each of its rows (a sequence is not rolled
    back): the accounts held other numbers than on the Python path, with gaps."""
    rows = [(1, "a@x.org", "n1"), (2, "A@x.org", "n2"), (3, "b@x.org", None), (4, "c@x.org", "")]
    rows += [(5, "b@x.org", "n5"), (6, "d@x.org", "n6")]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    setup = hostile.ddl(
        f"CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT, {column})"
    )
    python, fast, n = both(pg_server, src, tmp_path, monkeypatch, caplog, setup=setup, batch=3)
    assert [r[3] for r in python["accounts"]] == [1, 2, 3, 4]
    assert n == 2
    assert fast == python


# -- 3. the read-ahead thread when the run ends between two batches ------------------------


class _Stop(Exception):
    """What a caller's progress callback raises to end the run."""


def test_run_ended_between_batches_leaves_no_read_ahead_thread(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress callback fails after the first batch (as Ctrl-C there would): the run's
    generator stays suspended with a read under way, and the reader's connection was closed
    under that thread, which lived on (idle) for as long as the exception was held."""
    src = tmp_path / "legacy.db"
    make_source(src, [(k, f"u{k}@x.org", None) for k in range(1, 61)])
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=20, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{pg_url}"'))
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    calls: list[int] = []

    def progress(done: int, total: Any) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise _Stop

    with pytest.raises(_Stop) as stopped:
        run_migration(load_spec(spec_file), progress=progress)
    left = [t.name for t in threading.enumerate() if t.name.startswith("authmigrate-read")]
    assert stopped.value is not None and left == []
    result = run_migration(load_spec(spec_file))
    assert (result.migrated, result.unsynced) == (60, 0)
    assert verify_migration(load_spec(spec_file)).ok
