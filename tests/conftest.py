"""Shared fixtures: a real PostgreSQL server started by the suite, fresh databases per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.mariadb_server import mariadb_server, mariadb_url  # noqa: F401 - shared fixtures
from tests.pg_server import PgServer, pg_session

# The suite hashes with the cheap TEST profile, which authmigrate refuses outside tests unless
# allowed: allow it here, for this process and the CLI subprocesses the tests start. The
# guard's own tests remove it with monkeypatch.
os.environ["AUTHMIGRATE_ALLOW_TEST_PROFILE"] = "1"

# The CLI's output is checked as a pipe or a CI log shows it: unwrapped lines, unless COLUMNS
# says a width (a test that wants one passes it). pytest-xdist's workers inherit COLUMNS=80 and
# LINES=24, and a developer's shell may export them: drop both, for this process and the CLI
# subprocesses the tests start.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One private PostgreSQL server for the whole session."""
    yield from pg_session()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty PostgreSQL database for this test."""
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The same test against SQLite and against the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/target.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database()
