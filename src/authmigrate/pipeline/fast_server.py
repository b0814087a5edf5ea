"""The fast path's write into a PostgreSQL target: binary COPY into a stage, then set-based SQL.

::

    page (Arrow) ─► FastPath.split (the same per-row decision as for SQLite)
                        │ fast rows (values computed in Arrow) + residue (Python transforms)
                        ▼
    one transaction: COPY ... FROM STDIN (FORMAT BINARY) ─► TEMP stage
                     keys the target holds ─► target.key_exists (before the COPY)
                     duplicates: one query over stage ⋈ target and stage ⋈ stage
                     INSERT ... SELECT accounts, INSERT ... SELECT key state, checkpoint

Only the write differs from :class:`~authmigrate.pipeline.fast.FastPath`: the rows staged, the
rejects, their order and every bookkeeping row are the ones the SQLite fast path (and so the
Python path) gives. Duplicates are decided "first in key order wins" in SQL instead of by
``INSERT OR IGNORE``: a stage row loses to the target's account holding its value (earlier
batches' included), else to the stage row of the smallest key holding it. The accounts then go
in with a plain ``INSERT ... SELECT`` (no ``ON CONFLICT``: nothing can conflict any more); if the
target refuses it anyway (a constraint the spec does not know, a value its column cannot hold,
an account the live system wrote meanwhile), the batch is rolled back and done by the Python path.

Which targets take it: :func:`target_table_why` (a trigger, a rule, a collation that is not the
database's, a column type the stage does not carry, or no unique index on the unique field keep
a target on the Python path).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from authmigrate.pipeline.batch import Batch, Record, Reject
from authmigrate.pipeline.fast import FastPath, _Done, _NotFast, _Page, _q
from authmigrate.pipeline.stages import unique_groups
from authmigrate.sinks.sql import utcnow

if TYPE_CHECKING:
    from authmigrate.pipeline.run import Migration

log = logging.getLogger("authmigrate")

STAGE = "authmigrate_fast_stage"
"""The TEMP stage table (one per connection; emptied at each commit)."""

_STATE_COLUMNS = (
    "migration",
    "source_key",
    "state",
    "fingerprint",
    "credential_fp",
    "target_fp",
    "changed_at",
)

STAGED_TYPES = frozenset({"int2", "int4", "int8", "text", "varchar", "bool"})
"""Target column types the stage carries in binary COPY (a value of another type: Python path)."""


def is_postgres_target(url: str) -> bool:
    """True for a PostgreSQL URL through psycopg 3 (the driver whose COPY the stage uses)."""
    return url.startswith(("postgresql+psycopg:", "postgresql+psycopg://"))


def _relation(m: Migration) -> str:
    t = m.target.table
    return f"{_q(t.schema)}.{_q(t.name)}" if t.schema else _q(t.name)


def target_table_why(m: Migration) -> str | None:
    """Why an existing PostgreSQL target table keeps the fast path off (None: it does not).

    A trigger or a rule may change what a set-based insert leaves behind; a column collation
    other than the database's may be non-deterministic (its equality is not the Python path's);
    the stage carries only integer, text and boolean columns; and without a unique index on the
    unique field, a second account holding a value could already be there.
    """
    if m.target.engine.dialect.driver != "psycopg":
        return "the fast path writes PostgreSQL through psycopg 3 only"
    t = m.target.table
    rel = _relation(m)
    with m.target.engine.connect() as conn:
        oid = conn.exec_driver_sql("SELECT to_regclass(%s)::oid", (rel,)).scalar()
        if oid is None:
            return None  # the run creates it, with the unique index
        run = conn.exec_driver_sql
        if run("SELECT 1 FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal", (oid,)).first():
            return f"the target table {t.name!r} has a trigger"
        if run("SELECT 1 FROM pg_rewrite WHERE ev_class = %s", (oid,)).first():
            return f"the target table {t.name!r} has a rule"
        if run("SELECT 1 FROM pg_inherits WHERE inhparent = %s", (oid,)).first():
            # a child table's (or a partition's) accounts are outside the index a direct COPY
            # relies on to find a value already taken
            return f"the target table {t.name!r} has tables inheriting from it"
        columns = {
            str(name): (str(typ), bool(collated))
            for name, typ, collated in run(
                "SELECT a.attname, ty.typname, a.attcollation NOT IN (0, 100) "
                "FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
                (oid,),
            )
        }
        for name in _written_columns(m):
            typ, collated = columns.get(name, ("", False))
            if collated:
                return f"the target table {t.name!r} declares a collation on {name}"
            if typ not in STAGED_TYPES:
                return f"the target column {name} is of type {typ or 'unknown'}"
            if typ == "bool" and name in m.spec.fields:
                # binary COPY would send a text value's truth ('false' as true); the Python
                # path lets the server refuse or convert it
                return f"the target column {name} is boolean and filled from a source field"
        groups = unique_groups(m.spec)
        if not groups:
            return None
        if len(groups[0]) != 1:
            return "a unique group of several fields is checked per row"
        (column,) = groups[0]
        unique = run(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = i.indkey[0] WHERE i.indrelid = %s AND i.indisunique "
            "AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL "
            "AND a.attname = %s",
            (oid, column),
        ).first()
        if not unique:
            return f"the target table {t.name!r} has no unique index on {column} to find duplicates"
    return None


def _written_columns(m: Migration) -> list[str]:
    spec = m.spec
    cols = [spec.target_key] + [n for n in spec.fields if n != spec.target_key]
    return cols + [c.name for stage in [*m.early, *m.late] for c in stage.columns()]


class _Rows:
    """A batch's accounts-to-be and fingerprints: the fast rows column-wise (Arrow arrays, or
    Python lists where a stage gave Python values: tokens, fingerprints) and the residue's rows
    as tuples in key order; each row is ``k``, each target column, ``fp``, ``cfp``, ``tfp``."""

    def __init__(self, fast: list[pa.Array | list[Any]], residue: list[tuple[Any, ...]]) -> None:
        self.fast = fast
        self.residue = residue

    def tuples(self) -> list[tuple[Any, ...]]:
        """Every row as a tuple, in key order (for ``write_row``)."""
        columns = [c.to_pylist() if isinstance(c, pa.Array) else c for c in self.fast]
        rows = list(zip(*columns, strict=True))
        if self.residue:
            rows += self.residue
            rows.sort(key=lambda row: row[0])
        return rows

    def column(self, i: int) -> list[Any]:
        """Column ``i``'s values (fast rows, then the residue's)."""
        c = self.fast[i]
        return [*(c.to_pylist() if isinstance(c, pa.Array) else c), *(r[i] for r in self.residue)]

    def keys(self) -> list[Any]:
        """The rows' keys, in key order."""
        return sorted(self.column(0)) if self.residue else self.column(0)

    def text_columns(self, types: list[str]) -> tuple[pa.Array, list[pa.Array]]:
        """The key column as Arrow integers and every column as COPY text fields (see
        :mod:`~authmigrate.pipeline.copy_text`), in key order; ``types`` are the columns'
        PostgreSQL types. Raises :class:`~authmigrate.pipeline.copy_text.NotText` where a
        value is not of its column's kind."""
        from authmigrate.pipeline.copy_text import NotText, text_column

        try:
            parts = [self.fast]
            if self.residue:
                parts.append([[r[i] for r in self.residue] for i in range(len(self.fast))])
            arrays: list[list[pa.Array]] = [[] for _ in self.fast]
            for part in parts:
                for i, values in enumerate(part):
                    array = values if isinstance(values, pa.Array) else pa.array(values)
                    arrays[i].append(array)
            if not all(pa.types.is_integer(a.type) for a in arrays[0]):
                raise NotText("the keys are not integers")
            keys = pa.concat_arrays([a.cast(pa.int64()) for a in arrays[0]])
            texts = [
                pa.concat_arrays([text_column(a, typ) for a in column])
                for column, typ in zip(arrays, types, strict=True)
            ]
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise NotText(f"a value Arrow cannot carry ({type(exc).__name__})") from None
        if self.residue:
            order = pc.sort_indices(keys)
            keys = keys.take(order)
            texts = [t.take(order) for t in texts]
        return keys, texts


class PostgresFastPath(FastPath):
    """The fast path into a PostgreSQL target (see the module's docstring)."""

    read_ahead = True
    """The server writes a batch while the client reads and decides the next one."""

    def __init__(self, m: Migration, reader: Any) -> None:
        super().__init__(m, reader)
        groups = unique_groups(m.spec)
        if groups and len(groups[0]) != 1:
            raise _NotFast("a unique group of several fields is checked per row")
        self._types: list[str] | None = None
        self._target_types: list[str] = []
        self._state_types: list[str] = []
        self._state_sql: str | None = None
        self._state_sql_text = ""
        self._numbered = False
        """A column the run does not write takes its default from a sequence (see
        :meth:`_direct`)."""

    def commit(self, number: int, page: _Page, run_id: str) -> _Done:
        import psycopg

        try:
            return super().commit(number, page, run_id)
        except psycopg.Error as exc:
            why = f"the target refused the set-based write ({type(exc).__name__})"
            raise _NotFast(why) from None

    # -- the stage --------------------------------------------------------------------------

    def _read_types(self, cur: Any) -> None:
        """The column types of the accounts and key state tables, from the catalog, once."""
        if self._types is not None:
            return
        sql = (
            "SELECT a.attname, ty.typname FROM pg_attribute a "
            "JOIN pg_type ty ON ty.oid = a.atttypid "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
        )
        types = {str(n): str(t) for n, t in cur.execute(sql, (_relation(self.m),)).fetchall()}
        missing = [c for c in self.target_cols if types.get(c) not in STAGED_TYPES]
        if missing:
            raise _NotFast(f"the target column {missing[0]} is not staged in binary")
        self._target_types = [types[c] for c in self.target_cols]
        self._numbered = bool(
            cur.execute(
                "SELECT 1 FROM pg_attribute a LEFT JOIN pg_attrdef d "
                "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
                "AND NOT a.attname = ANY(%s) AND (a.attidentity <> '' "
                "OR position('nextval(' IN pg_get_expr(d.adbin, d.adrelid)) > 0)",
                (_relation(self.m), self.target_cols),
            ).fetchone()
        )
        self._types = ["int8", *self._target_types[1:], "text", "text", "text"]
        state = self.m.target.state
        rel = f"{_q(state.schema)}.{_q(state.name)}" if state.schema else _q(state.name)
        found = {str(n): str(t) for n, t in cur.execute(sql, (rel,)).fetchall()}
        self._state_types = [found.get(c, "") for c in _STATE_COLUMNS]
        self._state_sql_text = f"COPY {rel} ({', '.join(_STATE_COLUMNS)}) FROM STDIN"
        self._state_sql = (
            f"{self._state_sql_text} (FORMAT BINARY)"
            if all(t in STAGED_TYPES | {"timestamp"} for t in self._state_types)
            else None
        )

    def _create_stage(self, cur: Any) -> None:
        """The TEMP stage, typed like the target's columns."""
        assert self._types is not None
        columns = ", ".join(
            f"{_q(name)} {typ}"
            for name, typ in zip(
                ["k", *("v_" + c for c in self.target_cols[1:]), "fp", "cfp", "tfp"],
                self._types,
                strict=True,
            )
        )
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({columns}) ON COMMIT DELETE ROWS")

    def _rows(self, fast: pa.Table, residue: Batch) -> _Rows:
        """The batch's accounts-to-be and their fingerprints (``k``, each target column, then
        ``fp``, ``cfp``, ``tfp``). Tokens are issued here, one per row, by the token stage
        itself."""
        from authmigrate.sinks.state import fingerprint, value_fp

        cols = self.target_cols
        n = fast.num_rows
        keys = fast.column("k").combine_chunks()
        tokens: dict[str, list[Any]] = {}
        if self.tokens is not None and self.tokens.segments is None and not residue.records:
            tokens = self.tokens.issue_columns(n)  # no residue: no record needed
        elif self.tokens is not None:
            # one call for the batch's fast rows and residue records alike (one expiry)
            tokened = [Record(k, {}, {}) for k in keys.to_pylist()]
            both = Batch(number=0, first_key=None, last_key=None, rows_read=0)
            both.records = [*tokened, *residue.records]
            self.tokens.process(both)
            tokens = {
                c.name: [r.values.get(c.name) for r in tokened] for c in self.tokens.columns()
            }
        columns: list[pa.Array | list[Any]] = [keys]
        for c in cols[1:]:
            if c in fast.column_names:
                columns.append(fast.column(c).combine_chunks())
            elif c in tokens:
                columns.append(tokens[c])
            else:
                columns.append(pa.nulls(n))
        blake2b = hashlib.blake2b
        for name in ("fp", "cfp", "tfp"):
            if name in fast.column_names:
                columns.append(
                    [
                        blake2b(t, digest_size=16).hexdigest()
                        for t in fast.column(name).cast(pa.binary()).to_pylist()
                    ]
                )
            else:
                columns.append(pa.nulls(n))
        rows: list[tuple[Any, ...]] = []
        if residue.records:
            creds = self.m.target.cred_columns
            target = self.cred.target_column if self.cred is not None else None
            rows = [
                (
                    *(r.values.get(c) for c in cols),
                    fingerprint(r.source, self.fp_columns),
                    fingerprint(r.source, creds) if creds else None,
                    value_fp(r.values.get(target)) if target else None,
                )
                for r in residue.records
            ]
            rows.sort(key=lambda row: row[0])
        return _Rows(columns, rows)

    def _copy_stage(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """COPY the rows into the stage."""
        assert self._types is not None
        try:
            with cur.copy(f"COPY {STAGE} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(self._types)
                for row in rows:
                    copy.write_row(row)
        except (TypeError, ValueError, OverflowError, AttributeError):
            # a residue value not of its column's type: the Python path lets the server convert
            raise _NotFast("a value the stage's binary COPY cannot carry") from None

    def _direct(self, cur: Any, rows: _Rows, stamp: Any) -> bool:
        """COPY the rows straight into the accounts and their key state, inside a savepoint:
        True if the target took them all. False (rolled back) if it refused any, a unique
        value an account holds already most likely: the stage then decides which rows lose.

        The COPY data is built column-wise in Arrow (text format, :meth:`_payloads`); where a
        value is not of its column's kind, or the connection's encoding is not UTF-8, each row
        goes through psycopg's binary ``write_row`` instead.

        Not where a column the run does not write is numbered by a sequence: a refused COPY
        would have drawn a number for each of its rows (a sequence is not rolled back), and
        the accounts would hold other numbers than the Python path gives them.
        """
        import psycopg

        if self._state_sql is None or self._numbered:
            return False
        ncols = len(self.target_cols)
        names = ", ".join(_q(c) for c in self.target_cols)
        migration = self.m.target.migration
        payloads = self._payloads(cur, rows, stamp)
        cur.execute("SAVEPOINT authmigrate_fast")
        try:
            if payloads is not None:
                accounts, state = payloads
                with cur.copy(f"COPY {self.table_sql} ({names}) FROM STDIN") as copy:
                    copy.write(accounts)
                with cur.copy(self._state_sql_text) as copy:
                    copy.write(state)
            else:
                tuples = rows.tuples()
                sql = f"COPY {self.table_sql} ({names}) FROM STDIN (FORMAT BINARY)"
                with cur.copy(sql) as copy:
                    copy.set_types(self._target_types)
                    for row in tuples:
                        copy.write_row(row[:ncols])
                with cur.copy(self._state_sql) as copy:
                    copy.set_types(self._state_types)
                    for row in tuples:
                        copy.write_row((migration, str(row[0]), "migrated", *row[ncols:], stamp))
        except (psycopg.Error, TypeError, ValueError, OverflowError, AttributeError):
            cur.execute("ROLLBACK TO SAVEPOINT authmigrate_fast")
            return False
        cur.execute("RELEASE SAVEPOINT authmigrate_fast")
        return True

    def _payloads(self, cur: Any, rows: _Rows, stamp: Any) -> tuple[memoryview, memoryview] | None:
        """The text-format COPY data of the accounts and of their key state rows, built in
        Arrow; None where it cannot be (the caller then writes row by row)."""
        from authmigrate.pipeline.copy_text import (
            TEXT_TYPES,
            NotText,
            escape,
            stamp_text,
            text_payload,
        )

        if cur.connection.info.encoding != "utf-8":
            return None  # the text data is UTF-8; the binary route lets psycopg encode
        ncols = len(self.target_cols)
        fp_types = self._state_types[3:6]
        if any(t not in TEXT_TYPES for t in self._state_types[:6]):
            return None
        if self._state_types[6] != "timestamp":
            return None
        try:
            keys, texts = rows.text_columns([*self._target_types, *fp_types])
            when = stamp_text(stamp)
            source_keys = pc.cast(keys, pa.string())  # state_key of an integer: its digits
        except NotText as exc:
            log.debug("COPY row by row: %s", exc)
            return None
        migration = escape(self.m.target.migration)
        accounts = text_payload(texts[:ncols])
        state = text_payload([migration, source_keys, "migrated", *texts[ncols:], when])
        log.debug("COPY as text built in Arrow: %d rows", len(keys))
        return memoryview(accounts), memoryview(state)

    # -- the batch --------------------------------------------------------------------------

    def _write(
        self, conn: sa.Connection, number: int, page: _Page, residue: Batch, run_id: str
    ) -> _Done:
        m = self.m
        cur: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._read_types(cur)
        rejects: list[Reject] = list(residue.rejects)
        sources: dict[int, dict[str, Any]] = {r.key: r.source for r in residue.records}

        # keys the target already holds: one range read (integer keys)
        taken_keys = {
            k
            for (k,) in cur.execute(
                f"SELECT {self.key_sql} FROM {self.table_sql} "
                f"WHERE {self.key_sql} BETWEEN %s AND %s",
                (page.first_key, page.last_key),
            ).fetchall()
        }
        fast = self._settle(page, residue, taken_keys, sources, rejects)

        rows = self._rows(fast, residue)
        now = utcnow()
        stamp = self.now_proc(now) if self.now_proc is not None else now
        losers: dict[int, Any] = {}
        direct = not self._variants_among(conn, rows) and self._direct(cur, rows, stamp)
        if direct:
            written = rows.keys()
        else:
            # duplicates: first in key order wins (the target's accounts before the batch's)
            self._create_stage(cur)
            self._copy_stage(cur, rows.tuples())
            losers = self._variant_losers(conn, cur)
            if losers:
                cur.execute(f"DELETE FROM {STAGE} WHERE k = ANY(%s)", (sorted(losers),))
            found = self._duplicates(cur)
            losers.update(found)
            if found:
                cur.execute(f"DELETE FROM {STAGE} WHERE k = ANY(%s)", (sorted(found),))
            written = self._insert(cur)
        if losers:
            rejects += self._duplicate_rejects(page, losers, sources)

        # bookkeeping: rejects, the checkpoint, key state
        target = m.target
        merged = self._checkpoint(conn, number, page, run_id, written, rejects, now)
        if not direct:
            state = _q(target.state.name)
            if target.state.schema:
                state = f"{_q(target.state.schema)}.{state}"
            cur.execute(
                f"INSERT INTO {state} ({', '.join(_STATE_COLUMNS)}) "
                f"SELECT %s, k::text, 'migrated', fp, cfp, tfp, %s FROM {STAGE} ORDER BY k",
                (target.migration, stamp),
            )
        cur.close()
        return self._done(conn, page, number, written, residue, losers, rejects, merged)

    def _insert(self, cur: Any) -> list[int]:
        """``INSERT ... SELECT`` the stage into the accounts; the keys written, in key order."""
        cols = self.target_cols
        names = ", ".join(_q(c) for c in cols)
        picks = ", ".join(["k", *(_q("v_" + c) for c in cols[1:])])
        sql = (
            f"INSERT INTO {self.table_sql} ({names}) "
            f"SELECT {picks} FROM {STAGE} ORDER BY k RETURNING {self.key_sql}"
        )
        return sorted(k for (k,) in cur.execute(sql).fetchall())

    def _variants_among(self, conn: sa.Connection, rows: _Rows) -> bool:
        """True when a row's unique value is one the target holds spelled otherwise (such a
        row takes the stage, where :meth:`_variant_losers` decides it)."""
        variants = self._variants(conn)
        if not variants:
            return False
        (column,) = self.groups[0]
        i = self.target_cols.index(column)
        return any(value in variants for value in rows.column(i))

    def _variants(self, conn: sa.Connection) -> dict[Any, Any]:
        """``{normalized value: key}`` of the target's accounts spelled otherwise (read once
        per run, as the Python path reads them)."""
        if not self.groups:
            return {}
        group = self.groups[0]
        m = self.m
        from authmigrate.pipeline.transform import normalizer

        norms = [normalizer(f, m.spec.fields[f]) for f in group]
        if not any(n is not None for n in norms):
            return {}
        variants = m._variants.get(group)
        if variants is None:
            # its own connection: the read sets yield_per (a server-side cursor) on the one
            # it is given, which the batch's executemany cannot use
            with m.target.engine.connect() as own:
                variants = m._variants[group] = m.target.variants(own, group, norms)
        return variants

    def _variant_losers(self, conn: sa.Connection, cur: Any) -> dict[int, Any]:
        """Stage rows whose unique value the target holds spelled otherwise (an account the new
        system wrote, ``User.5@Example.com``): the index cannot see them, the lookup can."""
        if not self.groups:
            return {}
        variants = self._variants(conn)
        if not variants:
            return {}
        (column,) = self.groups[0]
        v, c = _q("v_" + column), _q(column)
        out: dict[int, Any] = {}
        # a value the target also holds exactly is that account's duplicate (as on the
        # Python path, where the exact lookup comes first)
        rows = cur.execute(
            f"SELECT k, {v} FROM {STAGE} s WHERE {v} = ANY(%s) "
            f"AND NOT EXISTS (SELECT 1 FROM {self.table_sql} t WHERE t.{c} = s.{v}) ORDER BY k",
            (list(variants),),
        ).fetchall()
        for k, value in rows:
            out[k] = variants[value]
        return out

    def _duplicates(self, cur: Any) -> dict[int, Any]:
        """``{key: first}`` for the stage rows whose unique value an account holds already:
        the target's (earlier batches' included), else the stage row of the smallest key
        holding it."""
        if not self.groups:
            return {}
        (column,) = self.groups[0]
        v, c, key = _q("v_" + column), _q(column), self.key_sql
        cur.execute(f"ANALYZE {STAGE}")  # a TEMP table is never analysed by autovacuum
        rows = cur.execute(
            f"SELECT s.k, t.{key} FROM {STAGE} s JOIN {self.table_sql} t ON t.{c} = s.{v} "
            "UNION ALL "
            f"SELECT s.k, f.first FROM {STAGE} s JOIN ("
            f"  SELECT {v} AS v, min(k) AS first FROM {STAGE} "
            f"  WHERE {v} IS NOT NULL GROUP BY {v} HAVING count(*) > 1"
            f") f ON f.v = s.{v} "
            f"WHERE s.k > f.first "
            f"AND NOT EXISTS (SELECT 1 FROM {self.table_sql} t WHERE t.{c} = s.{v})"
        ).fetchall()
        return dict(rows)


def count_unsynced_keys(m: Migration) -> int | None:
    """The source's keys the key state of a PostgreSQL target does not know (or knows as
    deleted), counted by the server: the source's keys go by COPY into a TEMP table (a SQLite
    table's integer keys streamed as Arrow, others paged as the Python count pages them), then
    one anti-join against the key state counts them, so only a number comes back. None where
    this does not apply (not psycopg 3, not a database source) or a driver fails: the caller
    counts in Python."""
    from authmigrate.sources.sql import SqlSource

    target = m.target
    if target.engine.dialect.driver != "psycopg" or not isinstance(m.source, SqlSource):
        return None
    state = _q(target.state.name)
    if target.state.schema:
        state = f"{_q(target.state.schema)}.{state}"
    try:
        return _count_unsynced(m, state)
    except Exception as exc:  # noqa: BLE001 - any driver failure: the Python count decides
        log.info("counting unsynced keys on the server failed (%s)", type(exc).__name__)
        return None


def _count_unsynced(m: Migration, state: str) -> int:
    from authmigrate.sinks.state import state_key

    target = m.target
    keys_table = "authmigrate_fast_keys"
    after: Any = None
    with target.engine.begin() as conn:
        cur: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cur.execute(f"CREATE TEMP TABLE {keys_table} (k text) ON COMMIT DROP")
        pages = _sqlite_int_key_pages(m)
        if pages is not None:  # integer keys read as Arrow: their text is the state's key
            with cur.copy(f"COPY {keys_table} FROM STDIN") as copy:
                for page in pages:
                    copy.write("\n".join(page.cast(pa.string()).to_pylist()) + "\n")
        else:
            with cur.copy(f"COPY {keys_table} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text"])
                while keys := m.source.key_page(after, _COUNT_PAGE):
                    for k in keys:
                        copy.write_row((state_key(k),))
                    after = keys[-1]
        cur.execute(f"ANALYZE {keys_table}")
        found = cur.execute(
            f"SELECT count(*) FROM {keys_table} u WHERE NOT EXISTS ("
            f"SELECT 1 FROM {state} s WHERE s.migration = %s AND s.source_key = u.k "
            "AND s.state <> 'deleted')",
            (target.migration,),
        ).fetchone()
        cur.close()
    return int(found[0])


_COUNT_PAGE = 50_000
"""Source keys read per page by :func:`count_unsynced_keys`."""


def _sqlite_int_key_pages(m: Migration) -> Iterator[pa.Array] | None:
    """A SQLite source table's keys through the ADBC driver, streamed as Arrow integer
    arrays, when every non-NULL key is stored as an integer (None otherwise)."""
    from authmigrate.sources.sql import SqlSource

    src = m.source
    assert isinstance(src, SqlSource)
    table = src._selectable
    if src.engine.dialect.name != "sqlite" or not isinstance(table, sa.Table):
        return None
    import adbc_driver_sqlite.dbapi as adbc

    key = _q(m.spec.source.key)
    name = f"{_q(table.schema)}.{_q(table.name)}" if table.schema else _q(table.name)
    conn = adbc.connect(src.engine.url.database or "", autocommit=True)
    cur = conn.cursor()
    cur.execute(
        f"SELECT count(*) FROM {name} WHERE {key} IS NOT NULL AND typeof({key}) <> 'integer'"
    )
    odd = cur.fetchone()
    if odd is None or odd[0]:
        cur.close()
        conn.close()
        return None
    cur.execute(f"SELECT {key} FROM {name} WHERE {key} IS NOT NULL")

    def pages() -> Iterator[pa.Array]:
        try:
            for batch in cur.fetch_record_batch():
                if batch.num_rows:
                    yield batch.column(0)
        finally:
            cur.close()
            conn.close()

    return pages()
