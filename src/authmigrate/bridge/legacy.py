"""Accounts not migrated yet: found in the legacy source through the spec, carried on login.

::

    identifier ─► not in the target ─► source rows whose lookup column matches (read-only)
               ─► run's own transforms and stages (one :class:`~authmigrate.pipeline.Migration`)
               ─► exactly one account ─► the bridge verifies the password against the
                  credential ``run`` would write
               ─► right password only: ONE target transaction, under the migration's lock:
                  the account (with its upgraded argon2id), the stages' rows (tokens, outbox),
                  a batch row listing its key, its key state, and a ``bridge`` run row

The bookkeeping is what ``sync`` writes for a new key, so a later ``run`` skips the key (it
has a key state), ``sync`` sees no change, ``verify`` counts it migrated and its argon2id as the
new system's (the key state's ``target_fp`` is the credential ``run`` would have written), and
``rollback`` removes it. Nothing is written before a password is verified.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from authmigrate.errors import LockError
from authmigrate.pipeline.batch import Batch, Record
from authmigrate.sinks.sql import TargetLock, encode_key, pack_keys, utcnow
from authmigrate.spec import Spec

log = logging.getLogger("authmigrate.bridge")

CANDIDATES = 20
"""Source rows read per lookup value at most (an identifier names one account)."""

LOCK_WAIT = 2.0
"""Seconds a carry waits for the migration's lock while ``run`` or ``sync`` holds it."""


@dataclass(repr=False)
class Candidate:
    """An account found in the source, transformed as ``run`` would write it; not written."""

    record: Record
    batch: Batch

    def __repr__(self) -> str:  # values hold emails and credentials: never shown
        return "Candidate()"


Normalizer = Callable[[str], Any]


class LegacySource:
    """The legacy source of a migration, opened read-only for the bridge's lookups.

    Args:
        spec: the migration spec (its source, fields, credentials and stages).

    Raises:
        SpecError, SourceError, TargetError: as ``run`` would raise them when opening.
    """

    def __init__(self, spec: Spec) -> None:
        from authmigrate.pipeline.run import Migration, _lookup, build_stages
        from authmigrate.pipeline.stages import DuplicateStage

        self.spec = spec
        self.m = Migration(spec)
        self.m.skip_synced = True  # a key with a key state is accounted for: never again
        # imported, never wrapped, before the password is known: a wrap would spend an
        # argon2id hash on every lookup (a timing difference from an unknown user), and a
        # right password is written as its argon2id upgrade anyway
        self.m.early = build_stages(spec, dry=True)
        self.dupes = DuplicateStage.from_spec(
            spec, lambda g, vals: _lookup(self.m, g, vals), self.m.target.key.stored
        )
        self.cred_column = spec.credentials.target_column if spec.credentials else ""
        self._lock = threading.Lock()

    # -- lookup -----------------------------------------------------------------------------

    def find(self, identifier: str, lookups: list[tuple[str, Normalizer]]) -> Candidate | None:
        """The one not-yet-migrated account ``identifier`` names (first lookup field that
        matches exactly one), transformed and through the stages as ``run`` would write it;
        None when there is none or the migration has not committed a batch yet. Reads only."""
        with self._lock:
            if not self._started():
                return None
            for name, normalize in lookups:
                value = normalize(identifier)
                if value is None:
                    continue
                found = self._find_by(name, identifier, value)
                if found is not None:
                    return found
        return None

    def _started(self) -> bool:
        t = self.m.target
        return t.exists() and t.checkpoint()[0] >= 1

    def _find_by(self, name: str, identifier: str, value: Any) -> Candidate | None:
        rows = self._source_rows(name, identifier, value)
        if not rows:
            return None
        batch = self.m.transform_batch(0, rows)
        batch.records = [r for r in batch.records if _same(r.values.get(name), value)]
        if len(batch.records) != 1:
            return None
        batch.rejects, batch.rows_read = [], 1
        batch.first_key = batch.last_key = batch.records[0].key
        batch.source_rows = None
        with self.m.target.engine.connect() as conn:
            self.m.finish_batch(batch, self.dupes, conn)
        if len(batch.records) != 1 or batch.rejects:
            return None  # run would reject or merge it, or the key is accounted for already
        return Candidate(batch.records[0], batch)

    def _source_rows(self, name: str, identifier: str, value: Any) -> list[dict[str, Any]]:
        f = self.spec.fields[name]
        if f.template is not None or f.value is not None:
            return []
        column = f.from_ or name
        wanted = list(dict.fromkeys([identifier.strip(), str(value).strip()]))
        source = self.m.source
        from authmigrate.sources.sql import SqlSource

        if isinstance(source, SqlSource):
            return source.rows_matching(column, wanted, CANDIDATES)
        folded = {w.casefold() for w in wanted}
        found: list[dict[str, Any]] = []
        for rows in self.m.pages(None):  # a file source: read through once
            found.extend(r for r in rows if str(r.get(column, "")).strip().casefold() in folded)
            if len(found) >= CANDIDATES:
                break
        return found[:CANDIDATES]

    # -- the write --------------------------------------------------------------------------

    def carry(self, candidate: Candidate, credential: str | None) -> bool:
        """Write a verified account with ``credential`` (its upgrade) and its bookkeeping in
        one transaction, under the migration's lock. False, writing nothing, when the key
        was carried meanwhile (another login, a ``run``, a ``sync``).

        Raises:
            LockError: ``run`` or ``sync`` held the lock for :data:`LOCK_WAIT` seconds.
        """
        with self._lock:
            lock = self._take_lock()
            try:
                return self._carry(candidate, credential)
            finally:
                lock.release()

    def _take_lock(self) -> TargetLock:
        t = self.m.target
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            lock = TargetLock(t.engine, t.migration)
            try:
                lock.acquire()
                return lock
            except LockError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _carry(self, candidate: Candidate, credential: str | None) -> bool:
        from authmigrate.sinks.state import load_states

        t, rec, batch = self.m.target, candidate.record, candidate.batch
        with t.engine.connect() as conn:
            if load_states(conn, t.state, t.migration, [rec.key]):
                return False
            if t.existing_keys(conn, [rec.key]):
                return False
        number, last = t.checkpoint()
        number += 1
        batch.number = number
        states = t.state_rows(batch)  # target_fp: the credential run would have written
        if self.cred_column:
            rec.values[self.cred_column] = credential
        mark = None if last is None else encode_key(last)
        try:
            self._write(rec=rec, batch=batch, states=states, number=number, mark=mark)
        except sa.exc.IntegrityError:
            return False  # the key or a unique value arrived meanwhile (the new system)
        return True

    def _write(
        self,
        *,
        rec: Record,
        batch: Batch,
        states: list[dict[str, Any]],
        number: int,
        mark: str | None,
    ) -> None:
        from authmigrate.sinks.state import upsert_states

        t = self.m.target
        run_id = str(uuid.uuid4())
        now = utcnow()
        with t.engine.begin() as conn:
            conn.execute(
                t.runs.insert(),
                {
                    "run_id": run_id,
                    "migration": t.migration,
                    "command": "bridge",
                    "spec_hash": self.spec.fingerprint(),
                    "started_at": now,
                    "ended_at": now,
                    "status": "done",
                    "rows_read": 1,
                    "migrated": 1,
                    "rejected": 0,
                    "merged": 0,
                },
            )
            t._insert(conn, [rec.values])  # noqa: SLF001 - the sink's own insert, as sync
            for stage in t.stages:
                stage.write(conn, batch, run_id)
            conn.execute(
                t.batches.insert(),
                {
                    "migration": t.migration,
                    "batch_no": number,
                    "run_id": run_id,
                    "first_key": mark,
                    "last_key": mark,
                    "rows_read": 1,
                    "migrated": 1,
                    "rejected": 0,
                    "merged": 0,
                    "written_keys": pack_keys([rec.key]),
                    "committed_at": now,
                },
            )
            upsert_states(conn, t.state, t.migration, states)

    def close(self) -> None:
        """Release the source's and the target's connections."""
        self.m.close()


def _same(found: Any, wanted: Any) -> bool:
    if found is None:
        return False
    if isinstance(wanted, str):
        return isinstance(found, str) and found == wanted
    return bool(found == wanted)
