"""``authmigrate status`` and ``authmigrate report`` on a migrated store of N accounts (SQLite).

    .venv/bin/python bench/bench_status_report.py [--users 1000000] [--dir DIR]

Builds, without running the pipeline (which would take minutes of hashing), what a finished
migration leaves: a legacy table of N rows; an accounts table of N rows whose password column
mixes real credentials of several schemes (phpass, md5-crypt, sha512-crypt, bcrypt, LDAP
{SSHA}, Django PBKDF2), wrapped ones, argon2id (upgraded) ones, ``$login-rule$`` ones and
NULLs (reset); 1% rejects; one batch row per 5,000 accounts; a run; 60 snapshots. Then times
the library calls (best of 3, warm cache) and the commands as a user runs them (a subprocess:
interpreter start and imports included). Goals: status < 2 s, report < 5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the synthetic store wraps with the cheap TEST profile (a bench, not a migration)
os.environ.setdefault("AUTHMIGRATE_ALLOW_TEST_PROFILE", "1")

SPEC = """
name = "bench"

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
target_column = "password"
"""


def credential_pool(rng: random.Random) -> list[str | None]:
    """Real credentials of several schemes, weighted roughly like an old shop."""
    from passlib import hash as h

    from authmigrate.credentials import wrap
    from authmigrate.credentials.wrap import TEST

    makers = [
        (h.phpass.using(rounds=7), 30),
        (h.md5_crypt, 15),
        (h.sha512_crypt.using(rounds=1000), 10),
        (h.bcrypt.using(rounds=4), 10),
        (h.ldap_salted_sha1, 8),
        (h.django_pbkdf2_sha256.using(rounds=1000), 7),
    ]
    pool: list[str | None] = []
    for hasher, weight in makers:
        made = [hasher.hash(f"pw-{i}") for i in range(weight)]
        pool += made
        pool += [wrap(c, profile=TEST) for c in made[: max(weight // 3, 1)]]
    phpass = [c for c in pool if c and c.startswith("$P$")][:5]
    pool += [f"$login-rule$trim=1${c}" for c in phpass]
    from argon2 import PasswordHasher

    argon = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    pool += [argon.hash(f"pw-{i}") for i in range(15)]
    pool += [None] * 3
    rng.shuffle(pool)
    return pool


def build(work: Path, users: int) -> Path:
    from authmigrate.continuity.status import snapshots_table
    from authmigrate.sinks.sql import bookkeeping_tables, pack_keys

    rng = random.Random(7)
    src, dst = work / "legacy.db", work / "target.db"
    for p in (src, dst):
        p.unlink(missing_ok=True)
    pool = credential_pool(rng)
    conn = sqlite3.connect(src)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute(
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT, password_hash TEXT)"
    )
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        ((i, f"user{i}@example.com", "x") for i in range(1, users + 1)),
    )
    conn.commit()
    conn.close()

    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{dst}")
    metadata = sa.MetaData()
    runs, batches, rejects = bookkeeping_tables(metadata)
    snapshots_table(metadata)
    metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(dst)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE accounts (user_id INTEGER PRIMARY KEY, email VARCHAR(320) UNIQUE, "
        "password TEXT, password_reset_required BOOLEAN NOT NULL DEFAULT 0)"
    )
    rejected = {i for i in range(1, users + 1) if i % 100 == 0}
    conn.executemany(
        "INSERT INTO accounts VALUES (?, ?, ?, ?)",
        (
            (i, f"user{i}@example.com", c, c is None)
            for i in range(1, users + 1)
            if i not in rejected
            for c in (pool[i % len(pool)],)
        ),
    )
    start = dt.datetime(2026, 9, 1, 8, 0, 0)
    conn.execute(
        "INSERT INTO authmigrate_runs VALUES "
        "(?, 'bench', 'run', 'x', ?, ?, 'done', ?, ?, ?, 0, NULL)",
        (
            "run-1",
            start,
            start + dt.timedelta(seconds=users / 120_000),
            users,
            users - len(rejected),
            len(rejected),
        ),
    )
    per = 5000
    rows = []
    for n, first in enumerate(range(1, users + 1, per), start=1):
        last = min(first + per - 1, users)
        keys = [k for k in range(first, last + 1) if k not in rejected]
        rows.append(
            (
                "bench",
                n,
                "run-1",
                str(first),
                str(last),
                last - first + 1,
                len(keys),
                last - first + 1 - len(keys),
                0,
                pack_keys(keys),
                start + dt.timedelta(seconds=n * per / (120_000 * rng.uniform(0.8, 1.2))),
            )
        )
    conn.executemany("INSERT INTO authmigrate_batches VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    reasons = [("field.invalid_email", "email"), ("credential.malformed", "password_hash")]
    conn.executemany(
        "INSERT INTO authmigrate_rejects (migration, run_id, batch_no, source_key, outcome, "
        "reason, column_name, detail, merged_into, raw) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            (
                "bench",
                "run-1",
                1 + (k - 1) // per,
                str(k),
                "rejected",
                *reasons[k % 2],
                "",
                None,
                "{}",
            )
            for k in sorted(rejected)
        ),
    )
    accounts = users - len(rejected)
    for day in range(60):
        upgraded = int(accounts * 0.2 * (1 - 0.97**day))
        conn.execute(
            "INSERT INTO authmigrate_snapshots (migration, taken_at, command, source_rows, "
            "migrated, rejected, merged, pending, legacy, wrapped, upgraded, reset, schemes) "
            "VALUES ('bench', ?, 'status', ?, ?, ?, 0, 0, ?, 0, ?, 0, '{}')",
            (
                start + dt.timedelta(days=day),
                users,
                accounts,
                len(rejected),
                accounts - upgraded,
                upgraded,
            ),
        )
    conn.commit()
    conn.close()
    spec = work / "bench.toml"
    spec.write_text(SPEC.format(src=src, dst=dst), encoding="utf-8")
    return spec


CPU: list[float] = []
"""The CPU time (this process: SQLite runs in it) of the best call of each best_of."""


def best_of(n: int, fn: object) -> float:
    """The best wall time of ``n`` calls; its CPU time goes to :data:`CPU` (on a shared
    machine the CPU time says what the work costs, the wall time what waiting added)."""
    times = []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    best = min(times)
    CPU.append(best[1])
    return best[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="authmigrate-bench-status-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spec_path = build(work, args.users)
    print(f"built {args.users:,} accounts in {time.perf_counter() - t0:.1f} s in {work}")

    from authmigrate.continuity.status import migration_status
    from authmigrate.report.html import write_html_report
    from authmigrate.spec import load_spec

    spec = load_spec(spec_path)
    status = migration_status(spec)
    print("credentials:", status.credentials.as_dict())
    lib_status = best_of(3, lambda: migration_status(spec))
    lib_report = best_of(3, lambda: write_html_report(spec, work / "report.html"))

    def command(*argv: str) -> float:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "authmigrate", *argv], check=True, capture_output=True
        )
        return time.perf_counter() - t

    cli_status = min(command("status", str(spec_path)) for _ in range(3))
    cli_report = min(
        command("report", str(spec_path), "-o", str(work / "report.html")) for _ in range(3)
    )
    size = (work / "report.html").stat().st_size
    cpu_status, cpu_report = CPU
    print(
        f"status  library {lib_status:.2f} s (CPU {cpu_status:.2f} s)   "
        f"command {cli_status:.2f} s   (goal < 2 s)"
    )
    print(
        f"report  library {lib_report:.2f} s (CPU {cpu_report:.2f} s)   "
        f"command {cli_report:.2f} s   (goal < 5 s)"
    )
    print(f"report file {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
