"""Helpers for the verify, rollback, crash and fault tests: legacy sources, specs, the CLI."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

SPEC = """
name = "{name}"

[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "user_id"

[target]
url = "{dst}"
table = "accounts"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email", required = true }}
name = {{ from = "name", normalize = ["strip", "nfc", "none_if_empty"] }}
created_at = {{ from = "created", type = "datetime" }}
active = {{ from = "active", type = "boolean" }}
visits = {{ from = "visits", type = "integer" }}
origin = {{ value = "legacy" }}
{extra}
[run]
batch_size = {batch}
duplicates = "{dupes}"
retries = {retries}
"""

CREDENTIALS = """
[credentials]
column = "password_hash"
policy = "{policy}"
profile = "TEST"
"""

TOKENS = """
[tokens]
column = "auth_token"
"""

NOTIFY = """
[notify]
outbox_key = "env:AUTHMIGRATE_OUTBOX_KEY"
"""
OUTBOX_KEY = "a2V5LWZvci10aGUtdGVzdC1vdXRib3gtMzItYnl0ZXM="
"""A test outbox key (32 bytes, urlsafe base64) for ``AUTHMIGRATE_OUTBOX_KEY``."""


def make_source(path: Path, users: int, *, seed: int = 7, hashes: bool = False) -> None:
    """legacy_users(user_id, email, name, created, active, visits, password_hash).

    About 1% invalid emails and 1% duplicate emails (differing in case), so a run has rejects
    and merges. Built with plain sqlite3 executemany: 200,000 rows take about a second.
    """
    rng = random.Random(seed)
    hashers: list[Any] = []
    if hashes:
        from passlib import hash as h

        hashers = [h.md5_crypt, h.phpass.using(rounds=7), h.bcrypt.using(rounds=4)]
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT, name TEXT,"
        " created TEXT, active INTEGER, visits INTEGER, password_hash TEXT)"
    )
    rows = []
    for uid in range(1, users + 1):
        roll = rng.random()
        email = f"User.{uid}@Example.com"
        if roll < 0.01:
            email = f"not-an-email-{uid}"
        elif roll < 0.02 and uid > 10:
            email = f"USER.{rng.randrange(1, uid)}@example.COM"
        cred = None
        if hashers:
            cred = hashers[uid % len(hashers)].hash(f"pw-{uid}")
        rows.append(
            (
                uid,
                email,
                f" Name {uid} " if uid % 7 else "",
                f"2015-{1 + uid % 12:02d}-{1 + uid % 28:02d} {uid % 24:02d}:{uid % 60:02d}:07",
                uid % 3 != 0,
                uid % 1000,
                cred,
            )
        )
        if len(rows) >= 20_000:
            conn.executemany("INSERT INTO legacy_users VALUES (?,?,?,?,?,?,?)", rows)
            rows.clear()
    conn.executemany("INSERT INTO legacy_users VALUES (?,?,?,?,?,?,?)", rows)
    conn.commit()
    conn.close()


def write_spec(
    path: Path,
    src: Path,
    dst: str,
    *,
    name: str = "legacy->accounts",
    batch: int = 50,
    dupes: str = "merge",
    retries: int = 5,
    credentials: str | None = None,
    tokens: bool = False,
    notify: bool = False,
) -> Path:
    """A spec for :func:`make_source`; ``credentials`` is a policy (keep, wrap, reset) or None;
    ``notify`` adds an outbox (set ``AUTHMIGRATE_OUTBOX_KEY`` to :data:`OUTBOX_KEY`)."""
    extra = ""
    if credentials:
        extra += CREDENTIALS.format(policy=credentials)
    if tokens:
        # without an outbox nobody receives the tokens: a spec must say so (tokens.delivery)
        extra += TOKENS if notify else TOKENS + 'delivery = "none"\n'
    if notify:
        extra += NOTIFY
    path.write_text(
        SPEC.format(
            name=name, src=src, dst=dst, batch=batch, dupes=dupes, retries=retries, extra=extra
        ),
        encoding="utf-8",
    )
    return path


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m authmigrate ARGS`` in a subprocess, output captured."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def table_rows(
    url: str, table: str, key: str, *, exclude: tuple[str, ...] = ()
) -> list[tuple[Any, ...]]:
    """Every row of ``table`` sorted by ``key``, columns in name order, ``exclude`` left out."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            cols = sorted(c.name for c in t.c if c.name not in exclude)
            return [
                tuple(r)
                for r in conn.execute(sa.select(*[t.c[c] for c in cols]).order_by(t.c[key]))
            ]
    finally:
        engine.dispose()


def execute(url: str, *statements: str, params: dict[str, Any] | None = None) -> None:
    """Run SQL statements against ``url`` in one transaction (test setup and tampering)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for stmt in statements:
                conn.execute(sa.text(stmt), params or {})
    finally:
        engine.dispose()


def scalar(url: str, query: str, params: dict[str, Any] | None = None) -> Any:
    """The first column of the first row of ``query``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params or {}).scalar()
    finally:
        engine.dispose()
