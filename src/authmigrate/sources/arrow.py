"""Source pages as Arrow tables, for the pipeline's fast path (``authmigrate.pipeline.fast``).

A SQLite source is read through the ADBC SQLite driver, in the same key order and with the same
page bounds as :meth:`SqlSource.page`, so a page read here holds exactly the rows the Python
reader would return. Each column comes with its SQLite storage class (``typeof``): SQLite
columns may hold values of any type, and the fast path takes only the rows whose values are of
the type it proves equal to the Python path; the others are read again by the Python reader.

The file is opened read-only by SQLite itself (the source engine's ``file:...?mode=ro`` URI).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from authmigrate.sources.sql import SqlSource

KEY = "k"
"""The key column's name in a page."""


def value_column(i: int) -> str:
    """The name of the ``i``-th read column's values in a page."""
    return f"c{i}"


def kind_column(i: int) -> str:
    """The name of the ``i``-th read column's SQLite storage classes in a page."""
    return f"t{i}"


class ArrowPageError(Exception):
    """A page could not be read as Arrow (the driver refused it): read it with Python."""


class SqliteArrowPages:
    """Pages of a SQLite :class:`SqlSource` as Arrow tables.

    Columns: ``k`` (the key), then for each read column ``c<i>`` (its values) and ``t<i>``
    (``typeof`` of each value: ``integer``, ``real``, ``text``, ``blob`` or ``null``).
    """

    def __init__(self, source: SqlSource) -> None:
        import adbc_driver_sqlite.dbapi as adbc

        self.names = [c.name for c in source._read]
        """The source column of each ``c<i>``, in the Python reader's order."""
        key = source._key
        cols: list[Any] = [key.label(KEY)]
        for i, col in enumerate(source._read):
            cols += [col.label(value_column(i)), sa.func.typeof(col).label(kind_column(i))]
        base = sa.select(*cols).where(key.is_not(None)).order_by(key)
        dialect = source.engine.dialect
        after = base.where(key > sa.bindparam("a", type_=sa.Integer))
        # SQLAlchemy renders a bound LIMIT with an OFFSET parameter for SQLite: one of ours
        self._first = f"{base.compile(dialect=dialect)} LIMIT ?"
        self._after = f"{after.compile(dialect=dialect)} LIMIT ?"
        database = source.engine.url.database or ""
        self._conn = adbc.connect(database, autocommit=True)

    def page(self, after: int | None, limit: int) -> pa.Table:
        """Up to ``limit`` rows with a key greater than ``after`` (None: from the start).

        Raises:
            ArrowPageError: the driver could not read the page.
        """
        sql, params = (self._first, (limit,)) if after is None else (self._after, (after, limit))
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetch_arrow_table()
        except Exception as exc:  # noqa: BLE001 - any driver failure: the Python reader decides
            raise ArrowPageError(type(exc).__name__) from None

    def close(self) -> None:
        self._conn.close()


class PostgresArrowPages:
    """Pages of a PostgreSQL :class:`SqlSource` as Arrow tables, through the ADBC PostgreSQL
    driver: the same columns as :class:`SqliteArrowPages`, with a kind per value of ``text``
    (a text or varchar column's value), ``other`` (a value of any other type: its row is read
    again by the Python reader) or ``null``. The key is read as ``bigint``.

    The session is read-only (``SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY``).
    """

    def __init__(self, source: SqlSource) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        self.names = [c.name for c in source._read]
        key = source._key
        cols: list[Any] = [sa.cast(key, sa.BigInteger).label(KEY)]
        for i, col in enumerate(source._read):
            is_text = isinstance(col.type, sa.String) and not isinstance(col.type, sa.CHAR)
            value = col if is_text else sa.null()
            kind = sa.case((col.is_(None), "null"), else_="text" if is_text else "other")
            cols += [
                sa.cast(value, sa.Text).label(value_column(i)),
                kind.label(kind_column(i)),
            ]
        self._key = key
        self._base = sa.select(*cols).where(key.is_not(None)).order_by(key)
        self._dialect = source.engine.dialect
        url = source.engine.url.set(drivername="postgresql")
        self._conn = adbc.connect(url.render_as_string(hide_password=False), autocommit=True)
        with self._conn.cursor() as cur:
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    def page(self, after: int | None, limit: int) -> pa.Table:
        """Up to ``limit`` rows with a key greater than ``after`` (None: from the start).

        Raises:
            ArrowPageError: the driver could not read the page.
        """
        stmt = self._base if after is None else self._base.where(self._key > int(after))
        sql = str(
            stmt.limit(int(limit)).compile(
                dialect=self._dialect, compile_kwargs={"literal_binds": True}
            )
        )
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table()
        except Exception as exc:  # noqa: BLE001 - any driver failure: the Python reader decides
            raise ArrowPageError(type(exc).__name__) from None

    def close(self) -> None:
        self._conn.close()
