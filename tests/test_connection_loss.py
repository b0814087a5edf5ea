"""PostgreSQL drops the run's connections mid-run (pg_terminate_backend): the batch is retried
or the run stops with a clear error, and the next run resumes with no duplicate and no gap."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.db import make_engine
from authmigrate.errors import AuthmigrateError, LockError
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.sinks.sql import TargetLock
from authmigrate.spec import load_spec
from tests.helpers_verify import make_source, write_spec

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

USERS = 40_000
BATCH = 400


def terminator(url: str, rounds: int, stop: threading.Event, hits: list[int]) -> None:
    """Every few committed batches, terminate every other backend of the target database."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        seen = 0
        while len(hits) < rounds and not stop.is_set():
            try:
                n = conn.execute(sa.text("SELECT count(*) FROM authmigrate_batches")).scalar_one()
            except sa.exc.ProgrammingError:
                n = 0
            if n >= seen + 8:
                killed = conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
                hits.append(int(killed))
                seen = n
            time.sleep(0.005)
    engine.dispose()


def test_terminated_connections_mid_run_leave_no_duplicate_and_no_gap(
    tmp_path: Path, pg_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, USERS)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, pg_url, batch=BATCH, retries=8))
    stop = threading.Event()
    hits: list[int] = []
    thread = threading.Thread(target=terminator, args=(pg_url, 4, stop, hits))
    thread.start()
    errors: list[str] = []
    try:
        for _ in range(6):  # a run may stop with a clear error: the next one resumes
            try:
                result = run_migration(spec)
            except AuthmigrateError as exc:
                errors.append(str(exc))
                continue
            if result.status == "done" and result.read == USERS:
                break
    finally:
        stop.set()
        thread.join()
    assert len(hits) >= 3 and sum(hits) >= 3, hits  # the run's connections were cut, repeatedly
    for message in errors:
        assert "Traceback" not in message and len(message.splitlines()) == 1
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
    assert checked.source_rows == USERS

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        numbers = conn.execute(
            sa.text("SELECT batch_no FROM authmigrate_batches ORDER BY batch_no")
        ).scalars()
        assert list(numbers) == list(range(1, USERS // BATCH + 1))  # no gap, no batch twice
    engine.dispose()


def terminate_others(url: str) -> None:
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()


def test_lock_lost_with_its_connection_is_taken_again_or_the_run_stops(pg_url: str) -> None:
    """The advisory lock lives in a session: when PostgreSQL drops that session the run must
    notice, take the lock again or stop, and never write beside a second run."""
    lock = TargetLock(make_engine(pg_url, path="target.url"), "m")
    other = TargetLock(make_engine(pg_url, path="target.url"), "m")
    lock.acquire()
    terminate_others(pg_url)
    lock.ensure()  # reconnects and takes the lock again
    with pytest.raises(LockError):
        other.acquire()
    terminate_others(pg_url)
    other.acquire()  # the lock was free while the first holder had no session
    with pytest.raises(LockError, match="lost the lock"):
        lock.ensure()  # someone else holds it now: the first run must stop
    other.release()
    lock.release()


def test_a_released_lock_is_free_when_release_returns(pg_url: str) -> None:
    """A run that ends and another that starts at once (the same process, or the CLI run just
    after) must find the lock free. Ending the session alone frees it only when the server's
    backend has exited, a moment after the client closed the connection: one suite run, on a
    loaded machine, saw the next ``run_migration`` refused ("another run ... is writing").
    The test makes that moment long by stopping the backend (SIGSTOP) while ``release`` runs:
    a release that returns before the server has let go of the lock is caught every time."""
    engine = make_engine(pg_url, path="target.url")
    first, second = TargetLock(engine, "m"), TargetLock(engine, "m")
    first.acquire()
    assert first._conn is not None
    backend = first._conn.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
    releasing = threading.Thread(target=first.release)
    os.kill(backend, signal.SIGSTOP)
    try:
        releasing.start()
        releasing.join(0.5)
        if not releasing.is_alive():  # returned without waiting for the server
            second.acquire()  # the lock must be free now
            second.release()
            return
    finally:
        os.kill(backend, signal.SIGCONT)
    releasing.join(10)
    assert not releasing.is_alive()
    second.acquire()
    second.release()
    engine.dispose()
