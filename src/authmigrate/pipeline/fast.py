"""The fast path: columnar batches, a vectorised decision per row, and a set-based write.

::

    source page (Arrow) ─► per row, vectorised: provably the Python path's result? ─┐
         │                                    yes: values computed in Arrow ───────┤
         │                                    no (the residue): today's transforms ┤
         │                                                                         ▼
         └──────────── one target transaction: TEMP stage ─► INSERT OR IGNORE ... SELECT
                       (key and duplicate checks set-based), rejects, key state, checkpoint

A row takes the fast path only where the outcome is *provably* the one the Python path gives:
its text is printable ASCII (no quote or backslash, so its ``repr`` for the key state's
fingerprint is known), and each field's steps (``strip``, ``lower``, ``email``) accept it on
the same rule as :func:`authmigrate.transform.normalize_email`'s fast regex. Every other row
(the residue) is read again by the Python reader and goes through
:meth:`Migration.transform_batch` unchanged, so each reject keeps its reason, column and detail.

The write keeps every guarantee of the Python path, in the same order: one transaction per
batch with its checkpoint; keys the target already holds rejected (``target.key_exists``);
duplicates of the unique fields decided "first in key order wins" (the batch's rows are
inserted in key order with ``INSERT OR IGNORE``; a row the unique index ignored is classified
by one join as a duplicate of the account holding its value); rejects redacted; the written keys
recorded for an exact rollback. A batch the fast path cannot finish (a constraint the spec does
not know, a page the Arrow driver cannot read) is rolled back and done by the Python path.

Which specs take it: :func:`choose_path` (``plan`` shows its answer). ``AUTHMIGRATE_FASTPATH=0``
in the environment switches it off (the Python path then does every batch).
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from authmigrate.pipeline.batch import Batch, Record, Reject
from authmigrate.pipeline.stages import unique_groups
from authmigrate.pipeline.transform import _ASCII_EMAIL
from authmigrate.sinks.keys import encode_key, pack_keys
from authmigrate.sinks.sql import utcnow
from authmigrate.spec import FieldSpec, Spec

if TYPE_CHECKING:
    from authmigrate.pipeline.run import Migration
    from authmigrate.pipeline.stages import DuplicateStage
    from authmigrate.sinks.sql import TargetLock
    from authmigrate.sources.arrow import SqliteArrowPages

log = logging.getLogger("authmigrate")

SWITCH = "AUTHMIGRATE_FASTPATH"
"""Environment variable: ``0`` switches the fast path off."""

STEPS = frozenset({"strip", "lower", "email"})
"""Field ``normalize`` steps the fast path computes in Arrow."""

_EDGE_ASCII = " \t\r\n\f\v"
"""The ASCII part of ``transform._EDGE``: what ``strip`` removes from ASCII text."""

_REPRABLE = r"^[ -&(-\[\]-~]*$"
"""Printable ASCII without ``'`` and ``\\``: text whose ``repr`` is the text in single quotes."""

_EMAIL = "^" + _ASCII_EMAIL.pattern + "$"
"""``transform._ASCII_EMAIL`` anchored (it is used with ``fullmatch``); RE2 reads it as is."""

_DOTS = r"\.\.|\.@|@-|-\.|\.-|^\.|-$"
"""What ``transform._ascii_ok`` refuses: two dots, a dot before the @ or at the start, a hyphen
after the @, beside a dot or at the end."""

_STAGE = "authmigrate_fast_stage"

_READ_WHOLE: weakref.WeakKeyDictionary[Migration, FastPath] = weakref.WeakKeyDictionary()
"""Migrations whose fast path read every key of the source from the first, into a key state
that held none of this migration's keys: :func:`count_unsynced_keys` may count by difference
(see :meth:`FastPath.keys_left`)."""


@dataclass(frozen=True)
class PathChoice:
    """Which path a spec's batches take, and why."""

    fast: bool
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": "fast" if self.fast else "python", "why": self.why}


def _is_sqlite_file(url: str) -> bool:
    return url.startswith("sqlite:") and ":memory:" not in url and url.rstrip("/") != "sqlite:"


def spec_path(spec: Spec) -> PathChoice:
    """Whether a spec's shape allows the fast path (the source and target checked apart)."""
    if os.environ.get(SWITCH, "1").strip() == "0":
        return PathChoice(False, f"switched off ({SWITCH}=0)")
    from authmigrate.pipeline.fast_mariadb import is_mariadb_target
    from authmigrate.pipeline.fast_server import is_postgres_target

    source = spec.source.url
    if spec.source.is_file or not (_is_sqlite_file(source) or source.startswith("postgresql")):
        return PathChoice(False, "the fast path reads SQLite and PostgreSQL sources only so far")

    url = spec.target.url
    if spec.target.export is not None or not (
        _is_sqlite_file(url) or is_postgres_target(url) or is_mariadb_target(url)
    ):
        return PathChoice(
            False, "the fast path writes SQLite, PostgreSQL and MariaDB targets only so far"
        )
    if spec.notify is not None:
        return PathChoice(False, "[notify] is done per row by the Python path so far")
    why = _credentials_why(spec)
    if why is not None:
        return PathChoice(False, why)
    groups = unique_groups(spec)
    if len(groups) > 1:
        return PathChoice(
            False, "several unique groups: their duplicates are decided one group after another"
        )
    for name, f in spec.fields.items():
        why = _field_why(name, f, spec)
        if why is not None:
            return PathChoice(False, why)
    return PathChoice(
        True,
        "Arrow decides per row; rows it cannot prove equal go through the Python transforms",
    )


HEX_DIGESTS = {"md5": 32, "sha1": 40, "sha256": 64}
"""``digest`` algorithms whose credentials the fast path keeps by shape: hex digits."""


def _credentials_why(spec: Spec) -> str | None:
    """Why ``[credentials]`` keeps a spec off the fast path (None: it does not)."""
    cred = spec.credentials
    if cred is None:
        return None
    simple = (
        cred.policy == "keep"
        and cred.schemes == ["digest"]
        and set(cred.params) == {"algorithm"}
        and cred.params["algorithm"] in HEX_DIGESTS
        and not (cred.salt_column or cred.scheme_column or cred.keys or cred.login_rules)
    )
    if not simple:
        return (
            "[credentials]: only policy keep of a hex digest (scheme digest, md5, sha1 or "
            "sha256, no salt, keys, login rules or scheme column) is kept by shape so far"
        )
    return None


def _field_why(name: str, f: FieldSpec, spec: Spec) -> str | None:
    """Why field ``name`` keeps a spec off the fast path (None: it does not)."""
    if name == spec.target_key:
        return None
    if f.value is not None or f.template is not None:
        return f"fields.{name}: a value or template is computed per row"
    if (f.from_ or name) == spec.source.key:
        return f"fields.{name}: a copy of the key is done per row"
    if f.type != "text" or f.max_length is not None or f.default is not None or f.required:
        return f"fields.{name}: type, max_length, default and required are checked per row"
    if not set(f.normalize) <= STEPS:
        extra = sorted(set(f.normalize) - STEPS)
        return f"fields.{name}: normalize {', '.join(extra)} is done per row"
    if "email" in f.normalize and not f.lowercase_local:
        return f"fields.{name}: lowercase_local = false is done per row"
    return None


def choose_path(m: Migration) -> PathChoice:
    """Whether an opened migration's batches take the fast path, and why."""
    from authmigrate.sources.sql import SqlSource

    choice = spec_path(m.spec)
    if not choice.fast:
        return choice
    if type(m.source) is not SqlSource or m.source.engine.dialect.name not in (
        "sqlite",
        "postgresql",
    ):
        return PathChoice(False, "the fast path reads SQLite and PostgreSQL sources only so far")
    if m.source.engine.dialect.name != "sqlite" and m.target.engine.dialect.name == "sqlite":
        return PathChoice(
            False, "the fast path reads a PostgreSQL source into PostgreSQL or MariaDB only"
        )
    if m.key_tag != "int" or m.target.key.kind != "int":
        return PathChoice(False, "the fast path handles integer keys only so far")
    if m.skip_synced:
        return PathChoice(False, "sync has written to this target: keys it carried are skipped")
    if m.target.engine.dialect.name == "postgresql":
        from authmigrate.pipeline.fast_server import target_table_why

        why = target_table_why(m)
    elif m.target.engine.dialect.name in ("mysql", "mariadb"):
        from authmigrate.pipeline.fast_mariadb import target_table_why as mariadb_why

        why = mariadb_why(m)
    else:
        why = _target_table_why(m)
    if why is not None:
        return PathChoice(False, why)
    return choice


def _target_table_why(m: Migration) -> str | None:
    """Why an existing target table keeps the fast path off: a collation (its unique index
    would match values the Python path tells apart) or a trigger (it may change what a
    set-based insert leaves behind)."""
    t = m.target.table
    if m.target.file_missing:
        return None
    schema = _q(t.schema) + "." if t.schema else ""
    with m.target.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT type, sql FROM {schema}sqlite_master WHERE tbl_name = ?", (t.name,)
        ).fetchall()
    for kind, sql in rows:
        if kind == "trigger":
            return f"the target table {t.name!r} has a trigger"
        if sql and "collate" in sql.lower():
            return f"the target table {t.name!r} declares a collation"
    if not any(kind == "table" for kind, _ in rows):
        return None  # the run creates it, with the unique index
    groups = unique_groups(m.spec)
    if groups and not _has_unique_index(m, groups[0]):
        label = "+".join(groups[0])
        return f"the target table {t.name!r} has no unique index on {label} to find duplicates"
    return None


def _has_unique_index(m: Migration, group: tuple[str, ...]) -> bool:
    """True when the target table has a unique index on exactly ``group``, binary collated."""
    t = m.target.table
    schema = _q(t.schema) + "." if t.schema else ""
    with m.target.engine.connect() as conn:
        run = conn.exec_driver_sql
        for index in run(f"PRAGMA {schema}index_list({_q(t.name)})").fetchall():
            name, unique, partial = index[1], index[2], index[4]
            if not unique or partial:
                continue
            cols = [
                (r[2], r[4])
                for r in run(f"PRAGMA {schema}index_xinfo({_q(name)})").fetchall()
                if r[5]  # key columns only (not the rowid)
            ]
            if sorted(c for c, _ in cols) == sorted(group) and all(
                (coll or "BINARY").upper() == "BINARY" for _, coll in cols
            ):
                return True
    return False


# -- the decision, vectorised ---------------------------------------------------------------


@dataclass
class _Column:
    """One source column of a page: values as text (where they are text), the rows whose
    value the fast path can take, and the value's ``repr`` for the fingerprint."""

    text: pa.Array
    ok: pa.Array
    shown: pa.Array


def _source_column(values: pa.Array, kinds: pa.Array) -> _Column:
    """A text (or NULL) column: the rows holding printable ASCII text are fast."""
    if pa.types.is_null(values.type):
        values = pa.nulls(len(values), pa.string())
    elif pa.types.is_binary(values.type):
        values = values.view(pa.string())
    elif not pa.types.is_string(values.type):
        values = pa.nulls(len(values), pa.string())  # numbers: the Python path decides
    is_null = pc.equal(kinds, "null")
    is_text = pc.equal(kinds, "text")
    # non-ASCII bytes (maybe not UTF-8 at all) are masked before any UTF-8 kernel sees them
    ascii_ = pc.fill_null(pc.string_is_ascii(values), False)
    text = pc.if_else(pc.and_(is_text, ascii_), values, pa.scalar(None, pa.string()))
    reprable = pc.fill_null(pc.match_substring_regex(text, _REPRABLE), False)
    ok = pc.or_(is_null, reprable)
    quoted = pc.binary_join_element_wise("'", text, "'", "")
    shown = pc.if_else(is_null, "None", quoted)
    return _Column(text=text, ok=ok, shown=shown)


def _field_values(steps: list[str], text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A text field's values after ``steps`` and the rows where they are provably the Python
    path's (``text`` is NULL or printable ASCII there)."""
    ok = pa.nulls(len(text), pa.bool_()).fill_null(True)
    v = text
    for step in steps:
        if step == "strip":
            v = pc.utf8_trim(v, _EDGE_ASCII)
        elif step == "lower":
            v = pc.ascii_lower(v)
        elif step == "email":
            v = pc.utf8_trim(v, _EDGE_ASCII)
            good = pc.and_(
                pc.less_equal(pc.binary_length(v), 254),
                pc.match_substring_regex(v, _EMAIL),
            )
            good = pc.and_(good, pc.invert(pc.match_substring_regex(v, _DOTS)))
            # NULL stays NULL (Python skips the steps); any other row must pass
            ok = pc.and_(ok, pc.or_(pc.is_null(v), pc.fill_null(good, False)))
            v = pc.ascii_lower(v)
    return v, ok


@dataclass(frozen=True)
class _Kept:
    """How the credential engine keeps a hex digest: ``before + digest + after``, under
    ``scheme``. Read from the engine itself on two probes when the run starts, and checked
    again on one row of every batch (:meth:`FastPath._check_kept`)."""

    shape: str
    """RE2 pattern of the values kept by shape (lower-case hex of the digest's length)."""
    before: str
    after: str
    scheme: str

    @classmethod
    def probe(cls, m: Migration) -> _Kept:
        cred = m.spec.credentials
        assert cred is not None
        width = HEX_DIGESTS[cred.params["algorithm"]]
        forms = []
        for probe in ("0123456789abcdef" * 4, "fedcba9876543210" * 4):
            value = probe[:width]
            got = _engine_keeps(m, value)
            if got is None or got[0].count(value) != 1:
                raise _NotFast("the credential engine does not keep the digest as it is")
            before, _, after = got[0].partition(value)
            forms.append((before, after, got[1]))
        if forms[0] != forms[1] or not _is_reprable(forms[0][0] + forms[0][1]):
            raise _NotFast("the credential engine's form depends on the digest")
        before, after, scheme = forms[0]
        return cls(shape=f"^[0-9a-f]{{{width}}}$", before=before, after=after, scheme=scheme)


def _engine_keeps(m: Migration, value: str) -> tuple[str, str] | None:
    """(credential, scheme) the credential stage gives ``value`` (None: not kept as it is)."""
    from authmigrate.pipeline.stages import prepare_credentials

    cred = m.spec.credentials
    assert cred is not None
    got = prepare_credentials(cred, [(value, None)], keyring={}, dry=False, workers=1)[0]
    if isinstance(got, Exception) or got.segment != "kept" or got.credential is None:
        return None
    return got.credential, got.scheme


def _is_reprable(text: str) -> bool:
    return all(" " <= ch <= "~" and ch not in "'\\" for ch in text)


@dataclass
class _Page:
    """A page split: the fast rows' keys, target values and fingerprints; the residue's keys."""

    keys: list[int]
    first_key: int
    last_key: int
    rows: int
    fast: pa.Table
    """Columns: ``k``, each target column of a field, ``fp`` text before hashing."""
    raw: pa.Table
    """The fast rows' source values, for the few that end up rejected."""
    residue: list[int] = field(default_factory=list)


class _NotFast(Exception):  # noqa: N818 - a control-flow signal
    """The batch must be done by the Python path (rolled back first if anything was written)."""


class FastPath:
    """Runs a migration's batches on the fast path (see the module's docstring)."""

    read_ahead = False
    """Read and split the next page in a thread while a batch commits (see
    :class:`_ReadAhead`): worth it where the target works in another process."""

    def __init__(self, m: Migration, reader: SqliteArrowPages | None) -> None:
        self.m = m
        self.reader: Any = reader
        spec = m.spec
        self.key_name = spec.source.key
        self.index = {c.name: i for i, c in enumerate(m.source._read)}  # type: ignore[attr-defined]
        self.fp_columns = m.target.fp_columns
        self.fields = [
            (name, f.from_ or name, list(f.normalize))
            for name, f in spec.fields.items()
            if name != spec.target_key
        ]
        self.groups = unique_groups(spec)
        self.merge = spec.run.duplicates == "merge"
        t = m.target.table
        self.cred = spec.credentials
        self.kept: _Kept | None = _Kept.probe(m) if self.cred is not None else None
        from authmigrate.pipeline.tokens import TokenStage

        self.tokens = next((s for s in m.late if isinstance(s, TokenStage)), None)
        self.target_cols = [spec.target_key] + [name for name, _, _ in self.fields]
        self.target_cols += [c.name for stage in [*m.early, *m.late] for c in stage.columns()]
        self.table_sql = _qualified(t)
        self.key_sql = _q(spec.target_key)
        d = m.target.engine.dialect
        self.now_proc = m.target.state.c.changed_at.type.dialect_impl(d).bind_processor(d)
        self._version: int | None = None
        """The source's ``PRAGMA data_version`` on the reader's connection when this run
        started reading from the first key into an empty key state (None: it did not)."""
        self._ahead: _ReadAhead | None = None
        """The read-ahead of :meth:`batches` while it runs."""

    def close(self) -> None:
        """Release the Arrow reader's connection (and the migration's entry: the entry's
        value refers to its key, which would keep both alive).

        A read-ahead still under way is waited for and its thread stopped first: a run that
        ends by an exception outside :meth:`batches` (Ctrl-C or a failing progress callback
        between two batches) leaves the generator suspended, its ``finally`` not yet run, and
        the reader must not be closed under the thread reading it."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        _READ_WHOLE.pop(self.m, None)
        self.reader.close()

    # -- one page ---------------------------------------------------------------------------

    def split(self, page: pa.Table) -> _Page:
        """Decide, per row and vectorised, which rows take the fast path."""
        from authmigrate.sources.arrow import KEY, kind_column, value_column

        keys = page.column(KEY).combine_chunks()
        if not pa.types.is_integer(keys.type):
            raise _NotFast("the page's keys are not integers")
        cols: dict[str, _Column] = {}
        for name, i in self.index.items():
            if name == self.key_name:
                continue
            cols[name] = _source_column(
                page.column(value_column(i)).combine_chunks(),
                page.column(kind_column(i)).combine_chunks(),
            )
        ok = pa.nulls(page.num_rows, pa.bool_()).fill_null(True)
        for c in cols.values():
            ok = pc.and_(ok, c.ok)
        out: dict[str, pa.Array] = {"k": keys}
        for name, src, steps in self.fields:
            values, good = _field_values(steps, cols[src].text)
            out[name] = values
            ok = pc.and_(ok, good)
        if self.kept is not None and self.cred is not None:
            kept = self.kept
            text = cols[self.cred.column].text
            ok = pc.and_(ok, pc.fill_null(pc.match_substring_regex(text, kept.shape), False))
            out[self.cred.target_column] = pc.binary_join_element_wise(
                kept.before, text, kept.after, ""
            )
            out[self.cred.reset_column] = pa.nulls(page.num_rows, pa.bool_()).fill_null(False)
            out["cfp"] = pc.binary_join_element_wise("(", cols[self.cred.column].shown, ",)", "")
            out["tfp"] = pc.binary_join_element_wise("('", out[self.cred.target_column], "',)", "")
        shown = [
            pc.cast(keys, pa.string()) if c == self.key_name else cols[c].shown
            for c in self.fp_columns
        ]
        if len(shown) == 1:
            fp = pc.binary_join_element_wise("(", shown[0], ",)", "")
        else:
            inner = pc.binary_join_element_wise(*shown, ", ")
            fp = pc.binary_join_element_wise("(", inner, ")", "")
        out["fp"] = fp
        table = pa.table(out)
        raw = pa.table({"k": keys, **{n: c.text for n, c in cols.items()}})
        key_list = keys.to_pylist()
        return _Page(
            keys=key_list,
            first_key=key_list[0],
            last_key=key_list[-1],
            rows=page.num_rows,
            fast=table.filter(ok),
            raw=raw.filter(ok),
            residue=keys.filter(pc.invert(ok)).to_pylist(),
        )

    # -- the run ----------------------------------------------------------------------------

    def batches(
        self, after: Any, number: int, run_id: str, dupes: DuplicateStage, lock: TargetLock
    ) -> Iterator[Batch | _Done]:
        """Commit every remaining batch; yield each one's outcome (a Python path's
        :class:`Batch` where the fast path handed a batch over)."""
        from authmigrate.pipeline.run import _commit_with_retry

        size = self.m.spec.run.batch_size
        if after is None and self._state_is_empty():
            self._version = self._data_version()
        ahead = self._ahead = _ReadAhead(self, size) if self.read_ahead else None
        try:
            while True:
                lock.ensure()
                page, split = ahead.take(after) if ahead is not None else self._read(after, size)
                if isinstance(page, Exception):  # the reader's ArrowPageError
                    log.info("batch %d: the Arrow reader failed (%s): Python path", number, page)
                    page = None
                if page is not None and page.num_rows == 0:
                    self._read_whole()
                    return
                done: Batch | _Done | None = None
                if page is not None:
                    try:
                        if not isinstance(split, _Page):
                            raise split or _NotFast("no split")
                        if ahead is not None:
                            ahead.start(split.last_key)
                        done = self.commit(number, split, run_id)
                    except _NotFast as exc:
                        log.info("batch %d: %s: Python path", number, exc)
                if done is None:
                    rows = self.m.source.page(after, size)
                    if not rows:
                        self._read_whole()
                        return
                    done = _commit_with_retry(
                        self.m, self.m.transform_batch(number, rows), dupes, run_id
                    )
                yield done
                after = done.last_key
                number += 1
        finally:
            if ahead is not None:
                ahead.close()

    def _read(self, after: Any, size: int) -> tuple[pa.Table | Exception, _Page | _NotFast | None]:
        """The page after ``after`` and its split: (the driver's error, None) where the Arrow
        reader failed; (the page, the reason) where the split refused it; (an empty page, None)
        at the end."""
        from authmigrate.sources.arrow import ArrowPageError

        try:
            page = self.reader.page(after, size)
        except ArrowPageError as exc:
            return exc, None
        if page.num_rows == 0:
            return page, None
        try:
            return page, self.split(page)
        except _NotFast as exc:
            return page, exc

    # -- what the run leaves to sync ------------------------------------------------------------

    def _state_is_empty(self) -> bool:
        """True when the key state holds no key of this migration."""
        target = self.m.target
        state = target.state
        with target.engine.connect() as conn:
            row = conn.execute(
                sa.select(state.c.source_key).where(state.c.migration == target.migration).limit(1)
            ).first()
        return row is None

    def _data_version(self) -> int | None:
        """The source's ``PRAGMA data_version`` on the reader's connection: it changes when
        any other connection commits to the file (None: the driver cannot tell)."""
        try:
            with self.reader._conn.cursor() as cur:
                cur.execute("PRAGMA data_version")
                row = cur.fetchone()
        except Exception:  # noqa: BLE001 - no proof of an unchanged source: count in full
            return None
        return None if row is None else int(row[0])

    def _read_whole(self) -> None:
        """The run read the source to its end; remember it where it read from the first key
        into an empty key state."""
        if self._version is not None:
            _READ_WHOLE[self.m] = self

    def keys_left(self) -> int | None:
        """The source's keys the key state does not know, by difference, or None where that
        is not proven equal to the anti-join of :func:`count_unsynced_keys`.

        The proof: this run read every key from the first into a key state that held none of
        this migration's keys, and the source file has had no commit since (its
        ``data_version`` on the reader's connection is unchanged), so the key state holds
        exactly the keys this run read and recorded, each a source key, none ``deleted`` (only
        ``sync`` writes that, and it waits for the run's lock); the keys left are the source's
        keys less the key state's rows.
        """
        if self._version is None or self._data_version() != self._version:
            return None
        target = self.m.target
        state = target.state
        key = self.m.source._key  # type: ignore[attr-defined]
        try:
            with self.reader._conn.cursor() as cur:
                table = self.m.source._selectable  # type: ignore[attr-defined]
                cur.execute(
                    f"SELECT count(*) FROM {_qualified(table)} WHERE {_q(key.name)} IS NOT NULL"
                )
                row = cur.fetchone()
        except Exception:  # noqa: BLE001 - the full count decides
            return None
        if row is None or self._data_version() != self._version:
            return None
        with target.engine.connect() as conn:
            known = conn.execute(
                sa.select(sa.func.count())
                .select_from(state)
                .where(state.c.migration == target.migration)
            ).scalar_one()
        log.debug("keys left to sync counted by difference (the source did not change)")
        return int(row[0]) - int(known)

    def commit(self, number: int, page: _Page, run_id: str) -> _Done:
        """The batch's transaction: stage, check, insert, rejects, key state, checkpoint."""
        m = self.m
        residue = self._residue(number, page)
        log.debug(
            "batch %d: fast path, %d rows in Arrow, %d residue",
            number,
            page.fast.num_rows,
            len(page.residue),
        )
        try:
            with m.target.engine.begin() as conn:
                return self._write(conn, number, page, residue, run_id)
        except sa.exc.DBAPIError as exc:
            raise _NotFast(
                f"the target refused the set-based write ({type(exc).__name__})"
            ) from None

    def _residue(self, number: int, page: _Page) -> Batch:
        """The rows the fast path does not take, through today's transforms."""
        m = self.m
        if not page.residue:
            return Batch(number=number, first_key=None, last_key=None, rows_read=0)
        rows = m.source.rows_by_key(page.residue)
        rows.sort(key=lambda r: r[self.key_name])
        if len(rows) != len(page.residue):
            raise _NotFast("the source changed under the page")
        return m.transform_batch(number, rows)

    def _write(
        self, conn: sa.Connection, number: int, page: _Page, residue: Batch, run_id: str
    ) -> _Done:
        m = self.m
        raw_conn: Any = conn.connection.driver_connection
        cur = raw_conn.cursor()
        cols = self.target_cols
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (k INTEGER PRIMARY KEY, "
            + ", ".join(f"{_q('v_' + c)}" for c in cols[1:])
            + (", " if len(cols) > 1 else "")
            + "fp TEXT, cfp TEXT, tfp TEXT)"
        )
        cur.execute(f"DELETE FROM temp.{_STAGE}")
        rejects: list[Reject] = list(residue.rejects)
        sources: dict[int, dict[str, Any]] = {r.key: r.source for r in residue.records}

        # keys the target already holds: one range read (integer keys)
        taken_keys = {
            k
            for (k,) in cur.execute(
                f"SELECT {self.key_sql} FROM {self.table_sql} WHERE {self.key_sql} BETWEEN ? AND ?",
                (page.first_key, page.last_key),
            )
        }
        fast = self._settle(page, residue, taken_keys, sources, rejects)

        # the stage: fast rows computed in Arrow, residue records from the Python transforms
        staged = self._stage(cur, fast, residue)

        # duplicates: first in key order wins (the target's accounts before any of the batch)
        pre_losers = self._variant_losers(conn, cur)
        names = ", ".join(_q(c) for c in cols)
        picks = ", ".join(["k", *(_q("v_" + c) for c in cols[1:])])
        skip = ""
        if pre_losers:
            skip = f"WHERE k NOT IN ({', '.join(str(int(k)) for k in pre_losers)}) "
        cur.execute(
            f"INSERT OR IGNORE INTO {self.table_sql} ({names}) "
            f"SELECT {picks} FROM temp.{_STAGE} {skip}ORDER BY k"
        )
        inserted = cur.rowcount
        losers = dict(pre_losers)
        if inserted + len(pre_losers) < staged:
            losers.update(self._losers(cur, set(pre_losers), staged - inserted - len(pre_losers)))
        if losers:
            cur.execute(
                f"DELETE FROM temp.{_STAGE} WHERE k IN ({', '.join(str(int(k)) for k in losers)})"
            )
            rejects += self._duplicate_rejects(page, losers, sources)

        # bookkeeping: rejects, key state, the checkpoint
        target = m.target
        written = [k for (k,) in cur.execute(f"SELECT k FROM temp.{_STAGE} ORDER BY k")]
        now = utcnow()
        merged = self._checkpoint(conn, number, page, run_id, written, rejects, now)
        stamp = self.now_proc(now) if self.now_proc is not None else now
        state = _qualified(target.state)
        cur.execute(
            f"INSERT INTO {state} (migration, source_key, state, fingerprint, credential_fp, "
            "target_fp, changed_at) "
            f"SELECT ?, CAST(k AS TEXT), 'migrated', fp, cfp, tfp, ? FROM temp.{_STAGE} "
            "ORDER BY k",
            (target.migration, stamp),
        )
        cur.close()
        return self._done(conn, page, number, written, residue, losers, rejects, merged)

    def _check_kept(self, page: _Page, fast: pa.Table) -> None:
        """The credential engine, asked about one row of the batch, still gives what the
        fast path computed (a guard against a change of the engine's form)."""
        if self.kept is None or self.cred is None or fast.num_rows == 0:
            return
        k = fast.column("k")[0].as_py()
        value = self._raw_rows(page, [k])[k][self.cred.column]
        computed = fast.column(self.cred.target_column)[0].as_py()
        if _engine_keeps(self.m, value) != (computed, self.kept.scheme):
            raise _NotFast("the credential engine keeps this batch's digests otherwise")

    def _stage(self, cur: Any, fast: pa.Table, residue: Batch) -> int:
        """Fill the TEMP stage with the batch's accounts-to-be and their fingerprints, in key
        order; returns how many. Tokens are issued here, one per staged row, by the token
        stage itself (a row that turns out a duplicate is not written, nor is its token)."""
        from authmigrate.sinks.state import fingerprint, value_fp

        cols = self.target_cols
        insert = f"INSERT INTO temp.{_STAGE} VALUES ({', '.join('?' * (len(cols) + 3))})"
        n = fast.num_rows
        keys = fast.column("k").to_pylist()
        tokens: dict[str, list[Any]] = {}
        if self.tokens is not None and self.tokens.segments is None and not residue.records:
            tokens = self.tokens.issue_columns(n)  # no residue: no record needed
        elif self.tokens is not None:
            # one call for the batch's fast rows and residue records alike (one expiry)
            tokened = [Record(k, {}, {}) for k in keys]
            both = Batch(number=0, first_key=None, last_key=None, rows_read=0)
            both.records = [*tokened, *residue.records]
            self.tokens.process(both)
            tokens = {
                c.name: [r.values.get(c.name) for r in tokened] for c in self.tokens.columns()
            }
        # only the columns the fast rows fill are bound: the others are NULL (the stage's
        # columns have no default), and binding a NULL per row and column costs as much as a value
        names, columns = ["k"], [keys]
        for c in cols[1:]:
            if c in fast.column_names:
                names.append(_q("v_" + c))
                columns.append(fast.column(c).to_pylist())
            elif c in tokens:
                names.append(_q("v_" + c))
                columns.append(tokens[c])
        for name in ("fp", "cfp", "tfp"):
            if name in fast.column_names:
                names.append(name)
                columns.append(
                    [
                        hashlib.blake2b(t, digest_size=16).hexdigest()
                        for t in fast.column(name).cast(pa.binary()).to_pylist()
                    ]
                )
        cur.executemany(
            f"INSERT INTO temp.{_STAGE} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})",
            zip(*columns, strict=True),
        )
        if residue.records:
            creds = self.m.target.cred_columns
            target = self.cred.target_column if self.cred is not None else None
            cur.executemany(
                insert,
                [
                    (
                        *(r.values.get(c) for c in cols),
                        fingerprint(r.source, self.fp_columns),
                        fingerprint(r.source, creds) if creds else None,
                        value_fp(r.values.get(target)) if target else None,
                    )
                    for r in residue.records
                ],
            )
        return n + len(residue.records)

    def _raw_rows(self, page: _Page, keys: list[int]) -> dict[int, dict[str, Any]]:
        """The source rows of fast keys, as the Python reader gives them (column order kept)."""
        if not keys:
            return {}
        raw = page.raw.filter(pc.is_in(page.raw.column("k"), pa.array(keys, pa.int64())))
        out: dict[int, dict[str, Any]] = {}
        for row in raw.to_pylist():
            k = row["k"]
            out[k] = {n: (k if n == self.key_name else row[n]) for n in self.index}
        return out

    def _settle(
        self,
        page: Any,
        residue: Batch,
        taken_keys: set[int],
        sources: dict[int, dict[str, Any]],
        rejects: list[Reject],
    ) -> pa.Table:
        """The fast rows left to write once the keys the target holds are rejected
        (``target.key_exists``, fast rows and residue alike) and the credential stage has run on
        the residue, after the key check as on the Python path; ``sources`` and ``rejects``
        grow in place."""
        m = self.m
        fast = page.fast
        if taken_keys:
            mask = pc.is_in(fast.column("k"), pa.array(sorted(taken_keys), pa.int64()))
            held = fast.filter(mask).column("k").to_pylist()
            fast = fast.filter(pc.invert(mask))
            sources.update(self._raw_rows(page, held))
            held_all = sorted([*held, *(r.key for r in residue.records if r.key in taken_keys)])
            rejects += [
                Reject(
                    k,
                    "target.key_exists",
                    m.spec.target_key,
                    "the target already has this key",
                    sources[k],
                )
                for k in held_all
            ]
            residue.records = [r for r in residue.records if r.key not in taken_keys]
        # the credential stage on the residue, after the key check (as on the Python path)
        before = len(residue.rejects)
        for stage in m.early:
            stage.process(residue)
        rejects += residue.rejects[before:]
        self._check_kept(page, fast)
        return fast

    def _duplicate_rejects(
        self, page: Any, losers: dict[int, Any], sources: dict[int, dict[str, Any]]
    ) -> list[Reject]:
        """A reject (or a merge) per duplicate, in key order, naming the account it loses to."""
        need = [k for k in losers if k not in sources]
        sources.update(self._raw_rows(page, need))
        label = "+".join(self.groups[0])
        outcome: Literal["rejected", "merged"] = "merged" if self.merge else "rejected"
        return [
            Reject(
                k,
                f"duplicate.{label}",
                label,
                f"same {label} as account {first}",
                sources[k],
                outcome=outcome,
                merged_into=first,
            )
            for k, first in sorted(losers.items())
        ]

    def _checkpoint(
        self,
        conn: sa.Connection,
        number: int,
        page: Any,
        run_id: str,
        written: list[int],
        rejects: list[Reject],
        now: Any,
    ) -> int:
        """The batch's rejects and its checkpoint row, alike into every target; returns how
        many of the rejects are merges."""
        target = self.m.target
        target.write_rejects(conn, run_id, number, rejects, self.m.redact)
        merged = sum(1 for j in rejects if j.outcome == "merged")
        conn.execute(
            target.batches.insert(),
            {
                "migration": target.migration,
                "batch_no": number,
                "run_id": run_id,
                "first_key": encode_key(page.first_key),
                "last_key": encode_key(page.last_key),
                "rows_read": page.rows,
                "migrated": len(written),
                "rejected": len(rejects) - merged,
                "merged": merged,
                "written_keys": pack_keys(written),
                "committed_at": now,
            },
        )
        return merged

    def _done(
        self,
        conn: sa.Connection,
        page: Any,
        number: int,
        written: list[int],
        residue: Batch,
        losers: dict[int, Any],
        rejects: list[Reject],
        merged: int,
    ) -> _Done:
        """A batch's end, alike into every target: the rejects' key state, then its counts."""
        target = self.m.target
        if rejects:
            rows = target.state_rows(
                Batch(number=number, first_key=None, last_key=None, rows_read=0, rejects=rejects)
            )
            if rows:
                target._insert_state(conn, rows)
        kept = [r for r in residue.records if r.key not in losers]
        fast_written = len(written) - len(kept)
        schemes = Counter(r.scheme for r in kept if r.scheme)
        segments = Counter(r.segment for r in kept)
        segments.update(j.segment for j in rejects if j.outcome == "merged")
        if fast_written:
            segments["kept"] += fast_written
            if self.kept is not None:
                schemes[self.kept.scheme] += fast_written
        return _Done(
            last_key=page.last_key,
            rows_read=page.rows,
            migrated=len(written),
            rejected=len(rejects) - merged,
            merged=merged,
            schemes=schemes,
            segments=segments,
        )

    def _variant_losers(self, conn: sa.Connection, cur: Any) -> dict[int, Any]:
        """Stage rows whose unique value the target holds spelled otherwise (an account the new
        system wrote, ``User.5@Example.com``): the index cannot see them, the lookup can."""
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
            variants = m._variants[group] = m.target.variants(conn, group, norms)
        if not variants:
            return {}
        cols = ", ".join("s." + _q("v_" + c) for c in group)
        # a value the target also holds exactly is that account's (as on the Python path,
        # which looks for the exact value first): the unique index finds it below
        exact = " AND ".join(f"t.{_q(c)} = s.{_q('v_' + c)}" for c in group)
        out: dict[int, Any] = {}
        for row in cur.execute(
            f"SELECT s.k, {cols} FROM temp.{_STAGE} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {self.table_sql} t WHERE {exact}) ORDER BY s.k"
        ).fetchall():
            value = row[1] if len(group) == 1 else tuple(row[1:])
            if value is not None and value in variants:
                out[row[0]] = variants[value]
        return out

    def _losers(self, cur: Any, skipped: set[int], expected: int) -> dict[int, Any]:
        """``{key: first}`` for the stage rows the unique index ignored, each with the key of
        the account that holds its value; a row ignored for any other reason is not ours to
        classify: the batch goes to the Python path."""
        if not self.groups:
            raise _NotFast("the target ignored rows without a unique field")
        group = self.groups[0]
        on = " AND ".join(f"t.{_q(c)} = s.{_q('v_' + c)}" for c in group)
        rows = cur.execute(
            f"SELECT s.k, t.{self.key_sql} FROM temp.{_STAGE} s "
            f"JOIN {self.table_sql} t ON {on} "
            f"WHERE t.{self.key_sql} <> s.k ORDER BY s.k"
        ).fetchall()
        out = {k: first for k, first in rows if k not in skipped}
        if len(out) != expected:
            raise _NotFast("the target ignored rows that hold no duplicate value")
        return out


class _ReadAhead:
    """The next page read and split in a thread while the current batch commits, so the
    client's reading and deciding overlaps the server's writing (the driver's wait for the
    server releases the GIL, and so do the Arrow reader and compute).

    Used in turn with the batch loop, never beside it: :meth:`take` always waits for the read
    it started before the reader is used again, and a page read after another key than the
    one the loop asks for (the batch went to the Python path, which read its own rows) is
    dropped and read again. A thread, not a process: the reader's connection stays one.
    """

    def __init__(self, fast: FastPath, size: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.fast = fast
        self.size = size
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authmigrate-read")
        self.after: Any = None
        self.future: Any = None

    def start(self, after: Any) -> None:
        """Begin reading the page after ``after``."""
        self.after = after
        self.future = self.pool.submit(self.fast._read, after, self.size)

    def take(self, after: Any) -> tuple[pa.Table | Exception, _Page | _NotFast | None]:
        """The page after ``after`` and its split (read now if the one read ahead is not it)."""
        future, self.future = self.future, None
        if future is not None:
            if self.after == after:
                got: tuple[pa.Table | Exception, _Page | _NotFast | None] = future.result()
                return got
            future.exception()  # wait for it: its page is not the one wanted
        return self.fast._read(after, self.size)

    def close(self) -> None:
        """Wait for a read still under way (the reader is closed after this), then stop."""
        if self.future is not None:
            self.future.exception()
            self.future = None
        self.pool.shutdown(wait=True)


@dataclass
class _Done:
    """A batch the fast path committed: what the run tallies."""

    last_key: Any
    rows_read: int
    migrated: int
    rejected: int
    merged: int
    schemes: Counter[str] = field(default_factory=Counter)
    segments: Counter[str] = field(default_factory=Counter)


def tally(done: Batch | _Done) -> tuple[dict[str, int], Counter[str], Counter[str]]:
    """(counts, schemes, segments) of a committed batch, from either path."""
    if isinstance(done, _Done):
        counts = {
            "read": done.rows_read,
            "migrated": done.migrated,
            "rejected": done.rejected,
            "merged": done.merged,
        }
        return counts, done.schemes, done.segments
    merged = len(done.merged)
    counts = {
        "read": done.rows_read,
        "migrated": len(done.records),
        "rejected": len(done.rejects) - merged,
        "merged": merged,
    }
    schemes = Counter(r.scheme for r in done.records if r.scheme)
    segments = Counter(r.segment for r in done.records)
    segments.update(j.segment for j in done.merged)
    return counts, schemes, segments


def open_fast_path(m: Migration) -> tuple[FastPath | None, PathChoice]:
    """The fast path of an opened migration, or None with the reason it does not apply."""
    choice = choose_path(m)
    if not choice.fast:
        return None, choice
    from authmigrate.sources.arrow import PostgresArrowPages, SqliteArrowPages
    from authmigrate.sources.sql import SqlSource

    assert isinstance(m.source, SqlSource)
    try:
        fast = _writer(m)(m, None)
    except _NotFast as exc:
        return None, PathChoice(False, str(exc))
    try:
        if m.source.engine.dialect.name == "postgresql":
            fast.reader = PostgresArrowPages(m.source)
        else:
            fast.reader = SqliteArrowPages(m.source)
    except Exception as exc:  # noqa: BLE001 - the driver cannot open it: the Python path reads
        return None, PathChoice(
            False, f"the Arrow reader cannot open the source ({type(exc).__name__})"
        )
    return fast, choice


def _writer(m: Migration) -> type[FastPath]:
    """The fast path's class for the migration's target (the write differs, not the split)."""
    if m.target.engine.dialect.name == "postgresql":
        from authmigrate.pipeline.fast_server import PostgresFastPath

        return PostgresFastPath
    if m.target.engine.dialect.name in ("mysql", "mariadb"):
        from authmigrate.pipeline.fast_mariadb import MariaDBFastPath

        return MariaDBFastPath
    return FastPath


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(table: sa.Table) -> str:
    return f"{_q(table.schema)}.{_q(table.name)}" if table.schema else _q(table.name)


def count_unsynced_keys(m: Migration) -> int | None:
    """The source's keys the key state does not know (or knows as deleted), counted by
    SQLite itself: the source opened read-only with the target ATTACHed read-only, one
    anti-join. None where that count is not provably the Python one (the fast path switched
    off, not two SQLite files, a query source, or keys that are not all integers), or the
    driver fails: the caller counts in Python. A PostgreSQL target counts on the server
    (:func:`authmigrate.pipeline.fast_server.count_unsynced_keys`). Into either, where the run
    that just ended read the whole unchanged source into an empty key state, the count is a
    difference (:meth:`FastPath.keys_left`)."""
    from authmigrate.sources.sql import SqlSource

    spec, src, target = m.spec, m.source, m.target
    if os.environ.get(SWITCH, "1").strip() == "0" or not spec.source.table:
        return None
    fast = _READ_WHOLE.get(m)
    if fast is not None:
        # into any target: the proof is the source's and the key state's, not the target's
        left = fast.keys_left()
        if left is not None:
            return left
    if target.engine.dialect.name == "postgresql":
        from authmigrate.pipeline.fast_server import count_unsynced_keys as on_server

        return on_server(m)
    if type(src) is not SqlSource or src.engine.dialect.name != "sqlite":
        return None
    path = target.sqlite_path
    if path is None or not path.exists():
        return None
    table = src._selectable
    if not isinstance(table, sa.Table):
        return None
    import urllib.parse

    import adbc_driver_sqlite.dbapi as adbc

    key = _q(spec.source.key)
    name = _qualified(table)
    state = target.state.name
    target_uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    try:
        with (
            adbc.connect(src.engine.url.database or "", autocommit=True) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(
                f"SELECT count(*) FROM {name} WHERE {key} IS NOT NULL "
                f"AND typeof({key}) <> 'integer'"
            )
            odd = cur.fetchone()
            if odd is None or odd[0]:
                return None
            cur.execute(f"ATTACH DATABASE '{target_uri.replace(chr(39), chr(39) * 2)}' AS am_t")
            cur.execute(
                f"SELECT count(*) FROM {name} s WHERE s.{key} IS NOT NULL AND NOT EXISTS ("
                f"SELECT 1 FROM am_t.{_q(state)} st WHERE st.migration = ? "
                f"AND st.source_key = CAST(s.{key} AS TEXT) AND st.state <> 'deleted')",
                (target.migration,),
            )
            found = cur.fetchone()
    except Exception as exc:  # noqa: BLE001 - any driver failure: the Python count decides
        log.info("counting unsynced keys in SQL failed (%s): Python count", type(exc).__name__)
        return None
    return None if found is None else int(found[0])
