"""sync against a source that keeps changing, on SQLite and PostgreSQL: ``sync --follow`` while
a thread inserts, changes emails and password hashes and deletes at a steady rate; kill -9 of
sync at random moments; a change column that lies; a transaction that commits late."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.pg_server import PgServer

SPEC = """
name = "live"

[source]
url = "{src}"
table = "legacy_users"
key = "user_id"

[target]
url = "{dst}"
table = "accounts"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email", required = true }}
name = "name"

[credentials]
column = "password_hash"
policy = "keep"

[run]
batch_size = 40

[sync]
interval = "1s"
{sync}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(source URL, target URL) on the same kind of server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/legacy.db", f"sqlite:///{tmp_path}/target.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database("src"), server.create_database("dst")


def md5_crypt(password: str) -> str:
    from passlib.hash import md5_crypt as scheme

    return str(scheme.hash(password))


HASHES = [md5_crypt(f"pw-{i}") for i in range(8)]  # real hashes, made once (md5-crypt is slow)


def make_legacy(url: str, users: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT, name TEXT,"
                " password_hash TEXT, updated_at TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO legacy_users VALUES (:k, :e, :n, :h, CURRENT_TIMESTAMP)"),
            [
                {"k": k, "e": f"user{k}@example.com", "n": f"N{k}", "h": HASHES[k % 8]}
                for k in range(2, 2 * users + 2, 2)  # even keys: odd ones arrive later, below
            ],
        )
    engine.dispose()


def spec_file(folder: Path, src: str, dst: str, sync: str = "") -> Path:
    path = folder / "m.toml"
    path.write_text(SPEC.format(src=src, dst=dst, sync=sync), encoding="utf-8")
    return path


class Churn(threading.Thread):
    """Changes the legacy table at a steady rate, as a live shop does, until stopped."""

    def __init__(self, url: str, seed: int, rate: float = 40.0) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(url)
        self.rng = random.Random(seed)
        self.rate = rate
        self.halt = threading.Event()
        self.done: dict[str, int] = {"insert": 0, "email": 0, "password": 0, "delete": 0}

    def run(self) -> None:
        while not self.halt.is_set():
            with self.engine.begin() as conn:
                self.one(conn)
            time.sleep(1 / self.rate)
        self.engine.dispose()

    def one(self, conn: sa.Connection) -> None:
        keys = list(conn.execute(sa.text("SELECT user_id FROM legacy_users")).scalars())
        roll = self.rng.random()
        if roll < 0.3 or not keys:
            k = self.rng.randrange(1, 100_000) | 1  # odd: new, below the checkpoint mostly
            if k in keys:
                return
            conn.execute(
                sa.text("INSERT INTO legacy_users VALUES (:k, :e, 'new', :h, CURRENT_TIMESTAMP)"),
                {"k": k, "e": f"new{k}@example.com", "h": HASHES[k % 8]},
            )
            self.done["insert"] += 1
        elif roll < 0.55:
            k = self.rng.choice(keys)
            conn.execute(
                sa.text(
                    "UPDATE legacy_users SET email = :e, updated_at = CURRENT_TIMESTAMP"
                    " WHERE user_id = :k"
                ),
                {"k": k, "e": f"moved{k}.{self.rng.randrange(10**6)}@example.com"},
            )
            self.done["email"] += 1
        elif roll < 0.8:
            k = self.rng.choice(keys)
            conn.execute(
                sa.text(
                    "UPDATE legacy_users SET password_hash = :h, updated_at = CURRENT_TIMESTAMP"
                    " WHERE user_id = :k"
                ),
                {"k": k, "h": HASHES[self.rng.randrange(8)]},
            )
            self.done["password"] += 1
        else:
            conn.execute(
                sa.text("DELETE FROM legacy_users WHERE user_id = :k"),
                {"k": self.rng.choice(keys)},
            )
            self.done["delete"] += 1


def assert_in_step(src: str, dst: str, spec: Path) -> None:
    """verify is clean and every legacy row is in the target as it is now: 0 lost, 0 doubled;
    every key the source no longer has is disabled."""
    res = verify_migration(load_spec(spec))
    assert res.ok, res.as_dict()
    s, t = sa.create_engine(src), sa.create_engine(dst)
    with s.connect() as a, t.connect() as b:
        legacy = {
            k: (e.lower(), h)
            for k, e, h in a.execute(
                sa.text("SELECT user_id, email, password_hash FROM legacy_users")
            )
        }
        target = {
            k: (e, h, bool(d))
            for k, e, h, d in b.execute(
                sa.text("SELECT user_id, email, password, disabled FROM accounts")
            )
        }
        rejected = set(b.execute(sa.text("SELECT source_key FROM authmigrate_rejects")).scalars())
    s.dispose()
    t.dispose()
    for k, (email, _) in legacy.items():
        if str(k) in rejected:
            continue
        assert k in target, f"lost: {k}"
        assert target[k][0] == email and not target[k][2], k
    assert len(legacy) == res.migrated + res.rejected + res.merged
    gone = set(target) - set(legacy)
    assert all(target[k][2] for k in gone)  # deleted in the source: disabled, not lost


def test_sync_follow_keeps_up_with_a_changing_source(tmp_path: Path, urls: tuple[str, str]) -> None:
    src, dst = urls
    make_legacy(src, 300)
    spec = spec_file(tmp_path, src, dst)
    run_migration(load_spec(spec))
    churn = Churn(src, seed=5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "sync", str(spec), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    churn.start()
    time.sleep(6)
    churn.halt.set()
    churn.join()
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.count("sync live:") >= 2  # several passes ran while the source changed
    assert min(churn.done.values()) > 0
    sync_migration(load_spec(spec))
    assert_in_step(src, dst, spec)


def test_sync_interrupted_by_sigint_exits_130(tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path}/legacy.db", f"sqlite:///{tmp_path}/target.db"
    make_legacy(src, 50)
    spec = spec_file(tmp_path, src, dst)
    run_migration(load_spec(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "sync", str(spec), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "sync live:" in out


@pytest.mark.slow
def test_kill_9_of_sync_at_random_moments_loses_nothing(
    tmp_path: Path, urls: tuple[str, str]
) -> None:
    src, dst = urls
    make_legacy(src, 400)
    spec = spec_file(tmp_path, src, dst)
    run_migration(load_spec(spec))
    churn = Churn(src, seed=9, rate=80)
    churn.start()
    rng = random.Random(13)
    kills = 0
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    try:
        while kills < 11:
            proc = subprocess.Popen(
                [sys.executable, "-m", "authmigrate", "sync", str(spec), "--follow", "--full"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            time.sleep(rng.uniform(0.8, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    finally:
        churn.halt.set()
        churn.join()
    sync_migration(load_spec(spec))
    assert_in_step(src, dst, spec)


def _touch(url: str, sql: str, params: dict[str, Any]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)
    engine.dispose()


def test_a_change_column_that_lies_is_caught_by_full(tmp_path: Path, urls: tuple[str, str]) -> None:
    src, dst = urls
    make_legacy(src, 30)
    spec = spec_file(tmp_path, src, dst, 'changed_column = "updated_at"')
    run_migration(load_spec(spec))
    assert sync_migration(load_spec(spec)).mode == "full"  # the first pass sets the watermark
    _touch(
        src,
        "UPDATE legacy_users SET email = 'quiet@example.com', updated_at = '2001-01-01'"
        " WHERE user_id = 4",
        {},
    )
    res = sync_migration(load_spec(spec))
    assert res.mode == "changed" and res.updated == []
    assert not verify_migration(load_spec(spec)).ok  # the target is out of step: verify says so
    res = sync_migration(load_spec(spec), full=True)
    assert res.updated == [4]
    assert verify_migration(load_spec(spec)).ok


def test_a_transaction_committing_late_inside_the_overlap_is_caught(
    tmp_path: Path, urls: tuple[str, str]
) -> None:
    src, dst = urls
    make_legacy(src, 30)
    spec = spec_file(tmp_path, src, dst, 'changed_column = "updated_at"\noverlap = "5m"')
    run_migration(load_spec(spec))
    sync_migration(load_spec(spec))
    # a transaction stamped its row two minutes ago and commits only now, after that sync
    # read the source's clock: its updated_at is below the watermark, inside the overlap
    engine = sa.create_engine(src)
    with engine.connect() as conn:
        now = conn.execute(
            sa.text(
                "SELECT strftime('%Y-%m-%d %H:%M:%S', 'now', '-2 minutes')"
                if src.startswith("sqlite")
                else "SELECT LOCALTIMESTAMP - interval '2 minutes'"
            )
        ).scalar()
    engine.dispose()
    _touch(
        src,
        "UPDATE legacy_users SET email = 'late@example.com', updated_at = :t WHERE user_id = 6",
        {"t": now},
    )
    res = sync_migration(load_spec(spec))
    assert res.mode == "changed"
    assert res.updated == [6]
    assert verify_migration(load_spec(spec)).ok
