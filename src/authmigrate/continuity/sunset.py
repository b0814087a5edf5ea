"""``authmigrate sunset``: after the grace period, act on accounts still on a legacy hash.

The upgrade to argon2id happens when a user logs in on the new system (``verify_and_update``
writes the new hash), so an account still on a legacy or wrapped hash ``[sunset] after_days``
after the migration wrote it has not logged in since. ``[sunset] action`` says what happens:

- ``reset``: the credential is removed and the reset flag set (the legacy hash is gone from the
  new store); with ``notify = true`` the notify outbox's ``reset`` segment receives the account
  (with a fresh token when the spec has ``[tokens]``), exactly once: the outbox keeps one row per
  account and segment, and a message already queued or sent is never queued again;
- ``disable``: the account's ``[sync] disabled_column`` is set;
- ``keep``: nothing changes; the accounts are listed.

A dry run by default (``apply=False``): the result lists the keys that would be acted on.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from authmigrate.continuity.sync import check_disabled_column, is_upgraded
from authmigrate.errors import SpecError, TargetError
from authmigrate.pipeline.batch import Batch, Record
from authmigrate.sinks.keys import TargetKey
from authmigrate.sinks.sql import SqlTarget, TargetLock, utcnow
from authmigrate.sinks.state import key_of
from authmigrate.spec import Spec

_PAGE = 1000


@dataclass
class SunsetResult:
    """Accounts past the grace period still on a legacy hash, and what was done."""

    migration: str
    action: str
    applied: bool
    after_days: int
    keys: list[Any] = field(default_factory=list)
    notified: int = 0
    """Reset messages queued in the outbox by this call (0 in a dry run)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "action": self.action,
            "applied": self.applied,
            "after_days": self.after_days,
            "accounts": len(self.keys),
            "keys": self.keys,
            "notified": self.notified,
        }


def sunset(spec: Spec, *, apply: bool = False, now: dt.datetime | None = None) -> SunsetResult:
    """Find (and with ``apply``, act on) accounts still on a legacy or wrapped hash whose key
    state was last written more than ``[sunset] after_days`` ago.

    Raises:
        SpecError: no ``[credentials]``, or ``notify = true`` without ``[notify]``.
        LockError: a run or sync of this migration is writing.
    """
    cfg = spec.sunset
    cred = spec.credentials
    if cred is None:
        raise SpecError("sunset", "the spec has no [credentials]: there is no hash to retire")
    if cfg.notify and spec.notify is None:
        raise SpecError("sunset.notify", "notify = true needs a [notify] section (the outbox)")
    from authmigrate.pipeline.run import build_late_stages, build_stages

    late = build_late_stages(spec) if apply and cfg.action == "reset" and cfg.notify else []
    target = SqlTarget(spec, stages=[*build_stages(spec, dry=True), *late])
    if cfg.action == "disable":
        try:
            check_disabled_column(spec, target.engine)
        except SpecError:
            target.close()
            raise
    result = SunsetResult(
        migration=target.migration, action=cfg.action, applied=apply, after_days=cfg.after_days
    )
    cutoff = (now or utcnow()) - dt.timedelta(days=cfg.after_days)
    lock = TargetLock(target.engine, target.migration)
    try:
        if apply:
            lock.acquire()
        if not sa.inspect(target.engine).has_table(target.table.name, schema=target.table.schema):
            return result  # nothing migrated yet
        # the columns' real types (the declaration alone does not know the source's types)
        target.table = sa.Table(
            target.table.name,
            sa.MetaData(),
            autoload_with=target.engine,
            schema=target.table.schema,
        )
        target.key = TargetKey(target.table.c[spec.target_key].type, target.engine.dialect.name)
        candidates = _candidates(spec, target, cutoff)
        candidates.sort(key=lambda c: (isinstance(c[0], str), c[0]))  # 2 before 10
        result.keys = [k for k, _ in candidates]
        if apply and cfg.action != "keep":
            for i in range(0, len(candidates), _PAGE):
                result.notified += _act(spec, target, candidates[i : i + _PAGE])
    except sa.exc.OperationalError as exc:
        raise TargetError(f"cannot reach target {target.where}: {exc.orig}") from None
    finally:
        lock.release()
        target.close()
    return result


def _candidates(spec: Spec, target: SqlTarget, cutoff: dt.datetime) -> list[tuple[Any, Any]]:
    """(legacy key, target key) of migrated accounts older than ``cutoff`` on a legacy hash."""
    cred = spec.credentials
    assert cred is not None
    st, table = target.state, target.table
    tkey = target.key.column(table.c[spec.target_key])  # keys bound in their stored form
    out: list[tuple[Any, Any]] = []
    after = ""
    with target.engine.connect() as conn:
        if not sa.inspect(conn).has_table(st.name):
            return []
        while True:
            page = (
                conn.execute(
                    sa.select(st.c.source_key)
                    .where(
                        st.c.migration == target.migration,
                        # a held account (its later legacy change waits in the rejects)
                        # is a live account on its imported hash too
                        st.c.state.in_(("migrated", "held")),
                        st.c.changed_at < cutoff,
                        st.c.source_key > after,
                    )
                    .order_by(st.c.source_key)
                    .limit(_PAGE)
                )
                .scalars()
                .all()
            )
            if not page:
                return out
            after = page[-1]
            keys = {target.key.stored(key_of(k)): key_of(k) for k in page}
            rows = conn.execute(
                sa.select(tkey, table.c[cred.target_column]).where(tkey.in_(list(keys)))
            ).all()
            for tk, value in rows:
                if value is not None and not is_upgraded(value):
                    out.append((keys[tk], tk))


def _act(spec: Spec, target: SqlTarget, chunk: list[tuple[Any, Any]]) -> int:
    """Apply the action to one chunk in one transaction; returns messages queued."""
    cred = spec.credentials
    assert cred is not None
    table = target.table
    tkey = target.key.column(table.c[spec.target_key])  # keys bound in their stored form
    tkeys = [tk for _, tk in chunk]
    with target.engine.begin() as conn:
        if spec.sunset.action == "disable":
            _ensure_disabled(conn, spec, target)
            conn.execute(
                table.update().where(tkey.in_(tkeys)).values({spec.sync.disabled_column: True})
            )
            return 0
        # reset: the legacy hash leaves the new store; the account must set a new password
        conn.execute(
            table.update()
            .where(tkey.in_(tkeys), table.c[cred.target_column].is_not(None))
            .values({cred.target_column: None, cred.reset_column: True})
        )
        if not any(_is_outbox(s) for s in target.stages):
            return 0
        return _queue_resets(conn, spec, target, chunk)


def _queue_resets(
    conn: sa.Connection, spec: Spec, target: SqlTarget, chunk: list[tuple[Any, Any]]
) -> int:
    """The outbox's ``reset`` segment for each account (a fresh token first, with [tokens])."""
    from authmigrate.notify.outbox import OutboxStage, outbox_table

    table = target.table
    tkey = target.key.column(table.c[spec.target_key])  # keys bound in their stored form
    names = [c.name for c in table.c]
    rows = {
        target.key.stored(row[spec.target_key]): row
        for row in (
            dict(zip(names, r, strict=True))
            for r in conn.execute(
                sa.select(*[table.c[n] for n in names]).where(tkey.in_([tk for _, tk in chunk]))
            )
        )
    }
    outbox = outbox_table(sa.MetaData())
    already = set(
        conn.execute(
            sa.select(outbox.c.source_key).where(
                outbox.c.migration == target.migration,
                outbox.c.segment == "reset",
                outbox.c.source_key.in_([str(k) for k, _ in chunk]),
            )
        ).scalars()
    )
    records = [
        Record(key, {}, dict(rows[tk]), segment="reset")
        for key, tk in chunk
        if tk in rows and str(key) not in already
    ]
    if not records:
        return 0
    batch = Batch(number=0, first_key=None, last_key=None, rows_read=0, records=records)
    run_id = f"sunset-{uuid.uuid4()}"
    for stage in target.stages:
        if _is_late(stage):
            stage.process(batch)
    tok = spec.tokens
    if tok is not None:
        cols = [tok.column, *([tok.prefix_column] if tok.prefix_column else [])]
        stmt = (
            table.update()
            .where(tkey == sa.bindparam("k_key"))
            .values({c: sa.bindparam(f"v_{c}") for c in cols})
        )
        conn.execute(
            stmt,
            [
                {
                    "k_key": target.key.stored(r.values[spec.target_key]),
                    **{f"v_{c}": r.values[c] for c in cols},
                }
                for r in records
            ],
        )
    for stage in target.stages:
        if isinstance(stage, OutboxStage):
            stage.write(conn, batch, run_id)
    return len(records)


def _is_outbox(stage: object) -> bool:
    from authmigrate.notify.outbox import OutboxStage

    return isinstance(stage, OutboxStage)


def _is_late(stage: object) -> bool:
    from authmigrate.pipeline.tokens import TokenStage

    return _is_outbox(stage) or isinstance(stage, TokenStage)


def _ensure_disabled(conn: sa.Connection, spec: Spec, target: SqlTarget) -> None:
    table = target.table
    name = spec.sync.disabled_column
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name, schema=table.schema)}
    if name not in have:
        col = sa.Column(name, sa.Boolean, nullable=False, server_default=sa.false())
        ddl = sa.schema.CreateColumn(col).compile(dialect=conn.dialect)
        quoted = conn.dialect.identifier_preparer.format_table(table)
        conn.exec_driver_sql(f"ALTER TABLE {quoted} ADD {ddl}")
    if name not in table.c:
        table.append_column(sa.Column(name, sa.Boolean))
