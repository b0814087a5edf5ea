"""Wrap throughput of ``run --dask`` on a LocalCluster: 1 worker process vs 2.

A legacy SQLite table of N Django md5 credentials is migrated with ``policy = "wrap"``
(argon2id, the OWASP_2025 profile) into a fresh SQLite target, once on a LocalCluster with
one single-threaded worker process and once with two. Each figure is the run's wall time and
the CPU seconds of every worker process (from the workers' own ``getrusage``, taken before
and after the run), so a busy shared machine shows as wall time above CPU time.

Run:  .venv/bin/python bench/bench_dask.py [--count 4000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

SPEC = """
[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "user_id"

[target]
url = "sqlite:///{dst}"
table = "accounts"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}

[credentials]
column = "password_hash"
policy = "wrap"

[run]
batch_size = 100
"""


def make_source(path: Path, count: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT, password_hash TEXT)"
    )
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [
            (i, f"u{i}@example.com", f"md5$s{i}${hashlib.md5(f's{i}pw{i}'.encode()).hexdigest()}")
            for i in range(1, count + 1)
        ],
    )
    conn.commit()
    conn.close()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(folder: Path, src: Path, workers: int) -> dict[str, object]:
    from distributed import Client, LocalCluster

    from authmigrate.cluster.run import run_on_dask
    from authmigrate.spec import load_spec

    dst = folder / f"target-{workers}.db"
    spec_path = folder / f"m{workers}.toml"
    spec_path.write_text(SPEC.format(src=src, dst=dst))
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        before = client.run(cpu_seconds)
        own = cpu_seconds()
        start = time.perf_counter()
        result = run_on_dask(load_spec(spec_path), cluster.scheduler_address)
        wall = time.perf_counter() - start
        after = client.run(cpu_seconds)
        client_cpu = cpu_seconds() - own
    assert result.status == "done" and result.this_run["migrated"] > 0
    per_worker = sorted(round(after[w] - before[w], 1) for w in after)
    return {
        "workers": workers,
        "wrapped": result.this_run["migrated"],
        "wall_s": round(wall, 1),
        "worker_cpu_s": per_worker,
        "client_cpu_s": round(client_cpu, 1),
        "wraps_per_s": round(result.this_run["migrated"] / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = folder / "legacy.db"
        make_source(src, args.count)
        results = []
        for n in args.workers:
            results.append(measure(folder, src, n))
            print(results[-1], flush=True)
    if len(results) >= 2:
        by = {int(r["workers"]): r for r in results}  # type: ignore[call-overload]
        one, most = by[min(by)], by[max(by)]
        wall = float(one["wall_s"]) / float(most["wall_s"])  # type: ignore[arg-type]
        cpu = sum(one["worker_cpu_s"]) / max(most["worker_cpu_s"])  # type: ignore[call-overload]
        print(
            f"{max(by)} vs {min(by)} workers: wall {wall:.2f}x; CPU-bound (busiest worker's "
            f"CPU against all of {min(by)} worker's) {cpu:.2f}x"
        )


if __name__ == "__main__":
    main()
