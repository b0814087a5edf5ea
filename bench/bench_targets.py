"""Server targets at their bulk speed: ``authmigrate run`` against the database's own bulk load.

    .venv/bin/python bench/bench_targets.py [--users 1000000] [--target postgres mariadb]
        [--mapping email seed] [--paths python fast]

For each target and mapping, in one run on private servers started here (stopped at the end):

(a) ``authmigrate run`` (a subprocess, as a user runs it) from a SQLite legacy table
    ``old_users(user_id, email, password_hash)`` into a fresh database;
(b) the floor: the rows (a) wrote, read back into memory beforehand, loaded into a table
    created ``LIKE`` the accounts table (same columns, primary key and unique email index) in
    one transaction: PostgreSQL binary ``COPY`` (psycopg); MariaDB the faster of a multi-row
    ``INSERT`` (PyMySQL's executemany, statements up to 1 MB) and ``LOAD DATA LOCAL INFILE``
    (when the server allows ``local_infile``).

``--paths python fast`` runs (a) twice back to back, each into its own fresh database: with
``AUTHMIGRATE_FASTPATH=0`` (the Python path: the before) and with the fast path (the default
alone); the floor is measured on the last one's rows. A MariaDB target's fast run also prints
where its batches spent their time (``fast_mariadb.PROFILE``, seconds per stage).

Mappings: ``email`` (key + normalized email, bench_pipeline.py's case) and ``seed`` (+ the md5
credential kept as a ``digest`` credential, + a token per account).

Printed per case: wall seconds, client CPU seconds (the run's process, or this one for the
floor) and server CPU seconds (every process of the private server, from /proc), and the wall
ratio (a)/(b). The machine is shared: compare the ratios of one run, not absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/pg_server.py and tests/mariadb_server.py start the servers

import sqlalchemy as sa  # noqa: E402

SPEC = """
name = "bench"

[source]
url = "sqlite:///{src}"
table = "old_users"
key = "user_id"

[target]
url = "{dst}"
table = "accounts"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}
{extra}
[run]
batch_size = 5000
"""

SEED = """
[credentials]
column = "password_hash"
scheme = "digest"
params = { algorithm = "md5" }
policy = "keep"

[tokens]
column = "auth_token"
delivery = "none"
"""


def build_source(path: Path, users: int) -> None:
    """``old_users`` with padded mixed-case emails and md5 hex password hashes."""
    import hashlib

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
        md5 = hashlib.md5(f"pw{uid}".encode()).hexdigest()
        chunk.append((uid, f" {local}@{rng.choice(domains)}", md5))
        if len(chunk) == 50_000:
            conn.executemany("INSERT INTO old_users VALUES (?, ?, ?)", chunk)
            chunk.clear()
    conn.executemany("INSERT INTO old_users VALUES (?, ?, ?)", chunk)
    conn.commit()
    conn.close()


# -- CPU of the servers -------------------------------------------------------------------------


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime of the process


def _children(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(stat[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


class ServerCpu:
    """CPU seconds used by a server's processes (the postmaster and its backends, or
    mariadbd) between :meth:`start` and :meth:`stop`; backends that exit in between are
    counted through their parent's ``cutime``."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.hz = os.sysconf("SC_CLK_TCK")

    def _total(self) -> int:
        total = 0
        for pid in _children(self.root):
            total += _ticks(pid)
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{self.root}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[13]) + int(fields[14])  # cutime + cstime (ended children)
        return total

    @contextlib.contextmanager
    def measure(self) -> Iterator[list[float]]:
        out: list[float] = []
        before = self._total()
        yield out
        out.append((self._total() - before) / self.hz)


# -- the servers --------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[tuple[Any, int]]:
    from tests.pg_server import start_pg

    server = start_pg()
    try:
        pid = int((server.datadir / "postmaster.pid").read_text().split()[0])
        yield server, pid
    finally:
        server.stop()
        shutil.rmtree(server.datadir.parent, ignore_errors=True)


@contextlib.contextmanager
def mariadb(buffer_pool: str) -> Iterator[tuple[Any, int]]:
    from tests.mariadb_server import start_server

    base = Path(tempfile.mkdtemp(prefix="authmigrate-bench-mariadb-"))
    server = start_server(base, buffer_pool)
    try:
        yield server, server.process.pid
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- (a) authmigrate run ----------------------------------------------------------------------

RUN = (
    "import resource, sys, time\n"
    "from authmigrate.spec import load_spec\n"
    "from authmigrate.pipeline import run_migration\n"
    "s = load_spec(sys.argv[1])\n"
    "t = time.perf_counter(); r = run_migration(s); e = time.perf_counter() - t\n"
    "assert r.migrated == r.source_rows, r\n"
    "u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print(e, u.ru_utime + u.ru_stime, int(hwm) / 1024)\n"
    "import json\n"
    "f = sys.modules.get('authmigrate.pipeline.fast_mariadb')\n"
    "print(json.dumps(dict(f.PROFILE) if f else {}))\n"
)
"""The run's wall and CPU seconds and its peak RSS (``VmHWM``: ``ru_maxrss`` would carry over
the high-water mark of this process, which forked it, across ``exec``)."""


def authmigrate_run(spec: Path, cpu: ServerCpu, path: str = "fast") -> dict[str, Any]:
    """(a) in a subprocess; ``path`` ``python`` sets ``AUTHMIGRATE_FASTPATH=0``."""
    env = dict(os.environ, AUTHMIGRATE_FASTPATH="0" if path == "python" else "1")
    with cpu.measure() as server:
        out = subprocess.run(
            [sys.executable, "-c", RUN, str(spec)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    if out.returncode != 0:
        raise SystemExit(f"authmigrate run failed:\n{out.stderr[-3000:]}")
    first, profile = out.stdout.splitlines()[-2:]
    wall, client, rss = (float(x) for x in first.split())
    return {
        "wall": wall,
        "client": client,
        "server": server[0],
        "rss": rss,
        "profile": json.loads(profile),
    }


def _timed(cpu: ServerCpu, work: Callable[[], None]) -> dict[str, float]:
    with cpu.measure() as server:
        c0, t0 = time.process_time(), time.perf_counter()
        work()
        wall, client = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "client": client, "server": server[0]}


# -- (b) the floors ---------------------------------------------------------------------------


def pg_floor(url: str, cpu: ServerCpu) -> dict[str, float]:
    """Binary COPY of the accounts (a) wrote into a table LIKE it, one transaction."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cols = [
            (name, typ)
            for name, typ in conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t"
                " ON t.oid = a.atttypid WHERE a.attrelid = 'accounts'::regclass"
                " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            )
        ]
        names = ", ".join(f'"{n}"' for n, _ in cols)
        rows = conn.execute(f"SELECT {names} FROM accounts ORDER BY 1").fetchall()
        conn.execute("CREATE TABLE floor (LIKE accounts INCLUDING ALL)")
        conn.commit()

        def load() -> None:
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY floor ({names}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types([t for _, t in cols])
                for row in rows:
                    copy.write_row(row)
            conn.commit()

        got = _timed(cpu, load)
        n = conn.execute("SELECT count(*) FROM floor").fetchone()
        assert n is not None and n[0] == len(rows)
    return got


def _mysql_connect(url: str, **extra: Any) -> Any:
    import pymysql

    parsed = sa.make_url(url)
    return pymysql.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        database=parsed.database,
        charset="utf8mb4",
        **extra,
    )


def mariadb_floors(url: str, cpu: ServerCpu) -> dict[str, dict[str, float]]:
    """Multi-row INSERT and, if the server allows it, LOAD DATA LOCAL INFILE, of the accounts
    (a) wrote into tables LIKE it, one transaction each."""
    conn = _mysql_connect(url, local_infile=True)
    cur = conn.cursor()
    cur.execute("SET time_zone = '+00:00'")
    cur.execute("SHOW COLUMNS FROM accounts")
    names = [r[0] for r in cur.fetchall()]
    quoted = ", ".join(f"`{n}`" for n in names)
    cur.execute(f"SELECT {quoted} FROM accounts ORDER BY 1")
    rows = cur.fetchall()
    out: dict[str, dict[str, float]] = {}

    cur.execute("CREATE TABLE floor_insert LIKE accounts")
    marks = ", ".join(["%s"] * len(names))

    def insert() -> None:
        for i in range(0, len(rows), 50_000):
            cur.executemany(
                f"INSERT INTO floor_insert ({quoted}) VALUES ({marks})", rows[i : i + 50_000]
            )
        conn.commit()

    out["multi-row INSERT"] = _timed(cpu, insert)

    cur.execute("SELECT @@global.local_infile")
    allowed = cur.fetchone()
    if allowed and int(allowed[0]):
        cur.execute("CREATE TABLE floor_load LIKE accounts")
        path = Path(tempfile.mkdtemp(prefix="authmigrate-bench-")) / "rows.tsv"

        def esc(v: Any) -> str:
            if v is None:
                return "\\N"
            if isinstance(v, bool):
                return "1" if v else "0"
            text = str(v)
            return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

        def load() -> None:
            with path.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write("\t".join(map(esc, row)) + "\n")
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE floor_load "
                f"CHARACTER SET utf8mb4 ({quoted})"
            )
            conn.commit()

        out["LOAD DATA LOCAL INFILE (file written in the timing)"] = _timed(cpu, load)
        cur.execute("SELECT count(*) FROM floor_load")
        got = cur.fetchone()
        assert got is not None and got[0] == len(rows)
        shutil.rmtree(path.parent, ignore_errors=True)
    conn.close()
    return out


# -- main ------------------------------------------------------------------------------------


def _pg_database(server: Any) -> str:
    return str(server.create_database("bench"))


def _mariadb_database(server: Any) -> str:
    from tests.mariadb_server import fresh_database

    return fresh_database(server.url, "bench")


def _line(label: str, m: dict[str, float]) -> str:
    return (
        f"  {label:58s} {m['wall']:8.2f} s wall  {m['client']:7.2f} s client CPU  "
        f"{m['server']:7.2f} s server CPU"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--target", nargs="+", default=["postgres", "mariadb"])
    ap.add_argument("--mapping", nargs="+", default=["email", "seed"])
    ap.add_argument("--paths", nargs="+", default=["fast"], choices=["python", "fast"])
    ap.add_argument(
        "--mariadb-buffer-pool",
        default="1G",
        help="the MariaDB server's innodb_buffer_pool_size (the tests' servers use 32M)",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="authmigrate-bench-targets-"))
    src = work / "legacy.db"
    print(f"building {args.users:,} users in {work} ...", flush=True)
    build_source(src, args.users)
    try:
        for target in args.target:
            servers = postgres if target == "postgres" else mariadb
            started = servers() if target == "postgres" else mariadb(args.mariadb_buffer_pool)
            with started as (server, pid):
                if target == "mariadb":
                    print(f"mariadb: innodb_buffer_pool_size={args.mariadb_buffer_pool}")
                cpu = ServerCpu(pid)
                for mapping in args.mapping:
                    runs: dict[str, dict[str, Any]] = {}
                    for path in args.paths:
                        url = (_pg_database if target == "postgres" else _mariadb_database)(server)
                        spec = work / f"{target}-{mapping}-{path}.toml"
                        extra = SEED if mapping == "seed" else ""
                        spec.write_text(SPEC.format(src=src, dst=url, extra=extra))
                        runs[path] = authmigrate_run(spec, cpu, path)
                    if target == "postgres":
                        floors = {"binary COPY (psycopg), one transaction": pg_floor(url, cpu)}
                    else:
                        floors = mariadb_floors(url, cpu)
                    best = min(floors.values(), key=lambda m: m["wall"])
                    print(f"{target}, {mapping} mapping, {args.users:,} users:", flush=True)
                    for path, ours in runs.items():
                        label = f"(a) authmigrate run, {path} path"
                        print(_line(label, ours) + f"  {ours['rss']:.0f} MB")
                    for label, m in floors.items():
                        print(_line(f"(b) {label}", m))
                    for path, ours in runs.items():
                        ratio = ours["wall"] / best["wall"]
                        cpu_ratio = (ours["client"] + ours["server"]) / (
                            best["client"] + best["server"]
                        )
                        print(
                            f"  (a)/(b), {path} path: wall = {ratio:.2f}, "
                            f"CPU (client + server) = {cpu_ratio:.2f}"
                        )
                        if ours["profile"]:
                            stages = ", ".join(
                                f"{k} {v:.2f} s" for k, v in sorted(ours["profile"].items())
                            )
                            print(f"  {path} path's batches by stage: {stages}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
