"""The migration: source pages in key order, transformed, written with their checkpoint.

::

    spec ─► source ─► batch (keyset on key) ─► transform ─► stages ─► target + checkpoint
                                                   │            │     (one transaction)
                                                   └─ rejects ◄─┘

Every source row ends up counted once: migrated, rejected (reason code and column) or merged.
A crash at any point loses at most the batch in flight, which the next run reads again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from authmigrate.batch import Batch, Record, Reject, Stage
from authmigrate.db import first_line
from authmigrate.errors import AuthmigrateError, SourceError, SpecError, TargetError
from authmigrate.sinks.sql import SqlTarget
from authmigrate.sources import Source, open_source
from authmigrate.spec import Spec
from authmigrate.stages import CredentialStage, DuplicateStage
from authmigrate.transform import FieldReject, RowTransformer, source_columns_used

log = logging.getLogger("authmigrate")

Progress = Callable[[int, int], None]
"""Called after each batch with (rows done so far, total rows)."""


@dataclass
class RunResult:
    """What a run did; also the body of the JSON report."""

    run_id: str
    migration: str
    status: str
    read: int = 0
    migrated: int = 0
    rejected: int = 0
    merged: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    """Rejected rows by reason code (all runs)."""
    merged_by_reason: dict[str, int] = field(default_factory=dict)
    schemes: dict[str, int] = field(default_factory=dict)
    """Credential schemes of the accounts migrated by this run."""
    segments: dict[str, int] = field(default_factory=dict)
    """Notification segments of the accounts migrated or merged by this run."""
    seconds: float = 0.0
    this_run: dict[str, int] = field(default_factory=dict)
    source_rows: int = 0
    unsynced: int = 0
    """Source rows the migration has not accounted for after this run: keys added below the
    checkpoint (text keys, UUIDs, gaps, reused rowids) or with a NULL key since the run read
    past them; ``sync`` carries them. Counted from the source's keys at the end of the run."""

    @property
    def rows_per_second(self) -> float:
        done = self.this_run.get("read", 0)
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "migration": self.migration,
            "status": self.status,
            "source_rows": self.source_rows,
            "totals": {
                "read": self.read,
                "migrated": self.migrated,
                "rejected": self.rejected,
                "merged": self.merged,
            },
            "this_run": self.this_run,
            "by_reason": self.by_reason,
            "merged_by_reason": self.merged_by_reason,
            "this_run_schemes": self.schemes,
            "this_run_segments": self.segments,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "unsynced": self.unsynced,
        }


def build_stages(spec: Spec, *, dry: bool = False) -> list[Stage]:
    """The stages after the field transforms, in order; duplicates are handled by the pipeline."""
    stages: list[Stage] = []
    if spec.credentials is not None:
        stages.append(CredentialStage(spec.credentials, dry=dry, workers=spec.run.workers))
    return stages


def build_late_stages(spec: Spec) -> list[Stage]:
    """Stages after duplicate handling: tokens, then the notification outbox."""
    stages: list[Stage] = []
    if spec.tokens is not None:
        from authmigrate.tokens import TokenStage

        stages.append(TokenStage(spec.tokens))
    if spec.notify is not None:
        from authmigrate.notify.outbox import OutboxStage

        stages.append(OutboxStage.from_spec(spec, base_dir=spec.base_dir))
    return stages


def check_source_columns(spec: Spec, source: Source) -> None:
    """Refuse a spec that reads a column the source does not have, naming the spec key."""
    have = set(source.columns)
    for column, path in source_columns_used(spec).items():
        if column not in have:
            near = _nearest(column, have)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise SpecError(path, f"source has no column {column!r}{hint}")


def _nearest(name: str, choices: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, sorted(choices), n=1)
    return found[0] if found else None


class Migration:
    """One spec, opened: source, target, transforms and stages, ready to plan or run."""

    def __init__(self, spec: Spec, *, dry: bool = False) -> None:
        self.spec = spec
        self.source = open_source(spec.source)
        try:
            check_source_columns(spec, self.source)
            dupes = self.source.duplicate_keys()
            if dupes:
                shown = ", ".join(repr(k) for k in dupes)
                raise SpecError(
                    "source.key",
                    f"{spec.source.key!r} is not unique in the source (repeated: {shown}); "
                    "batching and resume need a unique key",
                )
            self.transform = RowTransformer(spec)
            self.early = build_stages(spec, dry=dry)
            self.late = [] if dry else build_late_stages(spec)
            self.target = SqlTarget(
                spec, [*self.early, *self.late], source_types=self.source.column_types()
            )
            self.target.check_spec()
            self._probe_credentials()
        except BaseException:
            self.source.close()
            raise
        self.redact = frozenset().union(*(s.secret_columns for s in [*self.early, *self.late]))
        self.skip_synced = False
        """Set when ``sync`` has written to this target: run then skips keys it carried."""

    def _probe_credentials(self) -> None:
        """Read a few source hashes with the spec's schemes and params before anything is
        written: a wrong or missing param fails every row the same way, so it is a spec error
        (``credentials.params``), not thousands of rejects."""
        cred = self.spec.credentials
        if cred is None or cred.policy == "reset" or cred.schemes == ["auto"]:
            return
        from authmigrate.stages import prepare_credentials, row_format

        rows = self.source.page(None, 50)
        items: list[tuple[str | None, str | None]] = []
        formats: list[str | None] = []
        for r in rows:
            if r.get(cred.column) in (None, ""):
                continue
            salt = r.get(cred.salt_column) if cred.salt_column else None
            items.append((str(r[cred.column]).strip(), None if salt is None else str(salt)))
            formats.append(row_format(cred, r))
        for res in prepare_credentials(cred, items, dry=True, workers=1, formats=formats):
            if getattr(res, "code", "") == "credential.bad_params":
                raise SpecError("credentials.params", str(res))

    def close(self) -> None:
        self.source.close()
        self.target.close()

    # -- one batch --------------------------------------------------------------------------

    def transform_batch(self, number: int, rows: list[dict[str, Any]]) -> Batch:
        """Apply the field transforms: a pure function of the rows, safe to run ahead."""
        key = self.spec.source.key
        batch = Batch(
            number=number,
            first_key=rows[0][key] if rows else None,
            last_key=rows[-1][key] if rows else None,
            rows_read=len(rows),
            source_rows=rows,
        )
        transform = self.transform
        records = batch.records
        rejects = batch.rejects
        for row in rows:
            k = row[key]
            try:
                records.append(Record(k, row, transform(row)))
            except FieldReject as rej:
                rejects.append(Reject(k, rej.reason, rej.column, rej.detail, row))
        return batch

    def finish_batch(
        self,
        batch: Batch,
        dupes: DuplicateStage,
        conn: sa.Connection | None,
        conflicts: dict[Any, str] | None = None,
    ) -> Batch:
        """Run the stages on a transformed batch: everything but the write.

        ``conn`` (None in ``plan``) is a target connection for the checks against what the
        target already holds; ``conflicts`` are rows the target refused in an earlier attempt
        (key -> the database's reason), rejected as ``target.constraint``.
        """
        if conflicts:
            self._drop(batch, conflicts, "target.constraint", None)
        if conn is not None and self.skip_synced:
            self._skip_synced(conn, batch)
        if conn is not None and batch.records:
            self._reject_existing_keys(conn, batch)
        for stage in self.early:
            stage.process(batch)
        dupes.process(batch)
        self._route_segments(batch)
        for stage in self.late:
            stage.process(batch)
        return batch

    def _route_segments(self, batch: Batch) -> None:
        """Move accounts into the spec's own notification segments (``when`` rules).

        Only accounts whose password carries over (kept, wrapped): one that must reset keeps
        the message with its reset link."""
        rules = [
            (name, seg.when)
            for name, seg in (self.spec.notify.segments if self.spec.notify else {}).items()
            if seg.enabled and seg.when
        ]
        for record in batch.records if rules else ():
            if record.segment not in ("kept", "wrapped"):
                continue
            for name, when in rules:
                if all(record.values.get(f) in allowed for f, allowed in when.items()):
                    record.segment = name
                    break

    def _skip_synced(self, conn: sa.Connection, batch: Batch) -> None:
        """Leave out rows ``sync`` has already accounted for (new keys past the checkpoint it
        carried before this run): they are neither read again nor counted twice."""
        from authmigrate.sinks.state import load_states, state_key

        keys = [r.key for r in batch.records] + [j.key for j in batch.rejects if j.key is not None]
        known = load_states(conn, self.target.state, self.target.migration, keys)
        if not known:
            return
        before = len(batch.records) + len(batch.rejects)
        batch.records = [r for r in batch.records if state_key(r.key) not in known]
        batch.rejects = [j for j in batch.rejects if j.key is None or state_key(j.key) not in known]
        batch.rows_read -= before - len(batch.records) - len(batch.rejects)

    def _reject_existing_keys(self, conn: sa.Connection, batch: Batch) -> None:
        """A key already in the target was not written by us: reject, never overwrite.

        Integer keys are looked up by range (one index scan); other keys by equality
        (``IN``), since a text range follows the target's collation, which need not be the
        order the source pages in.
        """
        key = self.spec.target_key
        if all(type(r.key) is int for r in batch.records):
            col = self.target.table.c[key]
            lo, hi = batch.records[0].key, batch.records[-1].key
            found = conn.execute(sa.select(col).where(col >= lo, col <= hi)).scalars()
            taken: Any = {k for k in found if type(k) is int}
        else:
            taken = self.target.existing(conn, (key,), [r.key for r in batch.records])
        if taken:
            reason = dict.fromkeys(taken, "the target already has this key")
            self._drop(batch, reason, "target.key_exists", key)

    def _drop(self, batch: Batch, keys: dict[Any, str], reason: str, column: str | None) -> None:
        batch.drop(
            [
                (r, Reject(r.key, reason, column, keys[r.key], r.source))
                for r in batch.records
                if r.key in keys
            ]
        )

    def null_key_batch(self, number: int) -> Batch | None:
        """Rows with a NULL key cannot be paged; they are rejected in the first batch."""
        rows = list(self.source.null_key_rows())
        if not rows:
            return None
        batch = Batch(number=number, first_key=None, last_key=None, rows_read=len(rows))
        batch.rejects = [
            Reject(None, "source.null_key", self.spec.source.key, "the key is NULL", r)
            for r in rows
        ]
        return batch

    def pages(self, after: Any) -> Iterator[list[dict[str, Any]]]:
        """Source pages in key order after ``after``; a failed read is retried with backoff."""
        size = self.spec.run.batch_size
        key = self.spec.source.key
        while True:
            rows = _with_retries(self.source.page, after, size, self.spec.run.retries)
            if not rows:
                return
            yield rows
            after = rows[-1][key]

    def transformed(self, after: Any, first_number: int) -> Iterator[Batch]:
        """Transformed batches, numbered from ``first_number``."""
        for number, rows in enumerate(self.pages(after), start=first_number):
            yield self.transform_batch(number, rows)


def _with_retries(
    read: Callable[[Any, int], list[dict[str, Any]]], after: Any, size: int, retries: int
) -> list[dict[str, Any]]:
    delay = 0.2
    for attempt in range(retries + 1):
        try:
            return read(after, size)
        except SourceError:
            if attempt == retries:
                raise
            log.warning("source read failed, retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


def run_migration(
    spec: Spec,
    *,
    progress: Progress | None = None,
    command: str = "run",
) -> RunResult:
    """Run (or resume) a migration to the end.

    Each batch is read after the last committed key, transformed, and written with its
    checkpoint in one target transaction. A lost connection retries the batch with bounded
    backoff (``run.retries``); a second concurrent run is refused by a lock in the target.

    Raises:
        SpecError: the spec does not fit the source or target (nothing is written).
        SourceError, TargetError: a database failed beyond the retries (committed batches stay).
        LockError: another run of this migration is writing.
    """
    m = Migration(spec)
    from authmigrate.sinks.sql import TargetLock

    lock = TargetLock(m.target.engine, m.target.migration)
    run_id = str(uuid.uuid4())
    started = time.monotonic()
    this_run: Counter[str] = Counter()
    schemes: Counter[str] = Counter()
    segments: Counter[str] = Counter()
    status, error = "failed", None
    failure: BaseException | None = None
    try:
        lock.acquire()
        m.target.create()
        m.target.start_run(run_id, command)
        m.target.backfill_state()
        m.skip_synced = m.target.has_synced()
        total = m.source.count()
        number, after = m.target.checkpoint()
        done = m.target.totals()["read"]
        if progress:
            progress(done, total)
        dupes = DuplicateStage(spec, lambda f, vals: _lookup(m, f, vals))
        if number == 0:
            nb = m.null_key_batch(1)
            if nb is not None:
                _commit_with_retry(m, nb, None, run_id)
                number = 1
                this_run.update(read=nb.rows_read, rejected=len(nb.rejects))
                done += nb.rows_read
        # One thread on purpose: a reader thread running ahead was measured 20% slower (the
        # GIL handoffs cost more than the overlap gains on a bulk copy; docs/benchmarks.md).
        for fresh in m.transformed(after, number + 1):
            lock.ensure()
            batch = _commit_with_retry(m, fresh, dupes, run_id)
            merged = len(batch.merged)
            this_run.update(
                read=batch.rows_read,
                migrated=len(batch.records),
                rejected=len(batch.rejects) - merged,
                merged=merged,
            )
            schemes.update(r.scheme for r in batch.records if r.scheme)
            segments.update(r.segment for r in batch.records)
            segments.update(j.segment for j in batch.merged)
            done += batch.rows_read
            if progress:
                progress(done, total)
        status = "done"
    except KeyboardInterrupt as exc:
        status, error, failure = "interrupted", "interrupted by the operator", exc
        raise
    except AuthmigrateError as exc:
        error, failure = str(exc), exc
        if this_run["read"]:
            exc.exit_code = 1  # batches were committed: not "bad input, nothing written"
        raise
    except Exception as exc:
        error, failure = f"{type(exc).__name__}: {first_line(exc)}", exc
        raise
    finally:
        result = _result(m, run_id, status, time.monotonic() - started, dict(this_run))
        result.schemes, result.segments = dict(schemes), dict(segments)
        m.target.end_run(run_id, status, dict(this_run), error)
        lock.release()
        m.close()
        if failure is not None:
            failure.result = result  # type: ignore[attr-defined] # the CLI still writes the report
    return result


def _lookup(m: Migration, group: tuple[str, ...], values: list[Any]) -> dict[Any, Any]:
    with m.target.engine.connect() as conn:
        return m.target.existing(conn, group, values)


def _commit_with_retry(
    m: Migration, fresh: Batch, dupes: DuplicateStage | None, run_id: str
) -> Batch:
    """Finish and commit one batch; on a lost connection, wait and do the whole batch again
    from its source rows.

    A constraint the target enforces and the spec does not know (a NOT NULL, a unique index
    with a case-insensitive collation, a CHECK) fails the whole insert. The first time, the
    batch is simply done again (the live shop may have taken an email between our check and
    our insert); if it fails again, the rows the target refuses are found one by one and
    rejected as ``target.constraint``, so one bad row never blocks a migration.
    """
    retries = m.spec.run.retries
    delay = 0.2
    batch = fresh
    conflicts: dict[Any, str] = {}
    refused = 0
    for attempt in range(retries + 1):
        try:
            if dupes is not None:
                with m.target.engine.connect() as conn:
                    m.finish_batch(batch, dupes, conn, conflicts)
            m.target.commit_batch(batch, run_id, m.redact)
            return batch
        except sa.exc.IntegrityError:
            refused += 1
            if refused >= 2:
                conflicts.update(m.target.find_conflicts(batch))
            if attempt == retries:
                raise TargetError(
                    f"batch {batch.number} kept violating a constraint of the target"
                ) from None
        except sa.exc.DBAPIError as exc:
            if not _transient(exc) or attempt == retries:
                raise TargetError(
                    f"writing batch to {m.target.where} failed: {first_line(exc)}"
                ) from None
        log.warning(
            "batch %d failed, retrying in %.1fs (attempt %d of %d)",
            batch.number,
            delay,
            attempt + 1,
            retries,
        )
        time.sleep(delay if not refused else 0)
        delay = min(delay * 2, 10.0)
        if batch.source_rows is not None:
            batch = m.transform_batch(batch.number, batch.source_rows)
    raise AssertionError("unreachable")


def _transient(exc: sa.exc.DBAPIError) -> bool:
    return bool(exc.connection_invalidated) or isinstance(
        exc, sa.exc.OperationalError | sa.exc.InterfaceError
    )


def _result(
    m: Migration, run_id: str, status: str, seconds: float, this_run: dict[str, int]
) -> RunResult:
    res = RunResult(run_id=run_id, migration=m.target.migration, status=status, seconds=seconds)
    res.this_run = {k: this_run.get(k, 0) for k in ("read", "migrated", "rejected", "merged")}
    try:
        totals = m.target.totals()
        res.read, res.migrated = totals["read"], totals["migrated"]
        res.rejected, res.merged = totals["rejected"], totals["merged"]
        res.by_reason = m.target.reject_counts("rejected")
        res.merged_by_reason = m.target.reject_counts("merged")
        res.source_rows = m.source.count()
        if status == "done":
            from authmigrate.continuity.sync import count_unsynced

            res.unsynced = count_unsynced(m)
    except (sa.exc.DBAPIError, AuthmigrateError):
        pass
    return res


@dataclass
class PlanResult:
    """What ``plan`` found, without writing anything."""

    migration: str
    source_rows: int = 0
    would_migrate: int = 0
    rejected: int = 0
    merged: int = 0
    already_done: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    preview: list[dict[str, Any]] = field(default_factory=list)
    schemes: dict[str, int] = field(default_factory=dict)
    self_tests: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "source_rows": self.source_rows,
            "already_done": self.already_done,
            "would_migrate": self.would_migrate,
            "rejected": self.rejected,
            "merged": self.merged,
            "by_reason": self.by_reason,
            "preview": self.preview,
            "schemes": self.schemes,
            "self_tests": self.self_tests,
        }


def plan_migration(
    spec: Spec, *, preview: int = 20, progress: Progress | None = None
) -> PlanResult:
    """Dry run: read every remaining source row, transform it, identify its credential, and
    count what would be migrated, rejected (by reason) and merged. Writes nothing.

    Duplicates are found against the target when it exists, and among the source rows read
    (their values are held in memory for this).
    """
    m = Migration(spec, dry=True)
    try:
        res = PlanResult(migration=m.target.migration)
        res.source_rows = m.source.count()
        exists = not m.target.file_missing and _target_reachable(m) and m.target.exists()
        after = None
        if exists:
            _, after = m.target.checkpoint()
            res.already_done = m.target.totals()["read"]
        memory: dict[tuple[str, ...], dict[Any, Any]] = {}
        with_target = exists and _has_table(m)

        def lookup(group: tuple[str, ...], values: list[Any]) -> dict[Any, Any]:
            # plan writes nothing, so every value seen is held in memory
            seen = memory.setdefault(group, {})
            if with_target:
                with m.target.engine.connect() as conn:
                    for v, k in m.target.existing(conn, group, values).items():
                        seen.setdefault(v, k)
            return seen

        dupes = DuplicateStage(spec, lookup)
        reasons: Counter[str] = Counter()
        schemes: Counter[str] = Counter()
        done = res.already_done

        def tally(batch: Batch) -> None:
            res.would_migrate += len(batch.records)
            schemes.update(r.scheme for r in batch.records if r.scheme)
            for j in batch.rejects:
                reasons[j.reason] += 1
                if j.outcome == "merged":
                    res.merged += 1
                else:
                    res.rejected += 1
                if len(res.preview) < preview:
                    res.preview.append(
                        {
                            "key": j.key,
                            "outcome": j.outcome,
                            "reason": j.reason,
                            "column": j.column,
                            "detail": j.detail,
                        }
                    )

        nb = m.null_key_batch(0) if after is None else None
        if nb is not None:
            tally(nb)
            done += nb.rows_read
        for n, rows in enumerate(m.pages(after), start=1):
            batch = m.finish_batch(m.transform_batch(n, rows), dupes, None)
            tally(batch)
            done += batch.rows_read
            if progress:
                progress(done, res.source_rows)
        res.by_reason = dict(sorted(reasons.items()))
        res.schemes = dict(schemes.most_common())
        if schemes:
            from authmigrate.credentials import self_test

            res.self_tests = {s: bool(self_test(s)) for s in schemes}
        return res
    finally:
        m.close()


def _target_reachable(m: Migration) -> bool:
    try:
        with m.target.engine.connect():
            return True
    except sa.exc.DBAPIError:
        return False


def _has_table(m: Migration) -> bool:
    return bool(
        sa.inspect(m.target.engine).has_table(m.target.table.name, schema=m.target.table.schema)
    )
