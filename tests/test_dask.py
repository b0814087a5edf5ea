"""``authmigrate run SPEC --dask``: key ranges as Dask tasks on a real LocalCluster.

Every result is compared with what one process gives (``run_migration``): accounts, rejects
(reason, column, detail, merged_into, raw row) row for row, and the bookkeeping's totals.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.cluster.run import run_on_dask, worker_pids
from authmigrate.continuity.status import migration_status
from authmigrate.pipeline import run_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, execute, make_source, scalar, table_rows, write_spec

distributed = pytest.importorskip("distributed")

REJECT_COLUMNS = "source_key, outcome, reason, column_name, detail, merged_into, raw"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes, as ``--dask local`` starts on this machine."""
    c = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    try:
        yield c
    finally:
        c.close()


def rejects(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(
                tuple(r)
                for r in conn.execute(sa.text(f"SELECT {REJECT_COLUMNS} FROM authmigrate_rejects"))
            )
    finally:
        engine.dispose()


def with_ranges(spec: Path, n: int) -> Path:
    """The spec with ``[run] ranges = n`` (``[run]`` is its last section)."""
    spec.write_text(spec.read_text() + f"ranges = {n}\n")
    return spec


def range_of(url: str) -> dict[Any, int]:
    """{source key: range id} of every account and reject, from the bookkeeping."""
    engine = sa.create_engine(url)
    out: dict[Any, int] = {}
    try:
        with engine.connect() as conn:
            for keys, rid in conn.execute(
                sa.text("SELECT written_keys, range_id FROM authmigrate_batches")
            ):
                from authmigrate.sinks.keys import unpack_keys

                for k in unpack_keys(keys):
                    out[k] = rid
            for key, rid in conn.execute(
                sa.text(
                    "SELECT r.source_key, b.range_id FROM authmigrate_rejects r JOIN "
                    "authmigrate_batches b ON b.batch_no = r.batch_no"
                )
            ):
                out[json.loads(key)] = rid
    finally:
        engine.dispose()
    return out


@pytest.mark.slow  # 40-55 s on the shared machine (load 15-20)
def test_dask_run_equals_one_process_run_with_duplicates_across_ranges(
    tmp_path: Path, target_url: str, cluster: Any
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 2_000, seed=5, hashes=True)
    one = f"sqlite:///{tmp_path}/one.db"
    alone = run_migration(
        load_spec(write_spec(tmp_path / "one.toml", src, one, credentials="keep"))
    )
    spec = write_spec(tmp_path / "d.toml", src, target_url, batch=37, credentials="keep")
    result = run_on_dask(load_spec(with_ranges(spec, 9)), cluster.scheduler_address)

    assert result.status == "done"
    assert table_rows(target_url, "accounts", "user_id") == table_rows(one, "accounts", "user_id")
    assert rejects(target_url) == rejects(one)
    # the duplicates straddle ranges: a loser's winner sits in another (earlier) range
    ranges = range_of(target_url)
    crossing = [
        (json.loads(k), json.loads(w))
        for k, o, *_, w, _raw in rejects(target_url)
        if o == "merged" and ranges[json.loads(k)] != ranges[json.loads(w)]
    ]
    assert len(crossing) >= 5
    assert len(set(ranges.values())) == 9
    assert result.this_run == alone.this_run
    assert result.this_run["merged"] > 0 and result.this_run["read"] == 2_000


def test_first_in_key_order_wins_between_ranges_running_at_once(
    tmp_path: Path, cluster: Any
) -> None:
    """Range 0 holds keys 1-1000 and range 1 keys 1001-2000; the last 50 keys of range 0
    share their emails (other case) with the first 50 of range 1. Both ranges load at once
    on two workers, so range 1 reaches its twins long before range 0 does: still every twin
    of range 1 loses to range 0's, as in one process."""
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT)")
    rows = [(i, f"user{i}@example.com") for i in range(1, 951)]
    rows += [(950 + i, f"dup{i}@example.com") for i in range(1, 51)]
    rows += [(1000 + i, f"DUP{i}@Example.com") for i in range(1, 51)]
    rows += [(i, f"user{i}@example.com") for i in range(1051, 2001)]
    conn.executemany("INSERT INTO legacy_users VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    text = f"""
[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "user_id"
[target]
url = "sqlite:///{{dst}}"
table = "accounts"
[fields]
user_id = "user_id"
email = {{{{ from = "email", normalize = "email" }}}}
[run]
batch_size = 25
duplicates = "merge"
"""
    one, dask_db = tmp_path / "one.db", tmp_path / "dask.db"
    (tmp_path / "one.toml").write_text(text.format(dst=one))
    (tmp_path / "d.toml").write_text(text.format(dst=dask_db) + "ranges = 2\n")
    run_migration(load_spec(tmp_path / "one.toml"))
    run_on_dask(load_spec(tmp_path / "d.toml"), cluster.scheduler_address)
    url = f"sqlite:///{dask_db}"
    accounts = table_rows(url, "accounts", "user_id")
    assert accounts == table_rows(f"sqlite:///{one}", "accounts", "user_id")
    merged = rejects(url)
    assert merged == rejects(f"sqlite:///{one}")
    assert sorted((json.loads(k), json.loads(w)) for k, _, _, _, _, w, _ in merged) == [
        (1000 + i, 950 + i) for i in range(1, 51)
    ]
    assert {r[4] for r in merged} == {f"same email as account {950 + i}" for i in range(1, 51)}
    assert len(set(range_of(url).values())) == 2


@pytest.mark.slow  # 40-55 s on the shared machine (load 15-20)
def test_verify_status_and_rollback_see_one_migration_after_a_dask_run(
    tmp_path: Path, cluster: Any
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 800, seed=9, hashes=True)
    dst = f"sqlite:///{tmp_path}/target.db"
    execute(
        dst,
        "CREATE TABLE accounts (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, name TEXT,"
        " created_at DATETIME, active BOOLEAN, visits INTEGER, origin TEXT, password TEXT,"
        " password_reset_required BOOLEAN NOT NULL DEFAULT 0)",
        "INSERT INTO accounts (user_id, email, origin) VALUES (99999, 'own@example.com', 'new')",
    )
    before = table_rows(dst, "accounts", "user_id")
    spec = with_ranges(write_spec(tmp_path / "m.toml", src, dst, batch=40, credentials="wrap"), 6)
    result = run_on_dask(load_spec(spec), cluster.scheduler_address)
    assert result.status == "done"

    verified = cli("verify", str(spec), "--json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    status = migration_status(load_spec(spec), record=False)
    migrated = scalar(dst, "SELECT count(*) FROM accounts WHERE user_id <> 99999")
    assert (status.source_rows, status.migrated) == (800, migrated)
    assert status.pending == 0
    assert status.migrated + status.rejected + status.merged == 800
    assert status.merged > 0 and status.rejected > 0
    runs = scalar(dst, "SELECT count(*) FROM authmigrate_runs WHERE command = 'run'")
    assert runs == 1  # one run, whatever the number of ranges and workers

    undone = cli("rollback", str(spec), "--yes", cwd=tmp_path)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert table_rows(dst, "accounts", "user_id") == before
    assert scalar(dst, "SELECT count(*) FROM authmigrate_batches") == 0
    assert scalar(dst, "SELECT count(*) FROM authmigrate_rejects") == 0
    assert scalar(dst, "SELECT count(*) FROM authmigrate_ranges") == 0
    # and the migration can start over, in one process this time
    again = run_migration(load_spec(spec))
    assert again.this_run == result.this_run


def test_one_process_run_refuses_to_resume_a_migration_started_on_dask(
    tmp_path: Path, cluster: Any
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 300, seed=2)
    dst = f"sqlite:///{tmp_path}/target.db"
    spec = with_ranges(write_spec(tmp_path / "m.toml", src, dst, batch=40), 3)
    run_on_dask(load_spec(spec), cluster.scheduler_address)
    batches = scalar(dst, "SELECT count(*) FROM authmigrate_batches")
    done = cli("run", str(spec), cwd=tmp_path)
    assert done.returncode == 2
    assert "run.dask" in done.stderr and "--dask" in done.stderr
    assert scalar(dst, "SELECT count(*) FROM authmigrate_batches") == batches


def test_an_older_target_without_range_id_reads_as_before_and_resumes_on_dask(
    tmp_path: Path, cluster: Any
) -> None:
    """A target written by a version without ranges (no ``range_id`` column, no ranges table):
    run, verify and status work as before; a later run on Dask adds the column and carries
    the new rows after the one-process checkpoint."""
    src = tmp_path / "legacy.db"
    make_source(src, 600, seed=4)
    dst = f"sqlite:///{tmp_path}/target.db"
    spec = write_spec(tmp_path / "m.toml", src, dst, batch=50)
    first = run_migration(load_spec(spec))
    execute(dst, "ALTER TABLE authmigrate_batches DROP COLUMN range_id")
    assert cli("verify", str(spec), cwd=tmp_path).returncode == 0
    assert migration_status(load_spec(spec), record=False).migrated == first.migrated

    def add(keys: range) -> None:
        conn = sqlite3.connect(src)
        conn.executemany(
            "INSERT INTO legacy_users (user_id, email, active, visits) VALUES (?, ?, 1, 0)",
            [(k, f"late{k}@example.com") for k in keys],
        )
        conn.commit()
        conn.close()

    add(range(1000, 1100))
    resumed = run_migration(load_spec(spec))  # writes batches into the older table
    assert resumed.this_run == {"read": 100, "migrated": 100, "rejected": 0, "merged": 0}
    assert cli("verify", str(spec), cwd=tmp_path).returncode == 0
    add(range(2000, 2200))
    later = run_on_dask(load_spec(with_ranges(spec, 4)), cluster.scheduler_address)
    assert later.this_run == {"read": 200, "migrated": 200, "rejected": 0, "merged": 0}
    assert cli("verify", str(spec), cwd=tmp_path).returncode == 0
    assert scalar(dst, "SELECT count(*) FROM authmigrate_batches WHERE range_id IS NULL") == 14


def test_text_keys_are_cut_in_the_source_collation(tmp_path: Path, cluster: Any) -> None:
    """Keys in a NOCASE column sort ``a`` < ``B`` < ``c`` in the database and ``B`` < ``a`` in
    Python: ranges cut and read in the database's order take every row exactly once."""
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (user_id TEXT COLLATE NOCASE PRIMARY KEY, email TEXT)")
    keys = [f"{c}{i:03d}" for i in range(60) for c in ("a", "B", "c", "D", "z", "Y")]
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?)", [(k, f"{k}@example.com") for k in keys]
    )
    conn.commit()
    conn.close()
    text = f"""
[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "user_id"
[target]
url = "sqlite:///{{dst}}"
table = "accounts"
[fields]
user_id = "user_id"
email = {{{{ from = "email", normalize = "email" }}}}
[run]
batch_size = 13
"""
    (tmp_path / "one.toml").write_text(text.format(dst=tmp_path / "one.db"))
    (tmp_path / "d.toml").write_text(text.format(dst=tmp_path / "d.db") + "ranges = 7\n")
    run_migration(load_spec(tmp_path / "one.toml"))
    result = run_on_dask(load_spec(tmp_path / "d.toml"), cluster.scheduler_address)
    url = f"sqlite:///{tmp_path}/d.db"
    assert result.this_run["migrated"] == len(keys)
    assert sorted(table_rows(url, "accounts", "user_id")) == sorted(
        table_rows(f"sqlite:///{tmp_path}/one.db", "accounts", "user_id")
    )
    assert len(set(range_of(url).values())) == 7


def test_dask_address_is_checked_in_the_spec_and_on_the_command_line(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 10)
    dst = f"sqlite:///{tmp_path}/target.db"
    spec = write_spec(tmp_path / "m.toml", src, dst)
    bad = cli("run", str(spec), "--dask", "udp://nowhere", cwd=tmp_path)
    assert bad.returncode == 2 and "--dask" in bad.stderr
    spec.write_text(spec.read_text() + 'dask = "sched:8786"\n')
    bad = cli("run", str(spec), cwd=tmp_path)
    assert bad.returncode == 2 and "run.dask" in bad.stderr
    assert not (tmp_path / "target.db").exists()


def _batches(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return int(
                conn.execute(
                    "SELECT count(*) FROM authmigrate_batches WHERE range_id IS NOT NULL"
                ).fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # not created yet


def _assert_whole(tmp_path: Path, spec: Path, dst: str, one: str, users: int) -> None:
    """The Dask run's target equals the one-process run's, verify is clean, and the batches
    read every source row exactly once (0 lost, 0 doubled)."""
    assert table_rows(dst, "accounts", "user_id") == table_rows(one, "accounts", "user_id")
    assert rejects(dst) == rejects(one)
    assert scalar(dst, "SELECT sum(rows_read) FROM authmigrate_batches") == users
    verified = cli("verify", str(spec), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    users = 12_000
    src = tmp_path / "legacy.db"
    make_source(src, users, seed=21)
    one = f"sqlite:///{tmp_path}/one.db"
    run_migration(load_spec(write_spec(tmp_path / "one.toml", src, one, batch=40)))
    db = tmp_path / "target.db"
    spec = with_ranges(write_spec(tmp_path / "m.toml", src, f"sqlite:///{db}", batch=40), 4)
    killed: dict[str, int] = {}
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = run_on_dask(load_spec(spec), cluster.scheduler_address)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = exc

        runner = threading.Thread(target=run)
        runner.start()
        deadline = time.monotonic() + 60
        while _batches(db) < 30 and runner.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = worker_pids(client)
        victim = sorted(pids.values())[0]
        killed["at"] = _batches(db)
        os.kill(victim, signal.SIGKILL)  # a real worker process, mid-batch or between two
        runner.join(120)
        assert not runner.is_alive()
        assert victim not in worker_pids(client).values()  # the nanny started a new worker
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].status == "done"
    assert 0 < killed["at"] < _batches(db)  # the kill fell inside the run
    _assert_whole(tmp_path, spec, f"sqlite:///{db}", one, users)


@pytest.mark.slow
def test_a_run_killed_whole_resumes_every_range_to_a_clean_verify(tmp_path: Path) -> None:
    """kill -9 of the client process (with its LocalCluster), then the same command again."""
    import psutil

    users = 12_000
    src = tmp_path / "legacy.db"
    make_source(src, users, seed=22)
    one = f"sqlite:///{tmp_path}/one.db"
    run_migration(load_spec(write_spec(tmp_path / "one.toml", src, one, batch=40)))
    db = tmp_path / "target.db"
    spec = with_ranges(write_spec(tmp_path / "m.toml", src, f"sqlite:///{db}", batch=40), 4)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "run", str(spec), "--dask", "local"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while _batches(db) < 30 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        family = psutil.Process(proc.pid).children(recursive=True)
        at = _batches(db)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        for child in family:  # the LocalCluster's processes this test started
            if child.is_running():
                child.kill()
        psutil.wait_procs(family, timeout=10)
    assert 0 < at < users // 40
    resumed = cli("run", str(spec), "--dask", "local", cwd=tmp_path, timeout=120)
    assert resumed.returncode in (0, 1), resumed.stderr  # 1: this run rejected rows
    assert (
        scalar(f"sqlite:///{db}", "SELECT status FROM authmigrate_runs ORDER BY started_at LIMIT 1")
        == "crashed"
    )
    _assert_whole(tmp_path, spec, f"sqlite:///{db}", one, users)


@pytest.mark.slow  # a LocalCluster of its own: 10-30 s on the shared machine
def test_run_dask_local_prints_no_dask_scheduler_chatter(tmp_path: Path) -> None:
    """``--dask local`` printed ~40 INFO lines of Dask's scheduler and nannies on stderr
    (``Scheduler at: tcp://...``, ``Nanny asking worker to close``) around the run's table;
    the run's own progress and warnings stay."""
    src = tmp_path / "legacy.db"
    make_source(src, 300, seed=5)
    spec = write_spec(tmp_path / "m.toml", src, f"sqlite:///{tmp_path}/target.db", batch=50)
    done = cli("run", str(spec), "--dask", "local", cwd=tmp_path, timeout=240)
    assert done.returncode in (0, 1), done.stderr  # 1: the source plants rejected rows
    assert "migrated" in done.stdout + done.stderr
    chatter = [
        line
        for line in done.stderr.splitlines()
        if "Scheduler" in line or "Nanny" in line or "Worker" in line or "dashboard at" in line
    ]
    assert chatter == []


def _wrap_threads_in_a_task(spec: Any) -> int | None:
    """Runs on a Dask worker: the threads the range task's credential stage hashes on."""
    from authmigrate.cluster.run import worker_migration

    m = worker_migration(spec, "wrap-threads")
    return next(s.workers for s in m.early if hasattr(s, "workers"))


def test_a_range_task_wraps_on_its_own_thread_unless_the_spec_says(
    tmp_path: Path, cluster: Any
) -> None:
    """Dask's threads are the parallelism: a task that started a pool as large as the machine
    made one single-threaded worker use every core (4,000 wraps: 114 s of CPU in 60 s of wall
    on 1 worker, and 2 workers no faster)."""
    src = tmp_path / "legacy.db"
    make_source(src, 10, hashes=True)
    path = write_spec(tmp_path / "w.toml", src, f"sqlite:///{tmp_path}/t.db", credentials="wrap")
    run_migration(load_spec(path))  # the target's bookkeeping, which a worker expects
    client = distributed.Client(cluster)
    try:
        assert client.submit(_wrap_threads_in_a_task, load_spec(path), pure=False).result() == 1
        path.write_text(path.read_text() + "workers = 3\n")  # [run] is the spec's last section
        assert client.submit(_wrap_threads_in_a_task, load_spec(path), pure=False).result() == 3
    finally:
        client.close()


def test_a_failed_dask_run_is_recorded_failed_with_its_result_and_frees_the_lock(
    tmp_path: Path, cluster: Any
) -> None:
    """The end of a run on Dask is the one-process run's (``pipeline.run.RunBookkeeping``): a
    range task that fails for good leaves the run ``failed`` in ``authmigrate_runs`` with its
    error, the failure carries the run's result (the CLI writes the report from it), and the
    lock is released so the next run resumes."""
    from authmigrate.cluster.run import RangeFailed

    src = tmp_path / "legacy.db"
    make_source(src, 300, seed=6)
    dst = f"sqlite:///{tmp_path}/target.db"
    spec = with_ranges(write_spec(tmp_path / "m.toml", src, dst, batch=40, retries=0), 3)
    first = run_on_dask(load_spec(spec), cluster.scheduler_address)
    conn = sqlite3.connect(src)
    conn.executemany(
        "INSERT INTO legacy_users (user_id, email, active, visits) VALUES (?, ?, 1, 0)",
        [(k, f"late{k}@example.com") for k in range(5000, 5060)],
    )
    conn.commit()
    conn.close()
    # a write error that is no constraint: the batch fails, and with retries = 0 the task too
    execute(
        dst,
        "CREATE TRIGGER fail_late BEFORE INSERT ON accounts WHEN NEW.user_id >= 5000 "
        "BEGIN INSERT INTO no_such_table VALUES (1); END",
    )
    with pytest.raises(RangeFailed) as failed:
        run_on_dask(load_spec(spec), cluster.scheduler_address)
    result = failed.value.result  # type: ignore[attr-defined]
    assert result.status == "failed"
    assert result.error == str(failed.value) and "key range" in result.error
    assert result.this_run["migrated"] == 0
    assert (
        scalar(dst, "SELECT status FROM authmigrate_runs ORDER BY started_at DESC LIMIT 1")
        == "failed"
    )
    execute(dst, "DROP TRIGGER fail_late")
    again = run_on_dask(load_spec(spec), cluster.scheduler_address)  # the lock was released
    assert again.status == "done"
    assert again.migrated == first.migrated + 60
