"""Values real sources hold: undecodable text, time zones, values the target refuses,
case variants of what the target already holds (issue 9, items 6, 7, 8, 10)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from tests.helpers_verify import cli, execute, scalar

HASH = "$1$abcdefgh$" + "x" * 22
"""An md5_crypt-shaped hash: the spec reads it with ``scheme = "auto"``."""


def sqlite_users(path: Path, rows: int = 100) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE legacy_users (id INTEGER PRIMARY KEY, email TEXT, name TEXT,"
        " password_hash TEXT)"
    )
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?, ?)",
        [(i, f"u{i}@example.com", f"name {i}", HASH) for i in range(1, rows + 1)],
    )
    conn.commit()
    conn.close()


def spec_text(src: str, dst: str, *, fields: str = "", extra: str = "", table: str = "") -> str:
    return (
        f'[source]\nurl = "{src}"\n{table or "table = " + chr(34) + "legacy_users" + chr(34)}\n'
        f'key = "id"\n'
        f'[target]\nurl = "{dst}"\ntable = "accounts"\n'
        f'[fields]\nid = "id"\n{fields or "email = " + chr(34) + "email" + chr(34)}\n'
        f"{extra}\n[run]\nbatch_size = 30\n"
    )


# -- item 7: one non-UTF-8 byte in a SQLite source -------------------------------------------


def test_non_utf8_sqlite_text_is_rejected_per_row_and_never_shown(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    sqlite_users(src)
    secret_bytes = "24317365637265742dff"  # "$1$secret-" + 0xff: a hash with a bad byte
    conn = sqlite3.connect(src)
    conn.execute(
        f"UPDATE legacy_users SET password_hash = CAST(x'{secret_bytes}' AS TEXT) WHERE id = 50"
    )
    conn.execute("UPDATE legacy_users SET name = CAST(x'5a71ff78' AS TEXT) WHERE id = 70")
    conn.commit()
    conn.close()
    dst = f"sqlite:///{tmp_path}/target.db"
    spec = tmp_path / "m.toml"
    spec.write_text(
        spec_text(
            f"sqlite:///{src}",
            dst,
            fields='email = "email"\nname = "name"',
            extra='[credentials]\ncolumn = "password_hash"',
        )
    )
    res = cli("run", str(spec), cwd=tmp_path)
    assert res.returncode == 1, res.stderr  # ran, with rejects
    rejects = scalar_rows(
        dst, "SELECT source_key, reason, column_name FROM authmigrate_rejects ORDER BY id"
    )
    assert sorted(rejects) == [
        ("50", "field.invalid_encoding", "password_hash"),
        ("70", "field.invalid_encoding", "name"),
    ]
    assert scalar(dst, "SELECT count(*) FROM accounts") == 98
    assert scalar(dst, "SELECT max(id) FROM accounts") == 100  # went on past rows 50 and 70
    shown = res.stdout + res.stderr + str(scalar(dst, "SELECT error FROM authmigrate_runs"))
    for leak in ("$1$secret", "secret-", "Zq"):
        assert leak not in shown
    # and a second run finds nothing left to do
    again = cli("run", str(spec), cwd=tmp_path)
    assert again.returncode in (0, 1) and "secret" not in again.stderr
    assert scalar(dst, "SELECT count(*) FROM authmigrate_rejects") == 2


def scalar_rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


__all__ = ["execute"]
