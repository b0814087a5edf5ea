"""Where a PostgreSQL fast-path run spends its time, per stage (issue 13's per-stage report).

    PYTHONPATH=src .venv/bin/python bench/profile_pg_fastpath.py [--users 1000000]
        [--mapping email|seed]

Builds bench_targets.py's legacy SQLite table, starts a private PostgreSQL (stopped at the
end), runs the migration in this process with a timer around each stage of the fast path,
and prints the run's wall, client CPU and server CPU, then per stage its wall seconds and the
CPU seconds of the thread that ran it (the page read and the Arrow decision run in the
read-ahead thread, overlapping the batch's commit).
"""

from __future__ import annotations

import argparse
import collections
import functools
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_targets as bt  # noqa: E402

TIMES: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])


def timed(cls: Any, name: str, label: str) -> None:
    """Wrap ``cls.name`` to add its wall and thread CPU seconds to ``TIMES[label]``."""
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t, c = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label][0] += time.perf_counter() - t
            TIMES[label][1] += time.thread_time() - c

    setattr(cls, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--mapping", choices=["email", "seed"], default="email")
    args = ap.parse_args()
    from authmigrate.pipeline import fast, fast_server, run_migration
    from authmigrate.pipeline.run import RunBookkeeping
    from authmigrate.sources import arrow
    from authmigrate.spec import load_spec

    timed(arrow.SqliteArrowPages, "page", "read page (ADBC; read-ahead thread)")
    timed(fast.FastPath, "split", "Arrow decision (split; read-ahead thread)")
    timed(fast.FastPath, "_residue", "residue (Python transforms)")
    timed(fast_server.PostgresFastPath, "_rows", "rows: tokens + fingerprints (BLAKE2b)")
    timed(fast_server.PostgresFastPath, "_payloads", "COPY text built in Arrow")
    timed(fast_server.PostgresFastPath, "_direct", "COPY accounts + key state (with the above)")
    timed(fast_server.PostgresFastPath, "_write", "batch's statements (with the above)")
    timed(fast.FastPath, "commit", "batch commit (with the above)")
    timed(fast._ReadAhead, "take", "waiting for the page read ahead")
    timed(RunBookkeeping, "_finish", "end of run (keys left to sync, status)")

    work = Path(tempfile.mkdtemp(prefix="authmigrate-profile-pg-"))
    try:
        src = work / "legacy.db"
        bt.build_source(src, args.users)
        with bt.postgres() as (server, pid):
            cpu = bt.ServerCpu(pid)
            spec = work / "spec.toml"
            extra = bt.SEED if args.mapping == "seed" else ""
            url = server.create_database("profile")
            spec.write_text(bt.SPEC.format(src=src, dst=url, extra=extra))
            loaded = load_spec(str(spec))
            with cpu.measure() as on_server:
                t, c = time.perf_counter(), time.process_time()
                run_migration(loaded)
                wall, client = time.perf_counter() - t, time.process_time() - c
        print(
            f"{args.mapping} mapping, {args.users:,} rows: {wall:.2f} s wall, "
            f"{client:.2f} s client CPU, {on_server[0]:.2f} s server CPU"
        )
        for label, (w, c) in sorted(TIMES.items(), key=lambda item: -item[1][0]):
            print(f"  {label:48s} {w:7.2f} s wall {c:7.2f} s CPU")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
