"""A private MariaDB server for the tests: started in a temporary directory, never the system one.

``mariadb-install-db`` lays out a data directory, ``mariadbd`` serves it on a free port bound to
127.0.0.1 and a socket inside the directory; the server is stopped when the session ends. Tests
use the :func:`mariadb_url` fixture (a server-level URL) and :func:`fresh_database` to get an
empty database of their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pg_server import free_port as _free_port  # one port picker for the suite's servers


@dataclass
class MariaDBServer:
    """A running private server and how to reach it."""

    datadir: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Server-level SQLAlchemy URL (no database selected)."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/?charset=utf8mb4"

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{name}?charset=utf8mb4"

    def stop(self) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after 20 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        if os.access(f"{folder}/{name}", os.X_OK):
            return f"{folder}/{name}"
    return None


def _accepts(port: int) -> bool:
    import pymysql

    try:
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1)
    except pymysql.err.OperationalError:
        return False
    conn.close()
    return True


def start_server(base: Path, buffer_pool: str = "32M") -> MariaDBServer:
    """Initialise a data directory under ``base`` and start ``mariadbd`` on it, with an
    InnoDB buffer pool of ``buffer_pool`` (small for the tests; the benchmarks give it a
    production server's size).

    Raises:
        RuntimeError: the binaries are missing or the server did not come up in 60 s (the
            server's error log is included).
    """
    install_db = _binary("mariadb-install-db") or _binary("mysql_install_db")
    server = _binary("mariadbd") or _binary("mysqld")
    if not install_db or not server:
        raise RuntimeError("mariadb-server is not installed (see scripts/ensure-servers)")
    datadir = base / "data"
    datadir.mkdir(parents=True)
    subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = _free_port()
    log = base / "error.log"
    proc = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={base / 'sock'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--log-error={log}",
            f"--pid-file={base / 'mariadbd.pid'}",
            "--skip-name-resolve",
            f"--innodb-buffer-pool-size={buffer_pool}",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-log-bin",
            # the platforms' install SQL predates strict mode; legacy shops run without it
            "--sql-mode=NO_ENGINE_SUBSTITUTION",
            "--character-set-server=latin1",
            "--collation-server=latin1_swedish_ci",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    srv = MariaDBServer(datadir, port, proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _accepts(port):
            return srv
        time.sleep(0.2)
    srv.stop()
    text = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"mariadbd did not start on port {port}:\n{text}")


def fresh_database(server_url: str, prefix: str = "shop") -> str:
    """Create an empty database on the server and return its URL."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(server_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` DEFAULT CHARACTER SET utf8mb4")
    engine.dispose()
    return server_url.replace("/?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A private MariaDB server for the whole test session."""
    if not (_binary("mariadbd") or _binary("mysqld")):
        pytest.skip("mariadb-server is not installed (run scripts/ensure-servers)")
    base = Path(tempfile.mkdtemp(prefix="authmigrate-mariadb-"))
    srv = start_server(base)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_url(mariadb_server: MariaDBServer) -> str:
    """Server-level URL of the session's private MariaDB (``mysql+pymysql://root@.../``)."""
    return mariadb_server.url
