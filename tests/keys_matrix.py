"""Legacy tables keyed by every key type the databases have, for the key-type tests.

:func:`make_keyed_source` builds ``legacy_users(k <type>, email, name)`` with :data:`ROWS` rows
in SQLite, PostgreSQL or MariaDB; :func:`keyed_spec` writes a spec migrating it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROWS = 20
BATCH = 6


def _ints() -> list[Any]:
    return list(range(1, ROWS + 1))


def _bigints() -> list[Any]:
    # negative and near 2**62 (and its negative): past float precision, inside a signed 64-bit
    near = 2**62
    return [-near - 7, -near, -(2**40), -5, 0, 3, 2**31, 2**32 + 1] + [
        near + i * 3 for i in range(ROWS - 8)
    ]


def _numerics() -> list[Any]:
    return [decimal.Decimal(i * 7) + decimal.Decimal("0.25") * (i % 4) for i in range(ROWS)]


def _texts() -> list[Any]:
    # orders differ between the C and an ICU collation; unique under a case-insensitive one
    return [
        "alice", "Bob", "émile", "Zoë", "zed", "a b", "a-b", "ab", "ABC", "ß",
        "ñandú", "Ω", "10", "9", "z", "Äpfel", "apfel2", "x_y", "x-y", "ü",
    ]  # fmt: skip


def _uuids() -> list[Any]:
    rng = random.Random(5)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(ROWS)]


def _timestamps() -> list[Any]:
    # every other one on a whole second: SQLite's text form must keep ".000000"
    base = dt.datetime(2019, 12, 31, 23, 59, 59)
    return [base + dt.timedelta(hours=i * 5, microseconds=(i % 2) * 250_001) for i in range(ROWS)]


def _timestamptzs() -> list[Any]:
    zones = [dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5))]
    base = dt.datetime(2020, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
    return [
        (base + dt.timedelta(minutes=i * 97, microseconds=(i % 3) * 10)).astimezone(zones[i % 3])
        for i in range(ROWS)
    ]


def _dates() -> list[Any]:
    return [dt.date(1999, 12, 30) + dt.timedelta(days=i * 37) for i in range(ROWS)]


def _bytes() -> list[Any]:
    return [bytes([i * 13 % 256, 255 - i, 0, i]) for i in range(ROWS)]


@dataclass(frozen=True)
class KeyType:
    """One key type: its column type in each database (None: that database has none)."""

    name: str
    values: Callable[[], list[Any]]
    postgresql: str | None
    sqlite: str | None
    mariadb: str | None


KEY_TYPES = [
    KeyType("integer", _ints, "integer", "INTEGER", "INT"),
    KeyType("bigint", _bigints, "bigint", "INTEGER", "BIGINT"),
    KeyType("numeric", _numerics, "numeric(14,2)", "NUMERIC", "DECIMAL(14,2)"),
    KeyType("text_c", _texts, 'text COLLATE "C"', "TEXT", "VARCHAR(64)"),
    KeyType("text_icu", _texts, "text COLLATE {icu}", None, None),
    KeyType("uuid", _uuids, "uuid", None, None),
    KeyType("timestamp", _timestamps, "timestamp", "DATETIME", "DATETIME(6)"),
    KeyType("timestamptz", _timestamptzs, "timestamptz", None, None),
    KeyType("date", _dates, "date", "DATE", "DATE"),
    KeyType("bytea", _bytes, "bytea", "BLOB", "VARBINARY(16)"),
]


def combinations() -> list[tuple[str, str]]:
    """(key type, source database) pairs the databases support."""
    return [
        (kt.name, db)
        for kt in KEY_TYPES
        for db in ("sqlite", "postgresql", "mariadb")
        if getattr(kt, db) is not None
    ]


def key_type(name: str) -> KeyType:
    return next(kt for kt in KEY_TYPES if kt.name == name)


def icu_collation(url: str) -> str | None:
    """An ICU collation of the PostgreSQL server (quoted), or None."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = set(
                conn.execute(
                    sa.text(
                        "SELECT collname FROM pg_collation"
                        " WHERE collname IN ('en-US-x-icu', 'en-x-icu', 'und-x-icu')"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    for name in ("en-US-x-icu", "en-x-icu", "und-x-icu"):
        if name in names:
            return f'"{name}"'
    return None


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M:%S.%f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def make_keyed_source(db: str, kt: KeyType, where: Path | str) -> str:
    """``legacy_users(k, email, name)`` keyed by ``kt`` in ``db``; returns its URL.

    ``where`` is a folder for SQLite, a database URL (empty database) otherwise.
    """
    keys = kt.values()
    rows = [(k, f"User.{i}@Example.com", f"Name {i}") for i, k in enumerate(keys)]
    column = getattr(kt, db)
    if db == "sqlite":
        path = Path(where) / "legacy.db"
        conn = sqlite3.connect(path)
        conn.execute(f"CREATE TABLE legacy_users (k {column} PRIMARY KEY, email TEXT, name TEXT)")
        conn.executemany(
            "INSERT INTO legacy_users VALUES (?, ?, ?)",
            [(_sqlite_value(k), e, n) for k, e, n in rows],
        )
        conn.commit()
        conn.close()
        return f"sqlite:///{path}"
    url = str(where)
    if "{icu}" in column:
        icu = icu_collation(url)
        assert icu is not None
        column = column.format(icu=icu)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE legacy_users (k {column} PRIMARY KEY, email TEXT, name TEXT)"
            )
            table = sa.Table("legacy_users", sa.MetaData(), autoload_with=conn)
            conn.execute(table.insert(), [{"k": k, "email": e, "name": n} for k, e, n in rows])
    finally:
        engine.dispose()
    return url


def keyed_spec(path: Path, src: str, dst: str, *, name: str = "keys") -> Path:
    """A spec migrating :func:`make_keyed_source`'s table into ``accounts``."""
    path.write_text(
        f"""
name = "{name}"

[source]
url = "{src}"
table = "legacy_users"
key = "k"

[target]
url = "{dst}"
table = "accounts"

[fields]
k = "k"
email = {{ from = "email", normalize = "email", required = true }}
name = "name"

[run]
batch_size = {BATCH}
""",
        encoding="utf-8",
    )
    return path
