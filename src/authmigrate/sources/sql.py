"""A source read through SQLAlchemy: a table (reflected, so names are quoted) or a query.

The source is only ever read: its engine is read-only at the database level (see
:func:`authmigrate.db.make_engine`), and a query is one statement (``source.query``).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from authmigrate.db import check_sqlite_file, first_line, make_engine, safe_url, sqlite_file
from authmigrate.errors import SourceError, SpecError
from authmigrate.pipeline.batch import InvalidValue
from authmigrate.spec import SourceSpec

_IN_LIST = 500
"""Keys per ``IN`` list of :meth:`SqlSource.rows_by_key`."""


class SqlSource:
    """Pages of a table or query in key order."""

    def __init__(self, spec: SourceSpec, engine: sa.Engine | None = None) -> None:
        self.spec = spec
        self.engine = engine or make_engine(spec.url, path="source.url", readonly=True)
        path = sqlite_file(self.engine)
        if path is not None and not path.is_file():
            # connecting would create an empty database where the legacy one was expected
            raise SpecError("source.url", f"no such SQLite file: {path}")
        if path is not None:
            check_sqlite_file(path, "source.url")
        self._selectable = self._open()
        self.columns = [c.name for c in self._selectable.c]
        if spec.key not in self.columns:
            import difflib

            near = difflib.get_close_matches(spec.key, self.columns, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise SpecError("source.key", f"source has no column {spec.key!r}{hint}")
        self._key = self._selectable.c[spec.key]
        self._read = list(self._selectable.c)

    def only(self, columns: Iterable[str]) -> None:
        """Read only ``columns`` (those the source has) and the key from now on."""
        wanted = {*columns, self.spec.key}
        self._read = [c for c in self._selectable.c if c.name in wanted]

    def _open(self) -> sa.FromClause:
        where = safe_url(self.spec.url)
        try:
            with self.engine.connect() as conn:
                if self.spec.table:
                    schema, _, name = self.spec.table.rpartition(".")
                    md = sa.MetaData()
                    try:
                        return sa.Table(name, md, autoload_with=conn, schema=schema or None)
                    except sa.exc.NoSuchTableError:
                        raise SpecError(
                            "source.table", f"no table {self.spec.table!r} in {where}"
                        ) from None
                query = self.spec.query or ""
                probe = sa.text(f"SELECT * FROM ({query}) AS src WHERE 1 = 0")
                try:
                    names = list(conn.execute(probe).keys())
                except sa.exc.DBAPIError as exc:
                    raise SpecError("source.query", f"query fails: {first_line(exc)}") from None
                sub = sa.text(query).columns(*[sa.column(n) for n in names])
                return sub.subquery("src")
        except sa.exc.OperationalError as exc:
            raise SourceError(f"cannot read source {where}: {first_line(exc)}") from None
        except sa.exc.DatabaseError as exc:  # SQLite: "file is not a database"
            raise SpecError("source.url", f"cannot read {where}: {first_line(exc)}") from None

    def _rows(self, stmt: sa.Executable) -> list[sa.Row[Any]]:
        try:
            with self.engine.connect() as conn:
                try:
                    return list(conn.execute(stmt).all())
                except sa.exc.OperationalError as exc:
                    if not _undecodable(exc):
                        raise
                    return _rows_keeping_bytes(conn, stmt)
        except sa.exc.DBAPIError as exc:
            # never the driver's text: SQLite's decode error quotes the value itself
            detail = "text that is not UTF-8" if _undecodable(exc) else first_line(exc)
            raise SourceError(
                f"reading source {safe_url(self.spec.url)} failed: {detail}"
            ) from None

    def count(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(self._selectable)
        return int(self._rows(stmt)[0][0])

    def page(self, after: Any, limit: int, upto: Any = None) -> list[dict[str, Any]]:
        stmt = sa.select(*self._read).where(self._key.is_not(None))
        if after is not None:
            stmt = stmt.where(self._key > after)
        if upto is not None:  # a key range (cluster/): compared as ORDER BY compares
            stmt = stmt.where(self._key <= upto)
        stmt = stmt.order_by(self._key).limit(limit)
        cols = [c.name for c in self._read]
        return [dict(zip(cols, row)) for row in self._rows(stmt)]  # noqa: B905 - same width

    def key_page(self, after: Any, limit: int) -> list[Any]:
        """Up to ``limit`` non-NULL keys greater than ``after`` (None: from the start), in
        key order: the key column alone."""
        stmt = sa.select(self._key).where(self._key.is_not(None))
        if after is not None:
            stmt = stmt.where(self._key > after)
        return [row[0] for row in self._rows(stmt.order_by(self._key).limit(limit))]

    def key_at(self, offset: int, after: Any = None) -> Any:
        """The non-NULL key at position ``offset`` (from 0) in key order after ``after``, in
        the database's own order (its collation for text), None past the end: where key
        ranges are cut (``authmigrate.cluster``)."""
        stmt = sa.select(self._key).where(self._key.is_not(None))
        if after is not None:
            stmt = stmt.where(self._key > after)
        rows = self._rows(stmt.order_by(self._key).offset(offset).limit(1))
        return rows[0][0] if rows else None

    def rows_by_key(self, keys: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows (read columns only) of those of ``keys`` the source has."""
        cols = [c.name for c in self._read]
        out: list[dict[str, Any]] = []
        for i in range(0, len(keys), _IN_LIST):
            stmt = sa.select(*self._read).where(self._key.in_(keys[i : i + _IN_LIST]))
            out.extend(dict(zip(cols, row, strict=True)) for row in self._rows(stmt))
        return out

    def keys_in(self, keys: Sequence[Any]) -> list[Any]:
        """Those of ``keys`` the source has (the key column alone)."""
        out: list[Any] = []
        for i in range(0, len(keys), _IN_LIST):
            stmt = sa.select(self._key).where(self._key.in_(keys[i : i + _IN_LIST]))
            out.extend(row[0] for row in self._rows(stmt))
        return out

    def rows_matching(self, column: str, values: Sequence[str], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows (read columns only) whose ``column``, trimmed and in lower case
        when it holds text, is one of ``values`` (the bridge's lookup of an account not yet
        migrated; the caller compares the transformed values exactly)."""
        col = self._selectable.c[column]
        cols = [c.name for c in self._read]
        try:
            kind: type = col.type.python_type
        except NotImplementedError:
            kind = str
        expr: sa.ColumnElement[Any] = col
        wanted: list[Any] = []
        if kind is str:
            expr, wanted = sa.func.lower(sa.func.trim(col)), [v.strip().lower() for v in values]
        else:
            for v in values:
                try:
                    wanted.append(kind(v.strip()))
                except (TypeError, ValueError, ArithmeticError):
                    continue
        if not wanted:
            return []
        stmt = sa.select(*self._read).where(expr.in_(wanted)).limit(limit)
        return [dict(zip(cols, row, strict=True)) for row in self._rows(stmt)]

    def changed_page(self, column: str, since: Any, after: Any, limit: int) -> list[dict[str, Any]]:
        """Like :meth:`page`, of the rows whose ``column`` is at least ``since`` (``sync``)."""
        stmt = sa.select(*self._read).where(
            self._key.is_not(None), self._selectable.c[column] >= since
        )
        if after is not None:
            stmt = stmt.where(self._key > after)
        cols = [c.name for c in self._read]
        rows = self._rows(stmt.order_by(self._key).limit(limit))
        return [dict(zip(cols, row, strict=True)) for row in rows]

    def clock(self, column: str) -> Any:
        """The source database's current time, in the form ``column`` holds (naive or
        aware as the column is): the reference of ``sync``'s watermark."""
        backend = self.engine.dialect.name
        if backend == "sqlite":
            return self._rows(sa.select(sa.text("strftime('%Y-%m-%d %H:%M:%S', 'now')")))[0][0]
        if backend == "postgresql":
            col = self._selectable.c[column]
            aware = isinstance(col.type, sa.DateTime) and bool(col.type.timezone)
            fn = "CURRENT_TIMESTAMP" if aware else "LOCALTIMESTAMP"
            return self._rows(sa.select(sa.text(fn)))[0][0]
        return self._rows(sa.select(sa.text("NOW(6)")))[0][0]

    def newest(self, column: str) -> Any:
        """The largest value of ``column`` (``sync``'s change column), None when it has none:
        the newest change time as the shop wrote it, in its own zone and form."""
        return self._rows(sa.select(sa.func.max(self._selectable.c[column])))[0][0]

    def null_key_rows(self) -> Iterator[dict[str, Any]]:
        stmt = sa.select(*self._read).where(self._key.is_(None))
        cols = [c.name for c in self._read]
        for row in self._rows(stmt):
            yield dict(zip(cols, row, strict=True))

    def key_is_rowid(self) -> bool:
        """True when the key is a SQLite table's ``INTEGER PRIMARY KEY``: an alias of the
        rowid, which holds one distinct integer per row and never NULL, so the open-time
        scans for repeated keys and mixed key types cannot find anything and are skipped.

        The alias is recognised as SQLite defines it: the table's only primary-key column,
        declared exactly ``INTEGER``, with no index behind the primary key (``INTEGER PRIMARY
        KEY DESC`` and ``WITHOUT ROWID`` tables have one, and are no alias).
        """
        table = self._selectable
        if self.engine.dialect.name != "sqlite" or not isinstance(table, sa.Table):
            return False
        schema = _quote(table.schema) + "." if table.schema else ""
        name = _quote(table.name)
        try:
            with self.engine.connect() as conn:
                run = conn.exec_driver_sql
                info = run(f"PRAGMA {schema}table_info({name})").fetchall()
                indexes = run(f"PRAGMA {schema}index_list({name})").fetchall()
        except sa.exc.DBAPIError:
            return False
        pk = [(row[1], str(row[2]).upper()) for row in info if row[5]]
        return pk == [(self.spec.key, "INTEGER")] and not any(ix[3] == "pk" for ix in indexes)

    def duplicate_keys(self, limit: int = 5) -> list[Any]:
        if self.key_is_rowid():
            return []
        stmt = (
            sa.select(self._key)
            .where(self._key.is_not(None))
            .group_by(self._key)
            .having(sa.func.count() > 1)
            .limit(limit)
        )
        return [row[0] for row in self._rows(stmt)]

    def key_value_types(self) -> list[str]:
        """SQLite storage classes of the non-NULL keys, integer and real counted as one
        (``ORDER BY`` compares them as numbers); empty for other databases."""
        if self.engine.dialect.name != "sqlite":
            return []
        if self.key_is_rowid():
            found_any = self._rows(sa.select(self._key).limit(1))
            return ["integer"] if found_any else []
        kind = sa.func.typeof(self._key)
        stmt = sa.select(kind).where(self._key.is_not(None)).group_by(kind).order_by(kind)
        found = [str(row[0]) for row in self._rows(stmt)]
        if "integer" in found and "real" in found:
            found.remove("real")
        return found

    def column_types(self) -> dict[str, Any]:
        """Reflected types of a table; for a query, types guessed from its first rows."""
        known = {
            c.name: c.type for c in self._selectable.c if not isinstance(c.type, sa.types.NullType)
        }
        if self.spec.table or len(known) == len(self.columns):
            return known
        seen: dict[str, type] = {}
        read = [c.name for c in self._read]
        for row in self._rows(sa.select(*self._read).limit(200)):
            for name, value in zip(read, row, strict=True):
                if value is not None and name not in known:
                    seen.setdefault(name, type(value))
        for name, kind in seen.items():
            guessed = _PY_TYPES.get(kind)
            if guessed is not None:
                known[name] = guessed()
        return known

    def close(self) -> None:
        self.engine.dispose()


def _undecodable(exc: sa.exc.DBAPIError) -> bool:
    """SQLite met TEXT that is not UTF-8 (its message quotes the value: never show it)."""
    return str(exc.orig).startswith("Could not decode to UTF-8")


def _text_or_invalid(data: bytes) -> str | InvalidValue:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidValue("field.invalid_encoding", "the bytes are not UTF-8", raw=data)


def _rows_keeping_bytes(conn: sa.Connection, stmt: sa.Executable) -> list[sa.Row[Any]]:
    """Read again with a ``text_factory`` that keeps undecodable TEXT as an
    :class:`InvalidValue`, so that only the rows holding one are rejected.

    Only a page that failed is read this way: the default factory is C code, much faster.
    """
    raw: Any = conn.connection.driver_connection
    before = raw.text_factory
    raw.text_factory = _text_or_invalid
    try:
        return list(conn.execute(stmt).all())
    finally:
        raw.text_factory = before


_PY_TYPES: dict[type, Any] = {
    dt.datetime: sa.DateTime,
    dt.date: sa.Date,
    decimal.Decimal: sa.Numeric,
    bool: sa.Boolean,
    int: sa.BigInteger,
    float: sa.Float,
    str: sa.Text,
    bytes: sa.LargeBinary,
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
