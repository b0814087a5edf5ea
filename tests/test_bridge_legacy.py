"""Accounts not migrated yet: the bridge finds them in the legacy source through the spec and,
on a right password only, carries them (upgraded) into the target with run's bookkeeping, so a
later run, sync, verify and status see them right. Real sources and targets: SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import argon2
import pytest
import sqlalchemy as sa

from authmigrate.bridge import Bridge, legacy
from authmigrate.continuity.status import migration_status
from authmigrate.continuity.sync import sync_migration
from authmigrate.errors import LockError
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.sinks.sql import TargetLock
from authmigrate.spec import Spec, load_spec_text
from tests.bridge_helpers import vector

SPEC = """
[source]
url = "{src}"
table = "customers"
key = "customer_id"

[target]
url = "{dst}"
table = "accounts"

[fields]
customer_id = "customer_id"
email = {{ from = "email", normalize = "email" }}
first_name = "first_name"

[credentials]
column = "password_hash"
scheme = "auto"
policy = "keep"
profile = "TEST"

[bridge]
secret = "env:BRIDGE_SECRET"
lookup = ["email", "customer_id"]
min_seconds = 0.01
"""

FRANK_PW = "planted-frank-Pw-81c"


def urls(kind: str, tmp: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite:///{tmp}/legacy.db", f"sqlite:///{tmp}/target.db"
    server = request.getfixturevalue("pg_server")
    return server.create_database(), server.create_database()


def add_customers(url: str, rows: list[tuple[Any, ...]]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS customers (customer_id INTEGER PRIMARY KEY, "
                "email TEXT, password_hash TEXT, first_name TEXT)"
            )
        )
        c.execute(
            sa.text("INSERT INTO customers VALUES (:k, :e, :p, :f)"),
            [{"k": k, "e": e, "p": p, "f": f} for k, e, p, f in rows],
        )
    engine.dispose()


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the target (accounts and bookkeeping)."""
    engine = sa.create_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as c:
        for name in sorted(sa.inspect(engine).get_table_names()):
            rows = c.execute(sa.text(f'SELECT * FROM "{name}"')).all()
            out[name] = sorted((tuple(map(repr, r)) for r in rows), key=repr)
    engine.dispose()
    return out


def accounts(url: str) -> dict[int, tuple[str, str | None]]:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT customer_id, email, password FROM accounts")).all()
    engine.dispose()
    assert len(rows) == len({r[0] for r in rows}), "an account is doubled"
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Spec, str, str]:
    """Three customers migrated; two more added to the source afterwards (not migrated)."""
    src, dst = urls(request.param, tmp_path, request)
    phpass, phpass_pw, _ = vector("php.json", "phpass")
    magento, _, _ = vector("php.json", "magento2")
    add_customers(
        src,
        [
            (1, "alice@example.com", phpass, "Alice"),
            (2, "bob@example.com", magento, "Bob"),
            (3, "carol@example.com", None, "Carol"),
        ],
    )
    spec = load_spec_text(SPEC.format(src=src, dst=dst))
    assert run_migration(spec).migrated == 3
    from passlib.hash import phpass as libpass_phpass

    add_customers(
        src,
        [
            (60, "Frank@Example.com", libpass_phpass.using(rounds=8).hash(FRANK_PW), "Frank"),
            (61, "gina@example.com", phpass, "Gina"),
        ],
    )
    return spec, dst, phpass_pw


def test_unmigrated_account_logs_in_then_run_adds_no_duplicate_and_verify_is_clean(
    shop: tuple[Spec, str, str],
) -> None:
    spec, dst, _ = shop
    bridge = Bridge(spec)
    assert 60 not in accounts(dst)
    verdict = bridge.check(" FRANK@example.com", FRANK_PW)
    assert verdict.ok and verdict.found and verdict.upgraded, verdict
    assert verdict.account.key == 60 and verdict.account.fields["first_name"] == "Frank"
    email, stored = accounts(dst)[60]
    assert email == "frank@example.com"  # the spec's normalization, as run writes it
    assert stored == verdict.credential and stored.startswith("$argon2id$")
    assert argon2.PasswordHasher().verify(stored, FRANK_PW)
    again = bridge.check("frank@example.com", FRANK_PW)  # now from the target
    assert again.ok and not again.upgraded and again.credential == stored

    result = run_migration(spec)  # the bridge still running: its carry left no lock behind
    bridge.close()
    assert result.this_run["migrated"] == 1  # only gina: frank was carried by the bridge
    assert (result.migrated, result.rejected, result.merged) == (5, 0, 0)
    after = accounts(dst)
    assert sorted(after) == [1, 2, 3, 60, 61]
    assert after[60][1] == stored  # run did not overwrite the upgrade
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
    assert checked.owned_by_new_system == 1 and checked.migrated == 5
    synced = sync_migration(spec)
    assert synced.changes == 0, synced.as_dict()
    assert accounts(dst)[60][1] == stored
    status = migration_status(spec, record=False)
    assert status.credentials.upgraded == 1


def test_wrong_password_or_unknown_user_writes_nothing(shop: tuple[Spec, str, str]) -> None:
    spec, dst, _ = shop
    bridge = Bridge(spec)
    before = dump(dst)
    for who, pw, reason in [
        ("frank@example.com", "not frank's password", "bridge.wrong_password"),
        ("61", "not gina's password", "bridge.wrong_password"),
        ("nobody@example.com", FRANK_PW, "bridge.unknown_user"),
    ]:
        verdict = bridge.check(who, pw)
        assert not verdict.ok and verdict.reason == reason, (who, verdict)
    assert bridge.find("gina@example.com").key == 61  # a lookup reads only
    assert dump(dst) == before
    bridge.close()
    assert verify_migration(spec).ok is False  # two source rows are not accounted for yet


def test_lookup_by_legacy_key_carries_the_account(shop: tuple[Spec, str, str]) -> None:
    spec, dst, phpass_pw = shop
    bridge = Bridge(spec)
    verdict = bridge.check("61", phpass_pw)
    assert verdict.ok and verdict.upgraded and verdict.account.fields["email"] == "gina@example.com"
    assert accounts(dst)[61][1] == verdict.credential
    bridge.close()
    assert run_migration(spec).this_run["migrated"] == 1
    assert verify_migration(spec).ok


def test_retried_logins_of_an_unmigrated_account_carry_it_once(
    shop: tuple[Spec, str, str],
) -> None:
    spec, dst, _ = shop
    bridge = Bridge(spec)
    barrier = threading.Barrier(6)
    verdicts = []

    def login() -> None:
        barrier.wait()
        verdicts.append(bridge.check("frank@example.com", FRANK_PW))

    threads = [threading.Thread(target=login) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(verdicts) == 6 and all(v.ok for v in verdicts)
    assert sum(v.upgraded for v in verdicts) == 1
    assert {v.credential for v in verdicts} == {accounts(dst)[60][1]}
    bridge.close()
    assert run_migration(spec).this_run["migrated"] == 1
    assert verify_migration(spec).ok


def test_while_a_run_holds_the_lock_a_carry_is_refused_and_writes_nothing(
    shop: tuple[Spec, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, dst, _ = shop
    monkeypatch.setattr(legacy, "LOCK_WAIT", 0.3)
    bridge = Bridge(spec)
    before = dump(dst)
    held = TargetLock(bridge.legacy.m.target.engine, spec.migration_name)
    held.acquire()
    try:
        with pytest.raises(LockError):
            bridge.check("frank@example.com", FRANK_PW)
    finally:
        held.release()
    assert dump(dst) == before
    assert bridge.check("frank@example.com", FRANK_PW).ok
    bridge.close()


def test_legacy_lookup_off_finds_only_migrated_accounts(shop: tuple[Spec, str, str]) -> None:
    spec, _, _ = shop
    text = SPEC.format(src=spec.source.url, dst=spec.target.url) + "legacy_lookup = false\n"
    bridge = Bridge(load_spec_text(text))
    assert bridge.legacy is None
    assert bridge.check("frank@example.com", FRANK_PW).reason == "bridge.unknown_user"
    bridge.close()


def test_over_http_a_held_lock_is_503_with_retry_after_and_nothing_written(
    shop: tuple[Spec, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.bridge_helpers import call, running_bridge

    spec, dst, _ = shop
    monkeypatch.setattr(legacy, "LOCK_WAIT", 0.3)
    monkeypatch.setenv("BRIDGE_SECRET", "unused-here-0123456789")
    before = dump(dst)
    with running_bridge(spec) as url:
        held = TargetLock(sa.create_engine(dst), spec.migration_name)
        held.acquire()
        try:
            status, body, headers = call(
                url, "POST", "/kratos", {"identifier": "frank@example.com", "password": FRANK_PW}
            )
        finally:
            held.release()
        assert (status, body, headers.get("retry-after")) == (503, {"error": "unavailable"}, "1")
        assert dump(dst) == before
        status, body, _ = call(
            url, "POST", "/kratos", {"identifier": "frank@example.com", "password": FRANK_PW}
        )
        assert (status, body) == (200, {"status": "password_match"})


def test_rollback_removes_a_carried_account_with_the_rest(shop: tuple[Spec, str, str]) -> None:
    from authmigrate.rollback import rollback

    spec, dst, _ = shop
    bridge = Bridge(spec)
    assert bridge.check("frank@example.com", FRANK_PW).ok
    bridge.close()
    assert 60 in accounts(dst)
    rollback(spec)
    assert accounts(dst) == {}  # the carried account went with the migrated ones
