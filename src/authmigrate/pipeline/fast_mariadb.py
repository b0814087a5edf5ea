"""The fast path's write into a MariaDB/MySQL target: multi-row INSERT text built column-wise.

::

    page (Arrow) ─► FastPath.split (the same per-row decision as for SQLite)
                        │ fast rows (values computed in Arrow) + residue (Python transforms)
                        ▼
    one transaction: keys the target holds ─► target.key_exists
                     SAVEPOINT; INSERT accounts VALUES (...),(...) ; INSERT key state ...
                     refused? ROLLBACK TO SAVEPOINT; duplicates decided as the Python path
                     decides them (Migration.taken, first in key order wins); INSERT again
                     rejects, checkpoint

Only the write differs from :class:`~authmigrate.pipeline.fast.FastPath`. PyMySQL has no
server-side prepared statements: its ``executemany`` (the Python path's write) formats every
value into the text of a multi-row ``INSERT`` in Python, one call per value. Here the statement
text is built a column at a time in Arrow wherever a column's values need no escaping (printable
ASCII without a quote or a backslash: what :func:`FastPath.split` lets through, checked again
over the whole column before it is pasted), and by PyMySQL's own ``escape`` otherwise (the
residue's values, tokens, booleans, timestamps), so the server reads the same literals the
Python path sends. ``LOAD DATA LOCAL INFILE`` is not used (docs/benchmarks.md: ``local_infile``
lets a server read the client's files, and LOCAL turns refused rows into warnings).

Duplicates: the batch's accounts go straight into the table inside a savepoint. The target's
unique index on the unique field proves, when it takes them all, that no value of the batch
equals another or an account's (the index's collation can only call *more* values equal than
Python does); accounts the new system spelled otherwise (``User.5@Example.com``) are looked up
first, as on the Python path. When the index refuses (a duplicate, or a value its collation
calls equal: case, trailing spaces), the savepoint is rolled back and the duplicates are decided
by the Python path's own lookup (:meth:`Migration.taken`, so a case-insensitive or PAD SPACE
collation is read exactly as it reads it), then the survivors are inserted; if the target
refuses them again (what the Python path would reject as ``target.constraint``), the batch is
rolled back and done by the Python path.

Which targets take it: :func:`target_table_why`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from authmigrate.pipeline.batch import Batch, Record, Reject
from authmigrate.pipeline.fast import _REPRABLE, FastPath, _Done, _NotFast, _Page
from authmigrate.pipeline.stages import unique_groups
from authmigrate.sinks.sql import utcnow

if TYPE_CHECKING:
    from authmigrate.pipeline.run import Migration

log = logging.getLogger("authmigrate")

_STATE_COLUMNS = (
    "migration",
    "source_key",
    "state",
    "fingerprint",
    "credential_fp",
    "target_fp",
    "changed_at",
)

STATEMENT_BYTES = 1_024_000
"""Bytes per ``INSERT`` at most (PyMySQL's ``executemany`` cuts at the same length: below a
``max_allowed_packet`` of 1 MiB, older servers' default and a common my.cnf line)."""

WRITTEN_TYPES = frozenset(
    {
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "bigint",
        "char",
        "varchar",
        "tinytext",
        "text",
        "mediumtext",
        "longtext",
        "datetime",
        "timestamp",
    }
)
"""Target column types of written columns the fast path writes (another: the Python path)."""

STAGES = (
    "split",
    "residue",
    "keys",
    "rows",
    "insert",
    "insert accounts",
    "duplicates",
    "bookkeeping",
)
"""The stages :data:`PROFILE` times (seconds, summed over a run's batches)."""

PROFILE: dict[str, float] = defaultdict(float)
"""Where a process's MariaDB fast-path batches spent their time (read by bench/, for the
per-stage report in docs/benchmarks.md); reset it to measure one run."""


def is_mariadb_target(url: str) -> bool:
    """True for a MySQL/MariaDB URL through PyMySQL (the driver whose escaping the text uses)."""
    return url.startswith(("mysql+pymysql:", "mariadb+pymysql:"))


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _written_columns(m: Migration) -> list[str]:
    spec = m.spec
    cols = [spec.target_key] + [n for n in spec.fields if n != spec.target_key]
    return cols + [c.name for stage in [*m.early, *m.late] for c in stage.columns()]


def target_table_why(m: Migration) -> str | None:
    """Why an existing MariaDB/MySQL target table keeps the fast path off (None: it does not).

    A trigger may change what a set-based insert leaves behind; a written column of a type
    other than integer, text or timestamp is left to the Python path; and without a unique
    index on exactly the unique field, an insert the target takes would not prove that no
    account holds a value already. (A collation needs no refusal: the index can only call more
    values equal than Python does, and what it refuses is decided by the Python path's lookup.)
    """
    if m.target.engine.dialect.driver != "pymysql":
        return "the fast path writes MariaDB/MySQL through PyMySQL only"
    t = m.target.table
    with m.target.engine.connect() as conn:
        run = conn.exec_driver_sql
        schema = t.schema or run("SELECT DATABASE()").scalar()
        found = run(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (schema, t.name),
        ).first()
        if found is None:
            return None  # the run creates it, with the unique index
        trigger = run(
            "SELECT 1 FROM information_schema.TRIGGERS "
            "WHERE EVENT_OBJECT_SCHEMA = %s AND EVENT_OBJECT_TABLE = %s",
            (schema, t.name),
        ).first()
        if trigger is not None:
            return f"the target table {t.name!r} has a trigger"
        columns = {
            str(name): str(typ).lower()
            for name, typ in run(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (schema, t.name),
            )
        }
        for name in _written_columns(m):
            typ = columns.get(name, "")
            if typ not in WRITTEN_TYPES:
                return f"the target column {name} is of type {typ or 'unknown'}"
        groups = unique_groups(m.spec)
        if not groups:
            return None
        if len(groups[0]) != 1:
            return "a unique group of several fields is checked per row"
        (column,) = groups[0]
        indexes: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for index, col, sub in run(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
            "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (schema, t.name),
        ):
            indexes[str(index)].append((str(col), sub))
        if [(column, None)] not in indexes.values():
            return f"the target table {t.name!r} has no unique index on {column} to find duplicates"
    return None


class MariaDBFastPath(FastPath):
    """The fast path into a MariaDB/MySQL target (see the module's docstring)."""

    def __init__(self, m: Migration, reader: Any) -> None:
        super().__init__(m, reader)
        if self.groups and len(self.groups[0]) != 1:
            raise _NotFast("a unique group of several fields is checked per row")
        d = m.target.engine.dialect
        table = m.target.table
        self._procs: list[Callable[[Any], Any] | None] = [
            table.c[c].type.dialect_impl(d).bind_processor(d) for c in self.target_cols
        ]
        state = m.target.state
        self.state_sql = f"{_q(state.schema)}.{_q(state.name)}" if state.schema else _q(state.name)
        self.accounts_sql = (
            f"{_q(table.schema)}.{_q(table.name)}" if table.schema else _q(table.name)
        )
        self.key_col = _q(m.spec.target_key)

    def split(self, page: pa.Table) -> _Page:
        started = time.perf_counter()
        out = super().split(page)
        PROFILE["split"] += time.perf_counter() - started
        return out

    def _residue(self, number: int, page: _Page) -> Batch:
        started = time.perf_counter()
        out = super()._residue(number, page)
        PROFILE["residue"] += time.perf_counter() - started
        return out

    def commit(self, number: int, page: _Page, run_id: str) -> _Done:
        import pymysql

        try:
            return super().commit(number, page, run_id)
        except pymysql.err.MySQLError as exc:
            raise _NotFast(
                f"the target refused the set-based write ({type(exc).__name__})"
            ) from None

    # -- the statement text -----------------------------------------------------------------

    @staticmethod
    def _literals(esc: Callable[[Any], str], column: pa.Array | list[Any], proc: Any) -> pa.Array:
        """A column's SQL literals: pasted in Arrow where every value is NULL or printable
        ASCII without a quote or a backslash (nothing to escape), else PyMySQL's escape of
        each value (after the column type's bind processor, as the Python path's insert)."""
        if isinstance(column, pa.Array) and proc is None:
            if pa.types.is_integer(column.type):
                return pc.fill_null(pc.cast(column, pa.string()), "NULL")
            if pa.types.is_string(column.type):
                ok = pc.fill_null(pc.match_substring_regex(column, _REPRABLE), True)
                if pc.all(ok).as_py() is not False:
                    return pc.fill_null(pc.binary_join_element_wise("'", column, "'", ""), "NULL")
        values = column.to_pylist() if isinstance(column, pa.Array) else column
        if proc is not None:
            values = [proc(v) for v in values]
        return pa.array([esc(v) for v in values], pa.string())

    def _row_texts(
        self, conn: Any, fast: pa.Table, residue: list[Record], stamp: Any
    ) -> tuple[list[int], list[str], list[str], list[Any]]:
        """(keys, accounts row texts, key state row texts, unique values) in key order. Tokens
        are issued here, one per row, by the token stage itself (fast rows and residue alike,
        one call, one expiry)."""
        from authmigrate.sinks.state import fingerprint, value_fp

        esc = conn.escape
        cols = self.target_cols
        n = fast.num_rows
        keys = fast.column("k").combine_chunks()
        tokens: dict[str, list[Any]] = {}
        if self.tokens is not None and self.tokens.segments is None and not residue:
            tokens = self.tokens.issue_columns(n)
        elif self.tokens is not None:
            tokened = [Record(k, {}, {}) for k in keys.to_pylist()]
            both = Batch(number=0, first_key=None, last_key=None, rows_read=0)
            both.records = [*tokened, *residue]
            self.tokens.process(both)
            tokens = {
                c.name: [r.values.get(c.name) for r in tokened] for c in self.tokens.columns()
            }
        null = pa.array(["NULL"] * n, pa.string())
        lits: list[pa.Array] = []
        for c, proc in zip(cols, self._procs, strict=True):
            if c == cols[0]:
                lits.append(self._literals(esc, keys, proc))
            elif c in fast.column_names:
                lits.append(self._literals(esc, fast.column(c).combine_chunks(), proc))
            elif c in tokens:
                values = tokens[c]
                text = all(v is None or type(v) is str for v in values)
                lits.append(
                    self._literals(esc, pa.array(values, pa.string()) if text else values, proc)
                )
            else:
                lits.append(null)
        fps: list[pa.Array] = []
        for name in ("fp", "cfp", "tfp"):
            if name in fast.column_names:
                hexes = [
                    hashlib.blake2b(t, digest_size=16).hexdigest()
                    for t in fast.column(name).cast(pa.binary()).to_pylist()
                ]
                fps.append(pc.binary_join_element_wise("'", pa.array(hexes, pa.string()), "'", ""))
            else:
                fps.append(null)
        if n:
            accounts = pc.binary_join_element_wise(
                "(", pc.binary_join_element_wise(*lits, ","), ")", ""
            ).to_pylist()
            key_text = pc.cast(keys, pa.string())
            head = f"({esc(self.m.target.migration)},'"
            tail = f",{esc(stamp)})"
            state = pc.binary_join_element_wise(
                head, key_text, "','migrated',", fps[0], ",", fps[1], ",", fps[2], tail, ""
            )
            states = state.to_pylist()
        else:
            accounts, states = [], []
        key_list = keys.to_pylist()
        i = cols.index(self.groups[0][0]) if self.groups else None
        uniques: list[Any] = (
            fast.column(cols[i]).to_pylist()
            if i is not None and cols[i] in fast.column_names
            else [None] * n
        )
        if residue:
            creds = self.m.target.cred_columns
            target = self.cred.target_column if self.cred is not None else None
            procs = self._procs
            rows = [
                (k, a, s, u) for k, a, s, u in zip(key_list, accounts, states, uniques, strict=True)
            ]
            for r in residue:
                values = [r.values.get(c) for c in cols]
                row_text = ",".join(
                    esc(v if p is None else p(v)) for v, p in zip(values, procs, strict=True)
                )
                fp = fingerprint(r.source, self.fp_columns)
                cfp = fingerprint(r.source, creds) if creds else None
                tfp = value_fp(r.values.get(target)) if target else None
                st = ",".join(
                    esc(v)
                    for v in (self.m.target.migration, str(r.key), "migrated", fp, cfp, tfp, stamp)
                )
                rows.append((r.key, f"({row_text})", f"({st})", None if i is None else values[i]))
            rows.sort(key=lambda row: row[0])
            key_list = [row[0] for row in rows]
            accounts = [row[1] for row in rows]
            states = [row[2] for row in rows]
            uniques = [row[3] for row in rows]
        return key_list, accounts, states, uniques

    def _insert(self, cur: Any, head: str, rows: list[str]) -> None:
        """``head VALUES row, row, ...`` in statements of at most :data:`STATEMENT_BYTES`
        bytes, cut as PyMySQL's ``executemany`` cuts them: before the row that would cross the
        bound (a longer row alone), counted in bytes, not characters (UTF-8's length bounds
        every connection charset's), so that a server whose ``max_allowed_packet`` takes the
        Python path's statements takes these too."""
        empty = len(head.encode())
        start, size = 0, empty
        for j, text in enumerate(rows):
            n = (len(text) if text.isascii() else len(text.encode())) + 1
            if j > start and size + n > STATEMENT_BYTES:
                cur.execute(head + ",".join(rows[start:j]))
                start, size = j, empty
            size += n
        if start < len(rows):
            cur.execute(head + ",".join(rows[start:]))

    @staticmethod
    def _in_text_order(keys: list[int], rows: list[str]) -> list[str]:
        """The key state's rows in the order of its primary key (``source_key`` is text:
        ``'10' < '9'``), so InnoDB appends to its pages instead of splitting them."""
        order = pc.sort_indices(pa.array(keys, pa.int64()).cast(pa.string()))
        return [rows[j] for j in order.to_pylist()]

    # -- duplicates, as the Python path decides them ----------------------------------------

    def _variants(self) -> dict[Any, Any]:
        """``{normalized value: key}`` of the target's accounts spelled otherwise (read once
        per run, on its own connection, as the Python path reads them)."""
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
            with m.target.engine.connect() as own:
                variants = m._variants[group] = m.target.variants(own, group, norms)
        return variants

    def _decide(self, keys: list[int], uniques: list[Any]) -> dict[int, Any]:
        """``{key: first}``: :class:`~authmigrate.pipeline.stages.DuplicateStage`'s rule over
        the batch in key order, with the values taken as :meth:`Migration.taken` finds them
        (on its own connection, as the Python path's lookup)."""
        if not self.groups:
            return {}
        group = self.groups[0]
        with self.m.target.engine.connect() as own:
            taken = self.m.taken(own, group, uniques)
        form = self.m.target.key.stored
        out: dict[int, Any] = {}
        for k, value in zip(keys, uniques, strict=True):
            if value is None:
                continue
            first = taken.get(value)
            if first is None:
                taken[value] = k
            elif form(first) == form(k):
                # the key was free when the batch read the target's keys: another writer
                # (the new system) has committed an account under it since; the Python path
                # reads the keys again and rejects it as target.key_exists
                raise _NotFast("an account appeared under a key of the batch while it was written")
            else:
                out[k] = first
        return out

    # -- the batch --------------------------------------------------------------------------

    def _write(
        self, conn: sa.Connection, number: int, page: _Page, residue: Batch, run_id: str
    ) -> _Done:
        import pymysql

        raw: Any = conn.connection.driver_connection
        cur = raw.cursor()
        clock = time.perf_counter()
        rejects: list[Reject] = list(residue.rejects)
        sources: dict[int, dict[str, Any]] = {r.key: r.source for r in residue.records}

        # keys the target already holds: one range read (integer keys)
        cur.execute(
            f"SELECT {self.key_col} FROM {self.accounts_sql} "
            f"WHERE {self.key_col} BETWEEN {int(page.first_key)} AND {int(page.last_key)}"
        )
        taken_keys = {int(k) for (k,) in cur.fetchall()}
        fast = self._settle(page, residue, taken_keys, sources, rejects)
        now = utcnow()
        stamp = self.now_proc(now) if self.now_proc is not None else now
        PROFILE["keys"] += time.perf_counter() - clock
        clock = time.perf_counter()

        keys, accounts, states, uniques = self._row_texts(raw, fast, residue.records, stamp)
        PROFILE["rows"] += time.perf_counter() - clock
        clock = time.perf_counter()
        names = ", ".join(_q(c) for c in self.target_cols)
        insert_accounts = f"INSERT INTO {self.accounts_sql} ({names}) VALUES "
        insert_state = f"INSERT INTO {self.state_sql} ({', '.join(_STATE_COLUMNS)}) VALUES "

        losers: dict[int, Any] = {}
        variants = self._variants()
        direct = not (variants and any(u in variants for u in uniques if u is not None))
        if direct:
            cur.execute("SAVEPOINT authmigrate_fast")
            try:
                self._insert(cur, insert_accounts, accounts)
                PROFILE["insert accounts"] += time.perf_counter() - clock
                self._insert(cur, insert_state, self._in_text_order(keys, states))
            except (pymysql.err.IntegrityError, pymysql.err.DataError):
                cur.execute("ROLLBACK TO SAVEPOINT authmigrate_fast")
                direct = False
            else:
                cur.execute("RELEASE SAVEPOINT authmigrate_fast")
        PROFILE["insert"] += time.perf_counter() - clock
        clock = time.perf_counter()
        if not direct:
            # the Python path's decision; what the target refuses then, the Python path does
            losers = self._decide(keys, uniques)
            keep = [j for j, k in enumerate(keys) if k not in losers]
            keys = [keys[j] for j in keep]
            self._insert(cur, insert_accounts, [accounts[j] for j in keep])
            self._insert(cur, insert_state, self._in_text_order(keys, [states[j] for j in keep]))
            if losers:
                rejects += self._duplicate_rejects(page, losers, sources)
            PROFILE["duplicates"] += time.perf_counter() - clock
            clock = time.perf_counter()
        written = keys

        # bookkeeping: rejects, the checkpoint
        merged = self._checkpoint(conn, number, page, run_id, written, rejects, now)
        cur.close()
        done = self._done(conn, page, number, written, residue, losers, rejects, merged)
        PROFILE["bookkeeping"] += time.perf_counter() - clock
        return done
