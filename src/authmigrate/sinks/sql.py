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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from authmigrate.db import (
    check_sqlite_file,
    first_line,
    is_memory_sqlite,
    make_engine,
    safe_url,
    sqlite_file,
)
from authmigrate.errors import LockError, TargetError
from authmigrate.pipeline.batch import Batch, InvalidValue, Reject, Stage
from authmigrate.sinks.keys import TargetKey, encode_key, pack_keys
from authmigrate.sinks.keys import decode_key as decode_key
from authmigrate.sinks.keys import unpack_keys as unpack_keys
from authmigrate.sinks.mysql import column_type as mysql_column_type
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
        # the key range of a run on Dask (authmigrate.cluster); NULL otherwise. Added to an
        # older target by the first run on Dask; no other statement names it.
        sa.Column("range_id", sa.Integer),
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


@dataclass(frozen=True)
class Counts:
    """Source rows of a migration (or of one of its runs) by outcome, from the bookkeeping.

    Every count authmigrate shows (run summary, JSON report, run history, rollback) comes from
    :func:`bookkeeping_counts`, so no two places can disagree.
    """

    read: int = 0
    migrated: int = 0
    rejected: int = 0
    merged: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    """Rejected rows by reason code."""
    merged_by_reason: dict[str, int] = field(default_factory=dict)
    """Merged rows by reason code (``duplicate.email``...)."""

    def totals(self) -> dict[str, int]:
        """``{read, migrated, rejected, merged}``."""
        return {
            "read": self.read,
            "migrated": self.migrated,
            "rejected": self.rejected,
            "merged": self.merged,
        }


def bookkeeping_counts(conn: sa.Connection, migration: str, *, run_id: str | None = None) -> Counts:
    """Counts of ``migration`` (of its run ``run_id`` only, when given) over the committed
    batches: rows read, migrated, rejected and merged per batch row, and the reasons from the
    rejects written in the same transactions."""
    _, b, r = bookkeeping_tables(sa.MetaData())
    where = [b.c.migration == migration]
    if run_id is not None:
        where.append(b.c.run_id == run_id)
    row = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(b.c.rows_read), 0),
            sa.func.coalesce(sa.func.sum(b.c.migrated), 0),
            sa.func.coalesce(sa.func.sum(b.c.rejected), 0),
            sa.func.coalesce(sa.func.sum(b.c.merged), 0),
        ).where(*where)
    ).one()
    reasons: dict[str, dict[str, int]] = {"rejected": {}, "merged": {}}
    rwhere = [r.c.migration == migration]
    if run_id is not None:
        rwhere.append(r.c.run_id == run_id)
    for outcome, reason, n in conn.execute(
        sa.select(r.c.outcome, r.c.reason, sa.func.count())
        .where(*rwhere)
        .group_by(r.c.outcome, r.c.reason)
        .order_by(r.c.outcome, r.c.reason)
    ):
        reasons.setdefault(outcome, {})[reason] = int(n)
    return Counts(
        read=int(row[0]),
        migrated=int(row[1]),
        rejected=int(row[2]),
        merged=int(row[3]),
        by_reason=reasons["rejected"],
        merged_by_reason=reasons["merged"],
    )


def reject_examples(
    conn: sa.Connection, migration: str, *, limit: int = 20
) -> dict[str, dict[str, Any]]:
    """``{reason: {outcome, count, examples}}``: the rejects of ``migration`` by reason, with
    the source keys of the first ``limit`` of each (keys only: no value, no detail)."""
    _, _, r = bookkeeping_tables(sa.MetaData())
    counts = bookkeeping_counts(conn, migration)
    out: dict[str, dict[str, Any]] = {}
    for outcome, by_reason in (("rejected", counts.by_reason), ("merged", counts.merged_by_reason)):
        for reason, n in by_reason.items():
            keys = conn.execute(
                sa.select(r.c.source_key)
                .where(r.c.migration == migration, r.c.outcome == outcome, r.c.reason == reason)
                .order_by(r.c.id)
                .limit(limit)
            ).scalars()
            out[reason] = {
                "outcome": outcome,
                "count": n,
                "examples": [decode_key(k) for k in keys],
            }
    return out


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


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (dt.datetime, "date-time"),
    (dt.date, "date"),
    (str, "text"),
    (bytes, "bytes"),
)


def _kind(type_: Any) -> str | None:
    """The kind of value a SQL type holds (None when SQLAlchemy cannot say)."""
    import decimal

    try:
        py = type_.python_type
    except (NotImplementedError, AttributeError):
        return None
    if py is decimal.Decimal:
        return "number"
    for base, name in _KINDS:
        if issubclass(py, base):
            return name
    return None


_WIDENS = {
    "boolean": {"integer", "number", "text"},
    "integer": {"number", "text", "boolean"},
    "number": {"text"},
    "date": {"date-time", "text"},
    "date-time": {"text"},
    "bytes": {"text"},
}
"""Kinds of value a column of another kind stores without loss (the key: what we write)."""


def _fits(ours: str, theirs: str, *, explicit: bool) -> bool:
    """Whether values of kind ``ours`` can go into a column of kind ``theirs``. A field copied
    from the source untyped may hold text that the column parses (``"42"`` into an INTEGER):
    only a kind the spec says (or a stage writes) is checked."""
    if ours == theirs or theirs in _WIDENS.get(ours, ()):
        return True
    return not explicit


def _type_name(type_: Any) -> str:
    try:
        return str(type_.compile())
    except Exception:  # noqa: BLE001 - a dialect-specific type without a generic name
        return type(type_).__name__.upper()


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
            out.extend(self._query(conn, chunk))
        return out

    def _query(self, conn: sa.Connection, chunk: list[Any]) -> list[tuple[Any, Any]]:
        width = min(self.largest, 1 << max(len(chunk) - 1, 0).bit_length())
        sql, names = self._statement(width)
        padded = chunk + [None] * (width - len(chunk))
        params: Any = tuple(padded) if self.positional else dict(zip(names, padded, strict=True))
        try:
            result = conn.exec_driver_sql(sql, params)
        except sa.exc.DBAPIError as exc:
            if not _beyond_charset(exc):
                raise
            return _halved(lambda part: self._query(conn, part), chunk)
        value_of, key_of = self._result_processors(result)
        rows = [tuple(r) for r in result]
        if value_of is not None or key_of is not None:
            value_of, key_of = value_of or _identity, key_of or _identity
            rows = [(value_of(v), key_of(k)) for v, k in rows]
        return rows


_ILLEGAL_MIX = {1267, 1270, 1271}
"""MariaDB/MySQL "Illegal mix of collations" (two, three or more operands)."""


def _beyond_charset(exc: sa.exc.DBAPIError) -> bool:
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] in _ILLEGAL_MIX


def _halved(query: Callable[[list[Any]], list[Any]], chunk: list[Any]) -> list[Any]:
    """``query`` of a chunk of values that failed as a whole because one of them is beyond
    the column's character set (MariaDB/MySQL: an emoji against a latin1 column): such a
    value is in no row, so the chunk is halved until it stands alone, and matches nothing
    (its insert is then refused as the row's own fault). A failed statement leaves the
    transaction open there."""
    if len(chunk) == 1:
        return []
    half = len(chunk) // 2
    return query(chunk[:half]) + query(chunk[half:])


Lookup = Callable[[sa.Connection, list[Any]], list[tuple[Any, Any]]]
"""``(conn, values) -> [(value, key)]`` for the target rows holding one of ``values``."""


def _lookup(column: sa.Column[Any], key: sa.Column[Any], dialect: sa.Dialect) -> Lookup:
    """The value lookup for ``column``: an array parameter on PostgreSQL, else an IN list."""
    if dialect.name == "postgresql":
        from authmigrate.sinks.postgres import AnyLookup

        return AnyLookup(column, key, dialect)
    return InLookup(column, key, dialect)


class TargetLock:
    """Held while a run writes, so a second run of the same migration is refused.

    PostgreSQL: a session advisory lock; MySQL/MariaDB: ``GET_LOCK``; SQLite: an ``flock`` on
    a file beside the database. All three are released by the server or the OS when the
    holder dies, so a kill -9 leaves no stale lock behind.

    ``readonly`` (verify) never creates the SQLite lock file: it takes a shared ``flock`` on
    the file if a run made it, and needs none if no run ever did.
    """

    def __init__(
        self,
        engine: sa.Engine,
        migration: str,
        *,
        readonly: bool = False,
        part: str | None = None,
    ) -> None:
        self.engine = engine
        self.migration = migration
        self.readonly = readonly
        self.part = part
        """A part of the migration locked on its own (a key range on Dask: ``range-3``)."""
        self._conn: sa.Connection | None = None
        self._file: IO[bytes] | None = None

    def _lock_id(self) -> int:
        name = self.migration if self.part is None else f"{self.migration}#{self.part}"
        digest = hashlib.sha256(f"authmigrate:{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def acquire(self) -> None:
        backend = self.engine.dialect.name
        held = f"another run of migration {self.migration!r} is writing to this target"
        if self.part is not None:
            held = f"another task of migration {self.migration!r} is writing its {self.part}"
        if backend == "sqlite":
            db = sqlite_file(self.engine)
            if db is None:
                return
            suffix = "" if self.part is None else f".{self._lock_id() & 0xFFFFFFFF:08x}"
            lock_path = Path(f"{db}.authmigrate-lock{suffix}")
            try:
                if self.readonly and not lock_path.exists():
                    return  # no run ever wrote here, and verify writes nothing
                fh = lock_path.open("rb" if self.readonly else "ab")  # noqa: SIM115 - held
            except OSError as exc:
                from authmigrate.errors import SpecError

                raise SpecError(
                    "target.url", f"cannot create the lock file {lock_path}: {exc.strerror}"
                ) from None
            mode = fcntl.LOCK_SH if self.readonly else fcntl.LOCK_EX
            try:
                fcntl.flock(fh, mode | fcntl.LOCK_NB)
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
                # unlock first: the server ends a closed session's backend (and frees its
                # locks) only after the client has gone, so a run started right after this
                # one could still find the lock held
                backend = self.engine.dialect.name
                if backend == "postgresql":
                    self._conn.execute(sa.select(sa.func.pg_advisory_unlock(self._lock_id())))
                elif backend in ("mysql", "mariadb"):
                    name = f"authmigrate:{self._lock_id()}"
                    self._conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                self._conn.commit()
            with contextlib.suppress(sa.exc.DBAPIError):
                # then end the session: a plain close() would hand the connection back to the
                # pool of a long-lived process (the bridge), with anything else it holds
                self._conn.invalidate()
                self._conn.close()
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
        if engine is None and is_memory_sqlite(spec.target.url):
            from authmigrate.errors import SpecError

            raise SpecError(
                "target.url",
                "an in-memory SQLite database vanishes when the command ends: "
                "give a file (sqlite:///accounts.db)",
            )
        self.engine = engine or make_engine(
            spec.target.url, path="target.url", synchronous=spec.target_synchronous
        )
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
        from authmigrate.pipeline.transform import source_columns_used
        from authmigrate.sinks.state import state_tables

        self.state, self.watermarks = state_tables(self.metadata)
        self._insert_state: Callable[[sa.Connection, list[dict[str, Any]]], None]
        self._insert_state = BulkInsert(self.state, self.engine.dialect)
        if self.engine.dialect.name == "postgresql":
            from authmigrate.sinks.postgres import CopyInsert

            self._insert_state = CopyInsert(self.state, self._insert_state)
        self.fp_columns = list(source_columns_used(spec))
        """The source columns a row's fingerprint covers: every column the spec reads."""
        cred = spec.credentials
        self.cred_columns = (
            [c for c in (cred.column, cred.salt_column, cred.scheme_column) if c] if cred else []
        )
        self._lookups: dict[str, Lookup] = {}
        self._reflected: dict[str, Any] | None = None
        self._fast: Any = None

    def _bulk_insert(self) -> BulkInsert:
        # the key is written in the form every later check compares (sinks/keys.py)
        own: dict[str, Callable[[Any], Any]] = {self.spec.target_key: self.key.stored}
        return BulkInsert(self.table, self.engine.dialect, own)

    def accounts_writer(self) -> Callable[[sa.Connection, list[dict[str, Any]]], None]:
        """What writes a batch's accounts: the dialect's bulk path where it has one (binary
        COPY on PostgreSQL, :mod:`.postgres`), which falls back to :class:`BulkInsert`."""
        if self.engine.dialect.name != "postgresql":
            return self._insert
        if self._fast is None or self._fast.fallback is not self._insert:
            from authmigrate.sinks.postgres import CopyInsert

            self._fast = CopyInsert(self.table, self._insert)
        return self._fast

    # -- schema -----------------------------------------------------------------------------

    def _declare_table(self, source_types: dict[str, Any]) -> sa.Table:
        spec = self.spec
        schema, _, name = spec.target.table.rpartition(".")
        from authmigrate.pipeline.stages import unique_groups

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
            typ = mysql_column_type(typ, key=fname == key, unique=fname in indexed)
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
            folder = self.sqlite_path.parent if self.sqlite_path else None
            made_by_run = folder is not None and self._export_folder(folder)
            if folder is not None and not folder.is_dir() and not made_by_run:
                raise SpecError("target.url", f"the folder {folder} does not exist")
            return  # a new SQLite file: nothing to check, and connecting would create it
        if self.sqlite_path is not None:
            check_sqlite_file(self.sqlite_path, "target.url")
        try:
            insp = sa.inspect(self.engine)
            exists = insp.has_table(self.table.name, schema=self.table.schema)
        except sa.exc.OperationalError as exc:
            raise TargetError(f"cannot reach target {self.where}: {first_line(exc)}") from None
        except sa.exc.DatabaseError as exc:  # SQLite: "file is not a database"
            raise SpecError("target.url", f"cannot use {self.where}: {first_line(exc)}") from None
        if not exists:
            if not self.spec.target.create:
                raise SpecError(
                    "target.table", f"no table {self.spec.target.table!r} in {self.where}"
                )
            return
        reflected = insp.get_columns(self.table.name, schema=self.table.schema)
        have: dict[str, Any] = {c["name"]: c for c in reflected}
        for col in self.table.c:
            if col.name not in have:
                path = f"fields.{col.name}" if col.name in self.spec.fields else "target.table"
                raise SpecError(
                    path, f"existing table {self.spec.target.table!r} has no column {col.name!r}"
                )
        self._use_existing_key_type(have[key]["type"])
        why = self.key.check(source_key)
        if why is not None:
            raise SpecError(
                f"fields.{key}",
                f"{why} in existing table {self.spec.target.table!r} (the key type must match; "
                "a text column holds integer keys as their digits)",
            )
        pk = insp.get_pk_constraint(self.table.name, schema=self.table.schema)
        self._check_unfilled(reflected, list(pk.get("constrained_columns") or []))
        for col in self.table.c:
            self._check_column(col, have[col.name])

    def _use_existing_key_type(self, type_: Any) -> None:
        """Write and compare keys in the existing key column's own type."""
        if isinstance(type_, sa.types.NullType):
            return
        self.table.c[self.spec.target_key].type = type_
        self.key = TargetKey(type_, self.engine.dialect.name)
        self._insert = self._bulk_insert()
        self._lookups.clear()

    def _filled(self) -> set[str]:
        """Target columns a run fills (``plan`` builds no token stage, so they are added)."""
        names = {c.name for c in self.table.c}
        tokens = self.spec.tokens
        if tokens is not None:
            names.update(n for n in (tokens.column, tokens.prefix_column) if n)
        return names

    def _check_unfilled(self, reflected: list[Any], pk: list[str]) -> None:
        """A NOT NULL column without a default that the spec does not fill would refuse every
        row, one by one: refuse the spec instead, naming the column."""
        from authmigrate.errors import SpecError

        filled = self._filled()
        for c in reflected:
            name = c["name"]
            if name in filled or c.get("nullable", True):
                continue
            if c.get("default") is not None or c.get("identity") or c.get("computed"):
                continue
            if c.get("autoincrement") is True:
                continue
            rowid = self.engine.dialect.name == "sqlite" and pk == [name]
            if rowid and isinstance(c["type"], sa.Integer):
                continue  # INTEGER PRIMARY KEY: SQLite's rowid fills it
            raise SpecError(
                "fields",
                f"column {name!r} of the existing table {self.spec.target.table!r} is NOT NULL, "
                f"has no default, and the spec does not fill it: add it to [fields] (e.g. "
                f"{name} = {{ value = ... }} or {{ from = ... }}) or give it a default",
            )

    def _check_column(self, col: sa.Column[Any], found: dict[str, Any]) -> None:
        """Refuse a field whose values the existing column cannot hold: a different kind of
        type, or text that can be longer than a ``VARCHAR(n)``."""
        from authmigrate.errors import SpecError

        field = self.spec.fields.get(col.name)
        path = f"fields.{col.name}" if field is not None else "target.table"
        theirs = found["type"]
        ours_kind, theirs_kind = _kind(col.type), _kind(theirs)
        if (
            ours_kind
            and theirs_kind
            and not _fits(ours_kind, theirs_kind, explicit=self._typed(col.name))
        ):
            raise SpecError(
                path,
                f"the target column {col.name!r} is {_type_name(theirs)} but the spec writes "
                f"{ours_kind} there: change the field's type (or the column)",
            )
        length = getattr(theirs, "length", None)
        if field is None or ours_kind != "text" or not isinstance(length, int):
            return
        bound = self._text_bound(col, field)
        if bound is None or bound > length:
            longest = "of any length" if bound is None else f"up to {bound} characters"
            raise SpecError(
                path,
                f"the target column {col.name!r} is {_type_name(theirs)} but the field's values "
                f"can be {longest}: set fields.{col.name}.max_length = {length} (longer values "
                "are then rejected as field.too_long) or widen the column",
            )

    def _typed(self, name: str) -> bool:
        """True when the spec says what kind of value goes in ``name``, not the source."""
        field = self.spec.fields.get(name)
        if field is None:
            return True  # a stage's column: the stage decides
        return "type" in field.model_fields_set or bool(field.normalize or field.template)

    def _text_bound(self, col: sa.Column[Any], field: FieldSpec) -> int | None:
        """The most characters a text field can hold (None: unbounded)."""
        bounds = []
        if field.max_length:
            bounds.append(field.max_length)
        if "email" in field.normalize:
            bounds.append(254)
        length = getattr(col.type, "length", None)
        if isinstance(length, int):
            bounds.append(length)
        return min(bounds) if bounds else None

    def create(self) -> None:
        """Create what is missing: the accounts table, bookkeeping and stage tables."""
        try:
            self.metadata.create_all(self.engine)
        except sa.exc.DBAPIError as exc:
            raise TargetError(f"cannot create tables in {self.where}: {first_line(exc)}") from None

    @property
    def sqlite_path(self) -> Path | None:
        """The file of a SQLite target (None for other databases)."""
        return sqlite_file(self.engine)

    @property
    def file_missing(self) -> bool:
        """True for a SQLite target whose file does not exist yet."""
        path = self.sqlite_path
        return path is not None and not path.exists()

    def _export_folder(self, folder: Path) -> bool:
        """True when ``folder`` is an export's ``dir``: its bookkeeping lives there and the
        run creates it (plan writes nothing, so it may not exist yet)."""
        return self.spec.target.dir is not None and folder == Path(self.spec.target.dir)

    def write_problem(self) -> str | None:
        """Why a run could not write to the target (None: it can, as far as can be told
        without writing). Checks the file and folder of SQLite, a read-only PostgreSQL server
        or session and its privileges, and MySQL's ``read_only``."""
        import os

        path = sqlite_file(self.engine)
        if path is not None:
            folder = path.parent if str(path.parent) else Path(".")
            if not folder.is_dir() and self._export_folder(folder):
                parent = next(p for p in folder.parents if p.is_dir())
                writable = os.access(parent, os.W_OK)
                return None if writable else f"the export folder {folder} cannot be created"
            if not folder.is_dir():
                return f"the folder {folder} of the target does not exist"
            if path.exists() and not os.access(path, os.W_OK):
                return f"the target file {path} is not writable"
            if not os.access(folder, os.W_OK):
                return f"the folder {folder} is not writable (SQLite writes its journal there)"
            return None
        backend = self.engine.dialect.name
        try:
            with self.engine.connect() as conn:
                if backend == "postgresql":
                    return self._pg_write_problem(conn)
                if backend in ("mysql", "mariadb"):
                    ro = conn.execute(sa.text("SELECT @@global.read_only")).scalar()
                    return "the server is read-only (read_only = ON)" if ro else None
        except sa.exc.DBAPIError as exc:
            return f"cannot check: {first_line(exc)}"
        return None

    def _pg_write_problem(self, conn: sa.Connection) -> str | None:
        if conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar():
            return "the server is a read-only standby"
        if conn.execute(sa.text("SHOW transaction_read_only")).scalar() == "on":
            return "the session is read-only (default_transaction_read_only)"
        schema = self.table.schema
        insp = sa.inspect(conn)
        missing = False
        for table, label in (
            (self.table.name, repr(self.spec.target.table)),
            ("authmigrate_batches", "authmigrate_batches"),
        ):
            if not insp.has_table(table, schema=schema if table == self.table.name else None):
                missing = True
                continue
            name = f"{schema}.{table}" if schema and table == self.table.name else table
            ok = conn.execute(
                sa.text("SELECT has_table_privilege(CAST(:t AS text), 'INSERT')"), {"t": name}
            ).scalar()
            if not ok:
                return f"no INSERT privilege on {label}"
        if missing:
            ok = conn.execute(
                sa.text(
                    "SELECT has_schema_privilege("
                    "COALESCE(CAST(:s AS text), current_schema()), 'CREATE')"
                ),
                {"s": schema},
            ).scalar()
            if not ok:
                return "no CREATE privilege in the schema, and the run must create tables there"
        return None

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
        from authmigrate.cluster.ranges import reserved_top

        top = reserved_top(self)  # a run on Dask numbers its ranges' batches in blocks
        if row is None:
            return top, None
        return max(int(row.batch_no), top), decode_key(row.last_key)

    def counts(self, run_id: str | None = None) -> Counts:
        """This migration's counts (or one run's) from the bookkeeping."""
        with self.engine.connect() as conn:
            return bookkeeping_counts(conn, self.migration, run_id=run_id)

    def totals(self) -> dict[str, int]:
        """Counts over every committed batch of this migration."""
        return self.counts().totals()

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
                lookup = self._lookups[group[0]] = _lookup(cols[0], key, self.engine.dialect)
            for value, k in lookup(conn, vals):
                found[value] = k
            return found
        probe = sa.tuple_(*cols)
        step = 900 if self.engine.dialect.name == "mysql" else 5000

        def query(chunk: list[Any]) -> list[Any]:
            try:
                return list(conn.execute(sa.select(*cols, key).where(probe.in_(chunk))))
            except sa.exc.DBAPIError as exc:
                if not _beyond_charset(exc):
                    raise
                return _halved(query, chunk)

        for i in range(0, len(vals), step):
            for row in query(vals[i : i + step]):
                found[tuple(row[:-1])] = row[-1]
        return found

    def variants(
        self,
        conn: sa.Connection,
        group: tuple[str, ...],
        normalize: Sequence[Callable[[Any], Any] | None],
    ) -> dict[Any, Any]:
        """``{normalized value: key}`` for the target rows whose ``group`` values are not in
        the normalized form ``normalize`` gives them (one function per column, None for
        none): rows the new system wrote itself (``User.5@Example.com``), which an exact
        lookup of a normalized source value would miss. One pass over the table; only the
        rows that differ are kept.
        """
        cols = [self.table.c[c] for c in group]
        key = self.table.c[self.spec.target_key]
        stmt = sa.select(*cols, key).where(*(c.is_not(None) for c in cols))
        maybe = [m for c in cols if (m := self._maybe_unnormalized(c)) is not None]
        if len(maybe) == len(cols):
            stmt = stmt.where(sa.or_(*maybe))
        found: dict[Any, Any] = {}
        for row in conn.execution_options(yield_per=10_000).execute(stmt):
            raw = tuple(row[:-1])
            normed = tuple(v if fn is None else fn(v) for fn, v in zip(normalize, raw, strict=True))
            if normed != raw and None not in normed:
                found.setdefault(normed if len(normed) > 1 else normed[0], row[-1])
        return found

    def _maybe_unnormalized(self, col: sa.Column[Any]) -> sa.ColumnElement[bool] | None:
        """A condition true for every value of ``col`` its field's ``normalize`` steps could
        change (a superset: Python decides), so the database skips the rest; None where the
        database has no such test.

        The steps change only text that holds a space, a control or non-ASCII character
        (strip, collapse_spaces, nfc, nfkc, email's trim and NFC), or letters of the other
        case (lower, upper, email's lower-casing).
        """
        pattern = {"postgresql": "~", "mysql": "REGEXP", "mariadb": "REGEXP"}
        backend = self.engine.dialect.name
        steps = self.spec.fields[col.name].normalize
        if not steps:
            return sa.false()  # a column of the group that is compared as it is
        odd: sa.ColumnElement[bool]
        if backend == "sqlite":
            odd = col.op("GLOB")("*[^!-~]*")
        elif backend in pattern:
            odd = col.op(pattern[backend])("[^!-~]")
        else:
            return None
        tests: list[sa.ColumnElement[bool]] = [odd]
        if "lower" in steps or "email" in steps:
            tests.append(col != sa.func.lower(col))
        if "upper" in steps:
            tests.append(col != sa.func.upper(col))
        return sa.or_(*tests)

    def find_conflicts(self, batch: Batch) -> dict[Any, Refused]:
        """Insert a batch's accounts one by one in a transaction that is rolled back, and
        return ``{key: why}`` for each one the target refuses: a constraint
        (``target.constraint``) or a value its column cannot hold (``target.too_long``,
        ``target.invalid_value``, with the column).

        PostgreSQL aborts a transaction on error, so each row gets a savepoint there; SQLite
        and MySQL roll back only the failed statement.
        """
        bad: dict[Any, Refused] = {}
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
                    except sa.exc.DBAPIError as exc:
                        if not refused(exc):
                            raise
                        if sp is not None:
                            sp.rollback()
                        bad[rec.key] = self._refused(conn, rec.values, exc)
            finally:
                trans.rollback()
        return bad

    def _refused(
        self, conn: sa.Connection, values: dict[str, Any], exc: sa.exc.DBAPIError
    ) -> Refused:
        """Why the target refused one row, and which column, never quoting a value."""
        column = _column_named(first_line(exc), values)
        if isinstance(exc, sa.exc.IntegrityError) and column is None:
            return Refused("target.constraint", None, _without_values(first_line(exc)))
        columns = self._existing_columns(conn)
        for name, value in values.items():
            length = getattr(columns.get(name), "length", None)
            fits = not (isinstance(value, str) and length and len(value) > length)
            if column in (None, name) and not fits:
                return Refused("target.too_long", name, f"longer than {length} characters")
        if column is None:
            column = self._column_refusing(conn, values, columns)
        what = f"the {columns[column]} column" if column in columns else "the target"
        return Refused("target.invalid_value", column, f"{what} cannot hold this value")

    def _existing_columns(self, conn: sa.Connection) -> dict[str, Any]:
        """The accounts table's column types as the database has them (reflected once)."""
        if self._reflected is None:
            t = self.table
            insp = sa.inspect(conn)
            self._reflected = {
                c["name"]: c["type"] for c in insp.get_columns(t.name, schema=t.schema)
            }
        return self._reflected

    def _column_refusing(
        self, conn: sa.Connection, values: dict[str, Any], columns: dict[str, Any]
    ) -> str | None:
        """The driver did not say which column: cast each value to its column's type alone,
        in a savepoint, and return the first one the database refuses."""
        for name, value in values.items():
            typ = columns.get(name)
            if value is None or typ is None or name not in self.table.c:
                continue
            param = sa.bindparam("v", value, type_=self.table.c[name].type)
            with conn.begin_nested() as sp:
                try:
                    conn.execute(sa.select(sa.cast(param, typ)))
                except sa.exc.DBAPIError:
                    sp.rollback()
                    return name
        return None

    # -- the batch transaction --------------------------------------------------------------

    def commit_batch(self, batch: Batch, run_id: str, redact: frozenset[str]) -> None:
        """Write a batch's accounts, rejects, stage rows and checkpoint in ONE transaction."""
        with self.engine.begin() as conn:
            self._write(conn, batch, run_id, redact)

    def _write(
        self, conn: sa.Connection, batch: Batch, run_id: str, redact: frozenset[str]
    ) -> None:
        if batch.records:
            self.accounts_writer()(conn, [r.values for r in batch.records])
        self.write_rejects(conn, run_id, batch.number, batch.rejects, redact)
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
                **({} if batch.range_id is None else {"range_id": batch.range_id}),
            },
        )
        states = self.state_rows(batch)
        if states:
            self._insert_state(conn, states)

    def write_rejects(
        self,
        conn: sa.Connection,
        run_id: str,
        number: int,
        rejects: list[Reject],
        redact: frozenset[str],
    ) -> None:
        """The rows of ``authmigrate_rejects`` for a batch's rejects (``raw`` redacted)."""
        if not rejects:
            return
        conn.execute(
            self.rejects.insert(),
            [
                {
                    "migration": self.migration,
                    "run_id": run_id,
                    "batch_no": number,
                    "source_key": None if j.key is None else encode_key(j.key),
                    "outcome": j.outcome,
                    "reason": j.reason,
                    "column_name": j.column,
                    "detail": j.detail,
                    "merged_into": None if j.merged_into is None else encode_key(j.merged_into),
                    "raw": raw_row(j.source, redact),
                }
                for j in rejects
            ],
        )

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
        r = self.runs
        stale = conn.execute(
            sa.select(r.c.run_id).where(r.c.migration == self.migration, r.c.status == "running")
        ).scalars()
        for run_id in list(stale):
            done = bookkeeping_counts(conn, self.migration, run_id=run_id)
            conn.execute(
                r.update()
                .where(r.c.run_id == run_id)
                .values(
                    status="crashed",
                    rows_read=done.read,
                    migrated=done.migrated,
                    rejected=done.rejected,
                    merged=done.merged,
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
        """True when a ``sync`` of this migration has run against this target, or the
        bridge carried an account into it (``run`` then skips the keys they accounted for)."""
        r = self.runs
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(r.c.run_id)
                .where(r.c.migration == self.migration, r.c.command.in_(("sync", "bridge")))
                .limit(1)
            ).first()
        return found is not None

    def end_run(
        self, run_id: str, status: str, counts: dict[str, int], error: str | None = None
    ) -> None:
        """Record the end of a run with its counts from the bookkeeping (``counts``, what the
        run process tallied, only when the target cannot be read any more)."""
        with contextlib.suppress(sa.exc.DBAPIError):
            counts = self.counts(run_id).totals()
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


RAW_VALUE_CAP = 1024
"""Characters of one value kept in a reject's raw row (bytes: half as many, in hex)."""
RAW_ROW_CAP = 16_384
"""Characters of values kept in one reject's raw row; the values past it are left out."""


def raw_row(source: dict[str, Any], redact: frozenset[str]) -> str:
    """The source row as JSON for the rejects table, credential-like columns redacted, each
    value cut at :data:`RAW_VALUE_CAP` and the row at :data:`RAW_ROW_CAP` characters (said
    so in the value: ``… [truncated: 307,200 bytes]``)."""
    out: dict[str, Any] = {}
    size = 0
    for name, value in source.items():
        low = name.lower()
        secret = (
            name in redact
            or any(w in low for w in _SECRET_WORDS)
            or _SECRET_NAMES.match(low) is not None
        )
        if secret and value is not None and low != "key":
            shown: Any = REDACTED
        elif isinstance(value, bytes | bytearray | memoryview):
            shown = _capped_bytes(bytes(value))
        elif isinstance(value, InvalidValue):
            shown = _capped_bytes(value.raw) if value.raw is not None else str(value)
        elif isinstance(value, int | float | bool) or value is None:
            shown = value
        else:
            shown = _capped_text(value if isinstance(value, str) else str(value))
        size += len(shown) if isinstance(shown, str) else 8
        if size > RAW_ROW_CAP:
            shown = f"[truncated: the raw row is kept up to {RAW_ROW_CAP:,} characters]"
        out[name] = shown
    return json.dumps(out, ensure_ascii=True, default=str)


def _capped_text(text: str) -> str:
    if len(text) <= RAW_VALUE_CAP:
        return text
    return f"{text[:RAW_VALUE_CAP]}… [truncated: {len(text):,} characters]"


def _capped_bytes(data: bytes) -> str:
    keep = RAW_VALUE_CAP // 2
    if len(data) <= keep:
        return data.hex()
    return f"{data[:keep].hex()}… [truncated: {len(data):,} bytes]"


def refused(exc: sa.exc.DBAPIError) -> bool:
    """The target refused a row (a constraint, or a value its column cannot hold), as
    opposed to a lost connection or a statement that fails whatever the values."""
    return isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError)


@dataclass(frozen=True)
class Refused:
    """Why the target refused one account: a reject reason, the column if known, a detail
    that names no value."""

    reason: str
    column: str | None
    detail: str


_COLUMN_IN_MESSAGE = (
    # MySQL/MariaDB: Data too long for column 'x' / Incorrect ... for column `db`.`t`.`x`
    re.compile(r"for column (?:[`'\"]?\w+[`'\"]?\.)*[`'\"]?(\w+)"),
    # SQLite STRICT tables: cannot store TEXT value in INTEGER column t.x
    re.compile(r"cannot store \w+ value in \w+ column (?:\w+\.)?(\w+)"),
)


def _column_named(message: str, values: dict[str, Any]) -> str | None:
    """The column a driver's message names, if it is one of the row's."""
    for pattern in _COLUMN_IN_MESSAGE:
        m = pattern.search(message)
        if m is not None and m.group(1) in values:
            return m.group(1)
    return None


def _without_values(message: str) -> str:
    """A driver message with quoted values masked (MySQL quotes the duplicate value)."""
    return re.sub(r"'[^']*'", "'…'", message)
