"""Rollback keeps each account paired with its outbox row: per batch, accounts and their
messages go in one transaction, the batch record last. A rollback killed at any moment, then a
``run``, leaves every account of a notify segment with its message; verify checks the pairing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.sinks.sql import unpack_keys
from authmigrate.spec import load_spec
from tests.helpers_verify import OUTBOX_KEY, cli, execute, make_source, scalar, write_spec


def _accounts_without_message(url: str, name: str) -> list[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            accounts = {
                int(k)
                for (k,) in conn.execute(
                    sa.text("SELECT user_id FROM accounts WHERE origin = 'legacy'")
                )
            }
            queued = {
                int(k)
                for (k,) in conn.execute(
                    sa.text("SELECT source_key FROM authmigrate_outbox WHERE migration = :m"),
                    {"m": name},
                )
            }
            written: set[int] = set()
            for (blob,) in conn.execute(sa.text("SELECT written_keys FROM authmigrate_batches")):
                written.update(unpack_keys(blob))
    finally:
        engine.dispose()
    assert accounts == written  # every account left is recorded by a batch left
    return sorted(accounts - queued)


def _busy_count(engine: sa.Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM authmigrate_batches")).scalar())
    except sa.exc.OperationalError:
        return -1


@pytest.mark.slow
def test_rollback_killed_midway_then_run_leaves_every_account_with_its_message(
    tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    src = tmp_path / "legacy.db"
    make_source(src, 1500)
    spec_path = write_spec(
        tmp_path / "m.toml",
        src,
        target_url,
        batch=10,
        credentials="reset",
        tokens=True,
        notify=True,
    )
    spec = load_spec(spec_path)
    name = spec.migration_name
    first = run_migration(spec)
    batches = scalar(target_url, "SELECT count(*) FROM authmigrate_batches")
    assert batches == 150
    assert _accounts_without_message(target_url, name) == []
    outbox_before = scalar(target_url, "SELECT count(*) FROM authmigrate_outbox")
    assert outbox_before == first.migrated + first.merged  # reset for all, merged for dupes

    # kill -9 the rollback as soon as it has removed anything at all
    engine = sa.create_engine(target_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "rollback", str(spec_path), "--yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**os.environ, "AUTHMIGRATE_OUTBOX_KEY": OUTBOX_KEY},
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        assert time.monotonic() < deadline
        outbox = -1
        try:
            with engine.connect() as conn:
                outbox = int(
                    conn.execute(sa.text("SELECT count(*) FROM authmigrate_outbox")).scalar()
                )
        except sa.exc.OperationalError:
            pass
        if 0 <= outbox < outbox_before:
            break
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the rollback ended before the kill"
    left = _busy_count(engine)
    engine.dispose()
    assert 0 < left < batches
    # the batches left keep their accounts AND their messages
    assert _accounts_without_message(target_url, name) == []

    again = cli("run", str(spec_path), cwd=tmp_path, env={"AUTHMIGRATE_OUTBOX_KEY": OUTBOX_KEY})
    assert again.returncode in (0, 1), again.stderr
    assert scalar(target_url, "SELECT count(*) FROM authmigrate_batches") == batches
    assert _accounts_without_message(target_url, name) == []
    assert scalar(target_url, "SELECT count(*) FROM authmigrate_outbox") == outbox_before
    verified = cli(
        "verify", str(spec_path), cwd=tmp_path, env={"AUTHMIGRATE_OUTBOX_KEY": OUTBOX_KEY}
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_verify_fails_when_an_account_of_a_notify_segment_has_no_outbox_row(
    tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    src = tmp_path / "legacy.db"
    make_source(src, 200)
    spec_path = write_spec(
        tmp_path / "m.toml",
        src,
        target_url,
        batch=50,
        credentials="reset",
        tokens=True,
        notify=True,
    )
    run_migration(load_spec(spec_path))
    ok = cli("verify", str(spec_path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "outbox rows checked" in ok.stdout
    # a sent message still counts: its row stays with status sent
    execute(target_url, "UPDATE authmigrate_outbox SET status = 'sent' WHERE source_key = '3'")
    assert cli("verify", str(spec_path), cwd=tmp_path).returncode == 0
    execute(target_url, "DELETE FROM authmigrate_outbox WHERE source_key IN ('5', '77')")
    bad = cli("verify", str(spec_path), cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "accounts without their message in the outbox: 2" in bad.stdout
    assert "verify found problems" in bad.stdout
