"""``authmigrate verify``: prove that the target holds exactly what the migration says it wrote.

Three checks, all read-only (verify takes the migration's lock only so that it never reads a
target a run is writing to):

1. **Reconciliation.** ``source rows = migrated + rejected + merged``, each term counted on its
   own: source rows in the source; migrated = target rows whose key is in the batches'
   ``written_keys``; rejected and merged from ``authmigrate_rejects``.
2. **Row checksums.** The source is read in key order, in chunks of ``chunk`` rows (keyset
   pages, like the run). The source side of a chunk re-runs the spec's field transforms and
   hashes each row's mapped values; the target side is a ``count`` and the sums of a 128-bit
   *keyed* row hash over the same keys (MD5 over a random key of this verify run followed by
   the row's text, summed as four 32-bit parts), computed *in the database* on PostgreSQL
   (``md5``) and SQLite (a registered aggregate), streamed in Python elsewhere. The key is drawn
   anew by every verify run and never stored, so whoever alters the target cannot prepare rows
   whose hashes cancel out. Values are put in one canonical text
   form per column type first, so SQLite and PostgreSQL agree. A chunk whose digests differ is
   split in halves, and each half checksummed again, down to :data:`LEAF_ROWS` keys whose rows
   are then compared one by one (the bisection of data-diff/reladiff). The result names the
   keys *missing* (should be in the target, are not), *extra* (in the target, should not be)
   and *different* (with the columns that differ, never the values).
3. **Credentials and tokens.** Columns whose values are random per run (tokens) or salted by
   wrapping cannot be checksummed; they are checked apart: a kept credential must equal the
   source hash imported again, a wrapped one must have been made from it (scheme, kept part
   and argon2id over the legacy digest, see :mod:`authmigrate.reconcile.credentials`) — every
   one, or a random sample of ``sample`` wrapped credentials; a token must be a well-formed
   stored token, present exactly on the accounts whose message carries one (with ``[notify]``)
   and NULL on the others.

Which target rows are the migration's business: rows whose key is a source key. A target row
with a key the source never had (a sign-up in the live new system) is not reported; a target
row for a source row that the migration rejected or merged is reported as extra, unless the
row was rejected because that key was already in the target (``target.key_exists``).

Memory: one chunk of rows and one batch's written keys, plus a few numbers per batch (its key
range, see :mod:`authmigrate.reconcile.ledger`): the same at 100k and at 10M accounts. The
bookkeeping is read back per chunk of source keys (the batches whose key range meets the
chunk's), never held whole; written keys the source no longer has are found afterwards, batch by
batch, only when the count of written keys seen in the source falls short.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from authmigrate.db import check_sqlite_file, first_line, make_engine, safe_url, sqlite_file
from authmigrate.errors import SpecError, TargetError
from authmigrate.pipeline.transform import FieldReject, RowTransformer, source_columns_used
from authmigrate.reconcile.checksum import (
    _NO_ROW,
    Digest,
    RowHash,
    add_hashes,
    canonical,
    row_text,
    text_hash,
)
from authmigrate.reconcile.ledger import Ledger, bounds, order_key
from authmigrate.reconcile.target import IN_LIST, _slices, _Target
from authmigrate.sinks.sql import (
    TargetLock,
    adopt_recorded_name,
    reject_examples,
)
from authmigrate.sources import Source, open_source
from authmigrate.spec import Spec

log = logging.getLogger("authmigrate")

LEAF_ROWS = 16
"""Bisection stops at this many keys and compares the rows themselves."""


@dataclass
class Difference:
    """A key present on both sides whose mapped values differ (column names only)."""

    key: Any
    columns: list[str]


@dataclass
class CredentialProblem:
    """A migrated account whose credential or token does not follow from its source row."""

    key: Any
    column: str
    reason: str
    """Stable code: ``credential.differs``, ``credential.not_wrapped``, ``wrap.digest``..."""


@dataclass
class VerifyResult:
    """Everything ``verify`` found; ``ok`` when every check holds."""

    migration: str
    source_rows: int = 0
    migrated: int = 0
    rejected: int = 0
    merged: int = 0
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    different: list[Difference] = field(default_factory=list)
    doubled: list[Any] = field(default_factory=list)
    """Keys the bookkeeping counts twice: written by a batch and also in the rejects, or
    rejected (or merged) twice. Each one makes the reconciliation off by one."""
    credential_problems: list[CredentialProblem] = field(default_factory=list)
    unnotified: list[Any] = field(default_factory=list)
    """Keys of accounts in a notification segment (``[notify]``) without their outbox row:
    their message (and its token) would never go out."""
    outbox_checked: int = 0
    credentials_checked: int = 0
    wrapped_checked: int = 0
    wrapped_total: int = 0
    tokens_checked: int = 0
    owned_by_new_system: int = 0
    """Credentials the new system changed after the migration wrote them (an upgrade on
    login, a reset): the new system's business, not a mismatch."""
    deleted_in_source: int = 0
    """Keys the migration wrote that ``sync`` found deleted in the source."""
    held: int = 0
    """Accounts whose latest legacy change ``sync`` rejected: they keep their last good
    values and are counted with the rejects."""
    chunks: int = 0
    chunks_bisected: int = 0
    checksums: str = "streamed"
    """``in-database`` or ``streamed``: where the target side's checksums were computed."""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reconciled(self) -> bool:
        """``source rows = migrated + rejected + merged``."""
        return self.source_rows == self.migrated + self.rejected + self.merged

    @property
    def ok(self) -> bool:
        """True when the counts reconcile and no row or credential is wrong."""
        return (
            self.reconciled
            and not self.missing
            and not self.extra
            and not self.different
            and not self.doubled
            and not self.credential_problems
            and not self.unnotified
            and not self.notes
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (keys, column names and reason codes only)."""
        return {
            "migration": self.migration,
            "ok": self.ok,
            "source_rows": self.source_rows,
            "migrated": self.migrated,
            "rejected": self.rejected,
            "merged": self.merged,
            "reconciled": self.reconciled,
            "missing": self.missing,
            "extra": self.extra,
            "different": [{"key": d.key, "columns": d.columns} for d in self.different],
            "doubled": self.doubled,
            "credential_problems": [
                {"key": p.key, "column": p.column, "reason": p.reason}
                for p in self.credential_problems
            ],
            "unnotified": self.unnotified,
            "outbox_checked": self.outbox_checked,
            "credentials_checked": self.credentials_checked,
            "wrapped_checked": self.wrapped_checked,
            "tokens_checked": self.tokens_checked,
            "owned_by_new_system": self.owned_by_new_system,
            "deleted_in_source": self.deleted_in_source,
            "held": self.held,
            "chunks": self.chunks,
            "chunks_bisected": self.chunks_bisected,
            "checksums": self.checksums,
            "notes": self.notes,
        }


# -- canonical values ----------------------------------------------------------------------


def _loose(value: Any) -> Any:
    """A value as a ``when`` rule compares it: booleans and numbers read back from a database
    (``1`` for true, ``3.0`` for 3) compare equal to the spec's."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class _Chunk:
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


def _token_segments(spec: Spec) -> frozenset[str] | None:
    if spec.tokens is None:
        return None
    from authmigrate.pipeline.tokens import token_segments

    return token_segments(spec)


class _Verifier:
    def __init__(
        self, spec: Spec, source: Source, target: _Target, sample: int | None, chunk: int
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.sample = sample
        self.chunk = chunk
        self.transform = RowTransformer(spec)
        self.result = VerifyResult(migration=spec.migration_name)
        self.ledger = Ledger(target.conn, spec.migration_name, target.key_value)
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
        self.seen_written = 0
        """Written keys found in the source so far (a key listed by two batches once)."""
        self.has_state = False
        self.state_table: sa.Table | None = None
        self.rng = random.Random()
        self.reservoir: list[tuple[Any, str, str, str]] = []
        self.token_segments = _token_segments(spec)
        """Segments whose accounts hold a token; None: every account (``tokens.token_segments``)."""

    # -- bookkeeping ----------------------------------------------------------------------

    def load_bookkeeping(self, conn: sa.Connection) -> None:
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
                state.c.migration == self.spec.migration_name, state.c.state == "held"
            )
        ).scalar_one()

    def _key_states(self, keys: Sequence[Any]) -> dict[Any, str]:
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
                    state.c.migration == self.spec.migration_name,
                    state.c.source_key.in_(part),
                    state.c.state.in_(("deleted", "held")),
                )
            ):
                out[self.target.key_value(key_of(source_key))] = str(kind)
        return out

    def _load_chunk_bookkeeping(self, rows: list[dict[str, Any]]) -> None:
        """Written keys, rejects and key states of this chunk's source keys only."""
        key = self.spec.source.key
        originals = {self.target.key_value(r[key]): r[key] for r in rows}
        kids = set(originals)
        span = bounds(list(kids))
        written = self.ledger.written_in(kids, span)
        self.seen_written += len(written)
        self.rejects = self.ledger.rejects_in(kids, span)
        states = self._key_states(list(originals.values()))
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

    # -- the pass over the source ---------------------------------------------------------

    def run(self) -> VerifyResult:
        res = self.result
        res.source_rows = self.source.count()
        res.checksums = "in-database" if self.target.in_db else "streamed"
        expected = 0
        missing_written = 0
        key = self.spec.source.key
        after: Any = None
        while True:
            rows = self.source.page(after, self.chunk)
            if not rows:
                break
            after = rows[-1][key]
            self._load_chunk_bookkeeping(rows)
            expected += len(self.written)
            chunk = self._hash_chunk(rows)
            missing_written += self._compare_chunk(chunk)
            self._check_secrets(chunk)
        self.written, self.rejects, self.held = set(), {}, set()
        self._finish_sample()
        present = 0
        if self.ledger.written_total > self.seen_written:
            present = self._written_keys_the_source_lost()
        res.doubled.extend(self.doubled.values())
        res.migrated = expected - missing_written + present
        return res

    def _written_keys_the_source_lost(self) -> int:
        """Written keys the source no longer has, batch by batch: those ``sync`` found
        deleted are counted as such, the others are *extra* when the target still holds them.
        Returns how many of those the target holds."""
        res = self.result
        seen: set[Any] = set()  # keys gone from the source only: few
        present = 0
        for keys in self.ledger.written_batches():
            for part in _slices(keys, IN_LIST):
                there = {self.target.key_value(k) for k in self.source.keys_in(part)}
                lost = {
                    kid: k
                    for k in part
                    if (kid := self.target.key_value(k)) not in there and kid not in seen
                }
                if not lost:
                    continue
                seen.update(lost)
                states = self._key_states(list(lost.values()))
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

    def _hash_chunk(self, rows: list[dict[str, Any]]) -> _Chunk:
        key = self.spec.source.key
        kinds = dict(zip(self.target.columns, self.target.kinds, strict=True))
        key_column = self.spec.target_key
        chunk = _Chunk([], {}, {}, [], [])
        for row in rows:
            k = row[key]
            kid = self.target.key_value(k)
            if kid in self.written:
                try:
                    mapped = self.transform(row)
                except FieldReject as rej:
                    chunk.values[kid] = f"{rej.column} (now {rej.reason})"
                    chunk.hashes[kid] = _NO_ROW
                else:
                    mapped[key_column] = kid  # the key as the target holds it
                    canon = [canonical(kinds[c], mapped.get(c)) for c in self.target.columns]
                    chunk.values[kid] = canon
                    chunk.hashes[kid] = text_hash(row_text(canon), self.target.checksum_key)
                    chunk.expected_rows.append(row)
            elif self.rejects.get(kid) == "target.key_exists" or kid in self.held:
                continue
            elif kid not in self.rejects:
                chunk.unaccounted.append(k)
            chunk.keys.append(kid)
            chunk.originals[kid] = k
        return chunk

    def _compare_chunk(self, chunk: _Chunk) -> int:
        """Checksum the chunk, bisect it on a mismatch; returns expected rows found missing."""
        res = self.result
        res.chunks += 1
        found = _Found()
        if self._source_digest(chunk, chunk.keys) != self.target.digest(chunk.keys):
            res.chunks_bisected += 1
            self._bisect(chunk, chunk.keys, found)
            if not found.any() and self.target.in_db:
                # the database's canonical text differs from ours (an exotic type or
                # encoding): the rows agree, so stream the rest of the table instead
                log.warning("in-database checksums disagree with the rows; streaming instead")
                self.target.in_db = False
                res.checksums = "streamed"
        extra_ids = {self.target.key_value(k) for k in found.extra}
        res.missing.extend(found.missing)
        res.missing.extend(
            k for k in chunk.unaccounted if self.target.key_value(k) not in extra_ids
        )
        res.extra.extend(found.extra)
        res.different.extend(found.different)
        return len(found.missing)

    def _source_digest(self, chunk: _Chunk, keys: Sequence[Any]) -> Digest:
        hashes = chunk.hashes
        return add_hashes(
            h for k in keys if (h := hashes.get(self.target.key_value(k))) is not None
        )

    def _bisect(self, chunk: _Chunk, keys: Sequence[Any], found: _Found) -> None:
        if len(keys) <= LEAF_ROWS:
            self._compare_rows(chunk, keys, found)
            return
        mid = len(keys) // 2
        for half in (keys[:mid], keys[mid:]):
            if self._source_digest(chunk, half) != self.target.digest(half):
                self._bisect(chunk, half, found)

    def _compare_rows(self, chunk: _Chunk, keys: Sequence[Any], found: _Found) -> None:
        there = self.target.rows(keys)
        for k in keys:
            kid = self.target.key_value(k)
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
                cols = [
                    c for c, w, h in zip(self.target.columns, want, have, strict=True) if w != h
                ]
                found.different.append(Difference(shown, cols))

    # -- the notification outbox ----------------------------------------------------------

    def check_outbox(self, conn: sa.Connection) -> None:
        """Every migrated account whose segment gets a message, and every merged duplicate
        when ``merged`` does, has its outbox row (queued, sending, sent or failed).

        An account's segment follows from its target row as the run chose it: ``reset`` when
        it must reset its password, ``wrapped`` for a wrapped credential, ``kept`` otherwise,
        then the spec's own segments by their ``when`` rules.
        """
        notify = self.spec.notify
        if notify is None:
            return
        from authmigrate.notify.outbox import OUTBOX_TABLE, outbox_table
        from authmigrate.notify.templates import BUILTIN_SEGMENTS
        from authmigrate.spec import SegmentSpec

        enabled = {
            name
            for name in dict.fromkeys([*BUILTIN_SEGMENTS, *notify.segments])
            if notify.segments.get(name, SegmentSpec(enabled=name != "kept")).enabled
        }
        if not enabled:
            return
        has_box = sa.inspect(conn).has_table(OUTBOX_TABLE)
        box = outbox_table(sa.MetaData())

        def queued(keys: Sequence[Any]) -> set[tuple[Any, str]]:
            # the outbox holds a source key as str(key): compared in the target's key form
            if not has_box or not keys:
                return set()
            stored = list(dict.fromkeys(str(k) for k in keys))
            return {
                (self.target.key_value(k), str(s))
                for k, s in conn.execute(
                    sa.select(box.c.source_key, box.c.segment).where(
                        box.c.migration == self.spec.migration_name, box.c.source_key.in_(stored)
                    )
                )
            }

        res = self.result
        if "merged" in enabled:
            for page in self.ledger.merged_pages(IN_LIST):
                kids = [self.target.key_value(k) for k in page]
                have = queued([*page, *kids])
                for kid in kids:
                    res.outbox_checked += 1
                    if (kid, "merged") not in have:
                        res.unnotified.append(kid)
        columns = self._segment_columns()
        for keys in self.ledger.written_batches():
            for part in _slices(keys, IN_LIST):
                states = self._key_states(part)  # deleted or held: no longer migrated
                kids = [kid for k in part if (kid := self.target.key_value(k)) not in states]
                rows = self.target.select(kids, columns)
                have = queued([*part, *kids])
                for kid in sorted(rows, key=order_key):
                    row = rows[kid]
                    segment = self._segment(row)
                    if segment not in enabled:
                        continue
                    res.outbox_checked += 1
                    if (kid, segment) not in have:
                        res.unnotified.append(row[""])

    def _segment_columns(self) -> list[str]:
        cred, notify = self.spec.credentials, self.spec.notify
        names: list[str] = []
        if cred is not None:
            names += [cred.target_column, cred.reset_column]
        for seg in notify.segments.values() if notify else ():
            names += list(seg.when or {})
        return [n for n in dict.fromkeys(names) if n in self.target.table.c]

    def _segment(self, row: dict[str, Any]) -> str:
        from authmigrate.reconcile.credentials import is_wrapped

        cred, notify = self.spec.credentials, self.spec.notify
        assert notify is not None
        segment = "kept"
        if cred is not None:
            if row.get(cred.reset_column):
                return "reset"
            if is_wrapped(row.get(cred.target_column)):
                segment = "wrapped"
        for name, seg in notify.segments.items():
            if (
                seg.enabled
                and seg.when
                and all(
                    _loose(row.get(f)) in {_loose(v) for v in allowed}
                    for f, allowed in seg.when.items()
                )
            ):
                return name
        return segment

    # -- credentials and tokens -----------------------------------------------------------

    def _check_secrets(self, chunk: _Chunk) -> None:
        cred, tok = self.spec.credentials, self.spec.tokens
        columns: list[str] = []
        if cred is not None:
            columns += [cred.target_column, cred.reset_column]
        if tok is not None:
            columns.append(tok.column)
        columns = [c for c in columns if c in self.target.table.c]
        if not columns or not chunk.expected_rows:
            return
        key = self.spec.source.key
        keys = [self.target.key_value(r[key]) for r in chunk.expected_rows]
        extra = self._segment_columns() if tok is not None and self.spec.notify else []
        there = self.target.select(keys, list(dict.fromkeys([*columns, *extra])))
        if cred is not None and {cred.target_column, cred.reset_column} <= set(columns):
            self._check_credentials(chunk.expected_rows, there)
        if tok is not None and tok.column in columns:
            self._check_tokens(chunk.expected_rows, there)

    def _check_credentials(
        self, rows: list[dict[str, Any]], there: dict[Any, dict[str, Any]]
    ) -> None:
        from authmigrate.credentials import default_weak
        from authmigrate.pipeline.stages import prepare_credentials, row_format

        cred = self.spec.credentials
        assert cred is not None
        res = self.result
        key = self.spec.source.key
        weak = frozenset(cred.weak) if cred.weak is not None else default_weak()
        items: list[tuple[str | None, str | None]] = []
        formats: list[str | None] = []
        present: list[tuple[Any, dict[str, Any]]] = []
        for row in rows:
            got = there.get(self.target.key_value(row[key]))
            if got is None:
                continue  # reported as missing already
            raw = row.get(cred.column)
            if isinstance(raw, bytes | bytearray | memoryview):
                raw = bytes(raw).decode("utf-8", "replace")
            salt = row.get(cred.salt_column) if cred.salt_column else None
            present.append((row[key], got))
            blank = raw is None or (isinstance(raw, str) and not raw.strip())
            items.append((None if blank else str(raw).strip(), None if salt is None else str(salt)))
            formats.append(row_format(cred, row))
        prepared = (
            prepare_credentials(
                cred, [(v or "", s) for v, s in items], dry=True, workers=1, formats=formats
            )
            if items
            else []
        )
        digest_jobs: list[tuple[Any, str, str, str]] = []
        for (k, got), (value, _), outcome in zip(present, items, prepared, strict=True):
            stored, reset = got[cred.target_column], got[cred.reset_column]
            res.credentials_checked += 1
            problem = self._credential_problem(
                k, value, outcome, stored, bool(reset), weak, digest_jobs
            )
            if problem:
                res.credential_problems.append(CredentialProblem(k, cred.target_column, problem))
        self._run_digest_checks(digest_jobs)
        self._accept_new_system_changes(there)

    def _accept_new_system_changes(self, there: dict[Any, dict[str, Any]]) -> None:
        """A credential the new system changed after the migration wrote it is the new
        system's, not a mismatch, when it is what the new system writes: a plain argon2id hash
        (``verify_and_update`` on login, also inside a ``$login-rule$`` form) or no hash with
        the reset flag (a reset, ``sunset``). It is counted in ``owned_by_new_system``. Any
        other change (a truncated hash, another account's credential) stays a problem."""
        from authmigrate.continuity.sync import is_upgraded
        from authmigrate.sinks.state import load_states, state_key, state_tables, value_fp

        cred = self.spec.credentials
        res = self.result
        if cred is None or not self.has_state or not res.credential_problems:
            return
        mine = [p for p in res.credential_problems if p.column == cred.target_column]
        fresh = [p for p in mine if self.target.key_value(p.key) in there]
        if not fresh:
            return
        state, _ = state_tables(sa.MetaData())
        name = self.spec.migration_name
        known = load_states(self.target.conn, state, name, [p.key for p in fresh])
        owned: set[int] = set()
        for p in fresh:
            row = known.get(state_key(p.key))
            stored = there[self.target.key_value(p.key)].get(cred.target_column)
            if row is None or row.target_fp is None or value_fp(stored) == row.target_fp:
                continue
            reset = bool(there[self.target.key_value(p.key)].get(cred.reset_column))
            if is_upgraded(stored) or (stored is None and reset):
                owned.add(id(p))
        if owned:
            res.credential_problems = [p for p in res.credential_problems if id(p) not in owned]
            res.owned_by_new_system += len(owned)

    def _credential_problem(
        self,
        key: Any,
        value: str | None,
        outcome: Any,
        stored: str | None,
        reset: bool,
        weak: frozenset[str],
        digest_jobs: list[tuple[Any, str, str, str]],
    ) -> str:
        import hmac

        from authmigrate.credentials import Prepared
        from authmigrate.reconcile.credentials import check_wrapped, is_wrapped

        cred = self.spec.credentials
        assert cred is not None
        if value is None or cred.policy == "reset":
            if cred.policy != "reset" and cred.on_missing == "reject":
                return "credential.missing"
            return "" if stored is None and reset else "credential.not_reset"
        if isinstance(outcome, Prepared) and outcome.segment == "reset":
            # a platform's "no usable password" marker: migrated as a reset under any policy
            return "" if stored is None and reset else "credential.not_reset"
        if not isinstance(outcome, Prepared) or outcome.credential is None:
            return "credential.unreadable"
        canonical_cred = outcome.credential
        if cred.policy == "wrap" and outcome.scheme in weak:
            if not is_wrapped(stored):
                return "credential.not_wrapped"
            assert stored is not None
            check = check_wrapped(stored, canonical_cred, outcome.scheme, check_digest=False)
            if not check.ok:
                return check.reason
            self._queue_digest_check((key, stored, canonical_cred, outcome.scheme), digest_jobs)
            return ""
        if stored is None or not hmac.compare_digest(
            stored.encode("utf-8", "surrogatepass"), canonical_cred.encode("utf-8", "surrogatepass")
        ):
            return "credential.differs"
        return "credential.reset_flag" if reset else ""

    def _queue_digest_check(
        self, job: tuple[Any, str, str, str], digest_jobs: list[tuple[Any, str, str, str]]
    ) -> None:
        res = self.result
        res.wrapped_total += 1
        if self.sample is None:
            digest_jobs.append(job)
            return
        # reservoir sampling: every wrapped credential equally likely to be checked
        if len(self.reservoir) < self.sample:
            self.reservoir.append(job)
            return
        slot = self.rng.randrange(res.wrapped_total)
        if slot < self.sample:
            self.reservoir[slot] = job

    def _finish_sample(self) -> None:
        self._run_digest_checks(self.reservoir)
        self.reservoir = []

    def _run_digest_checks(self, jobs: Sequence[tuple[Any, str, str, str]]) -> None:
        if not jobs:
            return
        from authmigrate.credentials._batch import default_workers
        from authmigrate.reconcile.credentials import check_wrapped

        def one(job: tuple[Any, str, str, str]) -> str:
            return check_wrapped(job[1], job[2], job[3]).reason

        with ThreadPoolExecutor(max_workers=default_workers()) as pool:
            reasons = list(pool.map(one, jobs))
        cred = self.spec.credentials
        assert cred is not None
        for job, reason in zip(jobs, reasons, strict=True):
            self.result.wrapped_checked += 1
            if reason:
                self.result.credential_problems.append(
                    CredentialProblem(job[0], cred.target_column, reason)
                )

    def _check_tokens(self, rows: list[dict[str, Any]], there: dict[Any, dict[str, Any]]) -> None:
        from authmigrate.errors import MalformedHashError
        from authmigrate.pipeline.tokens import parse_stored

        tok = self.spec.tokens
        assert tok is not None
        segments = self.token_segments
        key = self.spec.source.key
        for row in rows:
            got = there.get(self.target.key_value(row[key]))
            if got is None:
                continue
            self.result.tokens_checked += 1
            stored = got[tok.column]
            if segments is not None and self._segment(got) not in segments:
                # no message carries a token to this account: it must hold none
                if stored is not None:
                    self.result.credential_problems.append(
                        CredentialProblem(row[key], tok.column, "token.undelivered")
                    )
                continue
            try:
                parsed = parse_stored(stored)
            except MalformedHashError:
                reason = "token.missing" if stored is None else "token.malformed"
                self.result.credential_problems.append(
                    CredentialProblem(row[key], tok.column, reason)
                )
                continue
            if parsed.purpose != tok.purpose:
                self.result.credential_problems.append(
                    CredentialProblem(row[key], tok.column, "token.purpose")
                )


@dataclass
class _Found:
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    different: list[Difference] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.missing or self.extra or self.different)


def verify_migration(
    spec: Spec, *, sample: int | None = None, chunk: int | None = None
) -> VerifyResult:
    """Reconcile source and target, compare every mapped row, check credentials and tokens.

    Args:
        spec: the migration.
        sample: check the argon2id part of this many wrapped credentials, chosen at random
            (``None``: every one). Kept credentials are always all compared.
        chunk: source rows per checksummed chunk (default: the spec's
            ``verify.chunk_size``, 10,000).

    Returns:
        A :class:`VerifyResult`; ``result.ok`` is True when everything holds.

    Raises:
        SpecError, SourceError: the source cannot be read as the spec says.
        TargetError: the target cannot be reached.
        LockError: a run of this migration is writing to the target right now.
    """
    if chunk is None:
        chunk = spec.verify.chunk_size
    if chunk < 1:
        raise ValueError("chunk must be positive")
    if sample is not None and sample < 0:
        raise SpecError("--sample", "must be 0 or more")
    started = time.monotonic()
    engine = make_engine(spec.target.url, path="target.url", readonly=True)
    path = sqlite_file(engine)
    source = open_source(spec.source)
    try:
        source.only(source_columns_used(spec))  # never an unmapped BLOB
    except BaseException:
        source.close()
        raise
    if path is not None and not path.exists():
        # connecting would create the file, and verify writes nothing
        try:
            result = VerifyResult(migration=spec.migration_name, source_rows=source.count())
        finally:
            source.close()
        result.notes.append(f"no run of this migration has written to {path} (it does not exist)")
        return result
    adopt_recorded_name(spec, engine)
    lock = TargetLock(engine, spec.migration_name, readonly=True)
    try:
        if path is not None:
            check_sqlite_file(path, "target.url")
        try:
            lock.acquire()
            engine, conn = _connect_read_only(spec, engine)
        except sa.exc.OperationalError as exc:
            raise TargetError(
                f"cannot reach target {safe_url(spec.target.url)}: {first_line(exc)}"
            ) from None
        except sa.exc.DatabaseError as exc:  # the URL asks what the driver refuses
            raise SpecError(
                "target.url", f"cannot use {safe_url(spec.target.url)}: {first_line(exc)}"
            ) from None
        with conn:
            result = _verify(spec, source, engine, conn, sample, chunk)
            if spec.target.export is not None:
                from authmigrate.sinks.exports._readback import verify_export

                result.notes.extend(verify_export(spec, conn))
    finally:
        lock.release()
        source.close()
        engine.dispose()
    result.seconds = time.monotonic() - started
    return result


def _connect_read_only(spec: Spec, engine: sa.Engine) -> tuple[sa.Engine, sa.Connection]:
    """A connection that writes nothing, also to a SQLite target in a folder verify may not
    write: SQLite cannot make its ``-shm`` file there, so with no ``-wal`` file beside the
    database (every committed byte is in the file) it is read as immutable."""
    path = sqlite_file(engine)
    conn = engine.connect()
    if path is None:
        return engine, conn
    try:
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()  # opens the file
        return engine, conn
    except sa.exc.OperationalError:
        conn.close()
        if Path(f"{path}-wal").exists():
            raise
    engine.dispose()
    frozen = make_engine(spec.target.url, path="target.url", readonly=True, immutable=True)
    return frozen, frozen.connect()


def _verify(
    spec: Spec,
    source: Source,
    engine: sa.Engine,
    conn: sa.Connection,
    sample: int | None,
    chunk: int,
) -> VerifyResult:
    insp = sa.inspect(conn)
    schema, _, name = spec.target.table.rpartition(".")
    if not insp.has_table("authmigrate_batches") or not insp.has_table(name, schema=schema or None):
        result = VerifyResult(migration=spec.migration_name, source_rows=source.count())
        result.notes.append(f"no run of this migration has written to {safe_url(spec.target.url)}")
        return result
    target = _Target(spec, engine, conn)
    verifier = _Verifier(spec, source, target, sample, chunk)
    verifier.load_bookkeeping(conn)
    if (
        not verifier.ledger.written_total
        and not verifier.ledger.keyed_rejects
        and not (verifier.result.rejected)
    ):
        verifier.result.notes.append("no batch of this migration is recorded in the target")
    missing_fields = [f for f in spec.fields if f not in target.table.c]
    if missing_fields:
        verifier.result.notes.append(
            f"the target table has no column {', '.join(repr(f) for f in missing_fields)}"
        )
    result = verifier.run()
    verifier.check_outbox(conn)
    return result


# -- the JSON body -------------------------------------------------------------------------


def verify_report(spec: Spec, res: VerifyResult, spec_path: str | None = None) -> dict[str, Any]:
    """The JSON body of a verify: its result, the rejects by reason with example keys, where
    the rest is, and the next step (notify, done, or fix-and-rerun)."""
    from authmigrate.pipeline.advice import bookkeeping, fix_for, next_step

    body = res.as_dict()
    body["rejects"] = {}
    engine = make_engine(spec.target.url, path="target.url", readonly=True)  # writes nothing
    try:
        path = sqlite_file(engine)
        if path is None or path.exists():
            engine, conn = _connect_read_only(spec, engine)
            with conn:
                if sa.inspect(conn).has_table("authmigrate_rejects"):
                    found = reject_examples(conn, spec.migration_name)
                    body["rejects"] = {
                        reason: {
                            **entry,
                            **({"fix": fix_for(reason)} if entry["outcome"] == "rejected" else {}),
                        }
                        for reason, entry in found.items()
                    }
    finally:
        engine.dispose()
    body["bookkeeping"] = bookkeeping(spec.migration_name)
    if not res.ok:
        step = next_step("fix-and-rerun", "verify found problems: see the lists", spec_path)
    elif spec.notify is not None:
        step = next_step("notify", "every account is in place: tell the users", spec_path)
    else:
        step = next_step("done", "every account is in place", spec_path)
    body["next_step"] = step
    return body
