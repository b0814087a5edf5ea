"""What the key state costs per layout: today's text key against an integer key, per target.

    .venv/bin/python bench/bench_key_state.py [--rows 1000000] [--target sqlite postgres mariadb]

``sync``'s key state (``authmigrate_key_state``) is a second table as long as the accounts,
written in the same transaction as each batch. Its primary key is ``(migration, source_key)``
with ``source_key`` text (the typed form of any key). This measures, on the same rows in the
same run, the bulk insert of:

(accounts)  the reference: ``(user_id BIGINT PRIMARY KEY, email UNIQUE, name)``, the kind of
            table the floor of bench_pipeline.py / bench_targets.py loads;
(text key)  the key state table exactly as authmigrate creates it (``sinks/state.py``);
(int key)   the same columns with ``source_key BIGINT``: the layout an integer-keyed key
            state would have (a schema change for every existing target; not in the product).

Rows go in batches of 5,000 in key order, one transaction per batch, as a run writes them:
SQLite ``INSERT ... SELECT`` from a TEMP stage (filling the stage is not timed), PostgreSQL
``COPY ... FROM STDIN`` (text), MariaDB multi-row ``INSERT`` (PyMySQL ``executemany``).
Printed: wall, client CPU (this process) and server CPU (the private server's processes, from
/proc). The machine is shared: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sqlalchemy as sa  # noqa: E402
from bench_targets import ServerCpu, _mariadb_database, _pg_database, mariadb, postgres  # noqa: E402

from authmigrate.sinks.state import state_tables  # noqa: E402

BATCH = 5_000
MIGRATION = "bench-shop-2026"


def tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The three layouts, declared for any dialect."""
    state, _ = state_tables(metadata)
    accounts = sa.Table(
        "accounts",
        metadata,
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(320), unique=True),
        sa.Column("name", sa.String(200)),
    )
    int_state = sa.Table(
        "key_state_int",
        metadata,
        *(
            sa.Column(c.name, sa.BigInteger, primary_key=True, autoincrement=False)
            if c.name == "source_key"
            else c._copy()
            for c in state.columns
        ),
    )
    return {"accounts": accounts, "text key": state, "int key": int_state}


def rows_of(layout: str, lo: int, hi: int, now: dt.datetime) -> list[tuple[Any, ...]]:
    if layout == "accounts":
        return [(k, f"user.{k}@example.com", f"name {k}") for k in range(lo, hi)]
    key: Callable[[int], Any] = str if layout == "text key" else int
    return [
        (
            MIGRATION,
            key(k),
            "migrated",
            hashlib.blake2b(b"%d" % k, digest_size=16).hexdigest(),
            None,
            None,
            now,
        )
        for k in range(lo, hi)
    ]


def copy_text(rows: list[tuple[Any, ...]]) -> bytes:
    """PostgreSQL COPY text data (no value here needs escaping)."""
    return "".join(
        "\t".join("\\N" if v is None else str(v) for v in row) + "\n" for row in rows
    ).encode()


def load(url: str, table: sa.Table, layout: str, total: int, cpu: ServerCpu | None) -> dict:
    engine = sa.create_engine(url)
    table.metadata.create_all(engine, tables=[table])
    now = dt.datetime(2026, 12, 1, 0, 0, 0)
    names = [c.name for c in table.columns]
    dialect = engine.dialect.name
    raw = engine.raw_connection()
    cur = raw.cursor()
    marks = ", ".join(["?" if dialect == "sqlite" else "%s"] * len(names))
    insert = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
    stage_insert = f"INSERT INTO temp.stage VALUES ({marks})"
    if dialect == "sqlite":
        cur.execute(f"CREATE TEMP TABLE stage AS SELECT * FROM {table.name} WHERE 0")
    server = ServerCpu(cpu.root) if cpu else None
    measure = server.measure() if server else _nothing()
    wall, client = time.perf_counter(), time.process_time()
    build = 0.0
    with measure as out:
        for lo in range(1, total + 1, BATCH):
            t = time.process_time()
            rows = rows_of(layout, lo, min(lo + BATCH, total + 1), now)
            data = copy_text(rows) if dialect == "postgresql" else b""
            build += time.process_time() - t
            if dialect == "sqlite":
                # the fast path's route: the batch staged (not timed), then INSERT ... SELECT
                t = time.process_time()
                cur.execute("DELETE FROM temp.stage")
                cur.executemany(stage_insert, rows)
                build += time.process_time() - t
                cur.execute(f"INSERT INTO {table.name} SELECT * FROM temp.stage")
            elif dialect == "postgresql":
                with cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                    copy.write(data)
            else:
                cur.executemany(insert, rows)
            raw.commit()
    result = {
        "wall": time.perf_counter() - wall,
        "client": time.process_time() - client - build,
        "server": out[0] if out else 0.0,
    }
    cur.close()
    raw.close()
    engine.dispose()
    return result


class _nothing:
    def __enter__(self) -> list[float]:
        return []

    def __exit__(self, *exc: object) -> None:
        return None


def _sqlite_servers() -> Iterator[tuple[str, None]]:
    work = Path(tempfile.mkdtemp(prefix="authmigrate-bench-keystate-"))
    try:
        yield f"sqlite:///{work}/target", None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--target", nargs="+", default=["sqlite", "postgres", "mariadb"])
    ap.add_argument("--mariadb-buffer-pool", default="1G")
    args = ap.parse_args()
    for target in args.target:
        print(f"{target}, {args.rows:,} rows, batches of {BATCH:,}:", flush=True)
        if target == "sqlite":
            ctx: Any = contextlib.contextmanager(_sqlite_servers)()
        elif target == "postgres":
            ctx = postgres()
        else:
            ctx = mariadb(args.mariadb_buffer_pool)
        results = {}
        with ctx as (server, pid):
            for layout in ("accounts", "text key", "int key"):
                if target == "sqlite":
                    url, cpu = f"{server}-{len(results)}.db", None
                elif target == "postgres":
                    url, cpu = _pg_database(server), ServerCpu(pid)
                else:
                    url, cpu = _mariadb_database(server), ServerCpu(pid)
                table = tables(sa.MetaData())[layout]
                m = results[layout] = load(url, table, layout, args.rows, cpu)
                total = m["client"] + m["server"]
                print(
                    f"  {layout:10s} {m['wall']:7.2f} s wall  {m['client']:6.2f} s client CPU  "
                    f"{m['server']:6.2f} s server CPU  = {total / args.rows * 1e6:5.2f} us CPU/row",
                    flush=True,
                )
        base = results["accounts"]["client"] + results["accounts"]["server"]
        for layout in ("text key", "int key"):
            m = results[layout]
            print(f"  {layout} / accounts, CPU: {(m['client'] + m['server']) / base:.2f}")


if __name__ == "__main__":
    main()
