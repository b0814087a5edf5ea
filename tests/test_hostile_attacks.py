"""A hostile user's attacks on what issues 9 and 10 hardened, each run through the CLI
against real databases; every test here failed on the code as the attack found it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers_verify import cli

SECRET = "Hunter2-Sw0rdfish"
_YES = {"plan": (), "run": (), "verify": (), "rollback": ("--yes",)}


def _legacy(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?)", [(i, f"u{i}@example.com") for i in range(1, 31)]
    )
    conn.commit()
    conn.close()


def _spec(tmp_path: Path, target_url: str) -> Path:
    _legacy(tmp_path / "legacy.db")
    spec = tmp_path / "m.toml"
    spec.write_text(
        f"""
name = "hostile"
[source]
url = "sqlite:///{tmp_path / "legacy.db"}"
table = "legacy_users"
key = "user_id"
[target]
url = "{target_url}"
table = "accounts"
[fields]
user_id = "user_id"
email = "email"
[run]
retries = 0
""",
        encoding="utf-8",
    )
    return spec


def test_rollback_with_an_unknown_connection_option_exits_2_naming_target_url(
    tmp_path: Path, pg_url: str
) -> None:
    """``?nosuchopt=1`` makes psycopg raise ProgrammingError at connect: plan, run and verify
    said so with exit 2; rollback ended in "internal error" with exit 1."""
    spec = _spec(tmp_path, f"{pg_url}?nosuchopt=1&password={SECRET}")
    for command in ("plan", "run", "verify", "rollback"):
        done = cli(command, str(spec), *_YES[command], cwd=tmp_path, timeout=120)
        assert done.returncode == 2, (command, done.stderr)
        assert "internal error" not in done.stderr, (command, done.stderr)
        assert "target" in done.stderr, (command, done.stderr)
        assert SECRET not in done.stdout + done.stderr, command


def test_password_with_a_raw_at_sign_is_not_shown_in_part(tmp_path: Path, pg_url: str) -> None:
    """``user:p@ssword@host``: SQLAlchemy takes ``p`` as the password and ``ssword@host`` as
    the host, so the mask covered one letter and the rest of the password was printed
    (``cannot reach target ...:***@ssword@127.0.0.1``, and psycopg's "failed to resolve host
    'ssword@127.0.0.1'")."""
    port_and_db = pg_url.split("@", 1)[1]
    spec = _spec(tmp_path, f"postgresql+psycopg://postgres:p@{SECRET}@{port_and_db}")
    for command in ("plan", "run", "verify", "rollback"):
        done = cli(command, str(spec), *_YES[command], cwd=tmp_path, timeout=120)
        assert done.returncode == 2, (command, done.stderr)
        assert SECRET not in done.stdout + done.stderr, (command, done.stderr)
        assert "Sw0rdfish" not in done.stdout + done.stderr, (command, done.stderr)
