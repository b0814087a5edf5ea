"""What the migration says it did with each source key, read back one chunk of keys at a time:
written by a batch (``authmigrate_batches``), rejected or merged (``authmigrate_rejects``), or
found deleted or held by ``sync`` (its state table, :mod:`authmigrate.sinks.state`).

``verify`` compares the target with this: a written key must be there with its mapped values,
a rejected or merged one must not. Memory holds one chunk's keys, never the whole bookkeeping
(:mod:`authmigrate.reconcile.ledger`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from authmigrate.reconcile.ledger import Ledger, bounds
from authmigrate.reconcile.result import VerifyResult
from authmigrate.reconcile.target import IN_LIST, _slices, _Target
from authmigrate.sources import Source


class Bookkeeping:
    """The bookkeeping of one migration, for the chunk of source keys being verified.

    Args:
        migration: the migration's name.
        key: the source's key column.
        target: the target, read-only; keys are compared in its key column's form.
        result: where counts and findings go (rejected, merged, held, deleted in source,
            extra).
    """

    def __init__(self, migration: str, key: str, target: _Target, result: VerifyResult) -> None:
        self.migration = migration
        self.key = key
        self.target = target
        self.result = result
        self.ledger = Ledger(target.conn, migration, target.key_value)
        """The written keys and rejects, read back one chunk of keys at a time."""
        self.written: set[Any] = set()
        """Key ids of the current chunk's rows that a batch wrote (and ``sync`` has not found
        deleted or holds)."""
        self.rejects: dict[Any, str] = {}
        """Reject reason of the current chunk's rejected or merged rows, by key id."""
        self.held: set[Any] = set()
        """Key ids of the current chunk's accounts ``sync`` holds at their last good values
        (see :mod:`authmigrate.sinks.state`): counted as rejected, their target row not
        compared."""
        self.doubled: dict[Any, Any] = {}
        """Keys counted twice (written and rejected, or rejected twice), by key id."""
        self.seen_written = 0
        """Written keys found in the source so far (a key listed by two batches once)."""
        self.has_state = False
        """``sync`` has written its state table to this target."""
        self.state_table: sa.Table | None = None

    def load(self, conn: sa.Connection) -> None:
        """Count the rejects and merges, and keep each batch's key range (not its keys)."""
        from authmigrate.sinks.state import STATE_TABLE, state_tables

        self.ledger.load()
        res = self.result
        res.rejected, res.merged = self.ledger.rejected, self.ledger.merged
        for k in self.ledger.rejected_twice():  # counted twice: the reconciliation is off
            self.doubled.setdefault(self.target.key_value(k), k)
        if not sa.inspect(conn).has_table(STATE_TABLE):
            return
        self.has_state = True
        state, _ = state_tables(sa.MetaData())
        res.held = conn.execute(
            sa.select(sa.func.count()).where(
                state.c.migration == self.migration, state.c.state == "held"
            )
        ).scalar_one()

    def key_states(self, keys: Sequence[Any]) -> dict[Any, str]:
        """``deleted`` or ``held`` (what ``sync`` found) of those of ``keys`` it applies to,
        by key id: such keys are no longer counted as migrated."""
        if not self.has_state or not keys:
            return {}
        from authmigrate.sinks.state import key_of, state_key, state_tables

        if self.state_table is None:
            # one Table for the whole run: a new one per query would make each statement
            # new to SQLAlchemy's compiled cache, which keeps 500 of them with their keys
            self.state_table, _ = state_tables(sa.MetaData())
        state = self.state_table
        stored = sorted({state_key(k) for k in keys})
        out: dict[Any, str] = {}
        for part in _slices(stored, IN_LIST):
            for source_key, kind in self.target.conn.execute(
                sa.select(state.c.source_key, state.c.state).where(
                    state.c.migration == self.migration,
                    state.c.source_key.in_(part),
                    state.c.state.in_(("deleted", "held")),
                )
            ):
                out[self.target.key_value(key_of(source_key))] = str(kind)
        return out

    def load_chunk(self, rows: list[dict[str, Any]]) -> None:
        """Written keys, rejects and key states of this chunk's source keys only."""
        key = self.key
        originals = {self.target.key_value(r[key]): r[key] for r in rows}
        kids = set(originals)
        span = bounds(list(kids))
        written = self.ledger.written_in(kids, span)
        self.seen_written += len(written)
        self.rejects = self.ledger.rejects_in(kids, span)
        states = self.key_states(list(originals.values()))
        self.held = {kid for kid, kind in states.items() if kind == "held"}
        for kid, kind in states.items():
            if kid in written:
                written.discard(kid)
                if kind == "deleted":
                    self.result.deleted_in_source += 1
        self.written = written
        for kid in written:
            if kid in self.rejects:
                self.doubled.setdefault(kid, originals[kid])

    def clear_chunk(self) -> None:
        """Forget the last chunk's keys (the pass over the source has ended)."""
        self.written, self.rejects, self.held = set(), {}, set()

    def written_keys_the_source_lost(self, source: Source) -> int:
        """Written keys the source no longer has, batch by batch: those ``sync`` found
        deleted are counted as such, the others are *extra* when the target still holds them.
        Returns how many of those the target holds."""
        res = self.result
        seen: set[Any] = set()  # keys gone from the source only: few
        present = 0
        for keys in self.ledger.written_batches():
            for part in _slices(keys, IN_LIST):
                there = {self.target.key_value(k) for k in source.keys_in(part)}
                lost = {
                    kid: k
                    for k in part
                    if (kid := self.target.key_value(k)) not in there and kid not in seen
                }
                if not lost:
                    continue
                seen.update(lost)
                states = self.key_states(list(lost.values()))
                for kid, kind in states.items():
                    lost.pop(kid, None)
                    if kind == "deleted":
                        res.deleted_in_source += 1
                if not lost:
                    continue
                for kid in self.ledger.rejected_among(list(lost.values())):
                    if kid in lost:
                        self.doubled.setdefault(kid, lost[kid])
                found = self.target.select(list(lost), [])
                res.extra.extend(found[kid][""] for kid in lost if kid in found)
                present += len(found)
        return present
