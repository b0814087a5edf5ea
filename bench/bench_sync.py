"""``authmigrate sync`` on an unchanged source against a fresh ``authmigrate run``, same rows.

    .venv/bin/python bench/bench_sync.py [--users 1000000]

(a) ``authmigrate run`` into a new SQLite target (email normalization, duplicate check,
    key-state rows for sync);
(b) ``authmigrate sync --full`` right after, on the unchanged source: every row read and its
    fingerprint compared with the stored one, chunk by chunk;
(c) ``authmigrate sync --full`` after 1,000 rows changed (emails), to show the cost of the
    changes themselves.

Each is a subprocess, as a user runs it; prints times, (a)/(b) (target >= 3) and each one's peak
RSS (target: flat, the same at 100,000 rows as at --users).
"""

from __future__ import annotations

import argparse
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

RUN = (
    "import resource, sys\n"
    "from authmigrate.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def make_source(path: Path, users: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany(
        "INSERT INTO old_users VALUES (?, ?)",
        ((i, f"  User.{i}@Example.COM ") for i in range(1, users + 1)),
    )
    conn.commit()
    conn.close()


def timed(*args: str) -> tuple[float, int]:
    """(seconds, peak RSS in MB) of ``authmigrate ARGS`` in a subprocess."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", RUN, *args], capture_output=True, text=True, check=False
    )
    took = time.perf_counter() - start
    rss = next(
        int(line.split()[1]) for line in out.stderr.splitlines() if line.startswith("maxrss")
    )
    if "error" in out.stderr:
        raise SystemExit(out.stderr)
    return took, rss // 1024


def measure(users: int, folder: Path) -> dict[str, tuple[float, int]]:
    src, dst = folder / f"legacy{users}.db", folder / f"target{users}.db"
    make_source(src, users)
    spec = folder / f"m{users}.toml"
    spec.write_text(SPEC.format(src=src, dst=dst), encoding="utf-8")
    out = {"run": timed("run", str(spec)), "sync": timed("sync", str(spec), "--full")}
    conn = sqlite3.connect(src)
    step = max(1, users // 1000)
    conn.execute(
        "UPDATE old_users SET email = 'changed.' || user_id || '@example.com'"
        f" WHERE user_id % {step} = 0"
    )
    conn.commit()
    conn.close()
    out["sync_changed"] = timed("sync", str(spec), "--full")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small = measure(100_000, folder)
        big = measure(args.users, folder)
    for label, res in (("100,000", small), (f"{args.users:,}", big)):
        run, sync, changed = res["run"], res["sync"], res["sync_changed"]
        print(f"{label} rows:")
        print(f"  (a) run                    {run[0]:7.2f} s  {run[1]:4d} MB")
        print(f"  (b) sync --full, unchanged {sync[0]:7.2f} s  {sync[1]:4d} MB")
        print(f"  (c) sync --full, 0.1% changed {changed[0]:4.2f} s  {changed[1]:4d} MB")
        print(f"  (a)/(b) = {run[0] / sync[0]:.1f}  (target >= 3)")


if __name__ == "__main__":
    main()
