"""Key ranges: the source's key space cut into parts that run as separate tasks.

A range is ``(after, upto]`` in the source's own key order: the rows whose key is greater
than ``after`` (None: from the first key) and at most ``upto`` (None: no end, so the last
range also takes the keys a live source adds past the end). The boundaries are keys read from
the source itself, ``ORDER BY key OFFSET n`` from the previous boundary, so they follow the
database's own order (its collation for text): the same comparisons the range's pages make
(``key > after AND key <= upto``), and never a Python comparison of two text keys.

The plan is cut once per migration and kept in ``authmigrate_ranges``; a later run (after a
crash of a task, of a worker or of the whole cluster) reads it back, and each range resumes
after its own checkpoint: the last batch row of its ``range_id`` in ``authmigrate_batches``.

Batch numbers stay unique across ranges writing at the same time: range ``r`` numbers its
batches from its own block, ``first_batch = base + r * BLOCK``. ``SqlTarget.checkpoint``
counts the blocks as used (:func:`reserved_top`), so ``sync`` numbers its batches past them.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from authmigrate.db import first_line
from authmigrate.errors import TargetError
from authmigrate.sinks.keys import KeyTypeError, coerce_key, decode_key, encode_key

if TYPE_CHECKING:
    from authmigrate.pipeline import Migration
    from authmigrate.sinks.sql import SqlTarget

RANGES_TABLE = "authmigrate_ranges"

BLOCK = 1_000_000
"""Batch numbers reserved per range (at 5,000 rows a batch: 5 billion rows)."""

MAX_RANGES = 1000
"""At most this many ranges: their blocks stay within a 32-bit batch number."""

RANGES_PER_THREAD = 4
"""Default ranges per Dask worker thread: a slow range does not leave the others idle."""


@dataclass(frozen=True)
class KeyRange:
    """One part of the key space: the rows with ``after < key <= upto`` (None: unbounded)."""

    id: int
    after: Any
    upto: Any
    first_batch: int
    """The range's batches are numbered from here (its block of :data:`BLOCK`)."""

    def __repr__(self) -> str:  # keys are not secret, but a range is named by its id
        return f"KeyRange({self.id})"


def ranges_table(metadata: sa.MetaData) -> sa.Table:
    """Declare ``authmigrate_ranges`` in ``metadata``: one row per range of a migration."""
    return sa.Table(
        RANGES_TABLE,
        metadata,
        sa.Column("migration", sa.String(200), primary_key=True),
        sa.Column("range_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("after_key", sa.Text),
        sa.Column("upto_key", sa.Text),
        sa.Column("first_batch", sa.Integer, nullable=False),
    )


def _has_table(engine: sa.Engine, name: str) -> bool:
    try:
        return bool(sa.inspect(engine).has_table(name))
    except sa.exc.DBAPIError:
        return False


def has_ranges(target: SqlTarget) -> bool:
    """True when this migration was started in key ranges (a run on Dask)."""
    return bool(load_ranges(target))


def reserved_top(target: SqlTarget) -> int:
    """The highest batch number the migration's ranges reserve (0 without ranges)."""
    if target.file_missing or not _has_table(target.engine, RANGES_TABLE):
        return 0
    t = ranges_table(sa.MetaData())
    with target.engine.connect() as conn:
        top = conn.execute(
            sa.select(sa.func.max(t.c.first_batch)).where(t.c.migration == target.migration)
        ).scalar()
    return 0 if top is None else int(top) + BLOCK - 1


def load_ranges(target: SqlTarget) -> list[KeyRange]:
    """The migration's ranges in key order (empty: it never ran in ranges)."""
    if target.file_missing or not _has_table(target.engine, RANGES_TABLE):
        return []
    t = ranges_table(sa.MetaData())
    with target.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.migration == target.migration).order_by(t.c.range_id)
        ).all()
    return [
        KeyRange(int(r.range_id), decode_key(r.after_key), decode_key(r.upto_key), r.first_batch)
        for r in rows
    ]


def prepare_target(target: SqlTarget) -> None:
    """Create the ranges table, and add ``range_id`` to an older ``authmigrate_batches``."""
    md = sa.MetaData()
    ranges_table(md)
    try:
        md.create_all(target.engine)
        columns = {c["name"] for c in sa.inspect(target.engine).get_columns(target.batches.name)}
        if "range_id" not in columns:
            with target.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE authmigrate_batches ADD COLUMN range_id INTEGER"))
    except sa.exc.DBAPIError as exc:
        raise TargetError(
            f"cannot prepare key ranges in {target.where}: {first_line(exc)}"
        ) from None


def cut(m: Migration, count: int, after: Any, base: int) -> list[KeyRange]:
    """Cut the keys after ``after`` into ``count`` ranges of about equal rows, at keys read
    from the source in its own order; numbered batch blocks from ``base``.

    Each boundary is the key ``step`` rows past the previous one (``key_at``), so the source
    walks its key index once in all; a source with fewer keys gives fewer ranges.
    """
    count = max(1, min(count, MAX_RANGES))
    rows = m.source.count()
    step = max(1, math.ceil(rows / count))
    bounds: list[Any] = []
    prev = after
    for _ in range(count - 1):
        edge = m.source.key_at(step - 1, prev)
        if edge is None:
            break
        bounds.append(edge)
        prev = edge
    edges = [after, *bounds, None]
    return [KeyRange(i, edges[i], edges[i + 1], base + i * BLOCK) for i in range(len(edges) - 1)]


def save_ranges(target: SqlTarget, ranges: list[KeyRange]) -> None:
    """Record the plan (once per migration)."""
    t = ranges_table(sa.MetaData())
    with target.engine.begin() as conn:
        conn.execute(
            t.insert(),
            [
                {
                    "migration": target.migration,
                    "range_id": r.id,
                    "after_key": None if r.after is None else encode_key(r.after),
                    "upto_key": None if r.upto is None else encode_key(r.upto),
                    "first_batch": r.first_batch,
                }
                for r in ranges
            ],
        )


def forget_ranges(conn: sa.Connection, migration: str) -> int:
    """Delete the migration's range plan (``rollback``, with its last batches)."""
    if not sa.inspect(conn).has_table(RANGES_TABLE):
        return 0
    t = ranges_table(sa.MetaData())
    return int(conn.execute(t.delete().where(t.c.migration == migration)).rowcount or 0)


def typed(m: Migration, key: Any) -> Any:
    """A key from the bookkeeping, typed as the source's keys compare."""
    with contextlib.suppress(KeyTypeError):
        return coerce_key(key, m.key_tag)
    return key


def range_resume(m: Migration, rng: KeyRange) -> tuple[int, Any]:
    """(last batch number of the range, key to read after): where the range resumes."""
    b = m.target.batches
    with m.target.engine.connect() as conn:
        row = conn.execute(
            sa.select(b.c.batch_no, b.c.last_key)
            .where(b.c.migration == m.target.migration, b.c.range_id == rng.id)
            .order_by(b.c.batch_no.desc())
            .limit(1)
        ).first()
    if row is None:
        return rng.first_batch - 1, typed(m, rng.after)
    return int(row.batch_no), typed(m, decode_key(row.last_key))
