"""The target database: the accounts table, the bookkeeping tables, the lock, the batch commit.

Bookkeeping lives in the target, next to the accounts, so that one transaction covers a batch:

- ``authmigrate_batches``: one row per committed batch: key range, counts and the keys it
  wrote (compressed). The last row is the checkpoint; the rows are also what ``rollback``
  removes and what ``verify`` reconciles.
- ``authmigrate_rejects``: every source row not migrated as its own account: rejected (reason
  code, column at fault, the raw row with credential columns redacted) or merged.
- ``authmigrate_runs``: run id, start, end, spec hash, status and counts of every run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import operator
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from authmigrate.batch import Batch, Stage
from authmigrate.db import first_line, make_engine, safe_url, sqlite_file
from authmigrate.errors import LockError, TargetError
from authmigrate.spec import FieldSpec, Spec

REDACTED = "[redacted]"

_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "float": sa.Float,
    "boolean": sa.Boolean,
    "datetime": sa.DateTime,
    "date": sa.Date,
    "json": sa.Text,
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def encode_key(key: Any) -> str:
    """A source key as JSON text (ints stay ints, so resume compares them as numbers)."""
    if isinstance(key, bool) or not isinstance(key, int | str | float):
        key = str(key)
    return json.dumps(key, ensure_ascii=False)


def decode_key(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def pack_keys(keys: Sequence[Any]) -> bytes:
    """The keys a batch wrote, as compressed JSON (ints and strings as themselves)."""
    plain = [k if type(k) is int or type(k) is str else json.loads(encode_key(k)) for k in keys]
    return zlib.compress(json.dumps(plain, ensure_ascii=False).encode(), 1)


def unpack_keys(blob: bytes | None) -> list[Any]:
    if not blob:
        return []
    return list(json.loads(zlib.decompress(blob)))


def bookkeeping_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table, sa.Table]:
    """Declare (runs, batches, rejects) in ``metadata``."""
    runs = sa.Table(
        "authmigrate_runs",
        metadata,
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("migration", sa.String(200), nullable=False, index=True),
        sa.Column("command", sa.String(20), nullable=False),
        sa.Column("spec_hash", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False, default=0),
        sa.Column("migrated", sa.BigInteger, nullable=False, default=0),
        sa.Column("rejected", sa.BigInteger, nullable=False, default=0),
        sa.Column("merged", sa.BigInteger, nullable=False, default=0),
        sa.Column("error", sa.Text),
    )
    batches = sa.Table(
        "authmigrate_batches",
        metadata,
        sa.Column("migration", sa.String(200), primary_key=True),
        sa.Column("batch_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("first_key", sa.Text),
        sa.Column("last_key", sa.Text),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("migrated", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("merged", sa.Integer, nullable=False),
        sa.Column("written_keys", sa.LargeBinary),
        sa.Column("committed_at", sa.DateTime, nullable=False),
    )
    rejects = sa.Table(
        "authmigrate_rejects",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("migration", sa.String(200), nullable=False, index=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("batch_no", sa.Integer, nullable=False),
        sa.Column("source_key", sa.Text),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(80), nullable=False),
        sa.Column("column_name", sa.String(200)),
        sa.Column("detail", sa.Text),
        sa.Column("merged_into", sa.Text),
        sa.Column("raw", sa.Text),
    )
    return runs, batches, rejects


def column_type(name: str, spec: FieldSpec, source_type: Any | None, *, indexed: bool) -> Any:
    """The SQL type of a target column: the spec's ``type``, else the source column's type."""
    if "type" in spec.model_fields_set or source_type is None or spec.normalize or spec.template:
        kind = spec.type
        if kind == "text":
            if spec.max_length:
                return sa.String(spec.max_length)
            return sa.String(320) if indexed else sa.Text()
        return _TYPES[kind]()
    generic = source_type.as_generic() if hasattr(source_type, "as_generic") else source_type
    if isinstance(generic, sa.String) and indexed and not generic.length:
        return sa.String(320)
    with contextlib.suppress(NotImplementedError):
        return generic
    return sa.Text()


def _tuple_getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``row -> tuple of row[name]`` in C (itemgetter), always a tuple."""
    get = operator.itemgetter(*names)
    if len(names) == 1:
        return lambda row: (get(row),)
    return get


class BulkInsert:
    """An INSERT compiled once for a table and run with the driver's executemany.

    SQLAlchemy Core builds a parameter dict per row, which costs more than the database's own
    work on a bulk copy. This keeps SQLAlchemy's compiled SQL (so names are quoted by the
    dialect) and its per-type bind processors (public ``TypeEngine.bind_processor``), and hands
    the rows to the DB-API driver in the form its paramstyle wants.
    """

    def __init__(self, table: sa.Table, dialect: sa.Dialect) -> None:
        compiled = table.insert().compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or []) if self.positional else [c.key for c in table.c]
        self.names = names
        self._getter = _tuple_getter(names)
        self.procs = [
            (i, proc)
            for i, name in enumerate(names)
            if (proc := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]

    def __call__(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        names, procs = self.names, self.procs
        if not self.positional:
            named = [{n: r.get(n) for n in names} for r in rows]
            for values in named:
                for i, proc in procs:
                    values[names[i]] = proc(values[names[i]])
            conn.exec_driver_sql(self.sql, named)
            return
        try:
            params: list[Any] = list(map(self._getter, rows))
        except KeyError:  # a stage left a column unset: it is NULL
            params = [tuple(r.get(n) for n in names) for r in rows]
        if procs:
            params = [list(values) for values in params]
            for values in params:
                for i, proc in procs:
                    values[i] = proc(values[i])
            params = [tuple(values) for values in params]
        conn.exec_driver_sql(self.sql, params)


def _identity(value: Any) -> Any:
    return value


class InLookup:
    """``SELECT column, key WHERE column IN (...)`` with a fixed number of placeholders,
    compiled once per width; a chunk is padded with NULL (which matches nothing).

    SQLAlchemy renders an expanding IN of thousands of values anew on every call, which cost
    more than the index probes themselves. Widths are powers of two up to the largest chunk,
    so a small batch does not send thousands of NULLs.
    """

    def __init__(self, column: sa.Column[Any], key: sa.Column[Any], dialect: sa.Dialect) -> None:
        self.column, self.key, self.dialect = column, key, dialect
        self.largest = 512 if dialect.name == "mysql" else 4096
        self._compiled: dict[int, tuple[str, list[str]]] = {}
        self.positional = dialect.paramstyle in ("qmark", "format", "numeric")
        impl = column.type.dialect_impl(dialect)
        self.proc = impl.bind_processor(dialect)
        self.result = impl.result_processor(dialect, None)
        self.key_result = key.type.dialect_impl(dialect).result_processor(dialect, None)

    def _statement(self, width: int) -> tuple[str, list[str]]:
        found = self._compiled.get(width)
        if found is None:
            names = [f"v{i}" for i in range(width)]
            stmt = sa.select(self.column, self.key).where(
                self.column.in_([sa.bindparam(n, type_=self.column.type) for n in names])
            )
            compiled = stmt.compile(dialect=self.dialect)
            self.positional = bool(compiled.positional)
            order = list(compiled.positiontup or names) if self.positional else names
            found = self._compiled[width] = (str(compiled), order)
        return found

    def __call__(self, conn: sa.Connection, values: list[Any]) -> list[tuple[Any, Any]]:
        if self.proc is not None:
            values = [self.proc(v) for v in values]
        out: list[tuple[Any, Any]] = []
        for i in range(0, len(values), self.largest):
            chunk = values[i : i + self.largest]
            width = min(self.largest, 1 << max(len(chunk) - 1, 0).bit_length())
            sql, names = self._statement(width)
            chunk += [None] * (width - len(chunk))
            params: Any = tuple(chunk) if self.positional else dict(zip(names, chunk, strict=True))
            out.extend(tuple(r) for r in conn.exec_driver_sql(sql, params))
        if self.result is not None or self.key_result is not None:
            same = _identity
            value_of, key_of = self.result or same, self.key_result or same
            out = [(value_of(v), key_of(k)) for v, k in out]
        return out


class TargetLock:
    """Held while a run writes, so a second run of the same migration is refused.

    PostgreSQL: a session advisory lock; MySQL/MariaDB: ``GET_LOCK``; SQLite: an ``flock`` on
    a file beside the database. All three are released by the server or the OS when the
    holder dies, so a kill -9 leaves no stale lock behind.
    """

    def __init__(self, engine: sa.Engine, migration: str) -> None:
        self.engine = engine
        self.migration = migration
        self._conn: sa.Connection | None = None
        self._file: IO[bytes] | None = None

    def _lock_id(self) -> int:
        digest = hashlib.sha256(f"authmigrate:{self.migration}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def acquire(self) -> None:
        backend = self.engine.dialect.name
        held = f"another run of migration {self.migration!r} is writing to this target"
        if backend == "sqlite":
            db = self.engine.url.database
            if not db or db == ":memory:":
                return
            fh = Path(f"{db}.authmigrate-lock").open("ab")  # noqa: SIM115 - held for the run
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise LockError(held) from None
            self._file = fh
            return
        conn = self.engine.connect()
        if backend == "postgresql":
            ok = conn.execute(sa.select(sa.func.pg_try_advisory_lock(self._lock_id()))).scalar()
        elif backend in ("mysql", "mariadb"):
            name = f"authmigrate:{self._lock_id()}"
            ok = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar() == 1
        else:
            ok = True
        conn.commit()
        if not ok:
            conn.close()
            raise LockError(held)
        self._conn = conn

    def ensure(self) -> None:
        """Check that the lock is still held; take it again if the server dropped its session.

        A PostgreSQL advisory lock (or a MySQL ``GET_LOCK``) lives in its session: when the
        connection is lost (``pg_terminate_backend``, a server restart), the lock goes with it.
        A run calls this before each batch, so it takes the lock again, or stops if another run
        took it meanwhile, and never writes beside a second run.

        Raises:
            LockError: the lock was lost and another run holds it now.
            TargetError: the target cannot be reached to take the lock again.
        """
        if self._conn is None:
            return  # an flock (released only when this process dies) or no lock at all
        try:
            self._conn.execute(sa.select(1))
            self._conn.commit()
            return
        except sa.exc.DBAPIError:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.close()
            self._conn = None
        try:
            self.acquire()
        except LockError:
            raise LockError(
                f"lost the lock of migration {self.migration!r} with its connection, "
                "and another run holds it now; this run stops"
            ) from None
        except sa.exc.DBAPIError as exc:
            raise TargetError(f"lost the connection holding the lock: {first_line(exc)}") from None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.close()  # closing the session releases advisory locks
            self._conn = None


class SqlTarget:
    """The target database of one migration."""

    def __init__(
        self,
        spec: Spec,
        stages: Sequence[Stage] = (),
        source_types: dict[str, Any] | None = None,
        engine: sa.Engine | None = None,
    ) -> None:
        self.spec = spec
        self.migration = spec.migration_name
        self.engine = engine or make_engine(spec.target.url, path="target.url")
        self.where = safe_url(spec.target.url)
        self.metadata = sa.MetaData()
        self.runs, self.batches, self.rejects = bookkeeping_tables(self.metadata)
        self.stages = list(stages)
        self.table = self._declare_table(source_types or {})
        for stage in self.stages:
            stage.tables(self.metadata)
        self.columns = [c.name for c in self.table.c]
        self._insert = BulkInsert(self.table, self.engine.dialect)
        from authmigrate.sinks.state import state_tables
        from authmigrate.transform import source_columns_used

        self.state, self.watermarks = state_tables(self.metadata)
        self._insert_state = BulkInsert(self.state, self.engine.dialect)
        self.fp_columns = list(source_columns_used(spec))
        """The source columns a row's fingerprint covers: every column the spec reads."""
        cred = spec.credentials
        self.cred_columns = (
            [c for c in (cred.column, cred.salt_column, cred.scheme_column) if c] if cred else []
        )
        self._lookups: dict[str, InLookup] = {}

    # -- schema -----------------------------------------------------------------------------

    def _declare_table(self, source_types: dict[str, Any]) -> sa.Table:
        spec = self.spec
        schema, _, name = spec.target.table.rpartition(".")
        from authmigrate.stages import unique_groups

        groups = unique_groups(spec)
        unique = {g[0] for g in groups if len(g) == 1}
        indexed = {f for g in groups for f in g}
        key = spec.target_key
        cols: list[Any] = []
        for fname, f in spec.fields.items():
            src_type = source_types.get(f.from_ or fname) if f.value is None else None
            typ = column_type(fname, f, src_type, indexed=fname in indexed or fname == key)
            cols.append(
                sa.Column(
                    fname,
                    typ,
                    primary_key=fname == key,
                    autoincrement=False,
                    unique=fname in unique,
                )
            )
        for stage in self.stages:
            cols.extend(stage.columns())
        cols.extend(sa.UniqueConstraint(*g) for g in groups if len(g) > 1)
        return sa.Table(name, self.metadata, *cols, schema=schema or None)

    def check_spec(self) -> None:
        """Refuse a spec whose target table would not hold what the spec maps.

        Raises:
            SpecError/TargetError: the key field is missing, or an existing table lacks a column.
        """
        from authmigrate.errors import SpecError

        key = self.spec.target_key
        if key not in self.spec.fields:
            raise SpecError("target.key", f"no field {key!r} in [fields] carries the source key")
        kf = self.spec.fields[key]
        if kf.value is not None or kf.template is not None or kf.normalize:
            raise SpecError(f"fields.{key}", "the key field must copy the source key unchanged")
        if (kf.from_ or key) != self.spec.source.key:
            raise SpecError(
                f"fields.{key}.from", f"the key field must come from {self.spec.source.key!r}"
            )
        if self.file_missing:
            return  # a new SQLite file: nothing to check, and connecting would create it
        try:
            insp = sa.inspect(self.engine)
            exists = insp.has_table(self.table.name, schema=self.table.schema)
        except sa.exc.OperationalError as exc:
            raise TargetError(f"cannot reach target {self.where}: {first_line(exc)}") from None
        if not exists:
            if not self.spec.target.create:
                raise SpecError(
                    "target.table", f"no table {self.spec.target.table!r} in {self.where}"
                )
            return
        have = {c["name"] for c in insp.get_columns(self.table.name, schema=self.table.schema)}
        for col in self.table.c:
            if col.name not in have:
                path = f"fields.{col.name}" if col.name in self.spec.fields else "target.table"
                raise SpecError(
                    path, f"existing table {self.spec.target.table!r} has no column {col.name!r}"
                )

    def create(self) -> None:
        """Create what is missing: the accounts table, bookkeeping and stage tables."""
        try:
            self.metadata.create_all(self.engine)
        except sa.exc.DBAPIError as exc:
            raise TargetError(f"cannot create tables in {self.where}: {first_line(exc)}") from None

    @property
    def file_missing(self) -> bool:
        """True for a SQLite target whose file does not exist yet."""
        path = sqlite_file(self.engine)
        return path is not None and not path.exists()

    def exists(self) -> bool:
        insp = sa.inspect(self.engine)
        return bool(insp.has_table("authmigrate_batches"))

    # -- progress ---------------------------------------------------------------------------

    def checkpoint(self) -> tuple[int, Any]:
        """(last committed batch number, last key read) — (0, None) before the first batch."""
        b = self.batches
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(b.c.batch_no, b.c.last_key)
                .where(b.c.migration == self.migration)
                .order_by(b.c.batch_no.desc())
                .limit(1)
            ).first()
        if row is None:
            return 0, None
        return int(row.batch_no), decode_key(row.last_key)

    def totals(self) -> dict[str, int]:
        """Counts over every committed batch of this migration."""
        b = self.batches
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(b.c.rows_read), 0),
                    sa.func.coalesce(sa.func.sum(b.c.migrated), 0),
                    sa.func.coalesce(sa.func.sum(b.c.rejected), 0),
                    sa.func.coalesce(sa.func.sum(b.c.merged), 0),
                ).where(b.c.migration == self.migration)
            ).one()
        return {
            "read": int(row[0]),
            "migrated": int(row[1]),
            "rejected": int(row[2]),
            "merged": int(row[3]),
        }

    def reject_counts(self, outcome: str = "rejected") -> dict[str, int]:
        """Rows of this migration with ``outcome`` (rejected or merged), by reason code."""
        r = self.rejects
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(r.c.reason, sa.func.count())
                .where(r.c.migration == self.migration, r.c.outcome == outcome)
                .group_by(r.c.reason)
                .order_by(r.c.reason)
            ).all()
        return {reason: int(n) for reason, n in rows}

    # -- duplicate and key checks against what the target already holds --------------------

    def existing(
        self, conn: sa.Connection, group: tuple[str, ...], values: Iterable[Any]
    ) -> dict[Any, Any]:
        """``{value: key}`` for target rows whose ``group`` columns hold one of ``values``
        (a value is a tuple for a group of several columns)."""
        vals = [v for v in set(values) if v is not None]
        if not vals:
            return {}
        cols = [self.table.c[c] for c in group]
        key = self.table.c[self.spec.target_key]
        found: dict[Any, Any] = {}
        if len(cols) == 1:
            lookup = self._lookups.get(group[0])
            if lookup is None:
                lookup = self._lookups[group[0]] = InLookup(cols[0], key, self.engine.dialect)
            for value, k in lookup(conn, vals):
                found[value] = k
            return found
        probe = sa.tuple_(*cols)
        step = 900 if self.engine.dialect.name == "mysql" else 5000
        for i in range(0, len(vals), step):
            chunk = vals[i : i + step]
            for row in conn.execute(sa.select(*cols, key).where(probe.in_(chunk))):
                found[tuple(row[:-1])] = row[-1]
        return found

    def find_conflicts(self, batch: Batch) -> dict[Any, str]:
        """Insert a batch's accounts one by one in a transaction that is rolled back, and
        return ``{key: the database's reason}`` for each one the target refuses.

        PostgreSQL aborts a transaction on error, so each row gets a savepoint there; SQLite
        and MySQL roll back only the failed statement.
        """
        bad: dict[Any, str] = {}
        savepoints = self.engine.dialect.name == "postgresql"
        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                for rec in batch.records:
                    sp = conn.begin_nested() if savepoints else None
                    try:
                        self._insert(conn, [rec.values])
                        if sp is not None:
                            sp.commit()
                    except sa.exc.IntegrityError as exc:
                        if sp is not None:
                            sp.rollback()
                        bad[rec.key] = _without_values(first_line(exc))
            finally:
                trans.rollback()
        return bad

    # -- the batch transaction --------------------------------------------------------------

    def commit_batch(self, batch: Batch, run_id: str, redact: frozenset[str]) -> None:
        """Write a batch's accounts, rejects, stage rows and checkpoint in ONE transaction."""
        with self.engine.begin() as conn:
            self._write(conn, batch, run_id, redact)

    def _write(
        self, conn: sa.Connection, batch: Batch, run_id: str, redact: frozenset[str]
    ) -> None:
        if batch.records:
            self._insert(conn, [r.values for r in batch.records])
        if batch.rejects:
            conn.execute(
                self.rejects.insert(),
                [
                    {
                        "migration": self.migration,
                        "run_id": run_id,
                        "batch_no": batch.number,
                        "source_key": None if j.key is None else encode_key(j.key),
                        "outcome": j.outcome,
                        "reason": j.reason,
                        "column_name": j.column,
                        "detail": j.detail,
                        "merged_into": None if j.merged_into is None else encode_key(j.merged_into),
                        "raw": raw_row(j.source, redact),
                    }
                    for j in batch.rejects
                ],
            )
        for stage in self.stages:
            stage.write(conn, batch, run_id)
        merged = sum(1 for j in batch.rejects if j.outcome == "merged")
        conn.execute(
            self.batches.insert(),
            {
                "migration": self.migration,
                "batch_no": batch.number,
                "run_id": run_id,
                "first_key": None if batch.first_key is None else encode_key(batch.first_key),
                "last_key": None if batch.last_key is None else encode_key(batch.last_key),
                "rows_read": batch.rows_read,
                "migrated": len(batch.records),
                "rejected": len(batch.rejects) - merged,
                "merged": merged,
                "written_keys": pack_keys([r.key for r in batch.records]),
                "committed_at": utcnow(),
            },
        )
        states = self.state_rows(batch)
        if states:
            self._insert_state(conn, states)

    def state_rows(self, batch: Batch) -> list[dict[str, Any]]:
        """The key-state rows of a batch's accounts and rejects (see :mod:`.state`)."""
        from authmigrate.sinks.state import fingerprint, state_key, value_fp

        now = utcnow()
        cols, creds = self.fp_columns, self.cred_columns
        target = self.spec.credentials.target_column if self.spec.credentials else None
        rows = [
            {
                "migration": self.migration,
                "source_key": state_key(r.key),
                "state": "migrated",
                "fingerprint": fingerprint(r.source, cols),
                "credential_fp": fingerprint(r.source, creds) if creds else None,
                "target_fp": value_fp(r.values.get(target)) if target else None,
                "changed_at": now,
            }
            for r in batch.records
        ]
        rows.extend(
            {
                "migration": self.migration,
                "source_key": state_key(j.key),
                "state": j.outcome,
                "fingerprint": fingerprint(j.source, cols),
                "credential_fp": fingerprint(j.source, creds) if creds else None,
                "target_fp": None,
                "changed_at": now,
            }
            for j in batch.rejects
            if j.key is not None
        )
        if len({r["source_key"] for r in rows}) < len(rows):  # a key seen twice: the last wins
            rows = list({r["source_key"]: r for r in rows}.values())
        return rows

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, run_id: str, command: str) -> None:
        """Record a new run; call it while holding the :class:`TargetLock`.

        An earlier run of this migration still marked ``running`` cannot be alive (it would
        hold the lock): it was killed or lost its machine. It is marked ``crashed``, with the
        counts of the batches it committed, so the history tells it from a clean stop.
        """
        with self.engine.begin() as conn:
            self._mark_crashed(conn)
            conn.execute(
                self.runs.insert(),
                {
                    "run_id": run_id,
                    "migration": self.migration,
                    "command": command,
                    "spec_hash": self.spec.fingerprint(),
                    "started_at": utcnow(),
                    "status": "running",
                    "rows_read": 0,
                    "migrated": 0,
                    "rejected": 0,
                    "merged": 0,
                },
            )

    def _mark_crashed(self, conn: sa.Connection) -> None:
        r, b = self.runs, self.batches
        stale = conn.execute(
            sa.select(r.c.run_id).where(r.c.migration == self.migration, r.c.status == "running")
        ).scalars()
        for run_id in list(stale):
            done = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(b.c.rows_read), 0),
                    sa.func.coalesce(sa.func.sum(b.c.migrated), 0),
                    sa.func.coalesce(sa.func.sum(b.c.rejected), 0),
                    sa.func.coalesce(sa.func.sum(b.c.merged), 0),
                ).where(b.c.migration == self.migration, b.c.run_id == run_id)
            ).one()
            conn.execute(
                r.update()
                .where(r.c.run_id == run_id)
                .values(
                    status="crashed",
                    rows_read=int(done[0]),
                    migrated=int(done[1]),
                    rejected=int(done[2]),
                    merged=int(done[3]),
                    error="ended without recording its end (killed or lost); "
                    "its committed batches are kept",
                )
            )

    def backfill_state(self) -> int:
        """Give a migration written before the key state existed its state rows.

        When batches exist but no key state does, every written key is recorded as migrated
        and every keyed reject as rejected or merged, with an empty fingerprint, so that the
        first ``sync`` compares each row once (and finds it changed) instead of taking the
        whole table for new keys. Returns the rows added."""
        from authmigrate.sinks.state import state_key

        st, b, r = self.state, self.batches, self.rejects
        with self.engine.begin() as conn:
            has_state = conn.execute(
                sa.select(st.c.source_key).where(st.c.migration == self.migration).limit(1)
            ).first()
            has_batches = conn.execute(
                sa.select(b.c.batch_no).where(b.c.migration == self.migration).limit(1)
            ).first()
            if has_state is not None or has_batches is None:
                return 0
            now = utcnow()
            rows: dict[str, dict[str, Any]] = {}
            for (blob,) in conn.execute(
                sa.select(b.c.written_keys).where(b.c.migration == self.migration)
            ):
                for k in unpack_keys(blob):
                    rows[state_key(k)] = {"state": "migrated"}
            for key, outcome in conn.execute(
                sa.select(r.c.source_key, r.c.outcome).where(
                    r.c.migration == self.migration, r.c.source_key.is_not(None)
                )
            ):
                rows.setdefault(key, {"state": outcome})
            out = [
                {
                    "migration": self.migration,
                    "source_key": k,
                    "state": v["state"],
                    "fingerprint": "",
                    "credential_fp": None,
                    "target_fp": None,
                    "changed_at": now,
                }
                for k, v in rows.items()
            ]
            for i in range(0, len(out), 5000):
                self._insert_state(conn, out[i : i + 5000])
        return len(out)

    def has_synced(self) -> bool:
        """True when a ``sync`` of this migration has run against this target."""
        r = self.runs
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(r.c.run_id)
                .where(r.c.migration == self.migration, r.c.command == "sync")
                .limit(1)
            ).first()
        return found is not None

    def end_run(
        self, run_id: str, status: str, counts: dict[str, int], error: str | None = None
    ) -> None:
        with contextlib.suppress(sa.exc.DBAPIError), self.engine.begin() as conn:
            conn.execute(
                self.runs.update()
                .where(self.runs.c.run_id == run_id)
                .values(
                    ended_at=utcnow(),
                    status=status,
                    rows_read=counts.get("read", 0),
                    migrated=counts.get("migrated", 0),
                    rejected=counts.get("rejected", 0),
                    merged=counts.get("merged", 0),
                    error=error,
                )
            )

    def close(self) -> None:
        self.engine.dispose()


_SECRET_WORDS = ("pass", "pwd", "secret", "token", "hash", "salt", "key", "crypt", "pepper")
_SECRET_NAMES = re.compile(r"^(pw|pin|otp|pw_.*|.*_pw)$")


def raw_row(source: dict[str, Any], redact: frozenset[str]) -> str:
    """The source row as JSON for the rejects table, credential-like columns redacted."""
    out: dict[str, Any] = {}
    for name, value in source.items():
        low = name.lower()
        secret = (
            name in redact
            or any(w in low for w in _SECRET_WORDS)
            or _SECRET_NAMES.match(low) is not None
        )
        if secret and value is not None and low != "key":
            out[name] = REDACTED
        elif isinstance(value, bytes | bytearray | memoryview):
            out[name] = bytes(value).hex()
        elif isinstance(value, str | int | float | bool) or value is None:
            out[name] = value
        else:
            out[name] = str(value)
    return json.dumps(out, ensure_ascii=True, default=str)


def _without_values(message: str) -> str:
    """A driver message with quoted values masked (MySQL quotes the duplicate value)."""
    return re.sub(r"'[^']*'", "'…'", message)
