"""The target side of verify: the target table reflected, read-only, with its checksums
computed in the database where it can (PostgreSQL's ``md5``, a SQLite aggregate) and
streamed in Python elsewhere."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from authmigrate.reconcile.checksum import (
    _PARTS,
    Digest,
    _sqlite_digest,
    add_hashes,
    canonical,
    column_kind,
    new_checksum_key,
    row_text,
    text_hash,
)
from authmigrate.sinks.keys import KeyTypeError, TargetKey
from authmigrate.spec import Spec

IN_LIST = 1000
"""Keys per ``IN (...)`` list (SQLite and some drivers limit bound parameters)."""

_IN_DB_KINDS = frozenset({"text", "int", "bool", "datetime", "date"})
_SQLITE_DIGEST_FN = "authmigrate_digest"


UNREADABLE = "\udfff(a value the driver cannot read)"
"""A target value that cannot be loaded, as :meth:`_Target.rows` gives it: a lone surrogate,
which no source value holds (sources reject text that is not valid Unicode)."""


def _era(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """PostgreSQL: `` BC`` after a date before year 1 (``to_char``'s ``YYYY`` drops the era,
    so 2020 BC would read as 2020 AD), nothing otherwise: no source value is BC."""
    return sa.case(
        (sa.func.to_char(col, "BC") == "BC", sa.literal(" BC", sa.Text)),
        else_=sa.literal("", sa.Text),
    )


def _surrogate_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# -- the two sides -------------------------------------------------------------------------


class _Target:
    """The target table seen by verify: reflected, with checksum queries over key lists."""

    def __init__(self, spec: Spec, engine: sa.Engine, conn: sa.Connection) -> None:
        self.spec = spec
        self.engine = engine
        self.conn = conn
        schema, _, name = spec.target.table.rpartition(".")
        self.table = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema or None)
        key = spec.target_key
        self.key_form = TargetKey(self.table.c[key].type, engine.dialect.name)
        self.key = self.key_form.column(self.table.c[key])
        """The key column, bound and read in its stored form (``sinks.keys``)."""
        self.columns = [c for c in spec.fields if c in self.table.c]
        self.kinds = [column_kind(self.table.c[c].type) for c in self.columns]
        self.checksum_key = new_checksum_key()
        if self.engine.dialect.name == "sqlite":
            # a tampered TEXT value that is not UTF-8 reads as text that differs, not an error
            raw: Any = conn.connection.driver_connection
            raw.text_factory = _surrogate_text
        self.in_db = self._can_hash_in_db()

    def _can_hash_in_db(self) -> bool:
        backend = self.engine.dialect.name
        if not set(self.kinds) <= _IN_DB_KINDS:
            return False
        if backend == "sqlite":
            raw: Any = self.conn.connection.driver_connection
            raw.create_aggregate(_SQLITE_DIGEST_FN, 1, _sqlite_digest(self.checksum_key))
            return True
        if backend == "postgresql":
            enc = self.conn.execute(sa.text("SHOW server_encoding")).scalar()
            return str(enc).upper() in ("UTF8", "SQL_ASCII")
        return False

    def key_value(self, key: Any) -> Any:
        """A key (from the source, the bookkeeping or the target) as the target's key column
        holds it; a key the column cannot hold is returned as it is (it matches no row)."""
        try:
            return self.key_form.stored(key)
        except KeyTypeError:
            return key

    def _piece(self, col: sa.ColumnElement[Any], kind: str) -> sa.ColumnElement[Any]:
        pg = self.engine.dialect.name == "postgresql"
        text: sa.ColumnElement[Any]
        if kind == "bool":
            text = sa.case((col, sa.literal("1", sa.Text)), else_=sa.literal("0", sa.Text))
        elif kind == "datetime" and pg:
            if getattr(col.type, "timezone", False):
                col = sa.func.timezone("UTC", col)  # the instant, not the session's wall time
            text = sa.func.to_char(col, "YYYY-MM-DD HH24:MI:SS.US", type_=sa.Text) + _era(col)
        elif kind == "date" and pg:
            text = sa.func.to_char(col, "YYYY-MM-DD", type_=sa.Text) + _era(col)
        else:
            text = sa.cast(col, sa.Text)
        esc = sa.func.replace(
            sa.func.replace(text, "\\", "\\\\", type_=sa.Text), "|", "\\|", type_=sa.Text
        )
        return sa.case(
            (col.is_(None), sa.literal("N", sa.Text)), else_=sa.literal("v", sa.Text) + esc
        )

    def _row_expr(self) -> sa.ColumnElement[Any]:
        pieces = [
            self._piece(self.table.c[c], k) for c, k in zip(self.columns, self.kinds, strict=True)
        ]
        row = pieces[0]
        for piece in pieces[1:]:
            row = row + sa.literal("|", sa.Text) + piece
        return row

    def _digest_statement(self, keys: Sequence[Any]) -> Any:
        row = self._row_expr()
        if self.engine.dialect.name == "sqlite":
            agg = sa.func.authmigrate_digest(sa.cast(row, sa.LargeBinary), type_=sa.Text)
            return sa.select(sa.func.count(), agg).where(self.key.in_(keys))
        from sqlalchemy.dialects.postgresql import BIT

        keyed = sa.literal(self.checksum_key, sa.Text) + row
        hashed = sa.select(sa.func.md5(keyed).label("h")).where(self.key.in_(keys)).subquery()
        parts = [
            sa.cast(
                sa.cast(
                    sa.literal("x", sa.Text) + sa.func.substr(hashed.c.h, 1 + 8 * i, 8), BIT(32)
                ),
                sa.BigInteger,
            )
            for i in range(_PARTS)
        ]
        sums = [sa.func.coalesce(sa.func.sum(p), 0) for p in parts]
        return sa.select(sa.func.count(), *sums).select_from(hashed)

    def digest(self, keys: Sequence[Any]) -> Digest:
        """(rows, sums of the keyed row hashes' parts) of the target rows with these keys."""
        if not keys:
            return add_hashes([])
        if not self.in_db:
            rows = self.rows(keys)
            return add_hashes(text_hash(row_text(v), self.checksum_key) for v in rows.values())
        count, sums = 0, [0] * _PARTS
        for part in _slices(keys, IN_LIST):
            found = self.conn.execute(self._digest_statement(part)).one()
            count += int(found[0])
            if found[1] is None:  # SQLite: an aggregate over no row is NULL, not finalize()
                continue
            values = found[1].split(",") if isinstance(found[1], str) else found[1:]
            for i, v in enumerate(values):
                sums[i] += int(v)
        return (count, *sums)

    def rows(self, keys: Sequence[Any]) -> dict[Any, list[str | None]]:
        """Canonical values of the target rows with these keys, by key id.

        A value the driver cannot load (PostgreSQL's ``2020-01-03 BC``: Python has no year
        before 1) reads as :data:`UNREADABLE`, which no source value equals.
        """
        cols = [self.table.c[c] for c in self.columns]
        out: dict[Any, list[str | None]] = {}
        for part in _slices(keys, IN_LIST):
            found: list[Any]
            try:
                found = list(
                    self.conn.execute(sa.select(self.key, *cols).where(self.key.in_(part)))
                )
            except sa.exc.DataError:
                found = self._rows_one_value_at_a_time(part)
            for row in found:
                out[self.key_value(row[0])] = [
                    v if v is UNREADABLE else canonical(k, v)
                    for k, v in zip(self.kinds, row[1:], strict=True)
                ]
        return out

    def _rows_one_value_at_a_time(self, keys: Sequence[Any]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for key in self.conn.execute(sa.select(self.key).where(self.key.in_(keys))).scalars():
            values: list[Any] = [key]
            for c in self.columns:
                stmt = sa.select(self.table.c[c]).where(self.key == key)
                try:
                    values.append(self.conn.execute(stmt).scalar())
                except sa.exc.DataError:
                    values.append(UNREADABLE)
            out.append(tuple(values))
        return out

    def select(self, keys: Sequence[Any], columns: Sequence[str]) -> dict[Any, dict[str, Any]]:
        """The given columns (and the key, as ``""``) of the target rows with these keys."""
        cols = [self.table.c[c] for c in columns]
        out: dict[Any, dict[str, Any]] = {}
        for part in _slices(keys, IN_LIST):
            for row in self.conn.execute(sa.select(self.key, *cols).where(self.key.in_(part))):
                kid = self.key_value(row[0])
                out[kid] = {"": row[0], **dict(zip(columns, row[1:], strict=True))}
        return out


def _slices(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
