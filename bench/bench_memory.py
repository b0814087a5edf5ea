"""Peak memory of run, verify, sync and status at two sizes: it must not grow with the rows.

    .venv/bin/python bench/bench_memory.py [--users 100000 10000000] [--work /tmp/x] [--full]

For each size: a SQLite source of ``users`` rows made in SQL (a recursive CTE: 10M rows in
about a minute), then ``authmigrate run``, ``verify``, ``sync`` (no change: the key pass;
``--full``: also ``sync --full``, every row's fingerprint compared) and ``status``, each a
process of its own as a user runs it (``python -m authmigrate``). Each command reports, as it
exits, its own peak RSS (``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` of a forked child
keeps its parent's high-water mark), its CPU seconds (user + system) and wall seconds.

The mapping is bench_pipeline.py's: key + normalized email. The work folder (default: a
temporary one in /tmp) is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """
[source]
url = "sqlite:///{src}"
table = "old_users"
key = "user_id"

[target]
url = "sqlite:///{dst}"
table = "new_users"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}

[run]
batch_size = 5000
"""

WRAPPER = """
import atexit, os, runpy, sys, time
t0 = time.perf_counter()
def report():
    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
    c = os.times()
    with open(os.environ['BENCH_MEMORY_OUT'], 'w') as f:
        f.write(f'{time.perf_counter() - t0} {c.user + c.system} {int(hwm) / 1024}')
atexit.register(report)
sys.argv = ['authmigrate', *sys.argv[1:]]
runpy.run_module('authmigrate', run_name='__main__', alter_sys=True)
"""
"""Runs the CLI in this process and writes (wall, CPU, peak RSS MB) as it exits."""


def build_source(path: Path, users: int) -> None:
    """old_users(user_id, email): mixed-case emails with a leading space, as bench_pipeline's."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO old_users SELECT i, ' ' || CASE WHEN i % 2 THEN 'User.' || i"
        " ELSE 'user' || i END || '@' || CASE i % 4 WHEN 0 THEN 'Example.COM'"
        " WHEN 1 THEN 'mail.example.org' WHEN 2 THEN 'shop.EXAMPLE.net' ELSE 'example.de' END"
        " FROM n",
        (users,),
    )
    conn.commit()
    conn.close()


def command(work: Path, *args: str) -> dict[str, float]:
    out = work / "measure.txt"
    env = {**os.environ, "BENCH_MEMORY_OUT": str(out)}
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env
    )
    outer = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(
            f"authmigrate {' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    wall, cpu, rss = (float(x) for x in out.read_text().split())
    return {"wall": round(outer, 2), "cpu": round(cpu, 2), "rss_mb": round(rss, 1)}


def measure(work: Path, users: int, full: bool) -> dict[str, dict[str, float]]:
    src, dst, spec = work / f"src{users}.db", work / f"dst{users}.db", work / f"m{users}.toml"
    t = time.perf_counter()
    build_source(src, users)
    print(f"{users:,} users: source built in {time.perf_counter() - t:.1f} s", flush=True)
    spec.write_text(SPEC.format(src=src, dst=dst), encoding="utf-8")
    steps = [("run", ["run", str(spec)]), ("verify", ["verify", str(spec)])]
    steps += [("sync", ["sync", str(spec)])]
    if full:
        steps += [("sync --full", ["sync", "--full", str(spec)])]
    steps += [("status", ["status", str(spec)])]
    found: dict[str, dict[str, float]] = {}
    for name, args in steps:
        found[name] = command(work, *args)
        print(f"  {name:12} {found[name]}", flush=True)
    for path in (src, dst):
        path.unlink(missing_ok=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--full", action="store_true", help="also measure sync --full")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-memory-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = {n: measure(work, n, args.full) for n in args.users}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))
    base = results[min(results)]
    for n, found in results.items():
        for name, m in found.items():
            ratio = m["rss_mb"] / base[name]["rss_mb"]
            print(
                f"{n:>11,} {name:12} peak {m['rss_mb']:7.1f} MB ({ratio:.2f}x the smallest)"
                f" cpu {m['cpu']:8.1f} s wall {m['wall']:8.1f} s"
            )


if __name__ == "__main__":
    main()
