"""Known-answer vectors for mysql41 and postgres_md5, made by the servers themselves.

    .venv/bin/python -m tests.vectors.gen_servers > tests/vectors/servers.json

- MySQL 4.1+ ``PASSWORD()``: Debian's MariaDB server (``mariadbd``), ``SELECT PASSWORD(%s)``,
  the function behind ``mysql_native_password``; the check is the server's own comparison
  ``PASSWORD(candidate) = stored``.
- PostgreSQL ``md5``: the PostgreSQL server here, ``SET password_encryption = 'md5'``,
  ``CREATE ROLE ... PASSWORD``, then ``pg_authid.rolpassword``; the check logs in as the role
  over TCP with ``md5`` authentication in pg_hba.conf, so the server's own auth code decides.

Both servers are private ones started in a temporary directory by the test helpers
(tests/mariadb_server.py, tests/pg_server.py) and stopped at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pymysql
from psycopg import sql
from tests.mariadb_server import start_server
from tests.pg_server import start_pg

PASSWORDS = ["password", "correct horse battery staple", "p\u00e4ssw\u00f6rd\u20ac", "a&b\"<c>'d"]
WRONG = ["Password", "password "]
ROLES = ["alice", "Bob.Smith@example.com", "j\u00fcrgen", "svc_app"]


def mysql_vectors() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            conn = pymysql.connect(
                host="127.0.0.1", port=server.port, user="root", charset="utf8mb4"
            )
            version = conn.get_server_info()
            out = []
            with conn.cursor() as cur:
                for pw in PASSWORDS:
                    cur.execute("SELECT PASSWORD(%s)", (pw,))
                    stored = cur.fetchone()[0]
                    checks = []
                    for candidate in [pw, *WRONG]:
                        cur.execute("SELECT PASSWORD(%s) = %s", (candidate, stored))
                        checks.append({"password": candidate, "ok": bool(cur.fetchone()[0])})
                    out.append(
                        {
                            "scheme": "mysql41",
                            "stored": stored,
                            "import": {},
                            "checks": checks,
                            "source": f"MariaDB {version} SELECT PASSWORD()",
                        }
                    )
            conn.close()
            return out
        finally:
            server.stop()


def _pg_login_ok(port: int, role: str, password: str) -> bool:
    try:
        psycopg.connect(
            host="127.0.0.1", port=port, dbname="postgres", user=role, password=password
        ).close()
    except psycopg.OperationalError:
        return False
    return True


def postgres_vectors() -> list[dict[str, Any]]:
    server = start_pg()
    try:
        hba = Path(server.datadir) / "pg_hba.conf"
        hba.write_text("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                       "host all all 127.0.0.1/32 md5\n")  # fmt: skip
        out = []
        admin = server.admin_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            conn.execute("SET password_encryption = 'md5'")
            for role, pw in zip(ROLES, PASSWORDS, strict=True):
                create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
                conn.execute(create.format(sql.Identifier(role), sql.Literal(pw)))
                stored = conn.execute(
                    "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
                ).fetchone()[0]  # type: ignore[index]
                checks = [
                    {"password": c, "ok": _pg_login_ok(server.port, role, c)} for c in [pw, *WRONG]
                ]
                out.append(
                    {
                        "scheme": "postgres_md5",
                        "stored": stored,
                        "import": {"params": {"username": role}},
                        "checks": checks,
                        "source": f"PostgreSQL {version} password_encryption=md5, md5 login",
                    }
                )
        return out
    finally:
        server.stop()


def main() -> None:
    vectors = mysql_vectors() + postgres_vectors()
    json.dump(
        {"generator": "tests/vectors/gen_servers.py", "vectors": vectors},
        sys.stdout,
        indent=2,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
