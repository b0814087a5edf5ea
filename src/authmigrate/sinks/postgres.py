"""PostgreSQL at its bulk speed: a batch's accounts go in with binary ``COPY ... FROM STDIN``.

:class:`CopyInsert` stands in for :class:`~authmigrate.sinks.sql.BulkInsert` on a PostgreSQL
target. It runs on the batch's own connection (psycopg's, under SQLAlchemy's), so the COPY is
part of the one transaction that also writes the batch's rejects and checkpoint: a crash at any
point leaves the whole batch or nothing.

The duplicate and existing-key checks have run before the write (``Migration.finish_batch``),
so a COPY straight into the accounts table is expected to succeed. It runs inside a savepoint;
if the target refuses it anyway (a constraint the spec does not know, a value a column cannot
hold, a row the live system wrote since the check), the savepoint is rolled back and the batch
is written by today's ``INSERT`` path, whose error the run handles as before (retry, then each
refused row rejected with its reason and column). COPY never decides a reject.

Binary COPY sends each value in the column's own binary form, so only values of the Python
type that form is made from take it (``int`` for ``bigint``, naive ``datetime`` for
``timestamp``...). A batch holding any other value (text ``"42"`` for an integer column, a
float for a numeric one, an aware timestamp for a ``timestamp`` column) is written by the
``INSERT`` path, which lets the server convert it as it always did; so is every batch of a
table with a column type this module does not list (json, arrays, enums, domains...).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import operator
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("authmigrate")

_BINARY: dict[str, tuple[type, ...]] = {
    "int2": (int,),
    "int4": (int,),
    "int8": (int,),
    "text": (str,),
    "varchar": (str,),
    "bool": (bool,),
    "bytea": (bytes,),
    "timestamp": (dt.datetime,),
    "timestamptz": (dt.datetime,),
    "date": (dt.date,),
    "float4": (float,),
    "float8": (float, int),
    "numeric": (decimal.Decimal, int),
    "uuid": (uuid.UUID,),
}
"""Column types written in binary, and the Python types (exactly) their values may have."""


_CHECKED = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric", "bool"})
"""Column types whose binary dumpers take a value INSERT would refuse (``True`` for an
integer, ``1`` for a boolean): their values are checked before the COPY. The other dumpers
refuse any value not of their type themselves (a TypeError, and the batch takes INSERT)."""


class _Column:
    """One column of the COPY: its type name and the check its values must pass."""

    __slots__ = ("index", "name", "type_name", "allowed")

    def __init__(self, index: int, name: str, type_name: str) -> None:
        self.index = index
        self.name = name
        self.type_name = type_name
        self.allowed = frozenset(_BINARY[type_name]) | {type(None)}

    def fits(self, params: list[tuple[Any, ...]]) -> bool:
        """True when every value of this column in ``params`` is of an allowed type."""
        return set(map(type, map(operator.itemgetter(self.index), params))) <= self.allowed


class CopyInsert:
    """Write rows with binary ``COPY`` in the caller's transaction, else with ``fallback``.

    ``fallback`` is the :class:`~authmigrate.sinks.sql.BulkInsert` of the same table: its
    column order, its per-column bind processors (the key column's stored form) and, when
    COPY cannot be used or fails, its ``INSERT``.
    """

    def __init__(self, table: sa.Table, fallback: Any) -> None:
        self.table = table
        self.fallback = fallback
        self.names: list[str] = list(fallback.names)
        self._types: list[str] = []
        self._checked: list[_Column] = []
        self._usable: bool | None = None
        self.copied = 0
        """Rows written by COPY so far (the rest went through ``fallback``)."""

    @property
    def sql(self) -> str:
        """The INSERT of the fallback path (for messages and tests)."""
        return str(self.fallback.sql)

    def _prepare(self, conn: sa.Connection) -> bool:
        """Read the table's column types from the catalog, once: True if COPY can be used."""
        if self._usable is not None:
            return self._usable
        t = self.table
        name = f"{t.schema}.{t.name}" if t.schema else t.name
        preparer = conn.dialect.identifier_preparer
        quoted = preparer.format_table(t)
        rows = conn.execute(
            sa.text(
                "SELECT a.attname, t.typname FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped"
            ),
            {"t": quoted},
        ).all()
        types = {str(n): str(typ) for n, typ in rows}
        missing = [n for n in self.names if types.get(n) not in _BINARY]
        if missing:
            log.debug("%s: no binary COPY (column types of %s)", name, ", ".join(missing))
            self._usable = False
            return False
        self._types = [types[n] for n in self.names]
        self._checked = [
            _Column(i, n, types[n]) for i, n in enumerate(self.names) if types[n] in _CHECKED
        ]
        cols = ", ".join(preparer.quote(n) for n in self.names)
        self._copy = f"COPY {quoted} ({cols}) FROM STDIN (FORMAT BINARY)"
        self._usable = True
        return True

    def _params(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        fb = self.fallback
        try:
            params: list[Any] = list(map(fb._getter, rows))
        except KeyError:  # a stage left a column unset: it is NULL
            params = [tuple(r.get(n) for n in self.names) for r in rows]
        procs: list[tuple[int, Callable[[Any], Any]]] = fb.procs
        for i, proc in procs:
            column = list(map(operator.itemgetter(i), params))
            done = list(map(proc, column))
            if done != column:  # the key's stored form is mostly the key itself
                params = [(*t[:i], v, *t[i + 1 :]) for t, v in zip(params, done, strict=True)]
        return params

    def _fits(self, params: list[tuple[Any, ...]]) -> bool:
        return all(col.fits(params) for col in self._checked)

    def __call__(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if not self._prepare(conn):
            self.fallback(conn, rows)
            return
        params = self._params(rows)
        if not self._fits(params):
            self.fallback(conn, rows)
            return
        try:
            import psycopg
        except ImportError:  # psycopg2, pg8000...: INSERT it is
            self.fallback(conn, rows)
            return
        raw = conn.connection.driver_connection
        if not isinstance(raw, psycopg.Connection):
            self.fallback(conn, rows)
            return
        savepoint = conn.begin_nested()
        try:
            with raw.cursor() as cur, cur.copy(self._copy) as copy:
                copy.set_types(self._types)
                for values in params:
                    copy.write_row(values)
        except (psycopg.Error, TypeError, ValueError, OverflowError, AttributeError) as exc:
            # refused (a constraint, a value): today's INSERT path writes the batch, or fails
            # with the error the run knows how to handle, naming no value
            log.debug("COPY refused a batch (%s); writing it with INSERT", type(exc).__name__)
            savepoint.rollback()
            if not isinstance(exc, psycopg.Error):
                self._usable = False  # values of a type its binary form refuses: INSERT from now on
            self.fallback(conn, rows)
            return
        savepoint.commit()
        self.copied += len(params)


UNTRANSLATABLE = "22P05"
"""PostgreSQL's SQLSTATE for a character the database's encoding has no equivalent for."""


class AnyLookup:
    """``SELECT column, key WHERE column = ANY(:values)``: one short statement per lookup,
    however many values (the same answers as :class:`~authmigrate.sinks.sql.InLookup`).

    An ``IN`` list of thousands of placeholders costs psycopg more to parse on every call (a
    statement that long is not cached) than the index probes cost the server; an array is one
    parameter, and the statement is prepared once.
    """

    def __init__(self, column: sa.Column[Any], key: sa.Column[Any], dialect: sa.Dialect) -> None:
        from sqlalchemy.dialects import postgresql

        self.dialect = dialect
        array = sa.cast(sa.bindparam("values"), postgresql.ARRAY(column.type))
        stmt = sa.select(column, key).where(column == sa.any_(array))
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        impl = column.type.dialect_impl(dialect)
        self.proc = impl.bind_processor(dialect)
        self._impls = (impl, key.type.dialect_impl(dialect))
        self._results: tuple[Any, Any] | None = None

    def __call__(self, conn: sa.Connection, values: list[Any]) -> list[tuple[Any, Any]]:
        if self.proc is not None:
            values = [self.proc(v) for v in values]
        rows = self._query(conn, values)
        if self._results is None:
            return rows  # no statement answered: no row either
        value_of, key_of = self._results
        if value_of is None and key_of is None:
            return rows
        value_of, key_of = value_of or _identity, key_of or _identity
        return [(value_of(v), key_of(k)) for v, k in rows]

    def _query(self, conn: sa.Connection, values: list[Any]) -> list[tuple[Any, Any]]:
        """The rows holding one of ``values``, in a savepoint: a value the database's
        encoding cannot hold (an emoji against a LATIN1 database) makes the server refuse the
        whole statement, and on PostgreSQL a failed statement aborts the transaction. Such a
        value is in no row, so the list is halved until it stands alone and matches nothing
        (its insert is then refused as the row's own fault, and rejected with its column).

        The savepoint goes through the driver's own cursor: the connection may be set to
        stream its results (a server-side cursor), which cannot carry a ``SAVEPOINT``."""
        params: Any = (values,) if self.positional else {"values": values}
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("SAVEPOINT authmigrate_lookup")
        try:
            result = conn.exec_driver_sql(self.sql, params)
            if self._results is None:
                codes = [d[1] for d in (result.cursor.description or [])] or [None, None]
                self._results = (
                    self._impls[0].result_processor(self.dialect, codes[0]),
                    self._impls[1].result_processor(self.dialect, codes[1]),
                )
            rows = [tuple(r) for r in result]
        except sa.exc.DataError as exc:
            with raw.cursor() as cur:
                cur.execute("ROLLBACK TO SAVEPOINT authmigrate_lookup")
                cur.execute("RELEASE SAVEPOINT authmigrate_lookup")
            if getattr(exc.orig, "sqlstate", None) != UNTRANSLATABLE:
                raise
            if len(values) == 1:
                return []
            half = len(values) // 2
            return self._query(conn, values[:half]) + self._query(conn, values[half:])
        with raw.cursor() as cur:
            cur.execute("RELEASE SAVEPOINT authmigrate_lookup")
        return rows


def _identity(value: Any) -> Any:
    return value
