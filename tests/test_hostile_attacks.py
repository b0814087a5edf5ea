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


def _file_spec(tmp_path: Path, url: str) -> Path:
    spec = tmp_path / "f.toml"
    spec.write_text(
        f"""
name = "files"
[source]
url = "{url}"
key = "user_id"
[target]
url = "sqlite:///{tmp_path / "target.db"}"
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


def test_csv_with_bom_and_quoted_header_reads_its_columns(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" quotes every cell after the BOM: the BOM made the first quote a
    character of an unquoted cell, so the first column was named '"user_id"'."""
    path = tmp_path / "users.csv"
    path.write_bytes(b'\xef\xbb\xbf"user_id","email"\r\n"1","a@example.com"\r\n"2","b@x.org"\r\n')
    spec = _file_spec(tmp_path, f"csv:///{path}")
    done = cli("run", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(tmp_path / "target.db")
    rows = conn.execute("SELECT user_id, email FROM accounts ORDER BY user_id").fetchall()
    conn.close()
    assert rows == [(1, "a@example.com"), (2, "b@x.org")]


def test_csv_columns_differing_only_in_case_are_named_as_repeated(tmp_path: Path) -> None:
    """``email`` and ``Email``: staging failed with SQLite's "duplicate column name" dressed as
    a full temporary folder ("set TMPDIR ...")."""
    path = tmp_path / "users.csv"
    path.write_text("user_id,email,Email\n1,a@example.com,b@example.com\n", encoding="utf-8")
    done = cli("plan", str(_file_spec(tmp_path, f"csv:///{path}")), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "TMPDIR" not in done.stderr, done.stderr
    assert "line 1 column 3" in done.stderr and "'Email'" in done.stderr, done.stderr


def test_jsonl_keys_differing_only_in_case_are_named_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text(
        '{"user_id": 1, "email": "a@example.com"}\n{"user_id": 2, "Email": "b@example.com"}\n',
        encoding="utf-8",
    )
    done = cli("plan", str(_file_spec(tmp_path, f"jsonl:///{path}")), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "TMPDIR" not in done.stderr, done.stderr
    assert "line 2" in done.stderr and "'Email'" in done.stderr, done.stderr


def test_jsonl_empty_key_name_is_exit_2_naming_the_line(tmp_path: Path) -> None:
    """``{"": 1}`` ended in "internal error: ArgumentError" (a column with a blank name)."""
    path = tmp_path / "users.jsonl"
    path.write_text(
        '{"user_id": 1, "email": "a@example.com"}\n{"user_id": 2, "email": "b@x.org", "": 3}\n',
        encoding="utf-8",
    )
    for command in ("plan", "run", "verify"):
        done = cli(command, str(_file_spec(tmp_path, f"jsonl:///{path}")), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "internal error" not in done.stderr, done.stderr
        assert "line 2" in done.stderr, done.stderr
