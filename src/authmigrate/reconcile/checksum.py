"""Row checksums: canonical text per column kind, and the keyed 128-bit row hash.

Values are put in one canonical text form per column type first, so that SQLite, PostgreSQL
and MariaDB agree; a row's text is hashed with MD5 over a random key of the verify run
followed by the text (as PostgreSQL computes ``md5(key || text)``), and a set of rows is
summed as four 32-bit parts. The same hash is computed in the database by
:mod:`authmigrate.reconcile.target` and in Python over the source's rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

_PARTS = 4
"""The 128-bit row hash is summed as four 32-bit parts: 128 bits compared, and the sums of a
chunk stay far below 2**63 in every database."""


def column_kind(type_: Any) -> str:
    """The canonical kind of a target column type: text, int, bool, datetime, date, number."""
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.Float | sa.Numeric):
        return "number"
    if isinstance(type_, sa.String):
        return "text"
    return "other"


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def canonical(kind: str, value: Any) -> str | None:  # noqa: C901 - one branch per kind
    """One value as the text both sides hash: the same for SQLite and PostgreSQL.

    >>> canonical("bool", True), canonical("int", "42"), canonical("datetime", "2020-01-02")
    ('1', '42', '2020-01-02 00:00:00.000000')
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    if kind == "int":
        if isinstance(value, bool):
            return str(int(value))
        if isinstance(value, int):
            return str(value)
        try:
            return str(int(str(value).strip()))
        except ValueError:
            return str(value)
    if kind == "bool":
        if isinstance(value, bool | int):
            return "1" if value else "0"
        s = str(value).strip().lower()
        return "1" if s in _TRUE else "0" if s in _FALSE else str(value)
    if kind == "datetime":
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                return value
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return f"{value.year:04d}-{value:%m-%d %H:%M:%S.%f}"  # %Y drops zeros before 1000
        if isinstance(value, dt.date):
            return f"{value.isoformat()} 00:00:00.000000"
        return str(value)
    if kind == "date":
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)[:10]
    if kind == "number":
        try:
            return repr(float(value))
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def row_text(values: Sequence[str | None]) -> str:
    """The canonical values of one row joined: ``N`` for NULL, ``v<escaped>`` otherwise."""
    return "|".join("N" if v is None else "v" + _escape(v) for v in values)


RowHash = tuple[int, ...]
"""A row's 128-bit keyed hash as four 32-bit parts."""

Digest = tuple[int, ...]
"""(rows, then the sum of each part of the row hashes) over a set of keys."""


_NO_ROW: RowHash = (-1,) * _PARTS
"""The hash of a row that no longer transforms: no target row hashes to negative parts."""


def new_checksum_key() -> str:
    """A random key for one verify run's row hashes (128 bits, as hex text)."""
    return secrets.token_hex(16)


def text_hash(text: str, key: str) -> RowHash:
    """The keyed row hash: MD5 of ``key`` followed by ``text`` (as PostgreSQL computes
    ``md5(key || text)``), as four 32-bit parts."""
    return bytes_hash(text.encode("utf-8", "surrogatepass"), key)


def bytes_hash(raw: bytes, key: str) -> RowHash:
    """:func:`text_hash` of a row's bytes as the database holds them (a TEXT value that is
    not UTF-8 hashes as its bytes, unlike any text a source gives)."""
    hexed = hashlib.md5(key.encode("ascii") + raw, usedforsecurity=False).hexdigest()
    return tuple(int(hexed[i * 8 : i * 8 + 8], 16) for i in range(_PARTS))


def add_hashes(hashes: Iterable[RowHash]) -> Digest:
    """(rows, sum of each part) of row hashes."""
    count, sums = 0, [0] * _PARTS
    for h in hashes:
        count += 1
        for i in range(_PARTS):
            sums[i] += h[i]
    return (count, *sums)


def _sqlite_digest(key: str) -> type:
    """A SQLite aggregate summing the keyed row hashes, as text (SQLite integers are 64-bit)."""

    class _Digest:
        def __init__(self) -> None:
            self.sums = [0] * _PARTS

        def step(self, raw: bytes | None) -> None:
            # bytes (the row is cast to BLOB): sqlite3 cannot pass TEXT that is not UTF-8
            if raw is None:
                return
            for i, part in enumerate(bytes_hash(raw, key)):
                self.sums[i] += part

        def finalize(self) -> str:
            return ",".join(map(str, self.sums))

    return _Digest
