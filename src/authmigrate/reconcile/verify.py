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

The modules, each one part of the proof: :mod:`.bookkeeping` (what the migration says it did
with each key), :mod:`.chunks` (the source side of the checksums and the bisection),
:mod:`.target` (the target side), :mod:`.secrets` (credentials and tokens), :mod:`.outbox`
(every message queued) and :mod:`.result` (:class:`VerifyResult`). This module runs them:
:func:`verify_migration`, and :func:`verify_report` for the JSON body.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from authmigrate.db import check_sqlite_file, first_line, make_engine, safe_url, sqlite_file
from authmigrate.errors import SpecError, TargetError
from authmigrate.pipeline.transform import RowTransformer, source_columns_used
from authmigrate.reconcile.bookkeeping import Bookkeeping
from authmigrate.reconcile.chunks import LEAF_ROWS, compare_chunk, hash_chunk
from authmigrate.reconcile.outbox import check_outbox
from authmigrate.reconcile.result import CredentialProblem, Difference, VerifyResult
from authmigrate.reconcile.secrets import SecretChecks
from authmigrate.reconcile.target import _Target
from authmigrate.sinks.sql import (
    TargetLock,
    adopt_recorded_name,
    reject_examples,
)
from authmigrate.sources import Source, open_source
from authmigrate.spec import Spec

__all__ = [
    "LEAF_ROWS",
    "CredentialProblem",
    "Difference",
    "VerifyResult",
    "verify_migration",
    "verify_report",
]


class _Verifier:
    """One verify run: the pass over the source in chunks, each checked against the target."""

    def __init__(
        self, spec: Spec, source: Source, target: _Target, sample: int | None, chunk: int
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.chunk = chunk
        self.transform = RowTransformer(spec.fields)
        self.result = VerifyResult(migration=spec.migration_name)
        self.book = Bookkeeping(spec.migration_name, spec.source.key, target, self.result)
        self.secrets = SecretChecks(spec, target, self.result, self.book, sample)

    def run(self) -> VerifyResult:
        res, book = self.result, self.book
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
            book.load_chunk(rows)
            expected += len(book.written)
            chunk = hash_chunk(
                rows,
                key=key,
                key_column=self.spec.target_key,
                transform=self.transform,
                target=self.target,
                book=book,
            )
            missing_written += compare_chunk(chunk, self.target, res)
            self.secrets.check(chunk)
        book.clear_chunk()
        self.secrets.finish()
        present = 0
        if book.ledger.written_total > book.seen_written:
            present = book.written_keys_the_source_lost(self.source)
        res.doubled.extend(book.doubled.values())
        res.migrated = expected - missing_written + present
        return res


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
    verifier.book.load(conn)
    ledger = verifier.book.ledger
    if not ledger.written_total and not ledger.keyed_rejects and not (verifier.result.rejected):
        verifier.result.notes.append("no batch of this migration is recorded in the target")
    missing_fields = [f for f in spec.fields if f not in target.table.c]
    if missing_fields:
        verifier.result.notes.append(
            f"the target table has no column {', '.join(repr(f) for f in missing_fields)}"
        )
    result = verifier.run()
    check_outbox(spec, target, verifier.book, result, conn)
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
    drifted = res.missing or res.extra or res.different
    other = res.doubled or res.credential_problems or res.unnotified
    if not res.ok and res.migrated and drifted and not other:
        # rows missing, extra or different are what a source that stays open makes
        why = (
            "rows differ from the source: if it changed since the run (a shop that stays "
            "open), sync carries its new, changed and deleted accounts; rows edited in the "
            "target by hand stay listed after it"
        )
        step = next_step("sync", why, spec_path)
    elif not res.ok:
        step = next_step("fix-and-rerun", "verify found problems: see the lists", spec_path)
    elif spec.notify is not None:
        step = next_step("notify", "every account is in place: tell the users", spec_path)
    else:
        step = next_step("done", "every account is in place", spec_path)
    body["next_step"] = step
    return body
