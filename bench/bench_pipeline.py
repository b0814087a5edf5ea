"""Pipeline speed and memory, measured against baselines in the same run.

    .venv/bin/python bench/bench_pipeline.py [--users 1000000] [--orm-users 100000]
        [--mapping email|seed|both] [--profile]

The legacy table is ``old_users(user_id, email, password_hash)`` in SQLite (emails padded and in
mixed case, an md5 hex digest per user). Two mappings:

- ``email``: the key and the normalized email;
- ``seed``: the seed's mapping: the same, plus the md5 credential kept (``digest``, md5) and a
  new token per account.

For each mapping, in one run:

(floor) the same-schema floor: the spec's target table as ``authmigrate run`` creates it
    (primary key, unique email), one ``INSERT OR IGNORE ... SELECT`` from the ATTACHed legacy
    database with ``lower(trim(email))`` (and the hash and a ``'token_' || user_id`` for the
    seed's mapping), one transaction: what the database itself needs to do;
(bare) the seed's bare statement, ``INSERT INTO new_users SELECT user_id, email,
    'token_' || user_id`` into a table without the unique index (the floor of the first
    issue; nothing normalized, nothing checked);
(run) ``authmigrate run`` in its own process, on its default path (the fast path where it
    applies), and (python) the same with ``AUTHMIGRATE_FASTPATH=0``;
(orm) what a user would otherwise write: a SQLAlchemy ORM loop (session.add per row, commit
    every 5,000), timed on ``--orm-users`` rows and scaled linearly.

CPU seconds (user + system of the process doing the work, imports excluded) are printed beside
wall seconds; the machine is shared, so the ratios use CPU time. ``--profile`` adds where the
run's time goes, per stage (bench/profile_pipeline.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

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
{extra}
[run]
batch_size = {batch}
"""

SEED_EXTRA = """
[credentials]
column = "password_hash"
scheme = "digest"
params = { algorithm = "md5" }
policy = "keep"
target_column = "password"

[tokens]
column = "auth_token"
delivery = "none"
"""

FLOOR_SQL = {
    "email": (
        "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE)",
        "INSERT OR IGNORE INTO new_users SELECT user_id, lower(trim(email)) FROM legacy.old_users",
    ),
    "seed": (
        "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, "
        "password TEXT, password_reset_required BOOLEAN NOT NULL, auth_token TEXT)",
        "INSERT OR IGNORE INTO new_users SELECT user_id, lower(trim(email)), password_hash, 0, "
        "'token_' || user_id FROM legacy.old_users",
    ),
}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def build_source(path: Path, users: int) -> None:
    rng = random.Random(7)
    domains = ["Example.COM", "mail.example.org", "shop.EXAMPLE.net", "example.de"]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute(
        "CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT, password_hash TEXT)"
    )
    chunk = []
    for uid in range(1, users + 1):
        local = f"User.{uid}" if rng.random() < 0.5 else f"user{uid}"
        digest = hashlib.md5(f"pw{uid}".encode()).hexdigest()  # noqa: S324 - legacy data
        chunk.append((uid, f" {local}@{rng.choice(domains)}", digest))
        if len(chunk) == 50_000:
            conn.executemany("INSERT INTO old_users VALUES (?, ?, ?)", chunk)
            chunk.clear()
    conn.executemany("INSERT INTO old_users VALUES (?, ?, ?)", chunk)
    conn.commit()
    conn.close()


def _fresh(dst: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".authmigrate-lock"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)


def in_sqlite(src: Path, dst: Path, create: str, insert: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one statement inside SQLite, legacy database ATTACHed."""
    _fresh(dst)
    conn = sqlite3.connect(dst)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(create)
    conn.execute(f"ATTACH DATABASE '{src}' AS legacy")
    t, c = time.perf_counter(), cpu()
    conn.execute(insert)
    conn.commit()
    conn.close()  # the WAL's checkpoint into the database file, as a run does along the way
    return time.perf_counter() - t, cpu() - c


def seed_bare(src: Path, dst: Path) -> tuple[float, float]:
    return in_sqlite(
        src,
        dst,
        "CREATE TABLE new_users (user_id INTEGER PRIMARY KEY, email TEXT, auth_token TEXT)",
        "INSERT INTO new_users SELECT user_id, email, 'token_' || user_id FROM legacy.old_users",
    )


RUN = """
import resource, sys, time
from authmigrate.spec import load_spec
from authmigrate.pipeline import run_migration
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
s = load_spec(sys.argv[1])
t, c = time.perf_counter(), cpu()
r = run_migration(s)
e, u = time.perf_counter() - t, cpu() - c
assert r.migrated == r.source_rows, r
print(e, u, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def authmigrate_run(
    src: Path, dst: Path, work: Path, mapping: str, *, fast: bool, batch: int = 5000
) -> tuple[float, float, float]:
    """(wall, CPU, peak RSS MB) of ``authmigrate run`` in its own process."""
    _fresh(dst)
    spec = work / f"bench-{dst.stem}.toml"
    extra = SEED_EXTRA if mapping == "seed" else ""
    spec.write_text(SPEC.format(src=src, dst=dst, extra=extra, batch=batch))
    env = {**os.environ, "AUTHMIGRATE_FASTPATH": "1" if fast else "0"}
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(spec)], capture_output=True, text=True, check=True, env=env
    )
    wall, used, rss = out.stdout.split()
    return float(wall), float(used), float(rss)


class Old(DeclarativeBase):
    pass


class New(DeclarativeBase):
    pass


class OldUser(Old):
    __tablename__ = "old_users"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]
    password_hash: Mapped[str]


class NewUser(New):
    __tablename__ = "new_users"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(unique=True)
    auth_token: Mapped[str]


def orm_loop(src: Path, dst: Path, users: int) -> tuple[float, float]:
    """(wall, CPU) of a plain ORM loop over ``users`` rows."""
    _fresh(dst)
    src_engine = sa.create_engine(f"sqlite:///{src}")
    dst_engine = sa.create_engine(f"sqlite:///{dst}")
    New.metadata.create_all(dst_engine)
    t, c = time.perf_counter(), cpu()
    with Session(src_engine) as read, Session(dst_engine) as write:
        stmt = sa.select(OldUser).order_by(OldUser.user_id).limit(users)
        for n, old in enumerate(read.scalars(stmt), start=1):
            write.add(
                NewUser(
                    user_id=old.user_id,
                    email=old.email.strip().lower(),
                    auth_token=f"token_{old.user_id}",
                )
            )
            if n % 5000 == 0:
                write.commit()
        write.commit()
    return time.perf_counter() - t, cpu() - c


def line(label: str, wall: float, used: float, users: int) -> None:
    print(f"  {label:44} {wall:8.2f} s wall {used:8.2f} s CPU  ({users / used:,.0f} rows/CPU-s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--orm-users", type=int, default=100_000)
    ap.add_argument("--mapping", choices=["email", "seed", "both"], default="both")
    ap.add_argument("--no-python", action="store_true", help="skip the AUTHMIGRATE_FASTPATH=0 run")
    ap.add_argument("--profile", action="store_true", help="also print time per stage")
    ap.add_argument("--batch-size", type=int, default=5000, help="the spec's [run] batch_size")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="authmigrate-bench-"))
    small, big = work / "legacy-100k.db", work / "legacy.db"
    print(f"building {args.users:,} users in {work} ...", flush=True)
    build_source(big, args.users)
    build_source(small, 100_000)
    n = args.users

    bare_wall, bare_cpu = seed_bare(big, work / "bare.db")
    orm_n = min(args.orm_users, n)
    orm_wall, orm_cpu = orm_loop(big, work / "orm.db", orm_n)
    orm_wall, orm_cpu = orm_wall * n / orm_n, orm_cpu * n / orm_n
    mappings = ["email", "seed"] if args.mapping == "both" else [args.mapping]
    for mapping in mappings:
        floor_wall, floor_cpu = in_sqlite(big, work / "floor.db", *FLOOR_SQL[mapping])
        run_wall, run_cpu, rss_big = authmigrate_run(
            big, work / "am.db", work, mapping, fast=True, batch=args.batch_size
        )
        _, _, rss_small = authmigrate_run(
            small, work / "am-small.db", work, mapping, fast=True, batch=args.batch_size
        )
        print(f"\nmapping {mapping!r}, {n:,} users (SQLite -> SQLite)")
        line("(floor) same-schema INSERT OR IGNORE ... SELECT", floor_wall, floor_cpu, n)
        line("(bare) the seed's bare statement", bare_wall, bare_cpu, n)
        line("(run) authmigrate run (default path)", run_wall, run_cpu, n)
        if not args.no_python:
            py_wall, py_cpu, _ = authmigrate_run(
                big, work / "py.db", work, mapping, fast=False, batch=args.batch_size
            )
            line("(python) authmigrate run, AUTHMIGRATE_FASTPATH=0", py_wall, py_cpu, n)
        scaled = ", scaled" if orm_n != n else ""
        line(f"(orm) SQLAlchemy ORM loop ({orm_n:,} timed{scaled})", orm_wall, orm_cpu, n)
        target = 1.5 if mapping == "email" else 2.5
        print(f"  run/floor CPU  = {run_cpu / floor_cpu:5.2f}  (target <= {target})")
        print(f"  run/floor wall = {run_wall / floor_wall:5.2f}")
        print(f"  run/bare  CPU  = {run_cpu / bare_cpu:5.2f}")
        if not args.no_python:
            print(f"  python/run CPU = {py_cpu / run_cpu:5.2f}")
        print(f"  orm/run   CPU  = {orm_cpu / run_cpu:5.2f}  (target >= 20)")
        print(f"  peak RSS of (run): {rss_small:.0f} MB at 100,000, {rss_big:.0f} MB at {n:,}")
        if args.profile:
            spec = work / "bench-profile.toml"
            dst = work / "profile.db"
            _fresh(dst)
            extra = SEED_EXTRA if mapping == "seed" else ""
            spec.write_text(SPEC.format(src=big, dst=dst, extra=extra, batch=args.batch_size))
            here = Path(__file__).parent / "profile_pipeline.py"
            subprocess.run([sys.executable, str(here), str(spec)], check=True)


if __name__ == "__main__":
    main()
