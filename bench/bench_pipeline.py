"""Pipeline speed and memory, measured against baselines in the same run.

    .venv/bin/python bench/bench_pipeline.py [--users 1000000] [--orm-users 100000]

(a) the seed's raw statement ``INSERT INTO new_users SELECT user_id, email, 'token_' || user_id``
    inside SQLite (legacy database ATTACHed), one transaction;
(b) ``authmigrate run`` (a subprocess, as a user runs it) with email normalization and a
    checkpoint per batch, into a new SQLite file;
(c) what a user would otherwise write: a plain SQLAlchemy ORM loop (select old users, add a new
    user object each, commit every 5,000). The ORM loop is timed on ``--orm-users`` rows and
    scaled linearly (it is linear: one object per row), unless --orm-users equals --users.

Prints (b)/(a) (target <= 3), (c)/(b) (target >= 10) and the peak RSS of (b) at 100,000 users
and at --users (target < 300 MB and flat).
"""

from __future__ import annotations

import argparse
import random
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

[run]
batch_size = 5000
"""


def build_source(path: Path, users: int) -> None:
    rng = random.Random(7)
    domains = ["Example.COM", "mail.example.org", "shop.EXAMPLE.net", "example.de"]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT)")
    chunk = []
    for uid in range(1, users + 1):
        local = f"User.{uid}" if rng.random() < 0.5 else f"user{uid}"
        chunk.append((uid, f" {local}@{rng.choice(domains)}"))
        if len(chunk) == 50_000:
            conn.executemany("INSERT INTO old_users VALUES (?, ?)", chunk)
            chunk.clear()
    conn.executemany("INSERT INTO old_users VALUES (?, ?)", chunk)
    conn.commit()
    conn.close()


def raw_insert_select(src: Path, dst: Path) -> float:
    dst.unlink(missing_ok=True)
    conn = sqlite3.connect(dst)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE new_users (user_id INTEGER PRIMARY KEY, email TEXT, auth_token TEXT)"
    )
    conn.execute(f"ATTACH DATABASE '{src}' AS legacy")
    t = time.perf_counter()
    conn.execute(
        "INSERT INTO new_users SELECT user_id, email, 'token_' || user_id FROM legacy.old_users"
    )
    conn.commit()
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


def authmigrate_run(src: Path, dst: Path, work: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``authmigrate run`` in its own process."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    spec = work / f"bench-{dst.stem}.toml"
    spec.write_text(SPEC.format(src=src, dst=dst))
    code = (
        "import resource, sys, time\n"
        "from authmigrate.spec import load_spec\n"
        "from authmigrate.pipeline import run_migration\n"
        "s = load_spec(sys.argv[1])\n"
        "t = time.perf_counter(); r = run_migration(s); e = time.perf_counter() - t\n"
        "assert r.migrated == r.source_rows, r\n"
        "print(e, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(spec)], capture_output=True, text=True, check=True
    )
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


class Old(DeclarativeBase):
    pass


class New(DeclarativeBase):
    pass


class OldUser(Old):
    __tablename__ = "old_users"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]


class NewUser(New):
    __tablename__ = "new_users"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]
    auth_token: Mapped[str]


def orm_loop(src: Path, dst: Path, users: int) -> float:
    dst.unlink(missing_ok=True)
    src_engine = sa.create_engine(f"sqlite:///{src}")
    dst_engine = sa.create_engine(f"sqlite:///{dst}")
    New.metadata.create_all(dst_engine)
    t = time.perf_counter()
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
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--orm-users", type=int, default=100_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="authmigrate-bench-"))
    small, big = work / "legacy-100k.db", work / "legacy.db"
    print(f"building {args.users:,} users in {work} ...", flush=True)
    build_source(big, args.users)
    build_source(small, 100_000)

    a = raw_insert_select(big, work / "raw.db")
    b, rss_big = authmigrate_run(big, work / "am.db", work)
    _, rss_small = authmigrate_run(small, work / "am-small.db", work)
    orm_n = min(args.orm_users, args.users)
    c_part = orm_loop(big, work / "orm.db", orm_n)
    c = c_part * args.users / orm_n

    print(f"(a) raw INSERT ... SELECT      {a:8.2f} s  ({args.users / a:,.0f} rows/s)")
    print(f"(b) authmigrate run            {b:8.2f} s  ({args.users / b:,.0f} rows/s)")
    print(
        f"(c) SQLAlchemy ORM loop        {c:8.2f} s  "
        f"({orm_n:,} rows timed{', scaled' if orm_n != args.users else ''})"
    )
    print(f"(b)/(a) = {b / a:.2f}   target <= 3")
    print(f"(c)/(b) = {c / b:.2f}   target >= 10")
    print(
        f"peak RSS of (b): {rss_small:.0f} MB at 100,000 users, {rss_big:.0f} MB at {args.users:,}"
    )


if __name__ == "__main__":
    main()
