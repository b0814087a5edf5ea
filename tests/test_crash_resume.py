"""kill -9 at random moments, resume, repeat: nothing lost, nothing doubled.

A real ``authmigrate run`` subprocess migrates 200,000 users in batches of 2,000 and is killed
with SIGKILL at a seeded random moment, again and again, then left to finish. After the final
resume ``verify`` exits 0 and the target (accounts and rejects) equals what one clean run gives.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, make_source, table_rows, write_spec

USERS = 200_000
BATCH = 2_000
KILLS = 11  # per backend: 22 in all
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def crash_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 200,000-user legacy table, built once for the session."""
    path = tmp_path_factory.mktemp("crash") / "legacy.db"
    make_source(path, USERS, seed=11)
    return path


@pytest.fixture(scope="session")
def clean_run(
    crash_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """Accounts and rejects of one uninterrupted run (in-process, SQLite target)."""
    folder = tmp_path_factory.mktemp("clean")
    dst = f"sqlite:///{folder}/clean.db"
    spec = write_spec(folder / "m.toml", crash_source, dst, batch=BATCH)
    run_migration(load_spec(spec))
    return table_rows(dst, "accounts", "user_id"), rejects(dst)


def rejects(url: str) -> set[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT source_key, outcome, reason, column_name, merged_into"
                    " FROM authmigrate_rejects"
                )
            )
            return {tuple(r) for r in rows}
    finally:
        engine.dispose()


def committed_batches(engine: sa.Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT count(*) FROM authmigrate_batches")).scalar_one()
            )
    except sa.exc.DBAPIError:
        return 0  # not created yet


def kill_at_random_moment(
    proc: subprocess.Popen[bytes], engine: sa.Engine, rng: random.Random, batches: int
) -> bool:
    """Wait until ``batches`` more batches are committed (0: kill during start-up), then a
    random fraction of a batch more, and SIGKILL; False when the run ended first."""
    goal = committed_batches(engine) + batches
    deadline = time.monotonic() + 120
    while committed_batches(engine) < goal and proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.04) if batches else rng.uniform(0.0, 0.6))
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    return True


def start_run(spec: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "authmigrate", "run", str(spec)],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            cwd=spec.parent,
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_resume_after_repeated_kill_9_loses_nothing_and_doubles_nothing(
    backend: str,
    crash_source: Path,
    clean_run: tuple[list[tuple[Any, ...]], set[tuple[Any, ...]]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if backend == "sqlite":
        dst = f"sqlite:///{tmp_path}/target.db"
    else:
        dst = request.getfixturevalue("pg_url")
    spec = write_spec(tmp_path / "m.toml", crash_source, dst, batch=BATCH)
    rng = random.Random(f"crash-{backend}")
    log = tmp_path / "runs.log"
    engine = sa.create_engine(dst)
    per_kill = (USERS // BATCH) // KILLS  # about 9: the kills spread over the whole run
    progress: list[int] = []
    for _ in range(KILLS):
        proc = start_run(spec, log)
        killed = kill_at_random_moment(proc, engine, rng, rng.randrange(0, per_kill + 3))
        assert killed, f"the run finished before kill {len(progress) + 1}: {log.read_text()[-800:]}"
        progress.append(committed_batches(engine))
    engine.dispose()
    assert progress[-1] < USERS // BATCH, progress  # the last kill came before the end
    assert len(set(progress)) >= KILLS // 2, progress  # most kills landed mid-run

    final = cli("run", str(spec), cwd=tmp_path)
    assert final.returncode == 1, final.stderr  # 1: it ran, with rejects
    report = json.loads((tmp_path / "m.report.json").read_text())
    assert report["status"] == "done"
    assert report["totals"]["read"] == USERS

    verified = cli("verify", str(spec), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    accounts, clean_rejects = clean_run
    assert table_rows(dst, "accounts", "user_id") == accounts
    assert rejects(dst) == clean_rejects

    # every killed run that got as far as recording itself is now marked crashed
    engine = sa.create_engine(dst)
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT status, spec_hash, started_at, ended_at FROM authmigrate_runs")
        ).all()
    engine.dispose()
    statuses = sorted(r.status for r in runs)
    assert statuses.count("done") == 1
    assert set(statuses) <= {"done", "crashed"}
    assert len(runs) <= KILLS + 1
    fingerprint = load_spec(spec).fingerprint()
    assert all(r.spec_hash == fingerprint and r.started_at is not None for r in runs)
    assert all((r.ended_at is not None) == (r.status == "done") for r in runs)
