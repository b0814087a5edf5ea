"""Per-key bookkeeping for ``sync``: what each source key became, and fingerprints of its row.

``authmigrate_key_state`` holds one row per source key the migration has accounted for
(migrated, rejected, merged, held, deleted), written in the same transaction as the batch that
decided it, by ``run`` and by ``sync``:

- ``fingerprint``: a hash of the row's mapped source values (every column the spec reads,
  credential and salt columns included), so that a row read again without a real change is a
  no-op for ``sync``;
- ``credential_fp``: a hash of the credential columns alone, so that ``sync`` tells a legacy
  password change from any other change;
- ``target_fp``: a hash of the credential value the migration wrote to the target, so that a
  credential the new system has changed since (an upgrade on login, a reset) is recognised as
  the new system's, and never silently overwritten.

States: ``migrated`` (an account the migration wrote), ``rejected`` and ``merged`` (in the
rejects), ``held`` (an account the migration wrote whose later legacy change was rejected: the
account keeps its last good values, the change waits in the rejects) and ``deleted`` (the source
no longer has the key; see ``[sync] on_delete``).

Keys are stored with :func:`state_key`, the bookkeeping's typed form (:func:`encode_key` of
:mod:`authmigrate.sinks.keys`, as in the rejects), and read back typed with :func:`key_of`; a
key compared with the target's key column goes through the target's :class:`TargetKey`
(``SqlTarget.key.stored``), as ``run``, ``verify`` and ``rollback`` compare it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from authmigrate.sinks.keys import decode_key, encode_key
from authmigrate.sinks.mysql import exact_text

STATE_TABLE = "authmigrate_key_state"
WATERMARK_TABLE = "authmigrate_watermarks"

STATES = ("migrated", "rejected", "merged", "held", "deleted")

_IN_LIST = 500


def state_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """Declare (key state, watermarks) in ``metadata``."""
    state = sa.Table(
        STATE_TABLE,
        metadata,
        sa.Column("migration", sa.String(200), primary_key=True),
        sa.Column("source_key", exact_text(500), primary_key=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("credential_fp", sa.String(32)),
        sa.Column("target_fp", sa.String(32)),
        sa.Column("changed_at", sa.DateTime, nullable=False),
    )
    marks = sa.Table(
        WATERMARK_TABLE,
        metadata,
        sa.Column("migration", sa.String(200), primary_key=True),
        sa.Column("watermark", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    return state, marks


def state_key(key: Any) -> str:
    """A source key as the bookkeeping stores it (the rejects' ``source_key`` form: typed,
    so a UUID, timestamp or numeric key reads back as itself)."""
    if type(key) is int:
        return str(key)  # what encode_key gives, without the JSON encoder
    return encode_key(key)


def key_of(stored: str) -> Any:
    """The source key back from :func:`state_key`, of its own type."""
    return decode_key(stored)


def _part(value: Any) -> str:
    if value is None:
        return "N"
    if isinstance(value, bytes | bytearray | memoryview):
        return "b" + bytes(value).hex()
    if isinstance(value, bool):
        return "t1" if value else "t0"
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float | decimal.Decimal):
        return f"f{value!r}"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "d" + value.isoformat()
    return "s" + str(value).replace("\\", "\\\\").replace("|", "\\|")


def fingerprint(row: dict[str, Any], columns: Sequence[str]) -> str:
    """A 128-bit hash of ``row``'s values in ``columns`` (types kept apart: 1 is not "1").

    The values' ``repr`` (computed in C) is the text hashed; a value whose repr is not a pure
    function of the value (a ``memoryview`` shows its address) takes the slower typed form.
    """
    text = repr(tuple(map(row.get, columns)))
    if "<memory at" in text or "object at 0x" in text:
        text = "|".join(_part(row.get(c)) for c in columns)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def value_fp(value: Any) -> str | None:
    """A hash of one target value (the credential written), None for NULL."""
    if value is None:
        return None
    return fingerprint({"v": value}, ("v",))


def load_states(
    conn: sa.Connection, table: sa.Table, migration: str, keys: Iterable[Any]
) -> dict[str, sa.Row[Any]]:
    """State rows of these source keys, by :func:`state_key`."""
    stored = sorted({state_key(k) for k in keys})
    out: dict[str, sa.Row[Any]] = {}
    for i in range(0, len(stored), _IN_LIST):
        part = stored[i : i + _IN_LIST]
        for row in conn.execute(
            sa.select(table).where(table.c.migration == migration, table.c.source_key.in_(part))
        ):
            out[row.source_key] = row
    return out


class FingerprintLookup:
    """``{stored key: (state, fingerprint)}`` for a chunk of keys: the narrow read a full pass
    makes for every chunk, as one statement compiled once (a fixed number of placeholders,
    padded with NULL) and run through the driver, since SQLAlchemy's expanding ``IN`` costs
    more per key than the index probe itself."""

    WIDTH = _IN_LIST

    def __init__(self, table: sa.Table, migration: str, dialect: sa.Dialect) -> None:
        self.array = dialect.name == "postgresql"
        """PostgreSQL: one array parameter (``= ANY``), a short statement psycopg caches."""
        if self.array:
            from sqlalchemy.dialects import postgresql

            keys = sa.cast(sa.bindparam("keys"), postgresql.ARRAY(table.c.source_key.type))
            stmt = sa.select(table.c.source_key, table.c.state, table.c.fingerprint).where(
                table.c.migration == sa.bindparam("m", type_=sa.String()),
                table.c.source_key == sa.any_(keys),
            )
            compiled = stmt.compile(dialect=dialect)
            self.sql, self.migration = str(compiled), migration
            self.order = list(compiled.positiontup or []) if compiled.positional else []
            return
        names = [f"k{i}" for i in range(self.WIDTH)]
        stmt = sa.select(table.c.source_key, table.c.state, table.c.fingerprint).where(
            table.c.migration == sa.bindparam("m", type_=sa.String()),
            table.c.source_key.in_([sa.bindparam(n, type_=sa.String()) for n in names]),
        )
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.order = list(compiled.positiontup or []) if self.positional else ["m", *names]
        self.migration = migration
        self.names = names

    def __call__(self, conn: sa.Connection, stored: list[str]) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        if self.array:
            named: dict[str, Any] = {"m": self.migration, "keys": stored}
            bound: Any = tuple(named[n] for n in self.order) if self.order else named
            rows = conn.exec_driver_sql(self.sql, bound)
            return {k: (st, fp) for k, st, fp in rows}
        for i in range(0, len(stored), self.WIDTH):
            part: list[str | None] = list(stored[i : i + self.WIDTH])
            part += [None] * (self.WIDTH - len(part))
            values = dict(zip(self.names, part, strict=True), m=self.migration)
            params: Any = tuple(values[n] for n in self.order) if self.positional else values
            for k, st, fp in conn.exec_driver_sql(self.sql, params):
                out[k] = (st, fp)
        return out


def upsert_states(
    conn: sa.Connection, table: sa.Table, migration: str, rows: list[dict[str, Any]]
) -> None:
    """Write state rows (``source_key`` already in stored form), replacing existing ones."""
    if not rows:
        return
    keys = [r["source_key"] for r in rows]
    for i in range(0, len(keys), _IN_LIST):
        conn.execute(
            table.delete().where(
                table.c.migration == migration, table.c.source_key.in_(keys[i : i + _IN_LIST])
            )
        )
    conn.execute(table.insert(), [{"migration": migration, **r} for r in rows])
