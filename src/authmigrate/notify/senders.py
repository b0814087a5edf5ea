"""Who is sending: a registration with a heartbeat for every running ``notify``.

Every ``notify`` process writes a row in ``authmigrate_notify_senders`` before it claims
anything, and renews it every few seconds from a background thread (the heartbeat). A claimed
outbox row names its sender (``claimed_by``), so

- ``--requeue in_doubt`` puts back only messages whose sender is gone (stopped, killed, or
  silent for longer than its lease), never one a live ``notify`` is sending right now;
- ``notify`` counts as *in doubt* every ``sending`` message whose sender is gone, whichever
  run left it;
- ``rollback`` and ``notify`` exclude each other: each registers first, then looks for the
  other, so at least one of two that start together sees the other and stops (exit 2).

A sender is gone when its lease ran out (``expires_at`` in the past), or at once when its row
says it runs on this host under a process id that no longer exists (a kill -9 is seen
without waiting for the lease). Clocks of machines that share a target should agree to well
within the lease (:data:`LEASE`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import sqlalchemy as sa

from authmigrate.errors import LockError
from authmigrate.notify.outbox import OUTBOX_TABLE, utcnow

log = logging.getLogger("authmigrate.notify")

SENDERS_TABLE = "authmigrate_notify_senders"

HEARTBEAT = 5.0
"""Seconds between two heartbeats of a running sender."""

LEASE = 60.0
"""Seconds a heartbeat vouches for: a sender silent for longer is taken for gone."""

Kind = Literal["notify", "rollback"]


def senders_table(metadata: sa.MetaData) -> sa.Table:
    """Declare (or return the already declared) senders table in ``metadata``."""
    if SENDERS_TABLE in metadata.tables:
        return metadata.tables[SENDERS_TABLE]
    return sa.Table(
        SENDERS_TABLE,
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("migration", sa.String(200), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )


def ensure_tables(engine: sa.Engine) -> sa.Table:
    """Create the senders table and the outbox's ``claimed_by`` column where missing.

    An outbox written by an earlier version has no ``claimed_by``: it is added (NULL: a row
    claimed by an unknown sender, which only an old, finished ``notify`` can have left).
    """
    md = sa.MetaData()
    table = senders_table(md)
    try:
        md.create_all(engine, tables=[table], checkfirst=True)
    except sa.exc.DBAPIError:  # another process created it at the same moment
        if not sa.inspect(engine).has_table(SENDERS_TABLE):
            raise
    if not _has_claimed_by(engine):
        prep = engine.dialect.identifier_preparer
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"ALTER TABLE {prep.quote(OUTBOX_TABLE)} ADD COLUMN "
                    f"{prep.quote('claimed_by')} VARCHAR(36)"
                )
        except sa.exc.DBAPIError:  # added by another process at the same moment
            if not _has_claimed_by(engine):
                raise
    return table


def _has_claimed_by(engine: sa.Engine) -> bool:
    insp = sa.inspect(engine)
    if not insp.has_table(OUTBOX_TABLE):
        return True  # nothing to upgrade: created with the column when it is created
    return "claimed_by" in {c["name"] for c in insp.get_columns(OUTBOX_TABLE)}


def _host() -> str:
    return socket.gethostname()[:255]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def is_alive(row: Any, *, now: dt.datetime | None = None) -> bool:
    """Whether the sender of a senders row still runs (its lease, and its pid on this host)."""
    now = now or utcnow()
    if row.expires_at <= now:
        return False
    return not (row.host == _host() and not _pid_alive(int(row.pid)))


def live_senders(conn: sa.Connection, migration: str, kind: Kind = "notify") -> list[Any]:
    """The rows of the senders of ``kind`` that still run for ``migration``."""
    t = senders_table(sa.MetaData())
    if not sa.inspect(conn).has_table(SENDERS_TABLE):
        return []
    rows = conn.execute(sa.select(t).where(t.c.migration == migration, t.c.kind == kind))
    now = utcnow()
    return [r for r in rows if is_alive(r, now=now)]


def _describe(rows: Iterable[Any]) -> str:
    return ", ".join(f"pid {r.pid} on {r.host}" for r in rows)


class Registration:
    """This process, registered as a sender (or a rollback) of one migration.

    :meth:`start` writes the row and starts the heartbeat thread; :meth:`stop` ends both and
    deletes the row. :meth:`check` says whether the lease is still held: a sender that could
    not renew it (the database unreachable) must not claim anything more.

    Args:
        engine: the target database.
        migration: the migration's name.
        kind: ``notify`` or ``rollback``.
        heartbeat: seconds between heartbeats (default :data:`HEARTBEAT`).
        lease: seconds one heartbeat vouches for (default :data:`LEASE`).
    """

    def __init__(
        self,
        engine: sa.Engine,
        migration: str,
        kind: Kind,
        *,
        heartbeat: float = HEARTBEAT,
        lease: float = LEASE,
    ) -> None:
        if lease <= heartbeat:
            raise ValueError("the lease must be longer than the heartbeat interval")
        self.engine = engine
        self.migration = migration
        self.kind = kind
        self.id = str(uuid.uuid4())
        self.heartbeat = heartbeat
        self.lease = lease
        self._table = senders_table(sa.MetaData())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held_until = 0.0  # time.monotonic() until which the lease is surely ours
        self._lost = False

    def __repr__(self) -> str:
        return f"Registration({self.kind} {self.id} of {self.migration!r})"

    def start(self, *, exclude: Kind) -> None:
        """Register, then refuse to go on while a live ``exclude`` runs for this migration.

        Raises:
            LockError: a live ``exclude`` (a rollback, or a notify) runs for this migration.
        """
        ensure_tables(self.engine)
        now = utcnow()
        began = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(
                self._table.insert(),
                {
                    "id": self.id,
                    "migration": self.migration,
                    "kind": self.kind,
                    "host": _host(),
                    "pid": os.getpid(),
                    "started_at": now,
                    "heartbeat_at": now,
                    "expires_at": now + dt.timedelta(seconds=self.lease),
                },
            )
        self._held_until = began + self.lease
        with self.engine.connect() as conn:
            others = live_senders(conn, self.migration, exclude)
        if others:
            self._delete()
            what = "a rollback" if exclude == "rollback" else "notify"
            raise LockError(
                f"{what} of migration {self.migration!r} is running ({_describe(others)}); "
                f"{self.kind} waits until it has finished"
            )
        self._thread = threading.Thread(target=self._beat, name="authmigrate-heartbeat")
        self._thread.daemon = True
        self._thread.start()

    def check(self) -> None:
        """Raise :class:`LockError` when the lease may have lapsed (heartbeats failing)."""
        if self._lost or time.monotonic() >= self._held_until - self.heartbeat:
            raise LockError(
                f"{self.kind} lost its registration in the target (heartbeats failed): "
                "it stops rather than risk a message another process may requeue"
            )

    def stop(self) -> None:
        """Stop the heartbeat and delete the registration (what is claimed becomes in doubt)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.heartbeat + 5)
        self._delete()

    def _beat(self) -> None:
        t = self._table
        while not self._stop.wait(self.heartbeat):
            began = time.monotonic()
            now = utcnow()
            try:
                with self.engine.begin() as conn:
                    done = conn.execute(
                        t.update()
                        .where(t.c.id == self.id)
                        .values(heartbeat_at=now, expires_at=now + dt.timedelta(seconds=self.lease))
                    )
                if done.rowcount != 1:  # the row was removed: taken for gone by someone
                    self._lost = True
                    return
                self._held_until = began + self.lease
            except sa.exc.DBAPIError as exc:
                log.warning("notify heartbeat failed: %s", type(exc).__name__)

    def _delete(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(self._table.delete().where(self._table.c.id == self.id))
        except sa.exc.DBAPIError as exc:  # the lease runs out by itself
            log.warning("could not remove the %s registration: %s", self.kind, type(exc).__name__)


def hold_off_senders(engine: sa.Engine, migration: str) -> Registration | None:
    """For ``rollback``: register, and refuse while a ``notify`` of ``migration`` runs.

    Returns the registration to :meth:`~Registration.stop` when the rollback ends, or None
    when the target has no outbox (nothing for a ``notify`` to send).

    Raises:
        LockError: a live ``notify`` of this migration is sending.
    """
    if not sa.inspect(engine).has_table(OUTBOX_TABLE):
        return None
    registration = Registration(engine, migration, "rollback")
    registration.start(exclude="notify")
    return registration


def in_doubt_filter(conn: sa.Connection, outbox: sa.Table, migration: str) -> Any:
    """A WHERE clause for the ``sending`` rows of ``migration`` whose sender is gone.

    Gone: no sender named (an earlier version's claim), a sender no longer registered, or one
    registered whose lease ran out or whose process is gone. A sender that registers after
    this is read cannot hold any of these rows: it registers before it claims.
    """
    senders = senders_table(sa.MetaData())
    registered = sa.select(senders.c.id).where(senders.c.migration == migration)
    rows = conn.execute(sa.select(senders).where(senders.c.migration == migration))
    now = utcnow()
    dead = [r.id for r in rows if not is_alive(r, now=now)]
    owner = outbox.c.claimed_by
    gone = [owner.is_(None), owner.not_in(registered)]
    if dead:
        gone.append(owner.in_(dead))
    return sa.and_(outbox.c.migration == migration, outbox.c.status == "sending", sa.or_(*gone))


def forget_dead(conn: sa.Connection, migration: str) -> int:
    """Delete the registrations of senders that are gone (their claims stay in doubt)."""
    senders = senders_table(sa.MetaData())
    rows = conn.execute(sa.select(senders).where(senders.c.migration == migration))
    now = utcnow()
    dead = [r.id for r in rows if not is_alive(r, now=now)]
    if not dead:
        return 0
    return int(conn.execute(senders.delete().where(senders.c.id.in_(dead))).rowcount or 0)
