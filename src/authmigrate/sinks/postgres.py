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

Binary COPY sends each value in the column's own binary form, so only values of exactly the
Python type the column's binary form is made from take it (``int`` for ``bigint``, naive
``datetime`` for ``timestamp``...). A batch holding any other value (text ``"42"`` for an
integer column, a float for a numeric one) is written by the ``INSERT`` path, which lets the
server convert it as it always did; so is every batch of a table with a column type this
module does not list (json, arrays, enums, domains...).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
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


class _Column:
    """One column of the COPY: its type name and the check its values must pass."""

    __slots__ = ("name", "type_name", "allowed", "naive", "aware")

    def __init__(self, name: str, type_name: str) -> None:
        self.name = name
        self.type_name = type_name
        self.allowed = frozenset(_BINARY[type_name]) | {type(None)}
        self.naive = type_name == "timestamp"
        """``timestamp``: an aware value would lose its offset (INSERT converts it)."""
        self.aware = type_name == "timestamptz"
        """``timestamptz``: a naive value is UTC to INSERT; binary COPY needs the offset."""

    def fits(self, values: tuple[Any, ...]) -> bool:
        if not set(map(type, values)) <= self.allowed:
            return False
        if self.naive:
            return all(v is None or v.tzinfo is None for v in values)
        if self.aware:
            return all(v is None or v.tzinfo is not None for v in values)
        return True


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
        self._columns: list[_Column] | None = None
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
        self._columns = [_Column(n, types[n]) for n in self.names]
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
        if procs:
            params = [list(values) for values in params]
            for values in params:
                for i, proc in procs:
                    values[i] = proc(values[i])
            params = [tuple(values) for values in params]
        return params

    def _fits(self, params: list[tuple[Any, ...]]) -> bool:
        columns = self._columns or []
        return all(
            col.fits(values) for col, values in zip(columns, zip(*params, strict=True), strict=True)
        )

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
        import psycopg

        raw = conn.connection.driver_connection
        if not isinstance(raw, psycopg.Connection):  # another driver: INSERT it is
            self.fallback(conn, rows)
            return
        columns = self._columns or []
        savepoint = conn.begin_nested()
        try:
            with raw.cursor() as cur, cur.copy(self._copy) as copy:
                copy.set_types([c.type_name for c in columns])
                for values in params:
                    copy.write_row(values)
        except (psycopg.Error, TypeError, ValueError, OverflowError) as exc:
            # refused (a constraint, a value): today's INSERT path writes the batch, or fails
            # with the error the run knows how to handle, naming no value
            log.debug("COPY refused a batch (%s); writing it with INSERT", type(exc).__name__)
            savepoint.rollback()
            self.fallback(conn, rows)
            return
        savepoint.commit()
        self.copied += len(params)
