"""MySQL/MariaDB targets: the column types authmigrate creates there.

SQLAlchemy's generic types render on MySQL/MariaDB as types that do not hold what the other
targets hold, so the tables a run creates name the MySQL form explicitly (``with_variant``;
other databases are unaffected):

- ``DATETIME`` keeps whole seconds (MariaDB rounds ``12:00:00.250001`` away): timestamps are
  ``DATETIME(6)``, as precise as Python's.
- The default collations compare text case-insensitively (``'Bob' = 'bob'``) and ignore
  trailing spaces: a key column, or a column of a ``target.unique`` group, that compared so
  would refuse accounts the source holds as distinct, and the duplicate check (which
  compares values exactly, after the field's ``normalize``) would disagree with the unique
  index. Those columns are ``utf8mb4_bin`` (code point order, as Python compares), and the
  key state's ``source_key`` too.
- A text or binary key needs a bounded type to be a primary key (``VARCHAR``/``VARBINARY``),
  and a UUID key is stored as 32 hex characters (``CHAR(32)``, SQLAlchemy's own form where a
  database has no UUID type, which is what :class:`~authmigrate.sinks.keys.TargetKey`
  compares), not MariaDB's native ``UUID``.

Writes use the ``INSERT`` of :class:`~authmigrate.sinks.sql.BulkInsert`: PyMySQL's
``executemany`` sends one multi-row ``INSERT`` per megabyte of rows, inside the batch's
transaction (measured against ``LOAD DATA LOCAL INFILE`` in docs/benchmarks.md). The fast
path (:mod:`authmigrate.pipeline.fast_mariadb`) sends the same literals, its statement text
built a column at a time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

BINARY_COLLATION = "utf8mb4_bin"
DIALECTS = ("mysql", "mariadb")


def column_type(type_: Any, *, key: bool, unique: bool) -> Any:
    """``type_`` with its MySQL/MariaDB form where the generic one falls short.

    Args:
        type_: the column's generic SQLAlchemy type.
        key: the column is the target key (written in ``TargetKey.stored`` form).
        unique: the column is in a ``target.unique`` group (compared exactly).
    """
    if isinstance(type_, sa.DateTime):
        return type_.with_variant(mysql.DATETIME(fsp=6), *DIALECTS)
    if key and isinstance(type_, sa.Uuid):
        return type_.with_variant(sa.CHAR(32), *DIALECTS)
    if not (key or unique):
        return type_
    if isinstance(type_, sa.String) and type_.length:
        return type_.with_variant(
            mysql.VARCHAR(type_.length, collation=BINARY_COLLATION), *DIALECTS
        )
    if isinstance(type_, sa.LargeBinary):
        return type_.with_variant(mysql.VARBINARY(type_.length or 255), *DIALECTS)
    return type_


def exact_text(length: int) -> Any:
    """A ``VARCHAR(length)`` that MySQL/MariaDB compare exactly (bookkeeping key columns)."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, collation=BINARY_COLLATION), *DIALECTS
    )
