"""``authmigrate rollback``: remove exactly what one migration wrote, and nothing else.

The pipeline never overwrites a target row (a key already there is rejected as
``target.key_exists``), and every committed batch records the keys it inserted
(``authmigrate_batches.written_keys``). Rollback deletes those rows and nothing else:

1. batch by batch, newest first, in one transaction each: the target rows whose key the batch
   wrote, their notification outbox rows (and those of the batch's merged duplicates), the
   batch's rejects, and last the batch row itself. An account and its message go together: a
   rollback that is interrupted leaves whole batches behind, each with its outbox rows, and
   finishes when run again (or a ``run`` resumes after the batches that are left);
2. outbox rows of the migration that no batch accounts for (none, unless written by hand);
3. the migration's runs are kept as history, marked ``rolled_back``, and the rollback itself is
   recorded as a run (``command = "rollback"``).

It holds the same lock as ``run``, so it never races a run of the same migration.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from authmigrate.db import check_sqlite_file, first_line, make_engine, safe_url, sqlite_file
from authmigrate.errors import SpecError, TargetError
from authmigrate.sinks.keys import KeyTypeError, TargetKey, decode_key, pack_keys, unpack_keys
from authmigrate.sinks.sql import (
    TargetLock,
    adopt_recorded_name,
    bookkeeping_counts,
    bookkeeping_tables,
    utcnow,
)
from authmigrate.sinks.state import state_key
from authmigrate.spec import Spec

_IN_LIST = 1000


@dataclass
class RollbackCounts:
    """What a rollback removed (or, from :func:`rollback_preview`, would remove)."""

    accounts: int = 0
    rejects: int = 0
    """Rows of the rejects table: the rejected and the merged source rows."""
    rejected: int = 0
    merged: int = 0
    batches: int = 0
    outbox: int = 0
    runs: int = 0
    """Runs marked ``rolled_back``."""
    not_found: int = 0
    """Keys the batches recorded that were not in the target: their batches' bookkeeping is
    kept (with those keys only), so nothing is forgotten that was not removed."""
    export_files: int = 0
    """Export files (``[target] export``) of the batches removed: import files, bridge lists,
    manifests (docs/exports.md)."""

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {
            "accounts": self.accounts,
            "rejects": self.rejects,
            "rejected": self.rejected,
            "merged": self.merged,
            "batches": self.batches,
            "outbox": self.outbox,
            "runs": self.runs,
            "not_found": self.not_found,
            "export_files": self.export_files,
        }


class _Target:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.engine = make_engine(
            spec.target.url, path="target.url", synchronous=spec.target_synchronous
        )
        path = sqlite_file(self.engine)
        if path is not None and not path.exists():
            raise TargetError(f"the target {path} does not exist: there is nothing to roll back")
        if path is not None:
            check_sqlite_file(path, "target.url")
        adopt_recorded_name(spec, self.engine)
        self.migration = spec.migration_name
        md = sa.MetaData()
        self.runs, self.batches, self.rejects = bookkeeping_tables(md)
        schema, _, name = spec.target.table.rpartition(".")
        self.schema, self.name = schema or None, name

    def reflect(self, conn: sa.Connection) -> sa.Table | None:
        insp = sa.inspect(conn)
        if not insp.has_table("authmigrate_batches"):
            return None
        if not insp.has_table(self.name, schema=self.schema):
            return None
        return sa.Table(self.name, sa.MetaData(), autoload_with=conn, schema=self.schema)


def _connect_error(spec: Spec, exc: BaseException) -> TargetError | SpecError:
    """A connection that failed: unreachable (TargetError), or refused for what the URL says,
    e.g. an option the driver does not know (SpecError naming ``target.url``)."""
    if isinstance(exc, sa.exc.DatabaseError) and not isinstance(exc, sa.exc.OperationalError):
        return SpecError("target.url", f"cannot use {safe_url(spec.target.url)}: {first_line(exc)}")
    return TargetError(f"cannot reach target {safe_url(spec.target.url)}: {first_line(exc)}")


def rollback_preview(spec: Spec) -> RollbackCounts:
    """What :func:`rollback` would remove, without removing anything."""
    t = _Target(spec)
    counts = RollbackCounts()
    try:
        with t.engine.connect() as conn:
            table = t.reflect(conn)
            if table is None:
                return counts
            b, r = t.batches, t.rejects
            counts.batches = int(
                conn.execute(
                    sa.select(sa.func.count()).where(b.c.migration == t.migration)
                ).scalar_one()
            )
            counts.rejects = int(
                conn.execute(
                    sa.select(sa.func.count()).where(r.c.migration == t.migration)
                ).scalar_one()
            )
            recorded = bookkeeping_counts(conn, t.migration)
            counts.accounts = _accounts_present(conn, t, table)
            counts.rejected, counts.merged = recorded.rejected, recorded.merged
            counts.outbox = _outbox_count(conn, t.migration)
            counts.runs = int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        t.runs.c.migration == t.migration, t.runs.c.status != "rolled_back"
                    )
                ).scalar_one()
            )
        if spec.target.export is not None:
            counts.export_files = len(_export_files(spec))
    except sa.exc.DatabaseError as exc:
        raise _connect_error(spec, exc) from None
    finally:
        t.engine.dispose()
    return counts


def _accounts_present(conn: sa.Connection, t: _Target, table: sa.Table) -> int:
    """The accounts of the migration's batches the target holds: what :func:`rollback`
    removes. A batch row's ``migrated`` is no such count: sync's is net of the accounts it
    found deleted in the source, which stay in the target (disabled) until the rollback."""
    form = TargetKey(table.c[t.spec.target_key].type, t.engine.dialect.name)
    key = form.column(table.c[t.spec.target_key])
    numbers = list(
        conn.execute(sa.select(t.batches.c.batch_no).where(t.batches.c.migration == t.migration))
        .scalars()
        .all()
    )
    present = 0
    for number in numbers:  # one batch's keys in memory at a time
        blob = conn.execute(
            sa.select(t.batches.c.written_keys).where(
                t.batches.c.migration == t.migration, t.batches.c.batch_no == number
            )
        ).scalar()
        keys = [_stored(form, k) for k in unpack_keys(blob)]
        for part in _slices([k for k in keys if k is not _UNSTORABLE], _IN_LIST):
            present += int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(key.in_(part))
                ).scalar_one()
            )
    return present


def _export_files(spec: Spec) -> list[Any]:
    """Every file the export wrote in ``[target] dir`` (what a full rollback removes)."""
    from pathlib import Path

    from authmigrate.sinks.exports._files import owned_files

    return owned_files(Path(str(spec.target.dir)), str(spec.target.export), spec.migration_name)


def _remove_export_files(spec: Spec, t: _Target) -> int:
    """Remove the export files of every batch the bookkeeping no longer holds (the batches
    this rollback removed, and any a crashed run wrote but never committed): exactly the
    files the export wrote, by their names; nothing else in ``dir``."""
    from pathlib import Path

    from authmigrate.sinks.exports._files import remove_unbooked

    with t.engine.connect() as conn:
        kept = set(
            conn.execute(
                sa.select(t.batches.c.batch_no).where(t.batches.c.migration == t.migration)
            ).scalars()
        )
    return remove_unbooked(
        Path(str(spec.target.dir)), str(spec.target.export), kept, spec.migration_name
    )


def _outbox_count(conn: sa.Connection, migration: str) -> int:
    from authmigrate.notify.outbox import OUTBOX_TABLE, outbox_table

    if not sa.inspect(conn).has_table(OUTBOX_TABLE):
        return 0
    table = outbox_table(sa.MetaData())
    return int(
        conn.execute(sa.select(sa.func.count()).where(table.c.migration == migration)).scalar_one()
    )


def rollback(spec: Spec) -> RollbackCounts:
    """Remove every account, reject, checkpoint and outbox row this migration wrote.

    Rows that were in the target before the migration are never touched: only keys recorded in
    the migration's batches are deleted. Safe to run again after an interruption.

    Returns:
        What was removed.

    Raises:
        LockError: a run of this migration is writing to the target, or its ``notify`` is
            sending.
        TargetError: the target cannot be reached.
    """
    from authmigrate.cluster.ranges import forget_ranges
    from authmigrate.notify.outbox import OUTBOX_TABLE, outbox_table, rollback_outbox
    from authmigrate.notify.senders import Registration, hold_off_senders

    t = _Target(spec)
    notify_guard: Registration | None = None
    lock = TargetLock(t.engine, t.migration)
    counts = RollbackCounts()
    run_id = str(uuid.uuid4())
    try:
        try:
            lock.acquire()
            notify_guard = hold_off_senders(t.engine, t.migration)  # refused while notify runs
            with t.engine.connect() as conn:
                table = t.reflect(conn)
        except sa.exc.DatabaseError as exc:
            raise _connect_error(spec, exc) from None
        if table is None:
            return counts
        started = utcnow()
        with t.engine.connect() as conn:
            recorded = bookkeeping_counts(conn, t.migration)  # what this rollback takes back
        counts.rejected, counts.merged = recorded.rejected, recorded.merged
        form = TargetKey(table.c[spec.target_key].type, t.engine.dialect.name)
        with t.engine.connect() as conn:
            outbox = (
                outbox_table(sa.MetaData()) if sa.inspect(conn).has_table(OUTBOX_TABLE) else None
            )
            state = key_state_table(conn)
            numbers = list(
                conn.execute(
                    sa.select(t.batches.c.batch_no)
                    .where(t.batches.c.migration == t.migration)
                    .order_by(t.batches.c.batch_no.desc())
                ).scalars()
            )
        for number in numbers:
            with t.engine.begin() as conn:
                accounts, rejects, messages, not_found = _remove_batch(
                    conn, t, table, form, number, outbox, state
                )
            counts.accounts += accounts
            counts.rejects += rejects
            counts.outbox += messages
            counts.not_found += not_found
            counts.batches += 0 if not_found else 1
        if spec.target.export is not None:
            counts.export_files = _remove_export_files(spec, t)
        if counts.not_found:
            return counts  # the bookkeeping of what was not removed stays, runs unchanged
        with t.engine.begin() as conn:
            _remove_key_state(conn, t.migration)
            forget_ranges(conn, t.migration)  # a run on Dask: its plan goes with its batches
            counts.outbox += rollback_outbox(conn, t.migration)
            # rejects without a batch row cannot exist (same transaction), but be thorough
            counts.rejects += _rowcount(
                conn.execute(t.rejects.delete().where(t.rejects.c.migration == t.migration))
            )
            counts.runs = _rowcount(
                conn.execute(
                    t.runs.update()
                    .where(t.runs.c.migration == t.migration, t.runs.c.status != "rolled_back")
                    .values(status="rolled_back")
                )
            )
            conn.execute(
                t.runs.insert(),
                {
                    "run_id": run_id,
                    "migration": t.migration,
                    "command": "rollback",
                    "spec_hash": spec.fingerprint(),
                    "started_at": started,
                    "ended_at": utcnow(),
                    "status": "done",
                    # the history row takes back what the bookkeeping recorded
                    "rows_read": -recorded.read,
                    "migrated": -recorded.migrated,
                    "rejected": -recorded.rejected,
                    "merged": -recorded.merged,
                },
            )
    finally:
        if notify_guard is not None:
            notify_guard.stop()
        lock.release()
        t.engine.dispose()
    return counts


def _remove_batch(
    conn: sa.Connection,
    t: _Target,
    table: sa.Table,
    form: TargetKey,
    number: int,
    outbox: sa.Table | None,
    state: sa.Table | None = None,
) -> tuple[int, int, int, int]:
    """Remove one batch in the caller's transaction: accounts, their outbox rows, their
    ``sync`` key state, rejects (with their key state), and the batch row last. Returns
    (accounts, rejects, outbox rows, keys not found).

    Keys are matched in the key column's stored form (``sinks.keys``). A recorded key that
    matches no row is not forgotten: the batch row stays, holding only those keys, with its
    rejects, and the count is reported.
    """
    b = t.batches
    blob = conn.execute(
        sa.select(b.c.written_keys).where(b.c.migration == t.migration, b.c.batch_no == number)
    ).scalar()
    key = form.column(table.c[t.spec.target_key])
    recorded = unpack_keys(blob)
    keys = [_stored(form, k) for k in recorded]
    usable = [k for k in keys if k is not _UNSTORABLE]
    present: set[Any] = set()
    accounts = 0
    returning = conn.dialect.delete_returning
    for part in _slices(usable, _IN_LIST):
        delete = table.delete().where(key.in_(part))
        if returning:
            gone = list(conn.execute(delete.returning(key)).scalars())
        else:
            gone = list(conn.execute(sa.select(key).where(key.in_(part))).scalars())
            conn.execute(delete)
        accounts += len(gone)
        present.update(form.stored(v) for v in gone)
    left = [k for k, s in zip(recorded, keys, strict=True) if s not in present]
    removed = [k for k, s in zip(recorded, keys, strict=True) if s in present]
    if left and state is not None:
        # accounts ``sync`` deleted itself (the source lost the key, ``on_delete = "delete"``)
        # are gone by the migration's own hand, not keys rollback failed to find
        gone_by_sync = _deleted_by_sync(conn, t, state, left)
        removed += [k for k in left if state_key(k) in gone_by_sync]
        left = [k for k in left if state_key(k) not in gone_by_sync]
    messages = _remove_messages(conn, t, outbox, number, removed, merged_too=not left)
    _remove_states(conn, t, state, [state_key(k) for k in removed])
    if left:
        conn.execute(
            b.update()
            .where(b.c.migration == t.migration, b.c.batch_no == number)
            .values(written_keys=pack_keys(left), migrated=len(left))
        )
        return accounts, 0, messages, len(left)
    if state is not None:
        rejected = conn.execute(
            sa.select(t.rejects.c.source_key).where(
                t.rejects.c.migration == t.migration,
                t.rejects.c.batch_no == number,
                t.rejects.c.source_key.is_not(None),
            )
        ).scalars()
        _remove_states(conn, t, state, list(rejected))  # stored as the rejects store keys
    rejects = _rowcount(
        conn.execute(
            t.rejects.delete().where(
                t.rejects.c.migration == t.migration, t.rejects.c.batch_no == number
            )
        )
    )
    conn.execute(b.delete().where(b.c.migration == t.migration, b.c.batch_no == number))
    return accounts, rejects, messages, 0


def key_state_table(conn: sa.Connection) -> sa.Table | None:
    """``sync``'s key state table, None on a target written before sync existed."""
    from authmigrate.sinks.state import STATE_TABLE, state_tables

    if not sa.inspect(conn).has_table(STATE_TABLE):
        return None
    return state_tables(sa.MetaData())[0]


def _deleted_by_sync(
    conn: sa.Connection, t: _Target, state: sa.Table, keys: Sequence[Any]
) -> set[str]:
    """Those of ``keys`` (in ``state_key`` form) whose key state says ``sync`` found them
    deleted in the source."""
    found: set[str] = set()
    for part in _slices(sorted({state_key(k) for k in keys}), _IN_LIST):
        found.update(
            conn.execute(
                sa.select(state.c.source_key).where(
                    state.c.migration == t.migration,
                    state.c.source_key.in_(part),
                    state.c.state == "deleted",
                )
            ).scalars()
        )
    return found


def _remove_states(
    conn: sa.Connection, t: _Target, state: sa.Table | None, stored: Sequence[str]
) -> None:
    """Delete the key state of these keys (in ``state_key`` form) in the caller's transaction."""
    if state is None:
        return
    for part in _slices(sorted(set(stored)), _IN_LIST):
        conn.execute(
            state.delete().where(state.c.migration == t.migration, state.c.source_key.in_(part))
        )


def _remove_key_state(conn: sa.Connection, migration: str) -> None:
    """Forget what is left of ``sync``'s key state (the states of keys no batch holds any
    more, such as keys sync found deleted) and the watermark: the migration is gone."""
    from authmigrate.sinks.state import STATE_TABLE, state_tables

    if not sa.inspect(conn).has_table(STATE_TABLE):
        return  # a target written before sync existed
    for table in state_tables(sa.MetaData()):
        conn.execute(table.delete().where(table.c.migration == migration))


def _remove_messages(
    conn: sa.Connection,
    t: _Target,
    outbox: sa.Table | None,
    number: int,
    removed: Sequence[Any],
    *,
    merged_too: bool,
) -> int:
    """Delete the outbox rows of the removed accounts (and, when the whole batch goes, of its
    merged duplicates) in the batch's transaction, so accounts and messages stay paired."""
    if outbox is None:
        return 0
    names = {str(k) for k in removed}  # the outbox holds a source key as str(key)
    if merged_too:
        merged = conn.execute(
            sa.select(t.rejects.c.source_key).where(
                t.rejects.c.migration == t.migration,
                t.rejects.c.batch_no == number,
                t.rejects.c.outcome == "merged",
                t.rejects.c.source_key.is_not(None),
            )
        ).scalars()
        names |= {str(decode_key(k)) for k in merged}
    messages = 0
    for part in _slices(sorted(names), _IN_LIST):
        messages += _rowcount(
            conn.execute(
                outbox.delete().where(
                    outbox.c.migration == t.migration, outbox.c.source_key.in_(part)
                )
            )
        )
    return messages


_UNSTORABLE = object()


def _stored(form: TargetKey, key: Any) -> Any:
    try:
        return form.stored(key)
    except KeyTypeError:
        return _UNSTORABLE  # a key the column cannot hold: kept and reported


def _slices(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _rowcount(result: sa.CursorResult[Any]) -> int:
    return max(int(result.rowcount or 0), 0)
