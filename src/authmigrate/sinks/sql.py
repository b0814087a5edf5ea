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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from authmigrate.batch import Batch, Stage
from authmigrate.db import first_line, make_engine, safe_url, sqlite_file
from authmigrate.errors import LockError, TargetError
from authmigrate.sinks.keys import TargetKey, encode_key, pack_keys
from authmigrate.sinks.keys import decode_key as decode_key
from authmigrate.sinks.keys import unpack_keys as unpack_keys
from authmigrate.spec import FieldSpec, Spec

REDACTED = "[redacted]"
_KEY_LIST = 900
"""Keys per ``IN (...)`` list of a key lookup (SQLite and MySQL limit bound parameters)."""

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

    def __init__(
        self,
        table: sa.Table,
        dialect: sa.Dialect,
        own: dict[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        compiled = table.insert().compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or []) if self.positional else [c.key for c in table.c]
        self.names = names
        self._getter = _tuple_getter(names)
        own = own or {}
        self.procs = [
            (i, proc)
            for i, name in enumerate(names)
            if (
                proc := own.get(name)
                or table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            )
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
        self._impls = (impl, key.type.dialect_impl(dialect))
        self._results: tuple[Any, Any] | None = None

    def _result_processors(self, result: sa.CursorResult[Any]) -> tuple[Any, Any]:
        """The result processors of both columns, for the column types the driver reports
        (PostgreSQL's numeric processor needs the type's oid; None fails)."""
        if self._results is None:
            codes = [d[1] for d in (result.cursor.description or [])] or [None, None]
            self._results = (
                self._impls[0].result_processor(self.dialect, codes[0]),
                self._impls[1].result_processor(self.dialect, codes[1]),
            )
        return self._results

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
            result = conn.exec_driver_sql(sql, params)
            value_of, key_of = self._result_processors(result)
            rows = [tuple(r) for r in result]
            if value_of is not None or key_of is not None:
                value_of, key_of = value_of or _identity, key_of or _identity
                rows = [(value_of(v), key_of(k)) for v, k in rows]
            out.extend(rows)
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


def adopt_recorded_name(spec: Spec, engine: sa.Engine) -> None:
    """Use the name an earlier version recorded this migration under, if the target has it.

    Earlier versions derived the default name from the source path as spelled (see
    ``Spec.migration_name``); a target whose bookkeeping holds that name, and not today's,
    keeps it, so the migration resumes, verifies and rolls back as before. Reads only.
    """
    earlier = spec.earlier_migration_names
    path = sqlite_file(engine)
    if not earlier or (path is not None and not path.exists()):
        return
    runs, _, _ = bookkeeping_tables(sa.MetaData())
    names = [spec.migration_name, *earlier]
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(runs.name):
                return
            found = set(
                conn.execute(
                    sa.select(runs.c.migration).where(runs.c.migration.in_(names)).distinct()
                ).scalars()
            )
    except sa.exc.DBAPIError:
        return  # unreachable: the command's own connection reports it
    if spec.migration_name in found:
        return
    for name in earlier:
        if name in found:
            spec.use_recorded_name(name)
            return


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
        self.engine = engine or make_engine(spec.target.url, path="target.url")
        adopt_recorded_name(spec, self.engine)
        self.migration = spec.migration_name
        self.where = safe_url(spec.target.url)
        self.metadata = sa.MetaData()
        self.runs, self.batches, self.rejects = bookkeeping_tables(self.metadata)
        self.stages = list(stages)
        self.table = self._declare_table(source_types or {})
        for stage in self.stages:
            stage.tables(self.metadata)
        self.columns = [c.name for c in self.table.c]
        self.key = TargetKey(self.table.c[spec.target_key].type, self.engine.dialect.name)
        """The key column's codec (its type may be the existing table's, see check_spec)."""
        self._insert = self._bulk_insert()
        self._lookups: dict[str, InLookup] = {}

    def _bulk_insert(self) -> BulkInsert:
        # the key is written in the form every later check compares (sinks/keys.py)
        own: dict[str, Callable[[Any], Any]] = {self.spec.target_key: self.key.stored}
        return BulkInsert(self.table, self.engine.dialect, own)

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
            if fname == key and type(typ) in (sa.Integer, sa.INTEGER):
                typ = sa.BigInteger()  # SQLite's INTEGER holds 64 bits; PostgreSQL's holds 32
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

    def check_spec(self, source_key: str | None = None) -> None:
        """Refuse a spec whose target table would not hold what the spec maps.

        ``source_key`` is the type tag of the source's keys (``sinks.keys.tag_of``), when known:
        an existing table's key column must hold them exactly (an integer column cannot hold
        text keys; a text column holds integer keys as their digits).

        Raises:
            SpecError/TargetError: the key field is missing, an existing table lacks a column,
                or its key column cannot hold the source's keys.
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
        reflected = insp.get_columns(self.table.name, schema=self.table.schema)
        have = {c["name"] for c in reflected}
        for col in self.table.c:
            if col.name not in have:
                path = f"fields.{col.name}" if col.name in self.spec.fields else "target.table"
                raise SpecError(
                    path, f"existing table {self.spec.target.table!r} has no column {col.name!r}"
                )
        self._use_existing_key_type(next(c["type"] for c in reflected if c["name"] == key))
        why = self.key.check(source_key)
        if why is not None:
            raise SpecError(
                f"fields.{key}",
                f"{why} in existing table {self.spec.target.table!r} (the key type must match; "
                "a text column holds integer keys as their digits)",
            )

    def _use_existing_key_type(self, type_: Any) -> None:
        """Write and compare keys in the existing key column's own type."""
        if isinstance(type_, sa.types.NullType):
            return
        self.table.c[self.spec.target_key].type = type_
        self.key = TargetKey(type_, self.engine.dialect.name)
        self._insert = self._bulk_insert()
        self._lookups.clear()

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
        """True when the target has the bookkeeping tables (a run has written to it)."""
        try:
            return bool(sa.inspect(self.engine).has_table("authmigrate_batches"))
        except sa.exc.OperationalError as exc:
            raise TargetError(f"cannot reach target {self.where}: {first_line(exc)}") from None

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

    def batch_recorded(self, number: int) -> bool:
        """True when batch ``number`` of this migration is committed (its row exists)."""
        b = self.batches
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(b.c.batch_no).where(
                    b.c.migration == self.migration, b.c.batch_no == number
                )
            ).first()
        return found is not None

    # -- duplicate and key checks against what the target already holds --------------------

    def existing_keys(self, conn: sa.Connection, keys: Sequence[Any]) -> set[Any]:
        """The stored forms (``self.key.stored``) of those ``keys`` the target already holds.

        Integer keys are looked up by range (one index scan); other keys by equality
        (``IN``), since a text range follows the target's collation, which need not be the
        order the source pages in.
        """
        stored = [self.key.stored(k) for k in keys]
        col = self.key.column(self.table.c[self.spec.target_key])
        found: set[Any] = set()
        if self.key.kind == "int":
            lo, hi = min(stored), max(stored)
            rows = conn.execute(sa.select(col).where(col >= lo, col <= hi)).scalars()
            found = {self.key.stored(k) for k in rows}
        else:
            for i in range(0, len(stored), _KEY_LIST):
                part = stored[i : i + _KEY_LIST]
                rows = conn.execute(sa.select(col).where(col.in_(part))).scalars()
                found.update(self.key.stored(k) for k in rows)
        return found.intersection(stored)

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
