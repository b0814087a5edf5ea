"""The migration's bookkeeping as verify reads it: one key range at a time, never whole.

``authmigrate_batches.written_keys`` holds each batch's written keys as one packed list, and
``authmigrate_rejects`` one row per rejected or merged source row. Holding all of them (a set of
every written key) costs ~110 bytes a key: 1.1 GB at 10M accounts. Instead, one pass at the
start keeps, per batch, only the smallest and largest key it wrote (and, for its rejects, the
range of their row ids); a chunk of source keys then reads back only the batches whose range
meets the chunk's, and keeps only the keys that are in the chunk. Memory is one chunk plus one
batch plus a few numbers per batch, whatever the number of rows.

The ranges only narrow down which batches to read; membership is always tested against the
chunk's own keys, so a database whose key order differs from Python's (a PostgreSQL collation)
costs more reading, never a wrong answer.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from authmigrate.sinks.keys import decode_key, encode_key, unpack_keys
from authmigrate.sinks.sql import bookkeeping_tables

_IN_LIST = 1000
"""Keys per ``IN (...)`` list (SQLite and some drivers limit bound parameters)."""

_STREAM = {"stream_results": True, "max_row_buffer": 1000}
"""Read big results a page at a time (a server-side cursor on PostgreSQL)."""

Bounds = tuple[Any, Any] | None
"""(smallest, largest) :func:`order_key` of a set of keys; None when they cannot be ordered
(every chunk then reads the batch)."""


def order_key(kid: Any) -> tuple[Any, ...]:
    """A key in one total order across the types a key column can hold (numbers before text
    before anything else), so mixed SQLite keys compare without a ``TypeError``."""
    if isinstance(kid, bool):
        return (0, int(kid))
    if isinstance(kid, int | float | decimal.Decimal):
        return (0, kid)
    if isinstance(kid, str):
        return (1, kid)
    return (2, type(kid).__name__, kid)


def bounds(kids: Sequence[Any]) -> Bounds:
    """The range of these keys in :func:`order_key`'s order (None: empty or not orderable)."""
    try:
        ordered = [order_key(k) for k in kids]
        return (min(ordered), max(ordered)) if ordered else None
    except TypeError:
        return None


def _meets(a: Bounds, b: Bounds) -> bool:
    if a is None or b is None:
        return True
    try:
        return bool(a[0] <= b[1] and b[0] <= a[1])
    except TypeError:
        return True


@dataclass
class _Span:
    """One batch: its number, the range of its keys, and (rejects) the range of its row ids."""

    batch_no: int
    range: Bounds
    rows: int
    first_id: int = 0
    last_id: int = 0


class Ledger:
    """The written keys and rejects of one migration, read back per chunk of source keys.

    Args:
        conn: the target connection (read-only).
        migration: the migration's name.
        key_value: a key as the target's key column holds it (``_Target.key_value``).
    """

    def __init__(self, conn: sa.Connection, migration: str, key_value: Callable[[Any], Any]):
        self.conn = conn
        self.migration = migration
        self.key_value = key_value
        _, self.batches, self.rejects = bookkeeping_tables(sa.MetaData())
        self.written: list[_Span] = []
        self.reject_spans: list[_Span] = []
        self.written_total = 0
        """Keys in every batch's ``written_keys`` (a key listed twice counts twice)."""
        self.rejected = 0
        self.merged = 0
        self.keyed_rejects = 0
        """Rejects and merges that name a source key."""

    # -- the one pass at the start --------------------------------------------------------

    def load(self) -> None:
        """Read every batch's written keys and every reject once, keeping only their ranges."""
        b, r = self.batches, self.rejects
        stmt = (
            sa.select(b.c.batch_no, b.c.written_keys)
            .where(b.c.migration == self.migration)
            .order_by(b.c.batch_no)
            .execution_options(**_STREAM)
        )
        for batch_no, blob in self.conn.execute(stmt):
            kids = [self.key_value(k) for k in unpack_keys(blob)]
            self.written_total += len(kids)
            if kids:
                self.written.append(_Span(batch_no, bounds(kids), len(kids)))
        spans: dict[int, _Span] = {}
        stmt = (
            sa.select(r.c.id, r.c.batch_no, r.c.source_key, r.c.outcome)
            .where(r.c.migration == self.migration)
            .order_by(r.c.id)
            .execution_options(**_STREAM)
        )
        for row in self.conn.execute(stmt):
            row_id, batch_no, source_key, outcome = (
                row.id,
                row.batch_no,
                row.source_key,
                row.outcome,
            )
            if outcome == "merged":
                self.merged += 1
            else:
                self.rejected += 1
            if source_key is None:
                continue
            self.keyed_rejects += 1
            key = order_key(self.key_value(decode_key(source_key)))
            span = spans.get(batch_no)
            if span is None:
                spans[batch_no] = _Span(batch_no, (key, key), 1, row_id, row_id)
                continue
            span.rows += 1
            span.last_id = row_id
            if span.range is not None:
                try:
                    span.range = (min(span.range[0], key), max(span.range[1], key))
                except TypeError:
                    span.range = None
        self.reject_spans = list(spans.values())

    # -- per chunk ------------------------------------------------------------------------

    def written_in(self, kids: set[Any], chunk_range: Bounds) -> set[Any]:
        """Those of ``kids`` (target key form) that a batch wrote."""
        numbers = [s.batch_no for s in self.written if _meets(s.range, chunk_range)]
        found: set[Any] = set()
        for keys in self._blobs(numbers):
            for k in keys:
                kid = self.key_value(k)
                if kid in kids:
                    found.add(kid)
        return found

    def rejects_in(self, kids: set[Any], chunk_range: Bounds) -> dict[Any, str]:
        """Reason of the last reject of each of ``kids`` that was rejected or merged."""
        r = self.rejects
        reasons: dict[Any, str] = {}
        for first, last in self._id_ranges(chunk_range):
            stmt = (
                sa.select(r.c.source_key, r.c.reason)
                .where(r.c.migration == self.migration, r.c.id.between(first, last))
                .order_by(r.c.id)
            )
            for source_key, reason in self.conn.execute(stmt):
                if source_key is None:
                    continue
                kid = self.key_value(decode_key(source_key))
                if kid in kids:
                    reasons[kid] = reason
        return reasons

    def rejected_twice(self) -> list[Any]:
        """Source keys rejected (or merged) more than once, grouped by the database."""
        r = self.rejects
        stmt = (
            sa.select(r.c.source_key)
            .where(r.c.migration == self.migration, r.c.source_key.is_not(None))
            .group_by(r.c.source_key)
            .having(sa.func.count() > 1)
            .execution_options(**_STREAM)
        )
        return [decode_key(k) for (k,) in self.conn.execute(stmt)]

    def _id_ranges(self, chunk_range: Bounds) -> list[tuple[int, int]]:
        spans = sorted(
            (s.first_id, s.last_id) for s in self.reject_spans if _meets(s.range, chunk_range)
        )
        merged: list[tuple[int, int]] = []
        for first, last in spans:
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return merged

    # -- whole passes, one batch at a time -----------------------------------------------

    def written_batches(self) -> Iterator[list[Any]]:
        """Each batch's written keys (source form), one batch in memory at a time."""
        for numbers in _slices([s.batch_no for s in self.written], 1):
            yield from self._blobs(numbers)

    def _blobs(self, numbers: Sequence[int]) -> Iterator[list[Any]]:
        b = self.batches
        for part in _slices(numbers, _IN_LIST):
            stmt = sa.select(b.c.written_keys).where(
                b.c.migration == self.migration, b.c.batch_no.in_(part)
            )
            for (blob,) in self.conn.execute(stmt).all():
                yield unpack_keys(blob)

    def merged_pages(self, size: int = _IN_LIST) -> Iterator[list[Any]]:
        """Source keys of merged duplicates, ``size`` at a time, in the order they were merged."""
        r = self.rejects
        after = 0
        while True:
            rows = self.conn.execute(
                sa.select(r.c.id, r.c.source_key)
                .where(
                    r.c.migration == self.migration,
                    r.c.outcome == "merged",
                    r.c.id > after,
                )
                .order_by(r.c.id)
                .limit(size)
            ).all()
            if not rows:
                return
            after = rows[-1][0]
            yield [decode_key(k) for _, k in rows if k is not None]

    def rejected_among(self, keys: Sequence[Any]) -> set[Any]:
        """Those of ``keys`` (source form) that were rejected or merged (target key form)."""
        r = self.rejects
        found: set[Any] = set()
        for part in _slices(list(dict.fromkeys(encode_key(k) for k in keys)), _IN_LIST):
            stmt = sa.select(r.c.source_key).where(
                r.c.migration == self.migration, r.c.source_key.in_(part)
            )
            found.update(self.key_value(decode_key(k)) for (k,) in self.conn.execute(stmt))
        return found


def _slices(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
