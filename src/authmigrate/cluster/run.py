"""``authmigrate run SPEC --dask ADDRESS``: the same run, its key ranges as Dask tasks.

The client (this process) holds the migration's lock, records one run, cuts the key space
into ranges once (:mod:`.ranges`), decides duplicates across ranges (:mod:`.duplicates`), and
submits one task per range. Each task runs the normal batch loop of
:mod:`authmigrate.pipeline` on its range: one target transaction per batch with its
checkpoint row (tagged with the range id). Dask is the engine: it places the tasks on the
workers, re-runs a task whose worker died, and retries a task that failed
(``retries = run.retries``); a re-run task resumes after its range's last committed batch.
A re-run of the whole command after a crash of the client or of the cluster reads the same
plan and resumes every range.

Writes: each range task writes its own batches. PostgreSQL and MariaDB take them in
parallel; a SQLite target (WAL, ``busy_timeout``) takes one writer at a time, so the tasks
queue only for the short write of a batch while their hashing runs in parallel.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from authmigrate.errors import AuthmigrateError, LockError, SpecError
from authmigrate.pipeline.run import (
    Migration,
    Progress,
    RunBookkeeping,
    RunResult,
    _commit_with_retry,
    _lookup,
)
from authmigrate.spec import Spec

from . import ranges as kr
from .duplicates import Decided, DecidedDuplicates, decide

log = logging.getLogger("authmigrate")

LOCK_WAIT = 60.0
"""Seconds a range task waits for its range's lock (held by a task of a lost client that is
still finishing its batch) before it fails, for Dask to retry it."""

_cache: dict[tuple[str, bool, int], Migration] = {}
_cache_run: list[str] = [""]
_cache_lock = threading.Lock()


def worker_migration(spec: Spec, run_id: str, *, dry: bool = False) -> Migration:
    """The spec's :class:`Migration` in this worker process for the run ``run_id``, opened
    once per thread (opening checks the source's keys, which costs a scan). A new run opens
    afresh, so nothing read from the target (key type, variants) outlives the run."""
    with _cache_lock:
        if _cache_run[0] != run_id:
            for old in _cache.values():
                with contextlib.suppress(Exception):
                    old.close()
            _cache.clear()
            _cache_run[0] = run_id
        key = (spec.migration_name, dry, threading.get_ident())
        m = _cache.get(key)
        if m is None:
            m = _cache[key] = Migration(_one_core_per_task(spec), dry=dry)
            m.skip_synced = m.target.has_synced()
    return m


def _one_core_per_task(spec: Spec) -> Spec:
    """The spec as a range task runs it: Dask's threads are the parallelism, so a task wraps
    on its own thread unless ``[run] workers`` says otherwise. Left at its default (every core
    of the process), each task of a worker would start a pool as large as the machine: one
    "single-threaded" worker already used every core, and more workers only queued for them."""
    if spec.run.workers is not None:
        return spec
    return spec.model_copy(update={"run": spec.run.model_copy(update={"workers": 1})})


class RangeFailed(AuthmigrateError):
    """A range task failed; carries the error's text and exit code across processes."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (RangeFailed, (str(self), self.exit_code))


def run_range(spec: Spec, rng: kr.KeyRange, run_id: str, decided: Decided) -> dict[str, Any]:
    """Run the batch loop on one key range, from its checkpoint to its end (a Dask task).

    Returns the range's counts of this run, its credential schemes and notification segments.
    """
    try:
        return _run_range(spec, rng, run_id, decided)
    except AuthmigrateError as exc:
        raise RangeFailed(f"key range {rng.id}: {exc}", exc.exit_code) from None


def _run_range(spec: Spec, rng: kr.KeyRange, run_id: str, decided: Decided) -> dict[str, Any]:
    from authmigrate.sinks.sql import TargetLock

    m = worker_migration(spec, run_id)
    lock = TargetLock(m.target.engine, m.target.migration, part=f"range-{rng.id}")
    _acquire(lock)
    counts: Counter[str] = Counter()
    schemes: Counter[str] = Counter()
    segments: Counter[str] = Counter()
    try:
        number, after = kr.range_resume(m, rng)
        dupes = DecidedDuplicates(
            spec, lambda g, vals: _lookup(m, g, vals), m.target.key.stored, decided
        )
        for fresh in m.transformed(after, number + 1, rng.upto):
            fresh.range_id = rng.id
            lock.ensure()
            batch = _commit_with_retry(m, fresh, dupes, run_id)
            merged = len(batch.merged)
            counts.update(
                read=batch.rows_read,
                migrated=len(batch.records),
                rejected=len(batch.rejects) - merged,
                merged=merged,
            )
            schemes.update(r.scheme for r in batch.records if r.scheme)
            segments.update(r.segment for r in batch.records)
            segments.update(j.segment for j in batch.merged)
    finally:
        lock.release()
    return {"counts": dict(counts), "schemes": dict(schemes), "segments": dict(segments)}


def _acquire(lock: Any) -> None:
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            lock.acquire()
            return
        except LockError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A Dask client: ``local`` starts a LocalCluster with one single-threaded worker
    process per core; otherwise ``address`` is an existing scheduler (``tcp://host:8786``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - the dask extra is not installed
        raise SpecError(
            "run.dask", "Dask is not installed: pip install 'authmigrate[dask]'"
        ) from None
    if address == "local":
        from authmigrate.pipeline.advice import cores

        # The LocalCluster's scheduler and nannies live in this process and log their
        # start and stop at INFO (about 40 lines around the run's table); keep their
        # warnings and errors only.
        dask_log = logging.getLogger("distributed")
        level = dask_log.level
        dask_log.setLevel(max(level, logging.WARNING))
        try:
            cluster = LocalCluster(
                n_workers=cores(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            )
            try:
                with Client(cluster) as client:
                    yield client
            finally:
                cluster.close()
        finally:
            dask_log.setLevel(level)
        return
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise SpecError("run.dask", f"cannot reach the Dask scheduler {address}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


def run_on_dask(
    spec: Spec,
    address: str,
    *,
    progress: Progress | None = None,
    command: str = "run",
) -> RunResult:
    """Run (or resume) a migration with its key ranges as tasks on a Dask cluster.

    The same guarantees as :func:`authmigrate.pipeline.run_migration`: one transaction per
    batch with its checkpoint, every source row counted once, first in key order wins for
    duplicates, one migration for ``verify``, ``status`` and ``rollback``.

    Raises:
        SpecError: the spec does not fit (or asks for an export, which runs in one process).
        SourceError, TargetError: a database failed beyond the retries.
        LockError: another run of this migration is writing.
    """
    from authmigrate.sinks.sql import TargetLock

    if spec.target.export is not None:
        raise SpecError(
            "run.dask",
            "an export ([target] export) is written by one process: run it without Dask",
        )
    m = Migration(spec)
    lock = TargetLock(m.target.engine, m.target.migration)
    with RunBookkeeping(m, lock) as book:
        lock.acquire()
        m.target.create()
        kr.prepare_target(m.target)
        m.target.start_run(book.run_id, command)
        m.target.backfill_state()
        m.skip_synced = m.target.has_synced()
        total = m.source.count()
        done = m.target.totals()["read"]
        this_run = book.this_run
        with dask_client(address) as client:
            plan = kr.load_ranges(m.target) or _plan(m, client, book.run_id, this_run)
            if progress:
                progress(done + this_run["read"], total)
            decided = decide(client, spec, plan, book.run_id)
            futures = [
                client.submit(
                    run_range,
                    spec,
                    rng,
                    book.run_id,
                    decided.get(rng.id, {}),
                    retries=spec.run.retries,
                    pure=False,
                    key=f"authmigrate-range-{rng.id}-{book.run_id}",
                )
                for rng in plan
            ]
            from distributed import as_completed

            for future in as_completed(futures):
                out = _outcome(client, future, futures)
                lock.ensure()
                this_run.update(out["counts"])
                book.schemes.update(out["schemes"])
                book.segments.update(out["segments"])
                if progress:
                    progress(done + this_run["read"], total)
    return book.finished


def _outcome(client: Any, future: Any, futures: list[Any]) -> dict[str, Any]:
    """A finished range task's result; when it failed for good, the other tasks are cancelled
    (their committed batches stay) and the failure is raised as an :class:`AuthmigrateError`
    (a worker lost again and again surfaces as Dask's ``KilledWorker``)."""
    try:
        out: dict[str, Any] = future.result()
        return out
    except BaseException as exc:
        client.cancel(futures)
        if isinstance(exc, AuthmigrateError | KeyboardInterrupt):
            raise
        from authmigrate.db import first_line

        raise RangeFailed(
            f"a key range task failed on the cluster: {type(exc).__name__}: {first_line(exc)}; "
            "committed batches are kept and a new run resumes every range"
        ) from None


def _plan(m: Migration, client: Any, run_id: str, this_run: Counter[str]) -> list[kr.KeyRange]:
    """Cut and record the ranges of a migration's first run on Dask. Rows with a NULL key
    are rejected first, as batch 1, as in one process; a migration that ran in one process
    before is cut after its checkpoint."""
    number, after = m.resume_point()
    if number == 0:
        nb = m.null_key_batch(1)
        if nb is not None:
            _commit_with_retry(m, nb, None, run_id)
            this_run.update(read=nb.rows_read, rejected=len(nb.rejects))
            number = 1
    threads = sum(client.nthreads().values()) or 1
    count = m.spec.run.ranges or threads * kr.RANGES_PER_THREAD
    batches = -(-max(m.source.count(), 1) // m.spec.run.batch_size)
    count = min(count, batches) if m.spec.run.ranges is None else count
    base = m.target.checkpoint()[0] + 1
    plan = kr.cut(m, count, after, base)
    kr.save_ranges(m.target, plan)
    log.info("cut the key space into %d ranges", len(plan))
    return plan


def worker_pids(client: Any) -> dict[str, int]:
    """``{worker address: pid}`` of the cluster's workers (for tests and operators)."""
    return dict(client.run(os.getpid))
