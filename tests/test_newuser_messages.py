"""What a new user reads on the console, tried on a shop DB of their own: messages that say
which table was taken, what each outcome holds, and what to do next (found in a walkthrough)."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import bcrypt

SPEC = """\
[source]
url = "sqlite:///home.db"
table = "customers"
key = "cust_id"

[target]
url = "sqlite:///new.db"
table = "accounts"
unique = ["email"]

[fields]
cust_id = "cust_id"
email = { from = "mail", normalize = "email", required = true }

[credentials]
column = "pwd"
scheme = ["auto", "digest"]
params = { algorithm = "md5", encoding = "hex" }
policy = "keep"
target_column = "password"

[run]
duplicates = "merge"
"""


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``authmigrate`` as a user runs it in a pipe (no terminal, no COLUMNS)."""
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**base, **(env or {})},
    )


def _home_shop(tmp_path: Path) -> None:
    """A home-grown table: bcrypt, bare md5, NULL, a case-only duplicate, a non-email."""
    db = sqlite3.connect(tmp_path / "home.db")
    db.execute("CREATE TABLE customers (cust_id INTEGER PRIMARY KEY, mail TEXT, pwd TEXT)")
    rows = [
        (1, "gina@example.com", bcrypt.hashpw(b"gina-pw", bcrypt.gensalt(4)).decode()),
        (2, "hank@example.com", hashlib.md5(b"hank-pw").hexdigest()),
        (3, "ivy@example.com", None),
        (4, "GINA@example.com", hashlib.md5(b"gina2").hexdigest()),
        (5, "not-an-email", hashlib.md5(b"x").hexdigest()),
    ]
    db.executemany("INSERT INTO customers VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


def test_init_without_a_platform_names_the_table_it_took_on_one_line(tmp_path: Path) -> None:
    """A DB with no known platform: init says which table the spec was guessed from, and the
    sentence is not cut at 80 columns in a pipe (it was, and named no table)."""
    _home_shop(tmp_path)
    done = run_cli("init", "--from", "sqlite:///home.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("No shop platform"))
    assert "wrote migration.toml for the table 'customers'" in line
    assert line.endswith("if you meant another.")


def test_plan_lists_each_reason_under_its_outcome_and_says_under_1_s(tmp_path: Path) -> None:
    """The plan table put every reason (rejects too) under "would merge", and said "about
    under 1 s"."""
    _home_shop(tmp_path)
    (tmp_path / "m.toml").write_text(SPEC, encoding="utf-8")
    done = run_cli("plan", "m.toml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    labels = [x.strip("│ ").split("│")[0].strip() for x in done.stdout.splitlines()]
    reject, merge = labels.index("would reject"), labels.index("would merge")
    assert labels[reject + 1] == "field.invalid_email"
    assert labels[merge + 1] == "duplicate.email"
    assert "about under" not in done.stdout
    assert "under 1 s on" in done.stdout
    assert "1 row would be rejected" in done.stdout


def test_run_prints_each_rejected_reasons_fix_and_counts_in_good_english(tmp_path: Path) -> None:
    """After a run with rejects the user is told the fix per reason on the console (the next
    step pointed at fixes that only the JSON report held), and "1 row was", not "1 rows were"."""
    _home_shop(tmp_path)
    (tmp_path / "m.toml").write_text(SPEC, encoding="utf-8")
    done = run_cli("run", "m.toml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("rejected field.invalid_email (1)"))
    assert lines[at + 1].startswith("  fix: not email addresses")
    # "1 rows" as a count, not the tail of a rate such as "301 rows/s"
    assert "1 row was rejected" in done.stdout
    assert not re.search(r"(?<![\d,.])1 rows(?!/s)", done.stdout)


def test_a_missing_outbox_key_says_how_to_make_one(tmp_path: Path) -> None:
    """The outbox key's variable unset: exit 2, and the message says how to make a key."""
    _home_shop(tmp_path)
    spec = SPEC + (
        '\n[tokens]\ncolumn = "auth_token"\n\n[notify]\nfrom = "Shop <no-reply@shop.example>"\n'
        'outbox_key = "env:NU_OUTBOX_KEY"\nreset_url = "https://shop.example/r?token={token}"\n'
        '\n[notify.smtp]\nhost = "127.0.0.1"\n'
    )
    (tmp_path / "m.toml").write_text(spec, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "NU_OUTBOX_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", "plan", "m.toml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "notify.outbox_key" in done.stderr and "NU_OUTBOX_KEY" in done.stderr
    assert "export NU_OUTBOX_KEY=" in done.stderr
    assert "from authmigrate.notify import generate_outbox_key" in done.stderr
    assert not (tmp_path / "new.db").exists()


def test_notify_with_another_outbox_key_says_how_to_send_the_failed_ones(tmp_path: Path) -> None:
    """`run` sealed the tokens under one outbox key, `notify` was started with another: the
    reset messages fail, and the summary says how to get them out once the key is right (it
    said only "1 failed"); with the right key and --requeue failed it is sent."""
    from authmigrate.notify import generate_outbox_key

    from .smtp_server import smtp_server

    _home_shop(tmp_path)
    with smtp_server() as srv:
        spec = SPEC + (
            '\n[tokens]\ncolumn = "auth_token"\n\n[notify]\nfrom = "Shop <no-reply@shop.example>"\n'
            'outbox_key = "env:NU_OUTBOX_KEY"\nreset_url = "https://shop.example/r?token={token}"\n'
            f'\n[notify.smtp]\nhost = "127.0.0.1"\nport = {srv.port}\nsecurity = "none"\n'
        )
        (tmp_path / "m.toml").write_text(spec, encoding="utf-8")
        right = {"NU_OUTBOX_KEY": generate_outbox_key()}
        other = {"NU_OUTBOX_KEY": generate_outbox_key()}
        assert run_cli("run", "m.toml", cwd=tmp_path, env=right).returncode == 1  # a reject
        sent = run_cli("notify", "m.toml", cwd=tmp_path, env=other)
        assert sent.returncode == 1, sent.stderr
        assert "1 sent, 1 failed" in sent.stdout  # the merged message has no token
        assert "which is not configured" in sent.stderr
        assert "--requeue failed" in sent.stdout
        assert (
            run_cli("notify", "m.toml", "--requeue", "failed", cwd=tmp_path, env=right).returncode
            == 0
        )
        again = run_cli("notify", "m.toml", cwd=tmp_path, env=right)
        assert again.returncode == 0, again.stderr + again.stdout
        assert "1 sent, 0 failed" in again.stdout
        assert sorted(srv.handler.per_recipient()) == ["gina@example.com", "ivy@example.com"]
