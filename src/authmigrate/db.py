"""Engines for source and target URLs, with errors that name the culprit and hide passwords."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import URL

from authmigrate.errors import SpecError


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and reports."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable url>"


def first_line(exc: BaseException) -> str:
    """The driver's message, first line only: SQLAlchemy appends the statement and its
    parameters (which may hold credentials), and PostgreSQL's DETAIL lines hold values."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine (None for other databases and :memory:)."""
    if engine.dialect.name != "sqlite":
        return None
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def make_engine(url: str, *, path: str) -> Engine:
    """Create an engine for ``url``; ``path`` is the spec key the URL came from.

    MySQL/MariaDB connections ask for utf8mb4 so legacy latin1/utf8mb3 columns arrive as text.

    Raises:
        SpecError: the URL does not parse or names a driver that is not installed.
    """
    try:
        parsed = sa.make_url(url)  # a port like ':54x2' is a ValueError
    except (sa.exc.ArgumentError, ValueError):
        raise SpecError(path, "not a database URL (e.g. sqlite:///legacy.db)") from None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if backend == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if backend == "sqlite":
        kwargs = {}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.NoSuchModuleError, ImportError, sa.exc.ArgumentError) as exc:
        raise SpecError(path, f"cannot use {safe_url(parsed)}: {exc}") from None
    if backend == "sqlite":
        _tune_sqlite(engine)
    elif backend in ("postgresql", "mysql", "mariadb"):
        _session_in_utc(engine)
    return engine


_MYSQL_SESSION = (
    "SET time_zone = '+00:00', sql_mode = IF(@@sql_mode = '', 'STRICT_ALL_TABLES',"
    " CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'))"
)
_UTC_SESSION = {
    "postgresql": "SET TIME ZONE 'UTC'",
    "mysql": _MYSQL_SESSION,
    "mariadb": _MYSQL_SESSION,
}


def _session_in_utc(engine: Engine) -> None:
    """Every session in UTC, whatever the server's or the database's ``timezone``; on
    MySQL/MariaDB also in strict mode.

    Values travel as naive UTC (an aware source value is converted on the way); a session
    in Europe/Berlin would read them as Berlin time and store 12:00Z as 10:00Z in a
    ``timestamptz`` column, and render stored instants in Berlin time when read back.
    Without strict mode, MySQL/MariaDB store a value too long for its column cut short and
    a word in an integer column as 0, with only a warning: strict, they refuse it, and the
    row is rejected with its column.
    """
    statement = _UTC_SESSION[engine.dialect.name]

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(statement)
        cur.close()
        dbapi_conn.commit()  # a SET in a transaction that is rolled back would be undone


def _tune_sqlite(engine: Engine) -> None:
    """WAL + NORMAL sync: durable at each commit in WAL mode, much faster than FULL."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 10000")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()
