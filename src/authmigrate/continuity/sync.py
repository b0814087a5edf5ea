"""``authmigrate sync``: carry what changed on the legacy side since the last run or sync.

Three detectors, the strongest available wins:

1. **Change column** (``[sync] changed_column``): rows with ``changed_column >= watermark -
   overlap`` are read; the watermark is the *source database's* clock, read when the previous
   pass began, so clock skew between machines and transactions that commit late (inside the
   overlap) are read again.
2. **Fingerprints**: every key the migration accounted for has a fingerprint of its mapped
   source values in ``authmigrate_key_state`` (written by ``run`` and ``sync`` in the batch
   transaction). A row read again without a real change is a no-op. A full pass (``--full``,
   and every sync when there is no change column) reads the source chunk by chunk in key order
   and compares each chunk's fingerprints with the stored ones (one indexed lookup per chunk):
   memory is one chunk.
3. **Keys**: source keys the bookkeeping does not know (new keys anywhere, also below the
   checkpoint: text keys, UUIDs, gaps; NULL-key rows added later), and bookkeeping keys the
   source no longer has (deletes, handled by ``[sync] on_delete``).

Each chunk's changes are applied in ONE target transaction with their bookkeeping: new accounts
(through every stage, like ``run``: credentials, duplicates, tokens, outbox), updated accounts
(fields and, by the conflict rules below, the credential), rejects moved or cleared, key state
and a batch row whose ``written_keys`` lists the accounts sync inserted, so that ``verify``
holds after every sync and ``rollback`` still removes exactly what the migration wrote.

Conflict rules for an account whose legacy row changed:

- the credential changed and the target still holds the value the migration wrote: replaced;
- the credential changed but the new system changed it too since the migration wrote it (an
  upgrade to argon2id on login by ``verify_and_update``, a reset): the newer change wins when
  both sides carry a time (``[sync] password_changed_at`` in the source,
  ``target_password_changed_at`` in the target), otherwise the new system wins; each one is
  listed in :attr:`SyncResult.conflicts`;
- another field changed (an email): updated with ``run``'s rules: a value another account holds
  is a reject (``duplicate.email``), the account keeps its last good values (state ``held``);
- a row rejected earlier whose fingerprint changed is tried again and, if it passes now,
  migrated and cleared from the rejects.

Keys are the legacy key, never an email: an email change updates the same account.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from authmigrate.db import first_line, sqlite_file
from authmigrate.errors import AuthmigrateError, LockError, SpecError, TargetError
from authmigrate.pipeline.batch import Batch, Record, Reject
from authmigrate.pipeline.run import Migration
from authmigrate.pipeline.stages import DuplicateStage, group_value
from authmigrate.pipeline.transform import source_columns_used
from authmigrate.sinks.sql import SqlTarget, TargetLock, encode_key, pack_keys, raw_row, utcnow
from authmigrate.sinks.state import (
    FingerprintLookup,
    fingerprint,
    key_of,
    load_states,
    state_key,
    upsert_states,
    value_fp,
)
from authmigrate.sources.sql import SqlSource
from authmigrate.spec import Spec

log = logging.getLogger("authmigrate")

CHUNK = 5000
"""Source rows compared per chunk (and applied per transaction)."""

_IN_LIST = 500

Stop = Callable[[], bool]
"""Asked between chunks: True finishes the pass early (the chunk in flight is committed)."""


@dataclass
class Conflict:
    """A legacy password change that met a change made by the new system."""

    key: Any
    winner: str
    """``new-system`` (the target's credential is kept) or ``legacy`` (replaced)."""
    reason: str


@dataclass
class SyncResult:
    """What one sync pass found and did; keys are legacy keys."""

    migration: str
    run_id: str = ""
    mode: str = "full"
    """``full`` (fingerprints of every row) or ``changed`` (change column + key pass)."""
    status: str = "running"
    compared: int = 0
    """Source rows whose fingerprint was compared."""
    inserted: list[Any] = field(default_factory=list)
    """New keys migrated (also below the checkpoint), and rows rejected before, migrated now."""
    updated: list[Any] = field(default_factory=list)
    retried: list[Any] = field(default_factory=list)
    """Keys rejected earlier and migrated now (also in ``inserted``)."""
    rejected: dict[Any, str] = field(default_factory=dict)
    """Key -> reason code: new rows rejected, and changes held back (the account keeps its last
    good values)."""
    deleted: dict[Any, str] = field(default_factory=dict)
    """Key -> what was done: ``disabled``, ``deleted``, ``kept`` or ``reject cleared``."""
    restored: list[Any] = field(default_factory=list)
    """Keys deleted in the source earlier and back now."""
    conflicts: list[Conflict] = field(default_factory=list)
    null_key_rows: int = 0
    """Change in the number of NULL-key rows (rejected, as in ``run``)."""
    seconds: float = 0.0
    watermark: str | None = None

    @property
    def changes(self) -> int:
        """Everything this pass applied: 0 means the target was already in step."""
        return (
            len(self.inserted)
            + len(self.updated)
            + len(self.rejected)
            + len(self.deleted)
            + len(self.restored)
            + abs(self.null_key_rows)
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (keys, reason codes and counts; never a value)."""
        return {
            "migration": self.migration,
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "compared": self.compared,
            "changes": self.changes,
            "inserted": self.inserted,
            "updated": self.updated,
            "retried": self.retried,
            "rejected": [{"key": k, "reason": r} for k, r in self.rejected.items()],
            "deleted": [{"key": k, "action": a} for k, a in self.deleted.items()],
            "restored": self.restored,
            "conflicts": [
                {"key": c.key, "winner": c.winner, "reason": c.reason} for c in self.conflicts
            ],
            "null_key_rows": self.null_key_rows,
            "watermark": self.watermark,
            "seconds": round(self.seconds, 3),
        }


# counts a key contributes to the batch totals in each state: (read, migrated, rejected, merged)
_COUNTS: dict[str | None, tuple[int, int, int, int]] = {
    None: (0, 0, 0, 0),
    "deleted": (0, 0, 0, 0),
    "migrated": (1, 1, 0, 0),
    "held": (1, 0, 1, 0),
    "rejected": (1, 0, 1, 0),
    "merged": (1, 0, 0, 1),
}


def is_upgraded(credential: str | None) -> bool:
    """True for a plain argon2id hash, or one inside a ``$login-rule$`` form: what the new
    system's ``verify_and_update`` writes on login."""
    if not credential:
        return False
    return credential.startswith("$argon2id$") or (
        credential.startswith("$login-rule$") and "$argon2id$" in credential
    )


class _Source:
    """What ``sync`` reads from the source beyond the paging every run does (keys only,
    changed rows, rows by key, the database's clock), through the source's own methods: the
    source's read-only engine, its error handling, and only the columns the spec reads plus
    ``[sync]``'s own (see :func:`sync_columns`)."""

    def __init__(self, m: Migration) -> None:
        self.m = m
        self.source = m.source
        self.is_file = m.spec.source.is_file

    def _sql(self) -> SqlSource:
        assert isinstance(self.source, SqlSource), "a change column needs a database source"
        return self.source

    def key_pages(self, size: int) -> Iterator[list[Any]]:
        after: Any = None
        while keys := self.source.key_page(after, size):
            yield keys
            after = keys[-1]

    def existing(self, keys: list[Any]) -> set[str]:
        """The keys (in :func:`state_key` form) of these that the source still has."""
        return {state_key(k) for k in self.source.keys_in(keys)}

    def rows_by_key(self, keys: list[Any]) -> list[dict[str, Any]]:
        return self.source.rows_by_key(keys)

    def changed_pages(self, column: str, since: Any, size: int) -> Iterator[list[dict[str, Any]]]:
        key = self.m.spec.source.key
        after: Any = None
        while rows := self._sql().changed_page(column, since, after, size):
            yield rows
            after = rows[-1][key]

    def clock(self, column: str) -> Any:
        """The source database's current time, in the form ``column`` holds."""
        return self._sql().clock(column)

    def mark(self, column: str) -> Any:
        """The watermark of a pass starting now: the source database's clock, or the newest
        value ``column`` holds when that is earlier. A shop that stamps its rows in its own
        zone behind UTC (PrestaShop's ``date_upd`` from PHP's ``date()``, a ``timestamp``
        column filled with ``LOCALTIMESTAMP`` in a New York database), or from an app server
        whose clock lags, writes times below the database's UTC clock: a watermark on that
        clock would pass over every change of the next hours."""
        clock = self.clock(column)
        newest = self._sql().newest(column)
        if _is_number(newest):
            # a Unix time (Drupal's ``changed``): the clock in the column's own units
            seconds = _as_time(clock).replace(tzinfo=dt.UTC).timestamp()
            now = int(seconds) * _epoch_units(newest)
            return newest if newest < now else now
        if newest is None:
            return None  # no row has a change time yet: every pass is a full one until then
        try:
            earlier = _as_time(newest) < _as_time(clock)
        except (TypeError, ValueError, OverflowError):
            return clock
        if earlier:
            return newest
        if isinstance(newest, str) and not isinstance(clock, str):
            # a text column is compared with text (PostgreSQL has no text >= timestamp)
            return _as_time(clock).strftime("%Y-%m-%d %H:%M:%S")
        return clock


def sync_columns(spec: Spec) -> list[str]:
    """The source columns ``sync`` reads: those the spec maps, and ``[sync]``'s change and
    password-change columns (read, never fingerprinted: a row whose change time alone moved
    is no change)."""
    extra = [spec.sync.changed_column, spec.sync.password_changed_at]
    return [*source_columns_used(spec), *(c for c in extra if c)]


_EPOCH_MS = 10**11
"""A Unix time above this is in milliseconds (10**11 seconds is the year 5138)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def _epoch_units(value: Any) -> int:
    """1 for a Unix time in seconds, 1000 for one in milliseconds."""
    return 1000 if abs(value) >= _EPOCH_MS else 1


def _shift(mark: Any, seconds: int) -> Any:
    """A source clock value moved back by ``seconds`` (text stays text, in the same form; a
    Unix time stays a number in its own units)."""
    if isinstance(mark, dt.datetime):
        return mark - dt.timedelta(seconds=seconds)
    if _is_number(mark):
        return mark - seconds * _epoch_units(mark)
    parsed = dt.datetime.fromisoformat(str(mark))
    return (parsed - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def _since(previous: str, mark: Any, overlap: int) -> Any:
    """Where a changed pass starts: the previous watermark less the overlap, or None (a full
    pass, which sets a new watermark) when the previous one is of another form than the
    column holds now (its values changed from times to Unix seconds, or back)."""
    try:
        return _shift(_decode_mark(previous, mark), overlap)
    except (ValueError, TypeError, ArithmeticError):
        return None


def _encode_mark(mark: Any) -> str:
    return mark.isoformat() if isinstance(mark, dt.datetime) else str(mark)


def _decode_mark(text: str, like: Any) -> Any:
    if isinstance(like, dt.datetime):
        return dt.datetime.fromisoformat(text)
    if _is_number(like):
        return decimal.Decimal(text) if "." in text else int(text)
    return text


class _Syncer:
    """One sync pass over one migration (holding its lock)."""

    def __init__(self, m: Migration, run_id: str, result: SyncResult, stop: Stop) -> None:
        self.m = m
        self.spec: Spec = m.spec
        self.target: SqlTarget = m.target
        self.run_id = run_id
        self.result = result
        self.stop = stop
        self.src = _Source(m)
        self.keys_read = 0
        """Source keys this pass read (every one has a live key state once applied)."""
        self.key = self.spec.source.key
        self.table = self.target.table
        self.form = self.target.key
        """The target key column's codec (sinks/keys.py): every key sync compares with the
        target, or binds against its key column, goes through ``form.stored``, as in ``run``."""
        self.tkey = self.form.column(self.table.c[self.spec.target_key])
        self.cred = self.spec.credentials
        self._columns = self._target_columns()
        self.dupes = DuplicateStage.from_spec(self.spec, self._lookup)
        self.fingerprints = FingerprintLookup(
            self.target.state, self.target.migration, self.target.engine.dialect
        )

    # -- the target's own columns ---------------------------------------------------------

    def _target_columns(self) -> set[str]:
        insp = sa.inspect(self.target.engine)
        return {c["name"] for c in insp.get_columns(self.table.name, schema=self.table.schema)}

    def ensure_disabled_column(self) -> None:
        """``on_delete = "disable"`` needs a boolean column in the target: added if missing."""
        name = self.spec.sync.disabled_column
        if name in self._columns and name not in self.table.c:
            self.table.append_column(sa.Column(name, sa.Boolean))
        if self.spec.sync.on_delete != "disable" or name in self._columns:
            return
        col = sa.Column(name, sa.Boolean, nullable=False, server_default=sa.false())
        ddl = sa.schema.CreateColumn(col).compile(dialect=self.target.engine.dialect)
        with self.target.engine.begin() as conn:
            preparer = self.target.engine.dialect.identifier_preparer
            conn.exec_driver_sql(f"ALTER TABLE {preparer.format_table(self.table)} ADD {ddl}")
        self._columns.add(name)
        self.table.append_column(sa.Column(name, sa.Boolean))

    def _tkey(self, key: Any) -> Any:
        """A legacy (or bookkeeping, or target) key as the target's key column holds it."""
        return self.form.stored(key)

    def _lookup(self, group: tuple[str, ...], values: list[Any]) -> dict[Any, Any]:
        with self.target.engine.connect() as conn:
            return self.target.existing(conn, group, values)

    # -- passes ----------------------------------------------------------------------------

    def full_pass(self) -> bool:
        """Every source row, chunk by chunk. Returns False when stopped early."""
        for rows in self.m.pages(None):
            self.keys_read += len(rows)
            self.apply(rows)
            if self.stop():
                return False
        return True

    def changed_pass(self, since: Any) -> bool:
        column = self.spec.sync.changed_column
        assert column is not None
        for rows in self.src.changed_pages(column, since, CHUNK):
            self.apply(rows)
            if self.stop():
                return False
        return True

    def key_pass(self) -> bool:
        """Keys only: new keys (and keys back after a delete), fetched and applied."""
        with self.target.engine.connect() as conn:
            for keys in self.src.key_pages(CHUNK):
                self.keys_read += len(keys)
                known = load_states(conn, self.target.state, self.target.migration, keys)
                fresh = [
                    k
                    for k in keys
                    if (st := known.get(state_key(k))) is None or st.state == "deleted"
                ]
                if fresh:
                    self.apply(self.src.rows_by_key(fresh))
                if self.stop():
                    return False
        return True

    # -- one chunk ------------------------------------------------------------------------

    def apply(self, rows: list[dict[str, Any]], *, force: bool = False) -> None:
        """Compare a chunk with its key state and apply what changed, in one transaction
        (``force``: every row, changed or not)."""
        if not rows:
            return
        cols, key = self.target.fp_columns, self.key
        stored = [state_key(r[key]) for r in rows]
        with self.target.engine.connect() as conn:
            known = self.fingerprints(conn, stored)
        self.result.compared += len(rows)
        fresh: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for row, sk in zip(rows, stored, strict=True):
            got = known.get(sk)
            if got is None:
                fresh.append(row)
            elif force or got[0] == "deleted" or got[1] != fingerprint(row, cols):
                changed.append(row)
        if not fresh and not changed:
            return
        with self.target.engine.connect() as conn:
            states = load_states(
                conn, self.target.state, self.target.migration, [r[key] for r in changed]
            )
        inserts: list[dict[str, Any]] = list(fresh)
        updates: list[tuple[dict[str, Any], Any]] = []
        present = self._present(
            [r[key] for r in changed if states[state_key(r[key])].state == "deleted"]
        )
        for row in changed:
            st = states[state_key(row[key])]
            if st.state in ("migrated", "held") or (
                st.state == "deleted" and self._tkey(row[key]) in present
            ):
                updates.append((row, st))
            else:
                inserts.append(row)
        self._commit(inserts, updates, states)

    def _present(self, keys: list[Any]) -> set[Any]:
        """The stored forms of those ``keys`` the target's table holds."""
        if not keys:
            return set()
        with self.target.engine.connect() as conn:
            found = conn.execute(
                sa.select(self.tkey).where(self.tkey.in_([self._tkey(k) for k in keys]))
            ).scalars()
            return {self._tkey(k) for k in found}

    def _commit(
        self,
        inserts: list[dict[str, Any]],
        updates: list[tuple[dict[str, Any], Any]],
        states: dict[str, Any],
    ) -> None:
        retries = self.spec.run.retries
        for attempt in range(retries + 1):
            try:
                self._commit_once(inserts, updates, states)
                return
            except sa.exc.IntegrityError as exc:
                # the live target took a value between our check and our write: do it again
                if attempt == retries:
                    raise TargetError(
                        f"sync kept violating a constraint of the target: {first_line(exc)}"
                    ) from None
            except sa.exc.DBAPIError as exc:
                transient = bool(exc.connection_invalidated) or isinstance(
                    exc, sa.exc.OperationalError | sa.exc.InterfaceError
                )
                if not transient or attempt == retries:
                    raise TargetError(
                        f"sync failed writing the target: {first_line(exc)}"
                    ) from None
            time.sleep(min(0.2 * 2**attempt, 5.0))

    def _commit_once(
        self,
        inserts: list[dict[str, Any]],
        updates: list[tuple[dict[str, Any], Any]],
        states: dict[str, Any],
    ) -> None:
        number = self.target.checkpoint()[0] + 1
        fresh = self._prepare_inserts(number, inserts)
        changed, held, conflicts, current = self._prepare_updates(number, updates)
        cols, creds = self.target.fp_columns, self.target.cred_columns
        cred_target = self.cred.target_column if self.cred else None
        new_states: dict[str, dict[str, Any]] = {}
        now = utcnow()

        def state_row(row: dict[str, Any], state: str, target_fp: str | None) -> None:
            new_states[state_key(row[self.key])] = {
                "source_key": state_key(row[self.key]),
                "state": state,
                "fingerprint": fingerprint(row, cols),
                "credential_fp": fingerprint(row, creds) if creds else None,
                "target_fp": target_fp,
                "changed_at": now,
            }

        for rec in fresh.records:
            state_row(rec.source, "migrated", value_fp(rec.values.get(cred_target or "")))
        for j in fresh.rejects:
            state_row(j.source, j.outcome, None)
        for rec, keep_fp in changed:
            tfp = keep_fp if keep_fp is not False else value_fp(rec.values.get(cred_target or ""))
            state_row(rec.source, "migrated", tfp)
        for j in held:
            old = states.get(state_key(j.key))
            state_row(j.source, "held", old.target_fp if old is not None else None)
        delta = Counter[str]()
        for sk, new in new_states.items():
            old = states.get(sk)
            before = _COUNTS[old.state if old is not None else None]
            after = _COUNTS[new["state"]]
            for name, b, a in zip(
                ("read", "migrated", "rejected", "merged"), before, after, strict=True
            ):
                delta[name] += a - b
        with self.target.engine.begin() as conn:
            self._clear_rejects(conn, [k for k in new_states if k in states])
            if fresh.records:
                self.target._insert(conn, [r.values for r in fresh.records])  # noqa: SLF001
            back = {
                state_key(rec.key)
                for rec, _ in changed
                if (old := states.get(state_key(rec.key))) is not None and old.state == "deleted"
            }
            self._write_updates(conn, [rec for rec, _ in changed], back)
            self._write_rejects(conn, number, [*fresh.rejects, *held])
            for stage in self.target.stages:
                stage.write(conn, fresh, self.run_id)
            self._batch_row(conn, number, delta, [r.key for r in fresh.records])
            upsert_states(conn, self.target.state, self.target.migration, list(new_states.values()))
        res = self.result
        for rec in fresh.records:
            res.rejected.pop(rec.key, None)  # tried again later in the pass, and through now
            old = states.get(state_key(rec.key))
            if old is not None and old.state == "deleted":
                res.restored.append(rec.key)
            else:
                res.inserted.append(rec.key)
                if old is not None:
                    res.retried.append(rec.key)
        for rec, _ in changed:
            again = res.rejected.pop(rec.key, None) is not None
            old = states.get(state_key(rec.key))
            done = res.restored if old is not None and old.state == "deleted" else res.updated
            if not (again and rec.key in done):
                done.append(rec.key)
        for j in [*fresh.rejects, *held]:
            sk = state_key(j.key)
            old, new = states.get(sk), new_states[sk]
            if old is not None and (old.state, old.fingerprint) == (
                new["state"],
                new["fingerprint"],
            ):
                continue  # tried again unchanged (retry_duplicates) and the same outcome: no news
            res.rejected[j.key] = j.reason
        res.conflicts.extend(conflicts)

    def _prepare_inserts(self, number: int, rows: list[dict[str, Any]]) -> Batch:
        batch = self.m.transform_batch(number, rows)
        if rows:
            with self.target.engine.connect() as conn:
                self.m.finish_batch(batch, self.dupes, conn)
        return batch

    def _prepare_updates(
        self, number: int, updates: list[tuple[dict[str, Any], Any]]
    ) -> tuple[list[tuple[Record, Any]], list[Reject], list[Conflict], dict[Any, dict[str, Any]]]:
        """Transform changed rows, check credentials and unique values, apply the conflict
        rules. Returns (records to update with the target_fp to keep, or False to take the new
        one), held rejects, conflicts, and the current target values by key id."""
        if not updates:
            return [], [], [], {}
        batch = self.m.transform_batch(number, [row for row, _ in updates])
        for stage in self.m.early:
            stage.process(batch)
        own = {
            group: {group_value(r.values, group): r.key for r in batch.records}
            for group in self.dupes.groups
        }

        def lookup(group: tuple[str, ...], values: list[Any]) -> dict[Any, Any]:
            found = self._lookup(group, values)
            mine = own.get(group, {})
            return {
                v: k
                for v, k in found.items()
                if not (v in mine and self._tkey(mine[v]) == self._tkey(k))
            }

        DuplicateStage.from_spec(self.spec, lookup).process(batch)
        held = [
            Reject(
                j.key,
                j.reason,
                j.column,
                j.detail,
                j.source,
                outcome="rejected",
                merged_into=j.merged_into,
            )
            for j in batch.rejects
        ]
        current = self._current([r.key for r in batch.records])
        old_states = {state_key(row[self.key]): st for row, st in updates}
        out: list[tuple[Record, Any]] = []
        conflicts: list[Conflict] = []
        for rec in batch.records:
            st = old_states[state_key(rec.key)]
            keep, conflict = self._credential_rule(rec, st, current.get(self._tkey(rec.key), {}))
            if conflict is not None:
                conflicts.append(conflict)
            out.append((rec, keep))
        return out, held, conflicts, current

    def _current(self, keys: list[Any]) -> dict[Any, dict[str, Any]]:
        names = [c for c in self._credential_columns() if c in self._columns]
        if not names or not keys:
            return {}
        cols = [self.table.c[c] if c in self.table.c else sa.column(c) for c in names]
        out: dict[Any, dict[str, Any]] = {}
        with self.target.engine.connect() as conn:
            for i in range(0, len(keys), _IN_LIST):
                part = [self._tkey(k) for k in keys[i : i + _IN_LIST]]
                stmt = sa.select(self.tkey, *cols).select_from(self.table)
                for row in conn.execute(stmt.where(self.tkey.in_(part))):
                    out[self._tkey(row[0])] = dict(zip(names, row[1:], strict=True))
        return out

    def _credential_columns(self) -> list[str]:
        if self.cred is None:
            return []
        return [
            self.cred.target_column,
            self.cred.reset_column,
            self.spec.sync.target_password_changed_at,
        ]

    def _credential_rule(
        self, rec: Record, st: Any, now: dict[str, Any]
    ) -> tuple[Any, Conflict | None]:
        """Decide the credential of a changed account. Returns (target_fp to keep, or False to
        record the new credential's, and the conflict if there was one)."""
        if self.cred is None:
            return False, None
        creds = self.target.cred_columns
        cols = (self.cred.target_column, self.cred.reset_column)
        if fingerprint(rec.source, creds) == st.credential_fp:
            for c in cols:  # the legacy password did not change: the target's stays
                rec.values.pop(c, None)
            return st.target_fp, None
        stored = now.get(self.cred.target_column)
        changed_there = (
            value_fp(stored) != st.target_fp if st.target_fp is not None else is_upgraded(stored)
        )
        if not changed_there:
            return False, None  # the target still holds what we wrote: replace it
        legacy_at = _time_or_none(
            rec.source.get(self.spec.sync.password_changed_at)
            if self.spec.sync.password_changed_at
            else None
        )
        target_at = _time_or_none(now.get(self.spec.sync.target_password_changed_at))
        if legacy_at is not None and target_at is not None:
            newer = legacy_at > target_at
            if newer:
                return False, Conflict(
                    rec.key, "legacy", "changed on both sides; the legacy change is newer"
                )
            reason = "changed on both sides; the new system's change is newer"
        else:
            reason = "changed on both sides; no time on both sides, the new system wins"
        for c in cols:
            rec.values.pop(c, None)
        return st.target_fp, Conflict(rec.key, "new-system", reason)

    # -- writes -----------------------------------------------------------------------------

    def _clear_rejects(self, conn: sa.Connection, stored_keys: list[str]) -> None:
        r = self.target.rejects
        for i in range(0, len(stored_keys), _IN_LIST):
            conn.execute(
                r.delete().where(
                    r.c.migration == self.target.migration,
                    r.c.source_key.in_(stored_keys[i : i + _IN_LIST]),
                )
            )

    def _write_updates(self, conn: sa.Connection, records: list[Record], back: set[str]) -> None:
        """Update changed accounts; ``back`` (stored keys) are keys deleted in the source
        earlier and back now: only they are enabled again (an account disabled by ``sunset``
        or by the new system stays disabled when its legacy row changes)."""
        disabled = self.spec.sync.disabled_column
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for rec in records:
            values = {c: v for c, v in rec.values.items() if c != self.spec.target_key}
            if disabled in self._columns and state_key(rec.key) in back:
                values[disabled] = False
            names = tuple(sorted(values))
            params = {f"v_{c}": values[c] for c in names}
            params["k_key"] = self._tkey(rec.key)
            groups.setdefault(names, []).append(params)
        for names, batch in groups.items():
            stmt = (
                self.table.update()
                .where(self.tkey == sa.bindparam("k_key"))
                .values({c: sa.bindparam(f"v_{c}", type_=self._type(c)) for c in names})
            )
            conn.execute(stmt, batch)

    def _type(self, name: str) -> Any:
        return self.table.c[name].type if name in self.table.c else sa.Boolean()

    def _write_rejects(self, conn: sa.Connection, number: int, rejects: list[Reject]) -> None:
        self.target.write_rejects(conn, self.run_id, number, rejects, self.m.redact)

    def _batch_row(
        self, conn: sa.Connection, number: int, delta: Counter[str], written: list[Any]
    ) -> None:
        """A bookkeeping batch row: the keys sync inserted (for rollback and verify) and the
        change in the totals; the checkpoint (last key) stays where the run left it."""
        _, last = self.target.checkpoint()
        mark = None if last is None else encode_key(last)
        conn.execute(
            self.target.batches.insert(),
            {
                "migration": self.target.migration,
                "batch_no": number,
                "run_id": self.run_id,
                "first_key": mark,
                "last_key": mark,
                "rows_read": delta["read"],
                "migrated": delta["migrated"],
                "rejected": delta["rejected"],
                "merged": delta["merged"],
                "written_keys": pack_keys(written),
                "committed_at": utcnow(),
            },
        )

    # -- deletes and NULL keys --------------------------------------------------------------

    def deletes(self) -> None:
        """Bookkeeping keys the source no longer has, handled by ``[sync] on_delete``: the
        key state is read in pages and each page's keys looked up in the source (memory stays
        one page, whatever the size of the table)."""
        st = self.target.state
        after = ""
        gone: list[Any] = []
        with self.target.engine.connect() as conn:
            live = conn.execute(
                sa.select(sa.func.count()).where(
                    st.c.migration == self.target.migration, st.c.state != "deleted"
                )
            ).scalar_one()
            if live == self.keys_read:
                # every key the pass read has a live state now, so a live state whose key
                # the source lacks would make the count larger: nothing was deleted
                return
            while True:
                page = conn.execute(
                    sa.select(st.c.source_key, st.c.state)
                    .where(
                        st.c.migration == self.target.migration,
                        st.c.state != "deleted",
                        st.c.source_key > after,
                    )
                    .order_by(st.c.source_key)
                    .limit(CHUNK)
                ).all()
                if not page:
                    break
                there = self.src.existing([key_of(r.source_key) for r in page])
                gone.extend(row for row in page if row.source_key not in there)
                after = page[-1].source_key
        for i in range(0, len(gone), _IN_LIST):
            self._delete(gone[i : i + _IN_LIST])

    def _delete(self, rows: list[Any]) -> None:
        action = self.spec.sync.on_delete
        accounts = [key_of(r.source_key) for r in rows if r.state in ("migrated", "held")]
        delta = Counter[str]()
        for r in rows:
            for name, b in zip(
                ("read", "migrated", "rejected", "merged"), _COUNTS[r.state], strict=True
            ):
                delta[name] -= b
        number = self.target.checkpoint()[0] + 1
        st = self.target.state
        with self.target.engine.begin() as conn:
            tkeys = [self._tkey(k) for k in accounts]
            if tkeys and action == "disable":
                conn.execute(
                    self.table.update()
                    .where(self.tkey.in_(tkeys))
                    .values({self.spec.sync.disabled_column: True})
                )
            elif tkeys and action == "delete":
                conn.execute(self.table.delete().where(self.tkey.in_(tkeys)))
            self._clear_rejects(conn, [r.source_key for r in rows if r.state != "migrated"])
            conn.execute(
                st.update()
                .where(
                    st.c.migration == self.target.migration,
                    st.c.source_key.in_([r.source_key for r in rows]),
                )
                .values(state="deleted", changed_at=utcnow())
            )
            self._batch_row(conn, number, delta, [])
        done = {"disable": "disabled", "delete": "deleted", "keep": "kept"}[action]
        for r in rows:
            self.result.deleted[key_of(r.source_key)] = (
                done if r.state in ("migrated", "held") else "reject cleared"
            )

    def retry_duplicates(self) -> None:
        """Rows merged into, held or rejected as duplicates of an account whose value may be
        free now are tried again:

        - the account is gone from the target (its key deleted in the source, with
          ``on_delete = "delete"``): a key the shop renumbered, or a customer who closed their
          account and signed up again with the same email, ends with an account of their own,
          not merged into one that no longer exists;
        - the account was updated or deleted by this pass: an email change that waited for
          the other account to move to a new email goes through in the pass that carries
          that move, not never.
        """
        rj = self.target.rejects
        moved = sorted({state_key(k) for k in [*self.result.updated, *self.result.deleted]})
        keys: dict[str, Any] = {}
        with self.target.engine.connect() as conn:
            for i in range(0, len(moved), _IN_LIST):
                for k in conn.execute(
                    sa.select(rj.c.source_key).where(
                        rj.c.migration == self.target.migration,
                        rj.c.reason.like("duplicate.%"),
                        rj.c.source_key.is_not(None),
                        rj.c.merged_into.in_(moved[i : i + _IN_LIST]),
                    )
                ).scalars():
                    keys.setdefault(k, key_of(k))
        keys.update((k, key_of(k)) for k in self._duplicates_of_gone_accounts())
        todo = list(keys.values())
        for i in range(0, len(todo), CHUNK):
            self.apply(self.src.rows_by_key(todo[i : i + CHUNK]), force=True)

    def _duplicates_of_gone_accounts(self) -> list[str]:
        """Stored keys of duplicates whose first account's key was deleted in the source and
        whose account is gone from the target."""
        rj, st = self.target.rejects, self.target.state
        with self.target.engine.connect() as conn:
            pairs = conn.execute(
                sa.select(rj.c.source_key, rj.c.merged_into)
                .join(
                    st,
                    sa.and_(st.c.migration == rj.c.migration, st.c.source_key == rj.c.merged_into),
                )
                .where(
                    rj.c.migration == self.target.migration,
                    rj.c.reason.like("duplicate.%"),
                    rj.c.source_key.is_not(None),
                    st.c.state == "deleted",
                )
            ).all()
        if not pairs:
            return []
        present = self._present([key_of(holder) for _, holder in pairs])
        return [k for k, holder in pairs if self._tkey(key_of(holder)) not in present]

    def null_keys(self) -> None:
        """NULL-key rows are rejected, as in ``run``; the set is replaced when it changed."""
        rows = list(self.m.source.null_key_rows())
        now = sorted(raw_row(r, self.m.redact) for r in rows)
        rj = self.target.rejects
        where = (
            rj.c.migration == self.target.migration,
            rj.c.source_key.is_(None),
            rj.c.reason == "source.null_key",
        )
        with self.target.engine.connect() as conn:
            before = sorted(
                r or "" for r in conn.execute(sa.select(rj.c.raw).where(*where)).scalars()
            )
        if before == now:
            return
        number = self.target.checkpoint()[0] + 1
        delta = Counter({"read": len(now) - len(before), "rejected": len(now) - len(before)})
        rejects = [Reject(None, "source.null_key", self.key, "the key is NULL", r) for r in rows]
        with self.target.engine.begin() as conn:
            conn.execute(rj.delete().where(*where))
            self._write_rejects(conn, number, rejects)
            self._batch_row(conn, number, delta, [])
        self.result.null_key_rows += len(now) - len(before)

    # -- the watermark ----------------------------------------------------------------------

    def watermark(self) -> str | None:
        marks = self.target.watermarks
        with self.target.engine.connect() as conn:
            return conn.execute(
                sa.select(marks.c.watermark).where(marks.c.migration == self.target.migration)
            ).scalar()

    def save_watermark(self, mark: Any) -> None:
        marks = self.target.watermarks
        with self.target.engine.begin() as conn:
            conn.execute(marks.delete().where(marks.c.migration == self.target.migration))
            conn.execute(
                marks.insert(),
                {
                    "migration": self.target.migration,
                    "watermark": _encode_mark(mark),
                    "updated_at": utcnow(),
                },
            )


def count_unsynced(m: Migration) -> int:
    """Source keys the bookkeeping does not know (added below the checkpoint, or anywhere by
    a live shop) plus NULL-key rows not yet rejected: what ``run`` leaves to ``sync``. Reads
    the source's keys only, chunk by chunk (in one SQL anti-join where both are SQLite
    files, see :func:`authmigrate.pipeline.fast.count_unsynced_keys`)."""
    from authmigrate.pipeline.fast import count_unsynced_keys

    src = _Source(m)
    target = m.target
    lookup = FingerprintLookup(target.state, target.migration, target.engine.dialect)
    counted = count_unsynced_keys(m)
    missing = 0
    with target.engine.connect() as conn:
        for keys in src.key_pages(CHUNK) if counted is None else ():
            stored = [state_key(k) for k in keys]
            known = lookup(conn, stored)
            missing += sum(1 for k in stored if k not in known or known[k][0] == "deleted")
        rj = target.rejects
        rejected_null = conn.execute(
            sa.select(sa.func.count()).where(
                rj.c.migration == target.migration,
                rj.c.source_key.is_(None),
                rj.c.reason == "source.null_key",
            )
        ).scalar_one()
    nulls = sum(1 for _ in m.source.null_key_rows())
    return (missing if counted is None else counted) + max(0, nulls - int(rejected_null))


def _as_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return (
            value.replace(tzinfo=None)
            if value.tzinfo is None
            else value.astimezone(dt.UTC).replace(tzinfo=None)
        )
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
    return _as_time(dt.datetime.fromisoformat(str(value).strip()))


def _time_or_none(value: Any) -> dt.datetime | None:
    """A password-change time as naive UTC, or None for NULL and for a value that is no time
    (MySQL's zero date ``0000-00-00 00:00:00``, which the driver hands over as text; an empty
    string): such a side carries no time, and the rule without times applies."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return _as_time(value)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def sync_migration(spec: Spec, *, full: bool = False, stop: Stop | None = None) -> SyncResult:
    """One sync pass: carry new, changed and deleted legacy rows into the target.

    Args:
        spec: the migration.
        full: compare the fingerprints of every row, even with a change column.
        stop: asked between chunks; True ends the pass after the chunk in flight (the
            watermark is not advanced and deletes are not looked for: the next pass does).

    Returns:
        A :class:`SyncResult`; ``result.changes == 0`` when the target was in step.

    Raises:
        SpecError: the spec does not fit the source or target (nothing is written).
        SourceError, TargetError: a database failed (committed chunks stay).
        LockError: a run, sync or verify of this migration holds the lock.
    """
    stop = stop or (lambda: False)
    started = time.monotonic()
    m = Migration(spec)
    m.source.only(sync_columns(spec))
    sync = spec.sync
    if sync.changed_column is not None:
        if spec.source.is_file:
            m.close()
            raise SpecError(
                "sync.changed_column",
                "a file source has no change column to query; leave it out (every sync "
                "then compares the fingerprints of all rows)",
            )
        if sync.changed_column not in m.source.columns:
            m.close()
            raise SpecError("sync.changed_column", f"source has no column {sync.changed_column!r}")
    try:
        if sync.password_changed_at and sync.password_changed_at not in m.source.columns:
            raise SpecError(
                "sync.password_changed_at",
                f"source has no column {sync.password_changed_at!r}",
            )
        check_disabled_column(spec, m.target.engine)
        _check_password_time_column(spec, m.target.engine)
        _require_a_run(m)
    except BaseException:
        m.close()
        raise
    lock = TargetLock(m.target.engine, m.target.migration)
    run_id = str(uuid.uuid4())
    result = SyncResult(migration=m.target.migration, run_id=run_id)
    counts: dict[str, int] = {}
    error: str | None = None
    try:
        lock.acquire()
        m.target.create()
        m.target.start_run(run_id, "sync")
        m.target.backfill_state()
        s = _Syncer(m, run_id, result, stop)
        s.ensure_disabled_column()
        mark: Any = None
        since: Any = None
        if sync.changed_column is not None:
            mark = s.src.mark(sync.changed_column)
            previous = s.watermark()
            if previous is not None and mark is not None and not full:
                since = _since(previous, mark, sync.overlap_seconds)
        result.mode = "full" if since is None else "changed"
        complete = s.full_pass() if since is None else s.changed_pass(since) and s.key_pass()
        if complete:
            s.deletes()
            s.retry_duplicates()
            s.null_keys()
            if mark is not None:
                s.save_watermark(mark)
                result.watermark = _encode_mark(mark)
        result.status = "done" if complete else "interrupted"
    except KeyboardInterrupt:
        result.status, error = "interrupted", "interrupted by the operator"
        raise
    except AuthmigrateError as exc:
        result.status, error = "failed", str(exc)
        raise
    except Exception as exc:
        result.status, error = "failed", f"{type(exc).__name__}: {first_line(exc)}"
        raise
    finally:
        counts = {
            "read": result.compared,
            "migrated": len(result.inserted) + len(result.restored),
            "rejected": len(result.rejected),
        }
        m.target.end_run(run_id, result.status, counts, error)
        lock.release()
        m.close()
        result.seconds = time.monotonic() - started
    return result


def check_disabled_column(spec: Spec, engine: sa.Engine) -> None:
    """``[sync] disabled_column`` must be a flag of its own: ``sync`` sets it to false on every
    account it updates and to true on one deleted in the source, so a column the migration
    fills (a mapped field, the credential, a token) or one of another type would be
    overwritten.

    Raises:
        SpecError: the column is one the migration fills, or the target's column of that name
            is not a boolean (or integer) column.
    """
    name = spec.sync.disabled_column
    filled = {f"fields.{f}": f for f in spec.fields}
    filled["target.key" if spec.target.key else "source.key"] = spec.target_key
    if spec.credentials is not None:
        filled["credentials.target_column"] = spec.credentials.target_column
        filled["credentials.reset_column"] = spec.credentials.reset_column
    if spec.tokens is not None:
        filled["tokens.column"] = spec.tokens.column
        if spec.tokens.prefix_column:
            filled["tokens.prefix_column"] = spec.tokens.prefix_column
    for where, column in filled.items():
        if column == name:
            raise SpecError(
                "sync.disabled_column",
                f"{name!r} is filled by {where}: sync would overwrite it with true/false; "
                "name a column of its own (it is added to the target if missing)",
            )
    path = sqlite_file(engine)
    if path is not None and not path.exists():
        return
    schema, _, table = spec.target.table.rpartition(".")
    insp = sa.inspect(engine)
    if not insp.has_table(table, schema=schema or None):
        return
    for col in insp.get_columns(table, schema=schema or None):
        if col["name"] == name and not isinstance(col["type"], sa.Boolean | sa.Integer):
            raise SpecError(
                "sync.disabled_column",
                f"target column {name!r} is {col['type']}, not a boolean flag; "
                "name a column of its own (it is added to the target if missing)",
            )


def _check_password_time_column(spec: Spec, engine: sa.Engine) -> None:
    """``[sync] target_password_changed_at``, when the spec names it, must be a column of the
    target: a typo would read as 'no time' and hand every conflict to the new system. The
    default name stays optional."""
    name = spec.sync.target_password_changed_at
    if "target_password_changed_at" not in spec.sync.model_fields_set:
        return
    path = sqlite_file(engine)
    if path is not None and not path.exists():
        return
    schema, _, table = spec.target.table.rpartition(".")
    insp = sa.inspect(engine)
    if not insp.has_table(table, schema=schema or None):
        return
    if name not in {c["name"] for c in insp.get_columns(table, schema=schema or None)}:
        raise SpecError(
            "sync.target_password_changed_at",
            f"target table {spec.target.table!r} has no column {name!r}",
        )


def _require_a_run(m: Migration) -> None:
    """``sync`` carries what changed after ``run``: a target holding nothing of the migration
    (never run, or rolled back) is refused before anything is written, so a ``sync --follow``
    or a cron job left running after a rollback does not put every account back.

    Raises:
        TargetError: no batch of this migration is in the target (exit 2).
    """
    target = m.target
    path = sqlite_file(target.engine)
    runs, batches = target.runs, target.batches
    last: str | None = None
    found = False
    if path is None or path.exists():  # never create a SQLite file by looking at it
        with target.engine.connect() as conn:
            if sa.inspect(conn).has_table(batches.name, schema=batches.schema):
                found = (
                    conn.execute(
                        sa.select(batches.c.batch_no)
                        .where(batches.c.migration == target.migration)
                        .limit(1)
                    ).first()
                    is not None
                )
                last = conn.execute(
                    sa.select(runs.c.command)
                    .where(runs.c.migration == target.migration)
                    .order_by(runs.c.started_at.desc())
                    .limit(1)
                ).scalar()
    if found:
        return
    why = "was rolled back" if last == "rollback" else "has not been run"
    raise TargetError(
        f"migration {target.migration!r} {why}: {target.where} holds none of its accounts; "
        "run `authmigrate run SPEC` first (sync carries what changes after a run)"
    )


def follow(
    spec: Spec,
    *,
    full: bool = False,
    stop: Stop,
    each: Callable[[SyncResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``sync --follow``: a pass every ``[sync] interval`` until ``stop()``; returns passes.

    A pass that finds the migration's lock held (a ``run``, ``verify`` or ``rollback`` the
    operator started meanwhile) is skipped with a warning, and the next one tried after the
    interval: a follow running as a service outlives the commands run beside it.
    """
    passes = 0
    while not stop():
        try:
            result = sync_migration(spec, full=full, stop=stop)
        except LockError as exc:
            log.warning("%s; waiting %s s for it", exc, spec.sync.interval_seconds)
            result = None
        if result is not None:
            passes += 1
            if each is not None:
                each(result)
        waited = 0.0
        while not stop() and waited < spec.sync.interval_seconds:
            sleep(0.2)
            waited += 0.2
    return passes
