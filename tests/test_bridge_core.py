"""The bridge's verification core on a real migrated target (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import argon2
import pytest

from authmigrate.bridge import Bridge
from authmigrate.errors import SpecError
from authmigrate.spec import load_spec_text
from tests.bridge_helpers import MALFORMED, make_shop, stored


@pytest.fixture
def shop(tmp_path: Path, target_url: str):
    return make_shop(tmp_path, target_url)


def test_right_password_upgrades_the_hash_to_argon2id_once(shop) -> None:
    bridge = Bridge(shop.spec)
    before = stored(shop.target_url)
    for email, key in (("alice@example.com", 1), ("bob@example.com", 2), ("carol@example.com", 3)):
        verdict = bridge.check(email, shop.passwords[email])
        assert verdict.ok and verdict.found and verdict.upgraded, (email, verdict)
        now = stored(shop.target_url)[key]
        assert now != before[key] and now.startswith("$argon2id$")
        assert argon2.PasswordHasher().verify(now, shop.passwords[email])  # any argon2 library
        assert verdict.credential == now
        assert verdict.account.key == key and verdict.account.fields["email"] == email
        again = bridge.check(email, shop.passwords[email])
        assert again.ok and not again.upgraded and again.credential == now
        assert stored(shop.target_url)[key] == now
    bridge.close()


@pytest.mark.parametrize(
    ("identifier", "password", "reason"),
    [
        ("alice@example.com", "wrong password", "bridge.wrong_password"),
        ("nobody@example.com", "password", "bridge.unknown_user"),
        ("dave@example.com", "password", "bridge.no_password"),
        ("erin@example.com", "password", "bridge.malformed_hash"),
        ("alice@example.com", "x" * 4097, "bridge.password_too_long"),
        ("", "password", "bridge.unknown_user"),
    ],
)
def test_a_failed_login_writes_nothing_and_takes_the_floor(
    shop, identifier: str, password: str, reason: str
) -> None:
    bridge = Bridge(shop.spec)
    before = stored(shop.target_url)
    started = time.perf_counter()
    verdict = bridge.check(identifier, password)
    assert time.perf_counter() - started >= bridge.floor.seconds
    assert not verdict.ok and verdict.reason == reason and verdict.credential is None
    assert stored(shop.target_url) == before
    assert stored(shop.target_url)[5] == MALFORMED
    bridge.close()


def test_lookup_by_email_as_the_migration_normalized_it_and_by_legacy_key(shop) -> None:
    bridge = Bridge(shop.spec)
    assert bridge.check("  ALICE@example.COM ", shop.passwords["alice@example.com"]).ok
    assert bridge.check("2", shop.passwords["bob@example.com"]).ok
    assert not bridge.check("2x", shop.passwords["bob@example.com"]).ok
    assert bridge.find("3").fields["email"] == "carol@example.com"
    assert bridge.find("nobody@example.com") is None
    bridge.close()


def test_concurrent_retries_of_one_login_upgrade_once_and_all_answer_ok(shop) -> None:
    bridge = Bridge(shop.spec)
    verdicts = []
    barrier = threading.Barrier(8)

    def login() -> None:
        barrier.wait()
        verdicts.append(bridge.check("alice@example.com", shop.passwords["alice@example.com"]))

    threads = [threading.Thread(target=login) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(verdicts) == 8 and all(v.ok for v in verdicts)
    assert sum(v.upgraded for v in verdicts) == 1
    final = stored(shop.target_url)[1]
    assert {v.credential for v in verdicts} == {final}
    bridge.close()


def test_verdict_and_account_reprs_hide_values(shop) -> None:
    bridge = Bridge(shop.spec)
    verdict = bridge.check("alice@example.com", shop.passwords["alice@example.com"])
    shown = repr(verdict) + repr(verdict.account)
    assert "alice" not in shown and "argon2" not in shown
    bridge.close()


def test_non_text_password_is_a_type_error(shop) -> None:
    bridge = Bridge(shop.spec)
    with pytest.raises(TypeError):
        bridge.check("alice@example.com", b"password")  # type: ignore[arg-type]
    bridge.close()


def test_a_lookup_field_not_in_the_spec_is_a_spec_error_naming_it(shop) -> None:
    text = shop.spec_path.read_text().replace(
        'lookup = ["email", "customer_id"]', 'lookup = ["email", "login"]'
    )
    with pytest.raises(SpecError, match=r"bridge\.lookup\[1\]"):
        Bridge(load_spec_text(text))


def test_bridge_section_refuses_a_secret_written_in_the_spec(shop) -> None:
    text = shop.spec_path.read_text().replace('"env:BRIDGE_SECRET"', '"hunter2"')
    with pytest.raises(SpecError, match=r"bridge\.secret"):
        load_spec_text(text)


def test_a_field_copying_the_legacy_hash_is_never_shown(tmp_path: Path) -> None:
    from authmigrate.pipeline import run_migration

    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/target.db")
    text = (
        shop.spec_path.read_text()
        .replace(
            'first_name = "first_name"', 'first_name = "first_name"\nold_hash = "password_hash"'
        )
        .replace(f"sqlite:///{tmp_path}/target.db", f"sqlite:///{tmp_path}/second.db")
    )
    spec = load_spec_text(text)
    run_migration(spec)
    bridge = Bridge(spec)
    account = bridge.find("alice@example.com")
    assert "old_hash" not in account.fields and account.fields["first_name"] == "Alice"
    verdict = bridge.check("alice@example.com", shop.passwords["alice@example.com"])
    assert verdict.ok and "old_hash" not in verdict.account.fields
    bridge.close()
