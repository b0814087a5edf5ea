"""Engines for source and target URLs, with errors that name the culprit and hide secrets.

Sources are opened read-only at the database level (:func:`make_engine` with
``readonly=True``): SQLite in ``mode=ro`` with ``PRAGMA query_only``, PostgreSQL and
MySQL/MariaDB with every transaction of the session ``READ ONLY``. Nothing the spec says can
write to a legacy store, and a SQLite source's journal mode is never changed.
"""

from __future__ import annotations

import re
import urllib.parse
import warnings
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import URL

from authmigrate.errors import SpecError

MASK = "***"

# SQLAlchemy 2.1 reflects PostgreSQL's "CHECK ... NOT VALID" (how a check is added to a live
# table) into a keyword its own CheckConstraint then refuses, with this warning on stderr
# under every command that reads such a target; the constraint itself is not needed here.
warnings.filterwarnings(
    "ignore",
    message="Can't validate argument 'dialect_options'",
    category=sa.exc.SAWarning,
)

_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|credential|signature", re.IGNORECASE)
"""URL query parameters whose value is masked: password, passwd, pwd, sslpassword, secret,
token, access_token, key, api_key, sslkey, ... (a key *file* name is masked too: harmless)."""

_seen_secrets: set[str] = set()
"""Secret values met in URLs by this process, scrubbed from every message shown or stored."""

Synchronous = Literal["normal", "full"]


def _is_secret_param(name: str) -> bool:
    return _SECRET_PARAM.search(name) is not None


def remember_secrets(url: str | URL) -> None:
    """Note the password and secret-looking query values of ``url`` for :func:`scrub`."""
    try:
        parsed = sa.make_url(url)
    except Exception:
        return
    values: list[str] = []
    if parsed.password:
        values.append(str(parsed.password))
    spill = _password_in_host(parsed)
    if spill:
        values += [spill, f"{parsed.password or ''}@{spill}"]
    for name, value in parsed.query.items():
        if _is_secret_param(name):
            values.extend([value] if isinstance(value, str) else list(value))
    for v in values:
        if len(v) >= 3:
            _seen_secrets.add(v)
            _seen_secrets.add(urllib.parse.quote(v, safe=""))
            _seen_secrets.add(urllib.parse.quote_plus(v, safe=""))


def _password_in_host(parsed: URL) -> str:
    """The part of a password with a raw ``@`` that the URL parser took for the host
    (``user:p@ss@host`` parses as password ``p``, host ``ss@host``), or ''."""
    host = parsed.host or ""
    return host.rpartition("@")[0]


def scrub(text: str) -> str:
    """``text`` with every secret met in a URL replaced by ``***`` (longest first)."""
    for secret in sorted(_seen_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def safe_url(url: str | URL) -> str:
    """The URL for messages, reports and logs: its password and every secret-looking query
    parameter (``password``, ``sslpassword``, ``token``, ``api_key``...) masked as ``***``."""
    try:
        parsed = sa.make_url(url)
    except Exception:
        return "<unparsable url>"
    remember_secrets(parsed)
    spill = _password_in_host(parsed)
    if spill:
        parsed = parsed.set(host=(parsed.host or "")[len(spill) + 1 :], password=MASK)
    if parsed.password:
        parsed = parsed.set(password=MASK)
    masked = {
        name: (MASK if _is_secret_param(name) else value) for name, value in parsed.query.items()
    }
    text = parsed.set(query=masked).render_as_string(hide_password=False)
    return text.replace("%2A%2A%2A", MASK)


def first_line(exc: BaseException) -> str:
    """The driver's message, first line only: SQLAlchemy appends the statement and its
    parameters (which may hold credentials), and PostgreSQL's DETAIL lines hold values.
    Secrets met in URLs are masked."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return scrub(text.splitlines()[0]) if text else type(orig).__name__


def sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine (None for other databases and :memory:)."""
    if engine.dialect.name != "sqlite":
        return None
    db = engine.url.database
    if not db or db == ":memory:":
        return None
    if db.startswith("file:"):
        if engine.url.query.get("uri") != "true" or "mode=memory" in db:
            return None
        return Path(urllib.parse.unquote(db[5:].partition("?")[0]))
    return Path(db)


_SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(path: Path, key: str) -> None:
    """Refuse a file that is not a SQLite database (an empty file is a new database).

    Raises:
        SpecError: the file holds something else (``key`` names the spec key of its URL).
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise SpecError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    if head and head != _SQLITE_HEADER:
        raise SpecError(key, f"{path} is not a SQLite database")


def is_memory_sqlite(url: str) -> bool:
    """True for a SQLite URL whose database lives in memory (``sqlite://``, ``:memory:``)."""
    try:
        parsed = sa.make_url(url)
    except Exception:
        return False
    if parsed.get_backend_name() != "sqlite":
        return False
    db = parsed.database or ""
    return db in ("", ":memory:") or "mode=memory" in db or "mode=memory" in str(parsed.query)


def make_engine(
    url: str,
    *,
    path: str,
    readonly: bool = False,
    synchronous: Synchronous = "normal",
    immutable: bool = False,
) -> Engine:
    """Create an engine for ``url``; ``path`` is the spec key the URL came from.

    MySQL/MariaDB connections ask for utf8mb4 so legacy latin1/utf8mb3 columns arrive as text;
    PostgreSQL connections ask for UTF8 (see :func:`_libpq`).

    Args:
        readonly: every connection reads only, enforced by the database (sources).
        synchronous: a SQLite target's ``PRAGMA synchronous`` in WAL mode: ``normal`` is
            atomic but may lose the last commits on power loss, ``full`` is durable at each
            commit. Ignored for other databases and read-only engines.
        immutable: with ``readonly``, open a SQLite file as ``immutable`` (no lock, no -shm
            file: for a folder nobody may write, where nothing can change the file).

    Raises:
        SpecError: the URL does not parse or names a driver that is not installed.
    """
    try:
        parsed = sa.make_url(url)  # a port like ':54x2' is a ValueError
    except (sa.exc.ArgumentError, ValueError):
        raise SpecError(path, "not a database URL (e.g. sqlite:///legacy.db)") from None
    remember_secrets(parsed)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if backend == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if _libpq(parsed):
        kwargs["connect_args"] = {"client_encoding": "utf8"}
    if backend == "sqlite":
        kwargs = {}
        _check_sqlite_name(parsed.database or "", path)
        if readonly:
            parsed = _sqlite_readonly_url(parsed, immutable=immutable)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.NoSuchModuleError, ImportError, sa.exc.ArgumentError) as exc:
        hint = driver_hint(parsed)
        raise SpecError(path, f"cannot use {safe_url(parsed)}: {scrub(str(exc))}{hint}") from None
    if backend in _UTC_SESSION:
        _session_in_utc(engine)
    if readonly:
        _read_only_sessions(engine)
    elif backend == "sqlite":
        _tune_sqlite(engine, synchronous)
    return engine


def _libpq(parsed: URL) -> bool:
    """True for a PostgreSQL URL whose driver passes libpq's connection parameters on.

    Such a connection asks for the UTF8 client encoding, whatever the URL, the role, the
    database or ``PGCLIENTENCODING`` say: Python's text travels as UTF-8 and the server
    converts it to the database's encoding, so a value a LATIN1 database cannot hold is
    refused by the server as the row's own fault (a ``DataError``: rejected with its column)
    instead of by the driver's encoder (a ``UnicodeEncodeError`` that stopped the run), and a
    ``SQL_ASCII`` database's text arrives as text, not bytes.
    """
    return parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in (
        "psycopg",
        "psycopg2",
    )


_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
"""The URL scheme of each database through the driver authmigrate installs."""


def driver_hint(url: URL) -> str:
    """What to write instead of a URL whose dialect or driver is not installed: the Heroku
    style ``postgres://``, ``mysql://`` (SQLAlchemy's default mysqlclient), ``postgresql+psycopg2://``.
    Empty for any other URL."""
    better = _DRIVERS.get(url.get_backend_name())
    if better is None or url.drivername == better:
        return ""
    return f" (write the URL as {better}://...: authmigrate installs that driver)"


def _check_sqlite_name(db: str, path: str) -> None:
    """SpecError for a SQLite file name the operating system refuses (a NUL, a name longer
    than the file system allows), before anything opens it."""
    if "\x00" in db:
        raise SpecError(path, "the SQLite file name holds a NUL character")
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    try:
        Path(db).exists()
    except OSError as exc:
        raise SpecError(path, f"cannot use the SQLite file {db}: {exc.strerror or exc}") from None


def _sqlite_readonly_url(parsed: URL, *, immutable: bool = False) -> URL:
    """``file:PATH?mode=ro`` as a SQLite URI: the file is opened read-only by SQLite itself."""
    db = parsed.database or ""
    if not db or db == ":memory:" or db.startswith("file:"):
        return parsed
    uri = "file:" + urllib.parse.quote(str(Path(db).absolute())) + "?mode=ro"
    if immutable:
        uri += "&immutable=1"
    return parsed.set(database=uri).update_query_dict({"uri": "true"})


def _read_only_sessions(engine: Engine) -> None:
    """Make every transaction of every connection of ``engine`` read-only, and every execute
    one statement (PostgreSQL's simple protocol would run ``...; DELETE ...`` as two)."""

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _one_statement(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        from authmigrate.errors import SourceError
        from authmigrate.spec import single_statement

        try:
            single_statement(statement)
        except ValueError:
            raise SourceError(
                "refused to send the source more than one SQL statement at once"
            ) from None

    backend = engine.dialect.name
    if backend == "sqlite":
        statement = "PRAGMA query_only = ON"
    elif backend == "postgresql":
        statement = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
    elif backend in ("mysql", "mariadb"):
        statement = "SET SESSION TRANSACTION READ ONLY"
    else:
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if backend == "sqlite":
            cur.execute("PRAGMA busy_timeout = 10000")
        cur.execute(statement)
        cur.close()
        if backend != "sqlite":
            dbapi_conn.commit()  # a pool reset rolls back; the setting must outlive it


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


def _tune_sqlite(engine: Engine, synchronous: Synchronous) -> None:
    """WAL, and ``synchronous`` as asked.

    In WAL mode ``NORMAL`` keeps every commit atomic (a crash of the process or of the OS never
    leaves half a batch) but not durable: on power loss the last commits may be rolled back.
    ``FULL`` syncs the WAL at each commit, so a committed batch survives power loss too.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 10000")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        cur.close()
