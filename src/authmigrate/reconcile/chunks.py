"""The row checksums of ``verify``, one key-ordered chunk of source rows at a time.

The source side (:func:`hash_chunk`) re-runs the spec's field transforms on the chunk's written
rows and hashes each row's canonical values with the run's checksum key; the target side is
:class:`~authmigrate.reconcile.target._Target`'s digest over the same keys. When the two
digests differ, :func:`compare_chunk` splits the keys in halves and checksums each half again,
down to :data:`LEAF_ROWS` keys whose rows are compared one by one (the bisection of
data-diff/reladiff): the keys *missing*, *extra* and *different* (column names only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from authmigrate.pipeline.transform import FieldReject, RowTransformer
from authmigrate.reconcile.bookkeeping import Bookkeeping
from authmigrate.reconcile.checksum import (
    _NO_ROW,
    Digest,
    RowHash,
    add_hashes,
    canonical,
    row_text,
    text_hash,
)
from authmigrate.reconcile.result import Difference, VerifyResult
from authmigrate.reconcile.target import _Target

log = logging.getLogger("authmigrate")

LEAF_ROWS = 16
"""Bisection stops at this many keys and compares the rows themselves."""


@dataclass
class Chunk:
    """One key-ordered chunk of source rows, hashed."""

    keys: list[Any]
    """Target key values to check, in source order (rows the target may legitimately hold
    under another owner, ``target.key_exists``, are left out)."""
    hashes: dict[Any, RowHash]
    values: dict[Any, list[str | None] | str]
    """Canonical values of each expected row, or the reject reason if it no longer transforms."""
    unaccounted: list[Any]
    expected_rows: list[dict[str, Any]]
    originals: dict[Any, Any] = field(default_factory=dict)
    """Source key of each target key value (reports name the source's key)."""


@dataclass
class _Found:
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    different: list[Difference] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.missing or self.extra or self.different)


def hash_chunk(
    rows: list[dict[str, Any]],
    *,
    key: str,
    key_column: str,
    transform: RowTransformer,
    target: _Target,
    book: Bookkeeping,
) -> Chunk:
    """The source side of a chunk: each written row transformed again and hashed.

    Args:
        rows: the chunk's source rows, in key order.
        key: the source's key column; ``key_column``: the target's.
        transform: the spec's field transforms.
        target: gives the key's stored form, the columns compared and the checksum key.
        book: the chunk's bookkeeping (:meth:`Bookkeeping.load_chunk` already called).
    """
    kinds = dict(zip(target.columns, target.kinds, strict=True))
    chunk = Chunk([], {}, {}, [], [])
    for row in rows:
        k = row[key]
        kid = target.key_value(k)
        if kid in book.written:
            try:
                mapped = transform(row)
            except FieldReject as rej:
                chunk.values[kid] = f"{rej.column} (now {rej.reason})"
                chunk.hashes[kid] = _NO_ROW
            else:
                mapped[key_column] = kid  # the key as the target holds it
                canon = [canonical(kinds[c], mapped.get(c)) for c in target.columns]
                chunk.values[kid] = canon
                chunk.hashes[kid] = text_hash(row_text(canon), target.checksum_key)
                chunk.expected_rows.append(row)
        elif book.rejects.get(kid) == "target.key_exists" or kid in book.held:
            continue
        elif kid not in book.rejects:
            chunk.unaccounted.append(k)
        chunk.keys.append(kid)
        chunk.originals[kid] = k
    return chunk


def compare_chunk(chunk: Chunk, target: _Target, res: VerifyResult) -> int:
    """Checksum the chunk, bisect it on a mismatch; returns expected rows found missing."""
    res.chunks += 1
    found = _Found()
    if _source_digest(chunk, chunk.keys, target) != target.digest(chunk.keys):
        res.chunks_bisected += 1
        _bisect(chunk, chunk.keys, found, target)
        if not found.any() and target.in_db:
            # the database's canonical text differs from ours (an exotic type or
            # encoding): the rows agree, so stream the rest of the table instead
            log.warning("in-database checksums disagree with the rows; streaming instead")
            target.in_db = False
            res.checksums = "streamed"
    extra_ids = {target.key_value(k) for k in found.extra}
    res.missing.extend(found.missing)
    res.missing.extend(k for k in chunk.unaccounted if target.key_value(k) not in extra_ids)
    res.extra.extend(found.extra)
    res.different.extend(found.different)
    return len(found.missing)


def _source_digest(chunk: Chunk, keys: Sequence[Any], target: _Target) -> Digest:
    hashes = chunk.hashes
    return add_hashes(h for k in keys if (h := hashes.get(target.key_value(k))) is not None)


def _bisect(chunk: Chunk, keys: Sequence[Any], found: _Found, target: _Target) -> None:
    if len(keys) <= LEAF_ROWS:
        _compare_rows(chunk, keys, found, target)
        return
    mid = len(keys) // 2
    for half in (keys[:mid], keys[mid:]):
        if _source_digest(chunk, half, target) != target.digest(half):
            _bisect(chunk, half, found, target)


def _compare_rows(chunk: Chunk, keys: Sequence[Any], found: _Found, target: _Target) -> None:
    there = target.rows(keys)
    for k in keys:
        kid = target.key_value(k)
        want = chunk.values.get(kid)
        have = there.get(kid)
        if want is None and have is None:
            continue
        shown = chunk.originals.get(kid, k)
        if have is None:
            found.missing.append(shown)
        elif want is None:
            found.extra.append(shown)
        elif isinstance(want, str):
            found.different.append(Difference(shown, [want]))
        elif want != have:
            cols = [c for c, w, h in zip(target.columns, want, have, strict=True) if w != h]
            found.different.append(Difference(shown, cols))
