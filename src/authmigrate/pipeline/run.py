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
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from authmigrate.db import first_line
from authmigrate.errors import AuthmigrateError, SourceError, SpecError, TargetError
from authmigrate.pipeline.batch import Batch, InvalidValue, Record, Reject, Stage
from authmigrate.pipeline.stages import CredentialStage, DuplicateStage, unique_groups
from authmigrate.pipeline.transform import (
    FieldReject,
    RowTransformer,
    normalizer,
    source_columns_used,
)
from authmigrate.sinks.keys import KeyTypeError, coerce_key, tag_name, tag_of, type_tag
from authmigrate.sinks.sql import Refused, SqlTarget, reject_examples
from authmigrate.sinks.sql import refused as refused_by_target
from authmigrate.sources import Source, open_source
from authmigrate.spec import Spec

log = logging.getLogger("authmigrate")

Progress = Callable[[int, int], None]
"""Called after each batch with (rows done so far, total rows)."""

EXAMPLES = 20
"""Example keys per reject reason in reports (the bookkeeping tables have them all)."""


def _rows(n: int, one: str, many: str) -> str:
    """``"1 row was"``, ``"3 rows were"``: a count with its noun and verb agreeing."""
    return f"1 row {one}" if n == 1 else f"{n:,} rows {many}"


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
    error: str | None = None
    """Why a failed or interrupted run stopped (no value, no password)."""
    rejects: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per reason: outcome, count and up to 20 example source keys (all runs)."""
    notify: bool = False
    """The spec has a [notify] section: messages wait in the outbox."""
    spec_path: str | None = None
    """The spec file, for the commands of ``next_step``."""

    @property
    def rows_per_second(self) -> float:
        done = self.this_run.get("read", 0)
        return done / self.seconds if self.seconds > 0 else 0.0

    @property
    def next_step(self) -> dict[str, str]:
        """What to do after this run."""
        from authmigrate.pipeline.advice import next_step

        if self.status != "done":
            return next_step(
                "fix-and-rerun",
                f"the run {self.status}: {self.error or 'see the log'}; committed batches are "
                "kept and the run resumes after them",
                self.spec_path,
            )
        why = "check that source = migrated + rejected + merged and compare every row"
        if self.rejected:
            why += (
                f"; {_rows(self.rejected, 'was', 'were')} rejected: each reason's fix is "
                "in the `fix` lines and the report's rejects, every row in authmigrate_rejects"
            )
        return next_step("verify", why, self.spec_path)

    def as_dict(self) -> dict[str, Any]:
        from authmigrate.pipeline.advice import bookkeeping

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
            "error": self.error,
            "rejects": self._rejects_with_fixes(),
            "bookkeeping": bookkeeping(self.migration),
            "next_step": self.next_step,
        }

    def _rejects_with_fixes(self) -> dict[str, dict[str, Any]]:
        from authmigrate.pipeline.advice import fix_for

        return {
            reason: {
                **entry,
                **({"fix": fix_for(reason)} if entry["outcome"] == "rejected" else {}),
            }
            for reason, entry in self.rejects.items()
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
        from authmigrate.pipeline.tokens import TokenStage, token_segments

        segments = token_segments(spec.notify, base_dir=spec.base_dir)
        stages.append(TokenStage(spec.tokens, segments=segments))
    if spec.notify is not None:
        from authmigrate.notify.outbox import OutboxStage

        stages.append(
            OutboxStage(
                spec.notify,
                spec.migration_name,
                token_column=spec.tokens.column if spec.tokens is not None else None,
                base_dir=spec.base_dir,
                accounts=(spec.target.table, spec.target_key),
            )
        )
    return stages


def check_source_columns(spec: Spec, source: Source) -> None:
    """Refuse a spec that reads a column the source does not have, naming the spec key."""
    have = set(source.columns)
    for column, path in source_columns_used(spec).items():
        if column not in have:
            near = _nearest(column, have)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise SpecError(path, f"source has no column {column!r}{hint}")


def source_key_tag(spec: Spec, source: Source, types: dict[str, Any]) -> str | None:
    """The type tag of the source's keys (``sinks.keys.type_tag``), None when unknown.

    Raises:
        SpecError: the key column holds values of several types (SQLite's ``1`` and ``'1'``):
            no target type tells them apart, so they cannot be migrated as distinct keys.
    """
    key = spec.source.key
    declared = types.get(key)
    if declared is not None and type_tag(declared) is None:
        raise SpecError(
            "source.key",
            f"{key!r} is of type {declared}, which cannot be checkpointed and compared exactly; "
            "keys may be integer, numeric, text, UUID, timestamp, date or binary (cast it in a "
            "source.query)",
        )
    stored = source.key_value_types()
    if len(stored) > 1:
        raise SpecError(
            "source.key",
            f"{key!r} holds values of several types ({', '.join(stored)}): keys such as 1 and "
            "'1' are one key in any target column; give the column one type (e.g. a "
            "source.query that casts it) before migrating",
        )
    return type_tag(types.get(key)) or (_SQLITE_TAGS.get(stored[0]) if stored else None)


_STR_BEFORE = frozenset({"decimal", "uuid", "datetime", "date", "bytes", "bool"})
"""Key types whose checkpoint versions before the typed one stored as ``str(key)``."""

_SQLITE_TAGS = {"integer": "int", "real": "float", "text": "str", "blob": "bytes"}


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
            self.source.only(source_columns_used(spec))
            dupes = self.source.duplicate_keys()
            if dupes:
                shown = ", ".join(repr(k) for k in dupes)
                raise SpecError(
                    "source.key",
                    f"{spec.source.key!r} is not unique in the source (repeated: {shown}); "
                    "batching and resume need a unique key",
                )
            types = self.source.column_types()
            self.key_tag = source_key_tag(spec, self.source, types)
            """Type tag of the source's keys (``sinks.keys``), None when unknown."""
            self.transform = RowTransformer(spec.fields)
            self.early = build_stages(spec, dry=dry)
            self.late = [] if dry else build_late_stages(spec)
            self.export = None if dry else _export_sink(spec, [*self.early, *self.late])
            self.target = SqlTarget(spec, [*self.early, *self.late], source_types=types)
            self.target.check_spec(self.key_tag)
            self._probe_credentials()
        except BaseException:
            self.source.close()
            raise
        self.redact = frozenset().union(*(s.secret_columns for s in [*self.early, *self.late]))
        self.skip_synced = False
        """Set when ``sync`` has written to this target: run then skips keys it carried."""
        self._variants: dict[tuple[str, ...], dict[Any, Any]] = {}

    def _probe_credentials(self) -> None:
        """Read a few source hashes with the spec's schemes and params before anything is
        written: a wrong or missing param fails every row the same way, so it is a spec error
        (``credentials.params``), not thousands of rejects."""
        cred = self.spec.credentials
        if cred is None or cred.policy == "reset" or cred.schemes == ["auto"]:
            return
        from authmigrate.pipeline.stages import prepare_credentials, row_format

        rows = self.source.page(None, 50)
        items: list[tuple[str | None, str | None]] = []
        formats: list[str | None] = []
        for r in rows:
            if r.get(cred.column) in (None, "") or isinstance(r.get(cred.column), InvalidValue):
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

    def duplicate_stage(
        self, lookup: Callable[[tuple[str, ...], list[Any]], dict[Any, Any]]
    ) -> DuplicateStage:
        """The duplicate stage of this migration: the spec's ``target.unique`` groups and
        ``run.duplicates``, keys compared as the target holds them; ``lookup`` answers which
        values are taken already."""
        return DuplicateStage(
            unique_groups(self.spec),
            lookup,
            self.target.key.stored,
            merge=self.spec.run.duplicates == "merge",
        )

    def resume_point(self) -> tuple[int, Any]:
        """(last committed batch number, last key read, typed as the source's keys).

        Raises:
            SpecError: the checkpoint's key is of another type than the source's keys now
                (a CSV key column that gained a non-numeric value, or lost its last one):
                paging after it would read rows again or skip them, so the run is refused
                before it writes anything.
        """
        if self.target.file_missing or not self.target.exists():
            return 0, None
        number, after = self.target.checkpoint()
        if after is None:
            return number, None
        tag, now = tag_of(after), self.key_tag
        fits = (
            now is None
            or tag == now
            or (tag == "str" and now in _STR_BEFORE)
            or (tag == "int" and now in ("decimal", "float"))
        )
        try:
            if fits:
                return number, coerce_key(after, now)
        except KeyTypeError:
            pass
        raise SpecError(
            "source.key",
            f"the checkpoint of migration {self.target.migration!r} (batch {number}) holds "
            f"a {tag_name(tag_of(after))} key, but the source's {self.spec.source.key!r} "
            f"values are {tag_name(self.key_tag)} now: the key type changed since the "
            "migration started, and paging after it would read rows again or skip them. "
            "Restore the source's keys, or roll this migration back and run it again",
        )

    def taken(
        self, conn: sa.Connection, group: tuple[str, ...], values: list[Any]
    ) -> dict[Any, Any]:
        """``{value: key}`` for the values of a unique group the target already holds,
        compared normalized: an exact match, or a target row whose value normalizes (with
        the field's own ``normalize`` steps) to it, as ``User.5@Example.com`` that the new
        system wrote does to ``user.5@example.com``."""
        found = self.target.existing(conn, group, values)
        norms = [normalizer(f, self.spec.fields[f]) for f in group]
        if not any(n is not None for n in norms):
            return found
        for v, k in list(found.items()):
            # a case-insensitive collation matches `User@X.com` for `user@x.com`: the row
            # comes back spelled as the target holds it
            parts = v if len(group) > 1 else (v,)
            normed = tuple(p if n is None else n(p) for n, p in zip(norms, parts, strict=True))
            found.setdefault(normed if len(group) > 1 else normed[0], k)
        variants = self._variants.get(group)
        if variants is None:
            variants = self._variants[group] = self.target.variants(conn, group, norms)
        if variants:
            for v in values:
                if v is not None and v not in found and v in variants:
                    found[v] = variants[v]
        return found

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
        conflicts: dict[Any, Refused] | None = None,
    ) -> Batch:
        """Run the stages on a transformed batch: everything but the write.

        ``conn`` (None in ``plan``) is a target connection for the checks against what the
        target already holds; ``conflicts`` are rows the target refused in an earlier attempt
        (key -> reason, column and detail), rejected as such.
        """
        if conflicts:
            batch.drop(
                [
                    (r, Reject(r.key, why.reason, why.column, why.detail, r.source))
                    for r in batch.records
                    if (why := conflicts.get(r.key)) is not None
                ]
            )
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

        Keys are compared in the target key column's own type (``SqlTarget.existing_keys``).
        """
        stored = self.target.key.stored
        try:
            taken = self.target.existing_keys(conn, [r.key for r in batch.records])
        except KeyTypeError as exc:
            raise SpecError(
                f"fields.{self.spec.target_key}",
                f"a source key does not fit the target's key column ({exc})",
            ) from None
        if taken:
            reason = {
                r.key: "the target already has this key"
                for r in batch.records
                if stored(r.key) in taken
            }
            self._drop(batch, reason, "target.key_exists", self.spec.target_key)

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

    def pages(self, after: Any, upto: Any = None) -> Iterator[list[dict[str, Any]]]:
        """Source pages in key order after ``after`` (and up to ``upto``, a key range's end,
        when given); a failed read is retried with backoff."""
        size = self.spec.run.batch_size
        key = self.spec.source.key
        while True:
            rows = _with_retries(
                lambda a, n: self.source.page(a, n, upto), after, size, self.spec.run.retries
            )
            if not rows:
                return
            yield rows
            after = rows[-1][key]

    def transformed(self, after: Any, first_number: int, upto: Any = None) -> Iterator[Batch]:
        """Transformed batches, numbered from ``first_number`` (of the key range up to
        ``upto`` when given: see ``authmigrate.cluster``)."""
        for number, rows in enumerate(self.pages(after, upto), start=first_number):
            yield self.transform_batch(number, rows)


def _export_sink(spec: Spec, stages: list[Stage]) -> Any:
    """The export sink of ``[target] export`` (its directory created), or None."""
    if spec.target.export is None:
        return None
    from authmigrate.sinks.exports._sink import ExportSink

    hidden = {c.name for stage in stages for c in stage.columns()}
    sink = ExportSink.from_spec(spec, hidden)
    sink.dir.mkdir(parents=True, exist_ok=True)
    _private_bookkeeping(spec)
    return sink


def _private_bookkeeping(spec: Spec) -> None:
    """Create an export's own bookkeeping file (``<dir>/authmigrate.sqlite``) readable by its
    owner only, before SQLite opens it: it holds the same hashes as the export files (0600),
    and SQLite gives its journal and WAL files the database file's mode."""
    import contextlib
    import os

    from authmigrate.spec import EXPORT_BOOKKEEPING

    if spec.target.dir is None:
        return
    path = Path(spec.target.dir) / EXPORT_BOOKKEEPING
    if spec.target.url != "sqlite:///" + str(path):
        return  # the user named a target of their own
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


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
    with RunBookkeeping(m, lock) as book:
        lock.acquire()
        _refuse_ranged(m)
        number, after = m.resume_point()
        m.target.create()
        m.target.start_run(book.run_id, command)
        m.target.backfill_state()
        m.skip_synced = m.target.has_synced()
        total = m.source.count()
        done = m.target.totals()["read"]
        if progress:
            progress(done, total)
        dupes = m.duplicate_stage(lambda f, vals: _lookup(m, f, vals))
        if number == 0:
            nb = m.null_key_batch(1)
            if nb is not None:
                _commit_with_retry(m, nb, None, book.run_id)
                number = 1
                book.this_run.update(read=nb.rows_read, rejected=len(nb.rejects))
                done += nb.rows_read
        # One thread on purpose: a reader thread running ahead was measured 20% slower (the
        # GIL handoffs cost more than the overlap gains on a bulk copy; docs/benchmarks.md).
        from authmigrate.pipeline.fast import open_fast_path, tally

        fast, _ = open_fast_path(m)
        if fast is not None:
            book.closing.append(fast.close)
        committed = (
            fast.batches(after, number + 1, book.run_id, dupes, lock)
            if fast is not None
            else _python_batches(m, after, number + 1, book.run_id, dupes, lock)
        )
        for batch in committed:
            counts, got_schemes, got_segments = tally(batch)
            book.this_run.update(counts)
            book.schemes.update(got_schemes)
            book.segments.update(got_segments)
            done += batch.rows_read
            if progress:
                progress(done, total)
    return book.finished


class RunBookkeeping:
    """The end of a run, in one place: the run's status, its error, its result and the
    release of what it holds, for :func:`run_migration` and ``run --dask``.

    Used as ``with RunBookkeeping(m, lock) as book:`` around the run's work, which counts into
    ``book.this_run``, ``book.schemes`` and ``book.segments``. On leaving, the status is
    ``done`` (the block ended), ``interrupted`` (Ctrl-C) or ``failed`` (any other exception,
    its first line kept as the error, never a value); the result is built from the target's
    bookkeeping (``book.result``), the run's row in ``authmigrate_runs`` ended, a status
    snapshot recorded after a finished run, the lock released, ``book.closing`` called and the
    migration closed. A failure carries the result as ``exc.result`` (the CLI still writes the
    report), and an :class:`AuthmigrateError` after committed batches exits 1, not 2 ("bad
    input, nothing written"). Exceptions are never swallowed.
    """

    def __init__(self, m: Migration, lock: Any) -> None:
        self.m = m
        self.lock = lock
        self.run_id = str(uuid.uuid4())
        self.this_run: Counter[str] = Counter()
        """Counts of this run: read, migrated, rejected, merged."""
        self.schemes: Counter[str] = Counter()
        self.segments: Counter[str] = Counter()
        self.closing: list[Callable[[], None]] = []
        """Called after the lock is released, before the migration is closed."""
        self.status = "failed"
        self.error: str | None = None
        self.result: RunResult | None = None
        self._started = time.monotonic()

    def __enter__(self) -> RunBookkeeping:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        failure: BaseException | None = None
        if exc is None:
            self.status = "done"
        elif isinstance(exc, KeyboardInterrupt):
            self.status, self.error, failure = "interrupted", "interrupted by the operator", exc
        elif isinstance(exc, AuthmigrateError):
            self.error, failure = str(exc), exc
            if self.this_run["read"]:
                exc.exit_code = 1  # batches were committed: not "bad input, nothing written"
        elif isinstance(exc, Exception):
            self.error, failure = f"{type(exc).__name__}: {first_line(exc)}", exc
        self._finish(failure)

    @property
    def finished(self) -> RunResult:
        """The run's result, once the ``with`` block has ended."""
        if self.result is None:
            raise RuntimeError("the run has not ended")
        return self.result

    def _finish(self, failure: BaseException | None) -> None:
        m, this_run = self.m, dict(self.this_run)
        seconds = time.monotonic() - self._started
        result = self.result = _result(m, self.run_id, self.status, seconds, this_run)
        result.schemes, result.segments = dict(self.schemes), dict(self.segments)
        result.error, result.notify = self.error, m.spec.notify is not None
        m.target.end_run(self.run_id, self.status, this_run, self.error)
        if self.status == "done":
            _record_snapshot(m, result.source_rows)
        self.lock.release()
        for close in self.closing:
            close()
        m.close()
        if failure is not None:
            failure.result = result  # type: ignore[attr-defined] # the CLI still writes the report


def _refuse_ranged(m: Migration) -> None:
    """A migration started in key ranges (``--dask``) resumes in its ranges, never after one
    checkpoint: the batch with the highest number is one range's, not the end of the rest."""
    from authmigrate.cluster.ranges import has_ranges

    if not m.target.file_missing and has_ranges(m.target):
        raise SpecError(
            "run.dask",
            f"migration {m.target.migration!r} was started in key ranges on Dask: resume it "
            "the same way (authmigrate run SPEC --dask local, or [run] dask)",
        )


def _record_snapshot(m: Migration, source_rows: int) -> None:
    """A status snapshot at the end of a run (the report's progress chart starts here)."""
    from authmigrate.continuity.status import migration_status

    try:
        migration_status(m.spec, command="run", source_rows=source_rows, engine=m.target.engine)
    except sa.exc.DBAPIError as exc:  # the run's work is committed; only the snapshot is lost
        log.warning("no status snapshot recorded: %s", first_line(exc))


def _python_batches(
    m: Migration, after: Any, number: int, run_id: str, dupes: DuplicateStage, lock: Any
) -> Iterator[Batch]:
    """Every remaining batch through the Python transforms and stages, each committed."""
    for fresh in m.transformed(after, number):
        lock.ensure()
        yield _commit_with_retry(m, fresh, dupes, run_id)


def _lookup(m: Migration, group: tuple[str, ...], values: list[Any]) -> dict[Any, Any]:
    with m.target.engine.connect() as conn:
        return m.taken(conn, group, values)


def _commit_with_retry(
    m: Migration, fresh: Batch, dupes: DuplicateStage | None, run_id: str
) -> Batch:
    """Finish and commit one batch; on a lost connection, wait and do the whole batch again
    from its source rows.

    A constraint the target enforces and the spec does not know (a NOT NULL, a unique index
    with a case-insensitive collation, a CHECK) fails the whole insert. The first time, the
    batch is simply done again (the live shop may have taken an email between our check and
    our insert); if it fails again, the rows the target refuses are found one by one and
    rejected as ``target.constraint``, so one bad row never blocks a migration. A value the
    target's column cannot hold (a DataError: too long for a ``varchar(20)``, not of the
    column's type) is found the same way at once, and rejected with its column
    (``target.too_long``, ``target.invalid_value``).

    A COMMIT whose acknowledgement is lost (the connection drops after the server committed)
    looks like a failure; so before doing a batch again, the retry checks whether the batch's
    row ``(migration, batch_no)`` exists, and if it does, the batch is done and the run moves
    on (redoing it would find every key taken).
    """
    retries = m.spec.run.retries
    delay = 0.2
    batch = fresh
    attempted: Batch | None = None
    conflicts: dict[Any, Refused] = {}
    refused = 0
    for attempt in range(retries + 1):
        try:
            if attempted is not None and m.target.batch_recorded(batch.number):
                log.warning(
                    "batch %d was committed although its commit reported a failure "
                    "(acknowledgement lost); moving on",
                    batch.number,
                )
                return attempted
            if dupes is not None:
                with m.target.engine.connect() as conn:
                    m.finish_batch(batch, dupes, conn, conflicts)
            attempted = batch
            if m.export is not None:
                m.export.write_batch(batch)  # durable before the bookkeeping commits
            m.target.commit_batch(batch, run_id, m.redact)
            return batch
        except sa.exc.DBAPIError as exc:
            if refused_by_target(exc):
                refused += 1
                if refused >= 2 or not isinstance(exc, sa.exc.IntegrityError):
                    conflicts.update(m.target.find_conflicts(batch))
                if attempt == retries:
                    raise TargetError(
                        f"batch {batch.number} kept violating a constraint of the target"
                    ) from None
            elif not _transient(exc) or attempt == retries:
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
            batch.range_id = fresh.range_id
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
        res.this_run = m.target.counts(run_id).totals()
        totals = m.target.counts()
        res.read, res.migrated = totals.read, totals.migrated
        res.rejected, res.merged = totals.rejected, totals.merged
        res.by_reason = totals.by_reason
        res.merged_by_reason = totals.merged_by_reason
        with m.target.engine.connect() as conn:
            res.rejects = reject_examples(conn, m.target.migration, limit=EXAMPLES)
        res.source_rows = m.source.count()
        if status == "done":
            from authmigrate.continuity.sync import count_unsynced

            res.unsynced = count_unsynced(m)
    except (sa.exc.DBAPIError, AuthmigrateError):
        pass
    return res


@dataclass
class PlanResult:
    """What ``plan`` found, without writing anything: a prediction of the run."""

    migration: str
    source_rows: int = 0
    would_migrate: int = 0
    rejected: int = 0
    merged: int = 0
    already_done: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    """Rows rejected or merged, by reason code."""
    outcomes: dict[str, str] = field(default_factory=dict)
    """``rejected`` or ``merged``, by reason code."""
    examples: dict[str, list[Any]] = field(default_factory=dict)
    """Up to :data:`EXAMPLES` source keys per reason code."""
    preview: list[dict[str, Any]] = field(default_factory=list)
    schemes: dict[str, int] = field(default_factory=dict)
    self_tests: dict[str, bool] = field(default_factory=dict)
    kept: int = 0
    """Accounts whose legacy credential is imported as it is."""
    wrapped: int = 0
    """Accounts whose weak credential ``policy = "wrap"`` wraps in argon2id."""
    reset: int = 0
    """Accounts migrated without a usable password (they must reset it)."""
    tokens: int | None = None
    """Accounts that would get a token (``[tokens]``; None without it): with ``[notify]``,
    those of a segment whose message carries the token."""
    target: dict[str, Any] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    """Environment variables the spec names, all found set."""
    estimate: dict[str, Any] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)
    seconds: float = 0.0
    spec_path: str | None = None
    """The spec file, for the commands of ``next_step``."""
    routes: dict[str, dict[str, int]] = field(default_factory=dict)
    """With ``[target] export``: accounts per route (native, re-encoded, bridge, reset), per
    provider; the spec's provider first."""
    export_self_tests: dict[str, bool] = field(default_factory=dict)
    """The spec's provider's self-test per group (scheme and parameters)."""
    path: dict[str, Any] = field(default_factory=dict)
    """Which path a run's batches take (``{"path": "fast" | "python", "why": ...}``, see
    :func:`authmigrate.pipeline.fast.choose_path`)."""

    @property
    def fixes(self) -> dict[str, str]:
        """The likely fix of each reason that rejects rows (merges are not a problem)."""
        from authmigrate.pipeline.advice import fixes

        return fixes([r for r, o in self.outcomes.items() if o == "rejected"])

    @property
    def next_step(self) -> dict[str, str]:
        """What to do after this plan."""
        from authmigrate.pipeline.advice import next_step

        path = self.spec_path
        if self.self_tests and not all(self.self_tests.values()):
            return next_step("fix-and-rerun", "a scheme's self-test failed: do not run", path)
        if self.rejected:
            return next_step(
                "fix-and-rerun",
                f"{_rows(self.rejected, 'would be', 'would be')} rejected: apply the fixes, "
                "or run as it is (every reject is recorded with its reason)",
                path,
            )
        return next_step("run", "nothing would be rejected", path)

    def as_dict(self) -> dict[str, Any]:
        from authmigrate.pipeline.advice import bookkeeping

        return {
            "migration": self.migration,
            "source_rows": self.source_rows,
            "already_done": self.already_done,
            "would_migrate": self.would_migrate,
            "rejected": self.rejected,
            "merged": self.merged,
            "accounts": {"kept": self.kept, "wrapped": self.wrapped, "reset": self.reset},
            **({"tokens": self.tokens} if self.tokens is not None else {}),
            "by_reason": self.by_reason,
            "rejects": {
                reason: {
                    "outcome": self.outcomes.get(reason, "rejected"),
                    "count": n,
                    "examples": self.examples.get(reason, []),
                    **({"fix": self.fixes[reason]} if reason in self.fixes else {}),
                }
                for reason, n in self.by_reason.items()
            },
            "preview": self.preview,
            "schemes": self.schemes,
            "self_tests": self.self_tests,
            "target": self.target,
            "secrets": self.secrets,
            "estimate": self.estimate,
            "advice": self.advice,
            "path": self.path,
            "bookkeeping": bookkeeping(self.migration),
            "next_step": self.next_step,
            **(
                {"routes": self.routes, "export_self_tests": self.export_self_tests}
                if self.routes
                else {}
            ),
        }


def plan_migration(
    spec: Spec, *, preview: int = 20, progress: Progress | None = None
) -> PlanResult:
    """Dry run: read every remaining source row, transform it, identify its credential, and
    count what would be migrated, rejected (by reason) and merged. Writes nothing.

    Duplicates are found against the target when it exists, and among the source rows read
    (their values are held in memory for this).
    """
    from authmigrate.spec import check_secrets

    started = time.monotonic()
    secrets = check_secrets(spec)
    m = Migration(spec, dry=True)
    try:
        res = PlanResult(migration=m.target.migration, secrets=secrets)
        from authmigrate.pipeline.fast import choose_path

        res.path = choose_path(m).as_dict()
        problem = m.target.write_problem()
        if problem is not None:
            raise TargetError(f"a run could not write to {m.target.where}: {problem}")
        res.source_rows = m.source.count()
        reachable = not m.target.file_missing and _target_reachable(m)
        exists = reachable and m.target.exists()
        after = None
        if exists:
            _, after = m.resume_point()
            res.already_done = m.target.totals()["read"]
        memory: dict[tuple[str, ...], dict[Any, Any]] = {}
        with_target = reachable and _has_table(m)  # accounts there before any run count too

        def lookup(group: tuple[str, ...], values: list[Any]) -> dict[Any, Any]:
            # plan writes nothing, so every value seen is held in memory
            seen = memory.setdefault(group, {})
            if with_target:
                with m.target.engine.connect() as conn:
                    for v, k in m.taken(conn, group, values).items():
                        seen.setdefault(v, k)
            return seen

        dupes = m.duplicate_stage(lookup)
        reasons: Counter[str] = Counter()
        schemes: Counter[str] = Counter()
        done = res.already_done
        cred = spec.credentials
        wraps = _wrapped_schemes(spec)
        samples: list[str] = []

        exports = _export_plan(spec)
        tokened = None
        if spec.tokens is not None:
            from authmigrate.pipeline.tokens import token_segments

            tokened, res.tokens = token_segments(spec.notify, base_dir=spec.base_dir), 0

        def tally(batch: Batch) -> None:
            if exports is not None:
                exports.tally(batch)
            res.would_migrate += len(batch.records)
            if res.tokens is not None:
                res.tokens += sum(tokened is None or r.segment in tokened for r in batch.records)
            schemes.update(r.scheme for r in batch.records if r.scheme)
            for r in batch.records:
                if cred is None:
                    break
                if r.segment == "reset":
                    res.reset += 1
                elif r.scheme in wraps:
                    res.wrapped += 1
                    if len(samples) < 5:
                        samples.append(r.values[cred.target_column])
                else:
                    res.kept += 1
            for j in batch.rejects:
                reasons[j.reason] += 1
                res.outcomes.setdefault(j.reason, j.outcome)
                keys = res.examples.setdefault(j.reason, [])
                if len(keys) < EXAMPLES:
                    keys.append(j.key)
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
            if with_target:
                with m.target.engine.connect() as conn:
                    batch = m.finish_batch(m.transform_batch(n, rows), dupes, conn)
            else:
                batch = m.finish_batch(m.transform_batch(n, rows), dupes, None)
            tally(batch)
            done += batch.rows_read
            if progress:
                progress(done, res.source_rows)
        res.by_reason = dict(sorted(reasons.items()))
        if exports is not None:
            res.routes, res.export_self_tests = exports.routes(), exports.self_tests()
        res.schemes = dict(schemes.most_common())
        if schemes:
            from authmigrate.credentials import self_test

            res.self_tests = {s: bool(self_test(s)) for s in schemes}
        res.target = {
            "url": m.target.where,
            "table": spec.target.table,
            "exists": with_target,
            "writable": True,
        }
        res.seconds = time.monotonic() - started
        _estimate(spec, res, samples)
        return res
    finally:
        m.close()


def _wrapped_schemes(spec: Spec) -> frozenset[str]:
    """The scheme ids a run wraps (none unless ``policy = "wrap"``)."""
    cred = spec.credentials
    if cred is None or cred.policy != "wrap":
        return frozenset()
    if cred.weak is not None:
        return frozenset(cred.weak)
    from authmigrate.credentials import default_weak

    return default_weak()


def _estimate(spec: Spec, res: PlanResult, samples: list[str]) -> None:
    """How long the run will take here: plan's own pass (reading and transforming every row)
    plus the wrapping, measured now on a few of the credentials, spread over the cores."""
    from authmigrate.pipeline.advice import SLOW_WRAP_SECONDS, cores, human_duration
    from authmigrate.pipeline.advice import wrap_seconds_per_account as measure

    n = min(spec.run.workers or cores(), cores())
    per = (
        measure(samples, profile=spec.credentials.profile) if samples and spec.credentials else None
    )
    wrap_total = res.wrapped * per / n if per else 0.0
    res.estimate = {
        "seconds": round(res.seconds + wrap_total, 1),
        "read_and_transform_seconds": round(res.seconds, 1),
        "wrap_seconds": round(wrap_total, 1),
        "wrap_ms_per_account": None if per is None else round(per * 1000, 1),
        "cores": n,
    }
    if per is not None and wrap_total > SLOW_WRAP_SECONDS:
        res.advice.append(
            f"wrapping {res.wrapped:,} accounts takes about {human_duration(wrap_total)} on "
            f"{n} core{'s' if n > 1 else ''} ({per * 1000:.0f} ms of one core each). "
            'With policy = "keep" the run takes about '
            f"{human_duration(res.seconds)}, and each account is upgraded to argon2id at its "
            "next login (authmigrate.verify_and_update): no weak hash is re-hashed in bulk."
        )


def _export_plan(spec: Spec) -> Any:
    if spec.target.export is None:
        return None
    from authmigrate.sinks.exports._plan import ExportPlan

    return ExportPlan.from_spec(spec)


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
