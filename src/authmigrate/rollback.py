"""``authmigrate rollback``: remove exactly what one migration wrote, and nothing else.

The pipeline never overwrites a target row (a key already there is rejected as
``target.key_exists``), and every committed batch records the keys it inserted
(``authmigrate_batches.written_keys``). Rollback deletes those rows and nothing else:

1. the migration's notification outbox rows (first, so that no message can go out to an account
   that is being removed);
2. batch by batch, newest first, in one transaction each: the target rows whose key the batch
   wrote, the batch's rejects, and the batch row itself. A rollback that is interrupted leaves
   whole batches behind and finishes when run again;
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

from authmigrate.db import make_engine, safe_url, sqlite_file
from authmigrate.errors import SpecError, TargetError
from authmigrate.sinks.sql import TargetLock, bookkeeping_tables, unpack_keys, utcnow
from authmigrate.spec import Spec

_IN_LIST = 1000


@dataclass
class RollbackCounts:
    """What a rollback removed (or, from :func:`rollback_preview`, would remove)."""

    accounts: int = 0
    rejects: int = 0
    batches: int = 0
    outbox: int = 0
    runs: int = 0
    """Runs marked ``rolled_back``."""

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {
            "accounts": self.accounts,
            "rejects": self.rejects,
            "batches": self.batches,
            "outbox": self.outbox,
            "runs": self.runs,
        }


class _Target:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.migration = spec.migration_name
        self.engine = make_engine(spec.target.url, path="target.url")
        path = sqlite_file(self.engine)
        if path is not None and not path.exists():
            raise TargetError(f"the target {path} does not exist: there is nothing to roll back")
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


def _connect_error(spec: Spec, exc: BaseException) -> TargetError:
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return TargetError(f"cannot reach target {safe_url(spec.target.url)}: {first}")


def rollback_preview(spec: Spec) -> RollbackCounts:
    """What :func:`rollback` would remove, without removing anything."""
    t = _Target(spec)
    counts = RollbackCounts()
    try:
        with t.engine.connect() as conn:
            if t.reflect(conn) is None:
                return counts
            b, r = t.batches, t.rejects
            row = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(b.c.migrated), 0)).where(
                    b.c.migration == t.migration
                )
            ).one()
            counts.batches, counts.accounts = int(row[0]), int(row[1])
            counts.rejects = int(
                conn.execute(
                    sa.select(sa.func.count()).where(r.c.migration == t.migration)
                ).scalar_one()
            )
            counts.outbox = _outbox_count(conn, t.migration)
            counts.runs = int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        t.runs.c.migration == t.migration, t.runs.c.status != "rolled_back"
                    )
                ).scalar_one()
            )
    except sa.exc.OperationalError as exc:
        raise _connect_error(spec, exc) from None
    finally:
        t.engine.dispose()
    return counts


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
    from authmigrate.notify.outbox import rollback_outbox
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
        except sa.exc.OperationalError as exc:
            raise _connect_error(spec, exc) from None
        if table is None:
            return counts
        started = utcnow()
        with t.engine.begin() as conn:
            counts.outbox = rollback_outbox(conn, t.migration)
        key = table.c[spec.target_key]
        with t.engine.connect() as conn:
            numbers = list(
                conn.execute(
                    sa.select(t.batches.c.batch_no)
                    .where(t.batches.c.migration == t.migration)
                    .order_by(t.batches.c.batch_no.desc())
                ).scalars()
            )
        for number in numbers:
            with t.engine.begin() as conn:
                accounts, rejects = _remove_batch(conn, t, table, key, number)
            counts.accounts += accounts
            counts.rejects += rejects
            counts.batches += 1
        with t.engine.begin() as conn:
            _remove_key_state(conn, t.migration)
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
                    "rows_read": 0,
                    "migrated": -counts.accounts,
                    "rejected": -counts.rejects,
                    "merged": 0,
                },
            )
    finally:
        if notify_guard is not None:
            notify_guard.stop()
        lock.release()
        t.engine.dispose()
    return counts


def _remove_batch(
    conn: sa.Connection, t: _Target, table: sa.Table, key: sa.Column[Any], number: int
) -> tuple[int, int]:
    b = t.batches
    blob = conn.execute(
        sa.select(b.c.written_keys).where(b.c.migration == t.migration, b.c.batch_no == number)
    ).scalar()
    keys = [_as_column_value(key, k) for k in unpack_keys(blob)]
    accounts = 0
    for part in _slices(keys, _IN_LIST):
        accounts += _rowcount(conn.execute(table.delete().where(key.in_(part))))
    rejects = _rowcount(
        conn.execute(
            t.rejects.delete().where(
                t.rejects.c.migration == t.migration, t.rejects.c.batch_no == number
            )
        )
    )
    conn.execute(b.delete().where(b.c.migration == t.migration, b.c.batch_no == number))
    return accounts, rejects


def _remove_key_state(conn: sa.Connection, migration: str) -> None:
    """Forget ``sync``'s per-key state and watermark: the migration is gone."""
    from authmigrate.sinks.state import STATE_TABLE, state_tables

    if not sa.inspect(conn).has_table(STATE_TABLE):
        return  # a target written before sync existed
    for table in state_tables(sa.MetaData()):
        conn.execute(table.delete().where(table.c.migration == migration))


def _as_column_value(column: sa.Column[Any], key: Any) -> Any:
    """A recorded key as the key column holds it (a text column holds ``"42"``, not 42)."""
    if isinstance(column.type, sa.String) and not isinstance(key, str):
        return str(key)
    return key


def _slices(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _rowcount(result: sa.CursorResult[Any]) -> int:
    return max(int(result.rowcount or 0), 0)


def rollback_command(spec: Spec, *, yes: bool) -> int:
    """``authmigrate rollback``: show what would go, ask (on a terminal), remove, report.

    Returns:
        0 when the rollback ran, 1 when the operator declined.

    Raises:
        SpecError: not on a terminal and ``--yes`` not given (exit code 2, nothing removed).
    """
    import sys

    import click

    from authmigrate.report import console

    preview = rollback_preview(spec)
    where = safe_url(spec.target.url)
    console.print(
        f"rollback of {spec.migration_name!r} in {where}: {preview.accounts:,} accounts, "
        f"{preview.rejects:,} rejects, {preview.batches:,} batches, {preview.outbox:,} outbox rows"
    )
    if not yes:
        if not sys.stdin.isatty():
            raise SpecError("--yes", "not on a terminal: pass --yes to confirm the rollback")
        if not click.confirm(
            "Remove them? Rows that were in the target before stay.", default=False
        ):
            console.print("rollback cancelled; nothing removed")
            return 1
    done = rollback(spec)
    console.print(
        f"removed {done.accounts:,} accounts, {done.rejects:,} rejects, {done.batches:,} batches, "
        f"{done.outbox:,} outbox rows; {done.runs:,} runs marked rolled_back"
    )
    return 0
