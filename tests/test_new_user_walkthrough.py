"""A new user's first hour, as the README has them do it: their own database (bcrypt mixed with
bare md5, NULL and empty passwords, case-only duplicate emails, invalid emails, a 10 KB email),
then init, plan, run, verify, log in, rollback; asserting the messages they see."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import bcrypt

import authmigrate

ROWS = 1200
INVALID = {7: "not-an-email", 13: "jane@", 19: "a b@example.com"}
HUGE = 21  # a 10 KB email
TWINS = {1101: "USER1@Example.COM", 1103: "User2@EXAMPLE.com", 1105: "user4@Example.Com"}


def bcrypt_password(i: int) -> str:
    return f"bcrypt-pw-{i % 5}"


def md5_password(i: int) -> str:
    return f"md5-pw-{i}"


def build_shop(path: Path) -> dict[str, int]:
    """Odd ids on bcrypt, even ids on bare md5 hex; what was planted, counted here."""
    salted = [
        bcrypt.hashpw(bcrypt_password(j).encode(), bcrypt.gensalt(4)).decode() for j in range(5)
    ]
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, password TEXT, name TEXT)"
    )
    planted = {"null_or_empty": 0, "bcrypt": 0, "md5": 0}
    rows = []
    for i in range(1, ROWS + 1):
        kind = "bcrypt" if i % 2 else "md5"
        password: str | None = (
            salted[i % 5] if kind == "bcrypt" else hashlib.md5(md5_password(i).encode()).hexdigest()
        )
        if i % 100 in (0, 50):
            password, kind = (None if i % 100 == 0 else ""), "null_or_empty"
        planted[kind] += 1
        email = INVALID.get(i) or TWINS.get(i) or f"user{i}@example.com"
        if i == HUGE:
            email = "x" * 10_000 + "@example.com"
        rows.append((i, email, password, f"Customer {i}"))
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    planted["rejected"] = len(INVALID) + 1 + len(TWINS)
    planted["migrated"] = ROWS - planted["rejected"]
    return planted


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=env,
    )


def test_a_new_users_first_hour(tmp_path: Path) -> None:
    planted = build_shop(tmp_path / "shop.db")

    # init: finds the table, covers both hash formats, counts what it saw
    init = cli("init", "--from", "sqlite:///shop.db", "--to", "sqlite:///accounts.db", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "wrote migration.toml for a home-grown table" in init.stderr.replace("\n", " ")
    spec_text = (tmp_path / "migration.toml").read_text()
    assert 'scheme = ["auto", "digest"]' in spec_text
    assert 'params = { algorithm = "md5", encoding = "hex" }' in spec_text
    assert f"#   bcrypt: {planted['bcrypt']}" in spec_text
    assert (
        f"#   bare md5 hex (scheme digest): {planted['md5']}; {planted['md5']} parse" in spec_text
    )
    assert f"#   NULL or empty: {planted['null_or_empty']}" in spec_text

    # plan: predicts the rejects with their reason, detail and fix; exit 1
    plan = cli("plan", "migration.toml", cwd=tmp_path)
    assert plan.returncode == 1, plan.stderr
    out = plan.stdout
    assert "credential.unrecognized" not in out
    assert "longer than 254 characters (RFC 5321): 10,012 characters" in out
    assert "fix field.invalid_email (4): not email addresses" in out
    assert f"fix duplicate.email ({len(TWINS)}): accounts sharing a unique value" in out
    table = {
        line.strip("│┃ ").split("│")[0].strip(): line.split("│")[-2].strip()
        for line in out.splitlines()
        if line.startswith("│") and line.count("│") == 3
    }
    assert table["would migrate"] == f"{planted['migrated']:,}"
    assert table["would reject"] == str(planted["rejected"])
    assert table["password reset (none usable)"] == str(planted["null_or_empty"])
    assert "next: authmigrate plan migration.toml  (after the fix)" in out

    # run: the same counts, a report that says what was rejected and what to do next
    run = cli("run", "migration.toml", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    report = json.loads((tmp_path / "migration.report.json").read_text())
    assert report["totals"] == {
        "read": ROWS,
        "migrated": planted["migrated"],
        "rejected": planted["rejected"],
        "merged": 0,
    }
    assert report["rejects"]["field.invalid_email"]["examples"] == [7, 13, 19, HUGE]
    assert report["rejects"]["duplicate.email"]["examples"] == sorted(TWINS)
    assert report["next_step"]["command"] == "authmigrate verify migration.toml"
    assert "next: authmigrate verify migration.toml" in run.stdout

    # verify: everything accounted for
    verify = cli("verify", "migration.toml", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verify ok" in verify.stdout
    total = f"{ROWS:,} = {planted['migrated']:,} + {planted['rejected']} + 0"
    assert total in verify.stdout

    # both formats log in with the old password in the new store
    conn = sqlite3.connect(tmp_path / "accounts.db")
    stored = dict(conn.execute("SELECT id, password FROM accounts WHERE id IN (3, 4, 100)"))
    conn.close()
    assert authmigrate.verify(bcrypt_password(3), stored[3])
    assert authmigrate.verify(md5_password(4), stored[4])
    assert not authmigrate.verify(md5_password(6), stored[4])
    assert stored[100] is None  # NULL password: migrated, must reset

    # rollback: removes exactly what was written, says so in the same counts
    back = cli("rollback", "migration.toml", "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert (
        f"removed {planted['migrated']:,} accounts, {planted['rejected']} rejected and 0 merged rows"
        in back.stdout
    )
    conn = sqlite3.connect(tmp_path / "accounts.db")
    assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
    history = conn.execute(
        "SELECT command, migrated, rejected, merged FROM authmigrate_runs ORDER BY started_at"
    ).fetchall()
    conn.close()
    assert history == [
        ("run", planted["migrated"], planted["rejected"], 0),
        ("rollback", -planted["migrated"], -planted["rejected"], 0),
    ]
