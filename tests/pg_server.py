"""A private PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory.

``initdb`` refuses to run as root, so as root the data directory is given to the ``postgres``
user and the tools run through ``runuser``. The server listens on a free port of 127.0.0.1 and
a socket inside its directory, and is stopped (fast) when the session ends.
"""

from __future__ import annotations

import glob
import itertools
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa


def _bin(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not candidates:
        raise RuntimeError(f"{tool} not found: install PostgreSQL (scripts/ensure-servers)")
    return candidates[-1]


# Ports for the servers the tests start come from below the kernel's ephemeral range
# (32768-60999 by default), so that no client connection of the suite is ever given one between
# the pick and the server's bind; under pytest-xdist each worker picks in a slice of its own, so
# two workers never hand out the same port. Within a slice the ports are walked in turn from a
# random start, so one process does not pick again a port it just handed out.
_PORTS = range(20000, 32000)


def _port_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = len(_PORTS) // max(count, 1)
    start = _PORTS.start + (index % max(count, 1)) * size
    return range(start, start + size)


_next_ports: Iterator[int] | None = None


def free_port() -> int:
    """A loopback TCP port nothing is bound to, in this process's slice (see ``_PORTS``)."""
    global _next_ports
    ports = _port_slice()
    if _next_ports is None:
        offset = random.randrange(len(ports))
        _next_ports = itertools.cycle([*ports[offset:], *ports[:offset]])
    for _ in range(len(ports)):
        port = next(_next_ports)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left for a test server")


@dataclass
class PgServer:
    datadir: Path
    port: int
    as_user: list[str]

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )


def start_pg() -> PgServer:
    root = Path(tempfile.mkdtemp(prefix="authmigrate-pg-"))
    datadir = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    subprocess.run(
        [
            *as_user,
            _bin("initdb"),
            "-D",
            str(datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [
            *as_user,
            _bin("pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            opts,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    server = PgServer(datadir, port, as_user)
    deadline = time.monotonic() + 30
    while True:
        try:
            engine = sa.create_engine(server.admin_url)
            with engine.connect():
                pass
            engine.dispose()
            return server
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def pg_session() -> Iterator[PgServer]:
    server = start_pg()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.datadir.parent, ignore_errors=True)
