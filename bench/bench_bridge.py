"""The password bridge under load: N logins over loopback to a real `authmigrate bridge`.

A legacy shop of N WooCommerce-style customers (phpass, 2^13 rounds) is migrated into SQLite;
the bridge (the real command, uvicorn, OWASP_2025 argon2id upgrades) serves it on a free port;
an asyncio client sends every customer's right password to ``POST /kratos`` with at most C
requests in flight, and records each login's latency. Then every row is checked: argon2id that
verifies the customer's password (no lost upgrade).

Reported per run: logins admitted (200) and refused at once (503, overloaded: the bridge's
bounded queue), p50/p95/p99/max latency of the admitted ones and p99 of the refusals,
throughput, wall time, the bridge process's CPU time (user + system, from /proc), CPU per
login, and the physical floor: CPU per login x admitted logins / cores, the least time in
which the last of them can finish. The original criterion (p99 < 2 x argon2id verify + 20 ms)
is printed beside it.

Run:  .venv/bin/python bench/bench_bridge.py [--users 200] [--concurrency 200 2]
          [--max-queue 32 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import argon2
from passlib.hash import phpass

from authmigrate.bridge._timing import measure_verify
from authmigrate.pipeline import run_migration
from authmigrate.spec import load_spec

SECRET = "bench-bridge-secret-0123456789"

SPEC = """
[source]
url = "sqlite:///{src}"
table = "customers"
key = "customer_id"

[target]
url = "sqlite:///{dst}"
table = "accounts"

[fields]
customer_id = "customer_id"
email = {{ from = "email", normalize = "email" }}

[credentials]
column = "password_hash"
scheme = "phpass"

[bridge]
secret = "env:BRIDGE_SECRET"
per_identifier = 100
per_address = 1000000
max_queue = {max_queue}
"""


def make_shop(tmp: Path, users: int, max_queue: int) -> Path:
    src = tmp / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, email TEXT, password_hash TEXT)"
    )
    hasher = phpass.using(rounds=13)
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?)",
        [(i, f"user{i}@example.com", hasher.hash(f"pw-{i}-bench")) for i in range(users)],
    )
    conn.commit()
    conn.close()
    spec_path = tmp / "migration.toml"
    spec_path.write_text(SPEC.format(src=src, dst=tmp / "target.db", max_queue=max_queue))
    run_migration(load_spec(spec_path))
    return spec_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def login(port: int, i: int) -> tuple[float, int]:
    body = json.dumps({"identifier": f"user{i}@example.com", "password": f"pw-{i}-bench"}).encode()
    head = (
        f"POST /kratos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    elapsed = time.perf_counter() - started
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    return elapsed, status


async def burst(port: int, users: range, concurrency: int) -> list[tuple[float, int]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[float, int]:
        async with gate:
            return await login(port, i)

    return await asyncio.gather(*(one(i) for i in users))


def run(users: int, concurrency: int, verify_s: float, max_queue: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        spec_path = make_shop(Path(d), users, max_queue)
        port = free_port()
        env = {**os.environ, "BRIDGE_SECRET": SECRET}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "authmigrate",
                "bridge",
                str(spec_path),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(400):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            cpu0, wall0 = cpu_seconds(proc.pid), time.perf_counter()
            results = asyncio.run(burst(port, range(users), concurrency))
            wall = time.perf_counter() - wall0
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(20)
        conn = sqlite3.connect(Path(d) / "target.db")
        rows = dict(conn.execute("SELECT customer_id, password FROM accounts").fetchall())
        conn.close()
    ph = argon2.PasswordHasher()
    admitted = [i for i, (_, st) in enumerate(results) if st == 200]
    lost = sum(
        1
        for i in admitted
        if not (rows[i].startswith("$argon2id$") and ph.verify(rows[i], f"pw-{i}-bench"))
    )
    lat = sorted(results[i][0] for i in admitted) or [0.0]
    refused = sorted(t for t, st in results if st == 503) or [0.0]
    errors = sum(1 for _, st in results if st not in (200, 503))
    cores = len(os.sched_getaffinity(0))
    per_login = cpu / max(1, len(admitted))

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]

    return {
        "users": users,
        "concurrency": concurrency,
        "max_queue": max_queue,
        "admitted": len(admitted),
        "refused": sum(1 for _, st in results if st == 503),
        "p50_ms": pct(lat, 50) * 1000,
        "p95_ms": pct(lat, 95) * 1000,
        "p99_ms": pct(lat, 99) * 1000,
        "max_ms": lat[-1] * 1000,
        "mean_ms": statistics.mean(lat) * 1000,
        "refused_p99_ms": pct(refused, 99) * 1000,
        "wall_s": wall,
        "throughput": len(admitted) / wall if wall else 0.0,
        "server_cpu_s": cpu,
        "cpu_per_login_ms": per_login * 1000,
        "floor_ms": per_login * len(admitted) / cores * 1000,
        "cores": cores,
        "errors": errors,
        "lost_upgrades": lost,
        "target_ms": (2 * verify_s + 0.020) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[200, 2])
    parser.add_argument("--max-queue", type=int, nargs="+", default=[32])
    args = parser.parse_args()
    verify_s = measure_verify("OWASP_2025", rounds=21)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"argon2id verify (OWASP_2025, median of 21): {verify_s * 1000:.1f} ms")
    for q in args.max_queue:
        for c in args.concurrency:
            r = run(args.users, c, verify_s, q)
            met = "met" if r["p99_ms"] < r["target_ms"] else "NOT met"
            print(
                f"{r['users']} logins, {c} in flight, max_queue {q}: "
                f"admitted {r['admitted']}, refused 503 {r['refused']} "
                f"(p99 {r['refused_p99_ms']:.0f} ms); admitted p50 {r['p50_ms']:.0f} ms, "
                f"p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms; "
                f"floor {r['floor_ms']:.0f} ms ({r['cpu_per_login_ms']:.1f} ms CPU a login x "
                f"{r['admitted']} / {r['cores']} cores); original target < "
                f"{r['target_ms']:.0f} ms: {met}; {r['throughput']:.1f} logins/s, "
                f"wall {r['wall_s']:.2f} s, bridge CPU {r['server_cpu_s']:.2f} s "
                f"({r['server_cpu_s'] / r['wall_s']:.2f} cores); errors {r['errors']}, "
                f"lost upgrades {r['lost_upgrades']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
