"""Where a migration stands: counts from the bookkeeping, the source and the accounts table.

Every figure is an aggregate computed by the databases (``COUNT``, ``SUM``, ``GROUP BY``); no
account row is read into Python, so a status of 10M accounts costs a few scans, not 10M
objects. Each call may record a snapshot (``authmigrate_snapshots``, one row per call) so the
HTML report can draw progress over time.

How a credential's state is read from the target's password column (the new system's login
marks an upgrade by writing a new hash, e.g. with ``verify_and_update``; nothing else is
needed):

- ``NULL``, or an unusable marker: **reset required**.
- ``$wrap$<scheme>$...``: **wrapped** (argon2id over the legacy digest), by inner scheme.
- ``$argon2id$...``: **upgraded** (an account already on argon2id when imported counts here too:
  it needs nothing more).
- anything else: **legacy**, by the scheme :func:`authmigrate.credentials.identify` names.

A ``$login-rule$<rules>$<credential>`` value is judged by its inner credential.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from authmigrate.db import make_engine, sqlite_file
from authmigrate.sinks.sql import bookkeeping_tables, decode_key, utcnow
from authmigrate.spec import Spec

SNAPSHOTS_TABLE = "authmigrate_snapshots"
DORMANT_DAYS = 30
"""Default: an account still on a legacy hash this many days after its migration is dormant."""

_COPYING_COMMANDS = ("run", "sync")
"""The commands whose end is the "last run" that status measures its lag from."""
_RULE_PREFIX = "$login-rule$"
_WRAP_PREFIX = "$wrap$"
_UPGRADED_PREFIX = "$argon2id$"


def snapshots_table(metadata: sa.MetaData) -> sa.Table:
    """Declare ``authmigrate_snapshots``: one row per status snapshot (run end, status call)."""
    return sa.Table(
        SNAPSHOTS_TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("migration", sa.String(200), nullable=False, index=True),
        sa.Column("taken_at", sa.DateTime, nullable=False),
        sa.Column("command", sa.String(20), nullable=False),
        sa.Column("source_rows", sa.BigInteger),
        sa.Column("migrated", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.BigInteger, nullable=False),
        sa.Column("merged", sa.BigInteger, nullable=False),
        sa.Column("pending", sa.BigInteger),
        sa.Column("legacy", sa.BigInteger, nullable=False),
        sa.Column("wrapped", sa.BigInteger, nullable=False),
        sa.Column("upgraded", sa.BigInteger, nullable=False),
        sa.Column("reset", sa.BigInteger, nullable=False),
        sa.Column("schemes", sa.Text, nullable=False, default="{}"),
        sa.Column("verdict", sa.String(20)),
    )


@dataclass(frozen=True)
class CredentialCounts:
    """Accounts in the target by credential state; ``legacy`` and ``wrapped`` by scheme id."""

    legacy: dict[str, int] = field(default_factory=dict)
    wrapped: dict[str, int] = field(default_factory=dict)
    upgraded: int = 0
    reset: int = 0

    @property
    def legacy_total(self) -> int:
        """Accounts still on a legacy hash (not wrapped)."""
        return sum(self.legacy.values())

    @property
    def wrapped_total(self) -> int:
        """Accounts on a wrapped legacy hash."""
        return sum(self.wrapped.values())

    @property
    def total(self) -> int:
        """Every account of the target table."""
        return self.legacy_total + self.wrapped_total + self.upgraded + self.reset

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``status --json``'s ``credentials``)."""
        return {
            "legacy": self.legacy_total,
            "legacy_by_scheme": dict(self.legacy),
            "wrapped": self.wrapped_total,
            "wrapped_by_scheme": dict(self.wrapped),
            "upgraded": self.upgraded,
            "reset_required": self.reset,
            "total": self.total,
        }


@dataclass(frozen=True)
class LastRun:
    """The newest run recorded in ``authmigrate_runs``."""

    command: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None


@dataclass(frozen=True)
class MigrationStatus:
    """The answer of :func:`migration_status` (``authmigrate status``).

    ``deleted_in_source`` counts the keys ``sync`` found gone from the source; ``changed`` the
    accounts whose legacy change the last sync could not apply (``held``: the change waits in
    the rejects, the account keeps its last good values). Both are ``None`` on a target
    without per-key state (written before sync existed, until its next run or sync).
    """

    migration: str
    taken_at: dt.datetime
    source_rows: int
    migrated: int
    rejected: int
    merged: int
    pending: int
    rejected_by_reason: dict[str, int]
    merged_by_reason: dict[str, int]
    credentials: CredentialCounts
    dormant: int
    dormant_days: int
    last_run: LastRun | None
    deleted_in_source: int | None = None
    changed: int | None = None

    @property
    def lag_seconds(self) -> float | None:
        """Seconds since the last run ended (or started, if it has not ended)."""
        if self.last_run is None:
            return None
        last = self.last_run.ended_at or self.last_run.started_at
        return max((self.taken_at - last).total_seconds(), 0.0)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of ``authmigrate status --json``."""
        last = None if self.last_run is None else asdict(self.last_run)
        if last is not None:
            last = {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in last.items()}
        return {
            "migration": self.migration,
            "taken_at": self.taken_at.isoformat(),
            "source_rows": self.source_rows,
            "migrated": self.migrated,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "merged": self.merged,
            "merged_by_reason": dict(self.merged_by_reason),
            "pending": self.pending,
            "changed": self.changed,
            "deleted_in_source": self.deleted_in_source,
            "credentials": self.credentials.as_dict(),
            "dormant": self.dormant,
            "dormant_days": self.dormant_days,
            "last_run": last,
            "lag_seconds": self.lag_seconds,
        }


def _position(dialect: str, haystack: Any, needle: str) -> Any:
    """1-based position of ``needle`` in ``haystack`` (0 when absent), per dialect."""
    if dialect == "postgresql":
        return sa.func.strpos(haystack, needle)
    if dialect in ("mysql", "mariadb"):
        return sa.func.locate(needle, haystack)
    return sa.func.instr(haystack, needle)


def _length(dialect: str, text: Any) -> Any:
    """Length in characters (MySQL's ``LENGTH`` counts bytes; ``substr`` counts characters)."""
    if dialect in ("mysql", "mariadb"):
        return sa.func.char_length(text)
    return sa.func.length(text)


def _inner_credential(dialect: str, column: Any) -> Any:
    """The credential without its ``$login-rule$<rules>$`` prefix, as a SQL expression."""
    after = sa.func.substr(column, len(_RULE_PREFIX) + 1)
    return sa.case(
        (
            sa.func.substr(column, 1, len(_RULE_PREFIX)) == _RULE_PREFIX,
            sa.func.substr(column, len(_RULE_PREFIX) + 1 + _position(dialect, after, "$")),
        ),
        else_=column,
    )


def _family(dialect: str, cred: Any) -> Any:
    """A short prefix naming a credential's format (``$wrap$phpass$``, ``$2b$``,
    ``pbkdf2_sha256$``, ``{SSHA}``): what the accounts are grouped by."""
    first = sa.func.substr(cred, 1, 1)
    wrap = len(_WRAP_PREFIX)
    return sa.case(
        (
            sa.func.substr(cred, 1, wrap) == _WRAP_PREFIX,
            sa.func.substr(cred, 1, wrap + _position(dialect, sa.func.substr(cred, wrap + 1), "$")),
        ),
        (
            first == "$",
            sa.func.substr(cred, 1, 1 + _position(dialect, sa.func.substr(cred, 2), "$")),
        ),
        (first == "{", sa.func.substr(cred, 1, _position(dialect, cred, "}"))),
        (_position(dialect, cred, "$") > 0, sa.func.substr(cred, 1, _position(dialect, cred, "$"))),
        # a value with no "$" and no "{": its first character, marked when more follows, so
        # WordPress's unusable "*" is not grouped with MySQL's "*<40 hex>"
        else_=sa.type_coerce(first, sa.Text).concat(
            sa.case((_length(dialect, cred) > 1, "+"), else_="")
        ),
    )


def credential_counts(engine: sa.Engine, table: sa.TableClause, column: str) -> CredentialCounts:
    """Count the accounts of ``table`` by the state of their ``column`` credential.

    Accounts are counted by a short prefix of their credential (its *family*: ``$P$``,
    ``$wrap$phpass$``, ``pbkdf2_sha256$``, with a ``$login-rule$...$`` part kept in front);
    each family's scheme is named by :func:`authmigrate.credentials.identify` on one of its
    members (read, never shown). A ``GROUP BY`` sorts every row (SQLite has no hash
    aggregate), so the families found in the first rows are counted by one sort-free scan of
    prefix comparisons, and only the rows of other families (usually none) are grouped.
    """
    dialect = engine.dialect.name
    col = table.c[column]
    raw_family = _raw_family(dialect, col).label("family")
    found: dict[str, str] = {}
    with engine.connect() as conn:
        probe = sa.select(col.label("cred")).where(col.is_not(None)).limit(_FAMILY_PROBE)
        first = probe.subquery()
        fam_of_first = _raw_family(dialect, first.c.cred)
        for fam, cred in conn.execute(sa.select(fam_of_first, first.c.cred)):
            if fam and len(fam) > 1 and fam[-1] in "$}+" and cred:
                found.setdefault(fam, cred)
        known = sorted(found)[:_MAX_KNOWN_FAMILIES]
        matches = [_in_family(dialect, col, f) for f in known]
        sums = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(col),
                *(sa.func.sum(sa.case((m, 1), else_=0)) for m in matches),
            ).select_from(table)
        ).one()
        total, non_null = int(sums[0]), int(sums[1])
        groups: list[tuple[str | None, int, str | None]] = [(None, total - non_null, None)]
        groups += [(f, int(n or 0), found[f]) for f, n in zip(known, sums[2:], strict=True)]
        if non_null - sum(n for _, n, _ in groups[1:]) > 0:
            rest = sa.and_(col.is_not(None), *(sa.not_(m) for m in matches))
            groups += [
                (f, int(n), sample)
                for f, n, sample in conn.execute(
                    sa.select(raw_family, sa.func.count(), sa.func.min(col))
                    .select_from(table)
                    .where(rest)
                    .group_by(raw_family)
                )
            ]
    return _by_state(groups)


def _in_family(dialect: str, column: Any, family: str) -> Any:
    """A SQL test equivalent to ``_raw_family(column) == family``, cheaper: a family ending in
    ``$`` or ``}`` is a prefix its members start with; one ending in ``+`` (a first character
    marked as followed by more) holds the values that start with it, are longer, and have no
    ``$`` after it."""
    if not family.endswith("+"):
        return sa.func.substr(column, 1, len(family)) == family
    head = family[:-1]
    return sa.and_(
        sa.func.substr(column, 1, len(head)) == head,
        _length(dialect, column) > len(head),
        _position(dialect, sa.func.substr(column, len(head) + 1), "$") == 0,
    )


def _raw_family(dialect: str, column: Any) -> Any:
    """The family of a credential with its ``$login-rule$...$`` part kept in front."""
    inner = _inner_credential(dialect, column)
    rule_part = sa.func.substr(column, 1, _length(dialect, column) - _length(dialect, inner))
    return sa.type_coerce(rule_part, sa.Text).concat(_family(dialect, inner))


_FAMILY_PROBE = 2000
"""Rows read to learn which credential families a table holds."""
_MAX_KNOWN_FAMILIES = 40


def _strip_rule(value: str | None) -> str | None:
    """``value`` without a leading ``$login-rule$<rules>$``."""
    if value is None or not value.startswith(_RULE_PREFIX):
        return value
    return value[len(_RULE_PREFIX) :].partition("$")[2]


def _by_state(groups: list[tuple[str | None, int, str | None]]) -> CredentialCounts:
    """Credential counts from ``(family, accounts, one member)`` groups."""
    from authmigrate.credentials import identify
    from authmigrate.credentials._unusable import UNUSABLE_SCHEME, is_unusable
    from authmigrate.errors import CredentialError

    legacy: dict[str, int] = {}
    wrapped: dict[str, int] = {}
    upgraded = reset = 0
    for family, n, member in groups:
        if n == 0:
            continue
        prefix, sample = _strip_rule(family), _strip_rule(member)
        if prefix is None or sample is None or not sample.strip() or is_unusable(sample):
            reset += n
        elif prefix.startswith(_WRAP_PREFIX):
            scheme = prefix[len(_WRAP_PREFIX) : -1] or "unknown"
            wrapped[scheme] = wrapped.get(scheme, 0) + n
        elif prefix == _UPGRADED_PREFIX:
            upgraded += n
        else:
            try:
                scheme = identify(sample)
            except (CredentialError, ValueError):
                scheme = "unknown"
            if scheme == UNUSABLE_SCHEME:
                reset += n
            else:
                legacy[scheme] = legacy.get(scheme, 0) + n
    return CredentialCounts(
        legacy=dict(sorted(legacy.items(), key=lambda kv: (-kv[1], kv[0]))),
        wrapped=dict(sorted(wrapped.items(), key=lambda kv: (-kv[1], kv[0]))),
        upgraded=upgraded,
        reset=reset,
    )


def _accounts_table(spec: Spec) -> sa.TableClause | None:
    if spec.credentials is None:
        return None
    schema, _, name = spec.target.table.rpartition(".")
    return sa.table(
        name,
        sa.column(spec.credentials.target_column),
        sa.column(spec.target_key),
        schema=schema or None,
    )


def _not_upgraded(dialect: str, table: sa.TableClause, column: str) -> Any:
    inner = _inner_credential(dialect, table.c[column])
    return sa.and_(
        table.c[column].is_not(None),
        sa.func.substr(inner, 1, len(_UPGRADED_PREFIX)) != _UPGRADED_PREFIX,
    )


def _dormant(
    conn: sa.Connection,
    spec: Spec,
    table: sa.TableClause,
    batches: sa.Table,
    cutoff: dt.datetime,
    not_upgraded: int,
    runs: sa.Table,
) -> int:
    """Accounts not yet upgraded whose batch was committed before ``cutoff``.

    Batches are read in key order, so the accounts of the batches committed before the cutoff
    are those up to the last such batch's last key. With every batch old enough that is all
    ``not_upgraded`` accounts and with none 0, so only a migration that straddles the cutoff
    costs a count. Accounts ``sync`` wrote (their keys anywhere, also below the checkpoint)
    are dated by the sync batch that wrote them.
    """
    b = batches
    newest = conn.execute(
        sa.select(sa.func.max(b.c.committed_at)).where(b.c.migration == spec.migration_name)
    ).scalar()
    if newest is None:
        return 0
    if newest <= cutoff:
        return not_upgraded
    last = conn.execute(
        sa.select(b.c.last_key)
        .where(b.c.migration == spec.migration_name, b.c.committed_at <= cutoff)
        .order_by(b.c.batch_no.desc())
        .limit(1)
    ).scalar()
    if last is None:
        return 0
    column = spec.credentials.target_column if spec.credentials else ""
    not_up = _not_upgraded(conn.dialect.name, table, column)
    within = table.c[spec.target_key] <= decode_key(last)
    dormant = int(
        conn.execute(
            sa.select(sa.func.count()).select_from(table).where(sa.and_(not_up, within))
        ).scalar_one()
    )
    # accounts sync wrote are dated by their own batch, not by the run's key range: a key
    # below the checkpoint synced after the cutoff is too young, one above it synced before
    # the cutoff is old enough
    old, young = _synced_keys(conn, spec.migration_name, batches, runs, cutoff)
    key = table.c[spec.target_key]
    for keys, extra, sign in ((old, sa.not_(within), 1), (young, within, -1)):
        for i in range(0, len(keys), _IN_LIST):
            where = sa.and_(not_up, extra, key.in_(keys[i : i + _IN_LIST]))
            n = conn.execute(sa.select(sa.func.count()).select_from(table).where(where))
            dormant += sign * int(n.scalar_one())
    return dormant


_IN_LIST = 500


def _synced_keys(
    conn: sa.Connection, migration: str, batches: sa.Table, runs: sa.Table, cutoff: dt.datetime
) -> tuple[list[Any], list[Any]]:
    """Keys ``sync`` wrote, by the date of the last batch that wrote each: (on or before
    ``cutoff``, after it)."""
    from authmigrate.sinks.keys import unpack_keys

    b = batches
    when: dict[Any, dt.datetime] = {}
    for committed, blob in conn.execute(
        sa.select(b.c.committed_at, b.c.written_keys)
        .select_from(b.join(runs, runs.c.run_id == b.c.run_id))
        .where(b.c.migration == migration, runs.c.command == "sync", b.c.written_keys.is_not(None))
        .order_by(b.c.batch_no)
    ):
        for k in unpack_keys(blob):
            when[k] = committed
    old = [k for k, t in when.items() if t <= cutoff]
    young = [k for k, t in when.items() if t > cutoff]
    return old, young


def migration_status(
    spec: Spec,
    *,
    dormant_days: int = DORMANT_DAYS,
    record: bool = True,
    command: str = "status",
    source_rows: int | None = None,
    engine: sa.Engine | None = None,
) -> MigrationStatus:
    """Where the migration of ``spec`` stands now (what ``authmigrate status`` shows).

    Args:
        dormant_days: an account still not upgraded this many days after its batch committed
            is counted as dormant (the upgrade happens at login: it has not logged in).
        record: also record a snapshot row in ``authmigrate_snapshots``.
        command: the command the snapshot is recorded under (``status``, ``run``).
        source_rows: the source's row count when the caller has it (saves a count).
        engine: an open engine on the target (else one is made and disposed).

    Raises:
        SpecError: a URL in the spec does not parse.
        SourceError: the source cannot be read to count its rows.
    """
    own = engine is None
    target = engine or make_engine(spec.target.url, path="target.url")
    try:
        return _status(spec, target, dormant_days, record, command, source_rows)
    finally:
        if own:
            target.dispose()


def _status(
    spec: Spec,
    engine: sa.Engine,
    dormant_days: int,
    record: bool,
    command: str,
    source_rows: int | None,
) -> MigrationStatus:
    if source_rows is None:
        from authmigrate.sources import open_source

        source = open_source(spec.source)
        try:
            source_rows = source.count()
        finally:
            source.close()
    metadata = sa.MetaData()
    runs, batches, rejects = bookkeeping_tables(metadata)
    snapshots = snapshots_table(metadata)
    now = utcnow()
    name = spec.migration_name
    table = _accounts_table(spec)
    started = has_accounts = False
    missing = sqlite_file(engine)
    if missing is None or missing.exists():  # never create a SQLite file by looking at it
        insp = sa.inspect(engine)
        started = insp.has_table(batches.name)
        has_accounts = table is not None and insp.has_table(table.name, schema=table.schema)
    totals = {"migrated": 0, "rejected": 0, "merged": 0}
    by_reason: dict[str, dict[str, int]] = {"rejected": {}, "merged": {}}
    last_run: LastRun | None = None
    dormant = 0
    deleted: int | None = None
    held: int | None = None
    credentials = CredentialCounts()
    if started:
        with engine.connect() as conn:
            deleted, held = _key_states(conn, name)
            row = conn.execute(
                sa.select(*(sa.func.coalesce(sa.func.sum(batches.c[k]), 0) for k in totals)).where(
                    batches.c.migration == name
                )
            ).one()
            totals = {k: int(v) for k, v in zip(totals, row, strict=True)}
            for outcome, reason, n in conn.execute(
                sa.select(rejects.c.outcome, rejects.c.reason, sa.func.count())
                .where(rejects.c.migration == name)
                .group_by(rejects.c.outcome, rejects.c.reason)
                .order_by(rejects.c.outcome, sa.func.count().desc(), rejects.c.reason)
            ):
                by_reason.setdefault(outcome, {})[reason] = int(n)
            last = conn.execute(
                sa.select(runs.c.command, runs.c.status, runs.c.started_at, runs.c.ended_at)
                .where(runs.c.migration == name, runs.c.command.in_(_COPYING_COMMANDS))
                .order_by(runs.c.started_at.desc())
                .limit(1)
            ).first()
            if last is not None:
                last_run = LastRun(last.command, last.status, last.started_at, last.ended_at)
    if has_accounts and table is not None and spec.credentials is not None:
        credentials = credential_counts(engine, table, spec.credentials.target_column)
        if started:
            cutoff = now - dt.timedelta(days=dormant_days)
            not_upgraded = credentials.legacy_total + credentials.wrapped_total
            with engine.connect() as conn:
                dormant = _dormant(conn, spec, table, batches, cutoff, not_upgraded, runs)
    # sync's batch rows count a deleted key as -1: the totals stand for rows the source has
    accounted = totals["migrated"] + totals["rejected"] + totals["merged"]
    status = MigrationStatus(
        migration=name,
        taken_at=now,
        source_rows=source_rows,
        migrated=totals["migrated"],
        rejected=totals["rejected"],
        merged=totals["merged"],
        pending=max(source_rows - accounted, 0),
        rejected_by_reason=by_reason.get("rejected", {}),
        merged_by_reason=by_reason.get("merged", {}),
        credentials=credentials,
        dormant=dormant,
        dormant_days=dormant_days,
        last_run=last_run,
        deleted_in_source=deleted,
        changed=held,
    )
    if record and started:
        snapshots.create(engine, checkfirst=True)
        record_snapshot(engine, snapshots, status, command)
    return status


def _key_states(conn: sa.Connection, migration: str) -> tuple[int | None, int | None]:
    """(keys ``sync`` found gone from the source, accounts whose legacy change is held), or
    (None, None) when no per-key state is kept."""
    from authmigrate.sinks.state import STATE_TABLE, state_tables

    if not sa.inspect(conn).has_table(STATE_TABLE):
        return None, None
    state, _ = state_tables(sa.MetaData())
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(state.c.state, sa.func.count())
            .where(state.c.migration == migration, state.c.state.in_(("deleted", "held")))
            .group_by(state.c.state)
        ).all()
    )
    return int(counts.get("deleted", 0)), int(counts.get("held", 0))


def record_snapshot(
    engine: sa.Engine,
    snapshots: sa.Table,
    status: MigrationStatus,
    command: str,
    verdict: str | None = None,
) -> None:
    """Append one row to ``authmigrate_snapshots`` with ``status``'s counts (and, for
    ``verify``, its verdict: ``ok`` or ``problems``)."""
    cred = status.credentials
    with engine.begin() as conn:
        conn.execute(
            snapshots.insert(),
            {
                "migration": status.migration,
                "taken_at": status.taken_at,
                "command": command,
                "source_rows": status.source_rows,
                "migrated": status.migrated,
                "rejected": status.rejected,
                "merged": status.merged,
                "pending": status.pending,
                "legacy": cred.legacy_total,
                "wrapped": cred.wrapped_total,
                "upgraded": cred.upgraded,
                "reset": cred.reset,
                "schemes": json.dumps({"legacy": cred.legacy, "wrapped": cred.wrapped}),
                "verdict": verdict,
            },
        )


@dataclass(frozen=True)
class Snapshot:
    """One recorded snapshot (a point of the report's progress chart)."""

    taken_at: dt.datetime
    command: str
    migrated: int
    legacy: int
    wrapped: int
    upgraded: int
    reset: int


def read_snapshots(engine: sa.Engine, migration: str, *, limit: int = 400) -> list[Snapshot]:
    """The snapshots of ``migration`` for a chart, oldest first ([] before any).

    Up to ``limit`` snapshots, all of them; beyond, the last snapshot of each day (the newest
    ``limit`` days), so a ``status`` run every minute still draws one point a day.
    """
    metadata = sa.MetaData()
    snapshots = snapshots_table(metadata)
    if not sa.inspect(engine).has_table(snapshots.name):
        return []
    s = snapshots.c
    mine = s.migration == migration
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
        chosen: Any = mine
        if count > limit:
            day = sa.func.date(s.taken_at)
            last_of_day = sa.select(sa.func.max(s.id)).where(mine).group_by(day)
            chosen = s.id.in_(last_of_day.scalar_subquery())
        rows = conn.execute(
            sa.select(s.taken_at, s.command, s.migrated, s.legacy, s.wrapped, s.upgraded, s.reset)
            .where(chosen)
            .order_by(s.id.desc())
            .limit(limit)
        ).all()
    return [Snapshot(*(r[0], r[1], *(int(v) for v in r[2:]))) for r in reversed(rows)]


def record_verify(spec: Spec, *, ok: bool, source_rows: int) -> bool:
    """Record a ``verify`` verdict as a snapshot (command ``verify``, verdict ``ok`` or
    ``problems``), so the report can say when verify last ran and what it found.

    Returns False (and logs why) when the target cannot take the row: a verdict that cannot be
    recorded must not turn a clean verify into a failure.
    """
    import logging

    from authmigrate.db import first_line

    engine = make_engine(spec.target.url, path="target.url")
    try:
        status = migration_status(spec, record=False, source_rows=source_rows, engine=engine)
        if status.last_run is None:
            return False  # nothing migrated yet: no bookkeeping to record in
        snapshots = snapshots_table(sa.MetaData())
        snapshots.create(engine, checkfirst=True)
        verdict = "ok" if ok else "problems"
        record_snapshot(engine, snapshots, status, "verify", verdict)
        return True
    except sa.exc.DBAPIError as exc:
        logging.getLogger("authmigrate").warning(
            "verify's verdict was not recorded in the target: %s", first_line(exc)
        )
        return False
    finally:
        engine.dispose()


def last_verify(engine: sa.Engine, migration: str) -> tuple[str, dt.datetime] | None:
    """(verdict, when) of the newest recorded ``verify``, or None."""
    snapshots = snapshots_table(sa.MetaData())
    if not sa.inspect(engine).has_table(snapshots.name):
        return None
    s = snapshots.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(s.verdict, s.taken_at)
            .where(s.migration == migration, s.command == "verify")
            .order_by(s.id.desc())
            .limit(1)
        ).first()
    return None if row is None else (str(row.verdict), row.taken_at)
