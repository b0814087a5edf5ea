"""``authmigrate cutover`` (sync until quiet, verify, checklist) and ``authmigrate sunset``."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

import authmigrate
from authmigrate.continuity.sunset import sunset
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import OUTBOX_KEY, cli, execute, make_source, scalar, write_spec
from tests.test_sync import legacy

LATER = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=120)


def setup(tmp_path: Path, url: str, **kw: object) -> tuple[Path, Path]:
    src = tmp_path / "legacy.db"
    make_source(src, 90, seed=7, hashes=True)
    spec = write_spec(tmp_path / "m.toml", src, url, batch=25, credentials="keep", **kw)  # type: ignore[arg-type]
    run_migration(load_spec(spec))
    return src, spec


def legacy_schemes(src: Path, url: str) -> dict[str, int]:
    """Count the migrated accounts' source hashes by their prefix, independently of our code."""
    conn = sqlite3.connect(src)
    hashes = dict(conn.execute("SELECT user_id, password_hash FROM legacy_users").fetchall())
    conn.close()
    migrated = [int(k) for k in scalar_list(url, "SELECT user_id FROM accounts")]
    names = {"$1$": "md5_crypt", "$P$": "phpass", "$2b$": "bcrypt"}
    out: dict[str, int] = {}
    for k in migrated:
        if hashes[k] is None:
            continue  # no hash: migrated as reset required
        prefix = next(p for p in names if hashes[k].startswith(p))
        out[names[prefix]] = out.get(names[prefix], 0) + 1
    return out


def scalar_list(url: str, query: str) -> list[object]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.text(query)).scalars())
    engine.dispose()
    return rows


def test_cutover_syncs_until_quiet_verifies_and_prints_the_checklist(
    tmp_path: Path, target_url: str
) -> None:
    src, spec = setup(tmp_path, target_url)
    legacy(
        src,
        "INSERT INTO legacy_users VALUES (0, 'zero@example.com', 'Z', '2020-01-01 00:00:00',"
        " 1, 1, NULL)",
    )
    legacy(src, "UPDATE legacy_users SET email = 'moved@example.com' WHERE user_id = 2")
    out = cli("cutover", str(spec), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "source in step:     yes" in out.stdout
    assert "verify:             ok" in out.stdout
    assert "cutover ready" in out.stdout
    assert "point the login at the new store" in out.stdout
    assert scalar(target_url, "SELECT email FROM accounts WHERE user_id = 2") == "moved@example.com"
    expected = legacy_schemes(src, target_url)
    expected_line = ", ".join(
        f"{s} {n:,}" for s, n in sorted(expected.items(), key=lambda x: -x[1])
    )
    line = next(x for x in out.stdout.splitlines() if "on a legacy hash" in x)
    for scheme, n in expected.items():
        assert f"{scheme} {n:,}" in line, (line, expected_line)


def test_cutover_exits_1_when_verify_finds_problems(tmp_path: Path, target_url: str) -> None:
    _, spec = setup(tmp_path, target_url)
    execute(target_url, "UPDATE accounts SET email = 'tampered@example.com' WHERE user_id = 3")
    out = cli("cutover", str(spec), cwd=tmp_path)
    assert out.returncode == 1
    assert "cutover NOT ready" in out.stdout


def test_sunset_is_a_dry_run_by_default_and_skips_upgraded_accounts(
    tmp_path: Path, target_url: str
) -> None:
    _, spec = setup(tmp_path, target_url)
    s = load_spec(spec)
    assert sunset(s).keys == []  # nobody is past 90 days yet
    stored = scalar(target_url, "SELECT password FROM accounts WHERE user_id = 1")
    ok, new = authmigrate.verify_and_update("pw-1", stored)
    assert ok and new
    execute(target_url, "UPDATE accounts SET password = :p WHERE user_id = 1", params={"p": new})
    dry = sunset(s, now=LATER)
    total = scalar(target_url, "SELECT count(*) FROM accounts")
    assert 1 not in dry.keys and len(dry.keys) == total - 1
    assert scalar(target_url, "SELECT count(*) FROM accounts WHERE password IS NULL") == 0
    done = sunset(s, apply=True, now=LATER)
    assert sorted(done.keys) == sorted(dry.keys)
    assert scalar(target_url, "SELECT count(*) FROM accounts WHERE password IS NULL") == total - 1
    assert authmigrate.verify(
        "pw-1", str(scalar(target_url, "SELECT password FROM accounts WHERE user_id = 1"))
    )
    assert verify_migration(s).ok  # the resets are changes after the migration, not mismatches
    assert sunset(s, apply=True, now=LATER).keys == []


def test_sunset_reset_notifies_each_account_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    url = f"sqlite:///{tmp_path}/t.db"
    _, spec = setup(tmp_path, url, tokens=True, notify=True)
    spec.write_text(spec.read_text() + "\n[sunset]\nafter_days = 30\nnotify = true\n")
    s = load_spec(spec)
    before = scalar(url, "SELECT count(*) FROM authmigrate_outbox WHERE segment = 'reset'")
    done = sunset(s, apply=True, now=LATER)
    assert done.notified == len(done.keys) > 0
    after = scalar(url, "SELECT count(*) FROM authmigrate_outbox WHERE segment = 'reset'")
    assert after - before == len(done.keys)
    # a second call finds nobody left on a legacy hash, and queues nothing more
    assert sunset(s, apply=True, now=LATER).notified == 0
    execute(url, "UPDATE accounts SET password = 'x' WHERE user_id = 2")  # tampered back
    assert sunset(s, apply=True, now=LATER).notified == 0  # the reset message was queued once
    again = scalar(url, "SELECT count(*) FROM authmigrate_outbox WHERE segment = 'reset'")
    assert again == after


def test_sunset_disable_sets_the_disabled_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    _, spec = setup(tmp_path, url)
    spec.write_text(spec.read_text() + '\n[sunset]\naction = "disable"\n')
    done = sunset(load_spec(spec), apply=True, now=LATER)
    n = scalar(url, "SELECT count(*) FROM accounts WHERE disabled")
    assert n == len(done.keys) > 0
    out = cli("sunset", str(spec), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "dry run: would disable 0 accounts" in out.stdout
