"""More hostile tests of the PostgreSQL fast path, against the Python path it shortcuts.

As in tests/test_fastpath_postgres_hostile.py: the same spec over the same source, once with
``AUTHMIGRATE_FASTPATH=0`` and once with the fast path, each into its own fresh database of the
suite's real PostgreSQL server; everything the run leaves is compared, and the promises (a
reject naming the column, nothing lost, nothing doubled) are asserted directly.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tests.test_fastpath_postgres_hostile as hostile
from tests.pg_server import PgServer
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
    assert python["result"][0] == "done"
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
