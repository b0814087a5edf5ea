"""sync's conflict rules, one test each, with real hashes: the legacy password change is made by
WordPress's own ``wp_hash_password`` (Debian's wordpress package through php-cli), the upgrade on
the new system by ``authmigrate.verify_and_update``."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

import authmigrate
from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import execute, make_source, scalar, write_spec
from tests.test_real_platforms import WORDPRESS, wordpress
from tests.test_sync import legacy

pytestmark = [
    pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed"),
    pytest.mark.skipif(not WORDPRESS.exists(), reason="Debian's wordpress package is missing"),
]

KEY = 1  # make_source gives user 1 a phpass hash of "pw-1"


def setup(tmp_path: Path, url: str, policy: str = "keep", times: bool = False) -> Path:
    src = tmp_path / "legacy.db"
    make_source(src, 30, seed=7, hashes=True)
    legacy(src, "ALTER TABLE legacy_users ADD COLUMN pw_changed TEXT")
    spec = write_spec(tmp_path / "m.toml", src, url, batch=10, credentials=policy)
    if times:
        spec.write_text(spec.read_text() + '\n[sync]\npassword_changed_at = "pw_changed"\n')
    run_migration(load_spec(spec))
    if times:
        execute(url, "ALTER TABLE accounts ADD COLUMN password_changed_at TIMESTAMP")
    return src


def stored(url: str) -> str:
    return str(scalar(url, f"SELECT password FROM accounts WHERE user_id = {KEY}"))


def change_legacy_password(src: Path, password: str, when: str | None = None) -> None:
    (new,) = wordpress({"hash": [password]})["hashes"]
    assert new.startswith("$P$")
    legacy(
        src,
        "UPDATE legacy_users SET password_hash = ?, pw_changed = ? WHERE user_id = ?",
        (new, when, KEY),
    )


def log_in_on_new_system(url: str, password: str, when: dt.datetime | None = None) -> None:
    ok, new = authmigrate.verify_and_update(password, stored(url))
    assert ok and new is not None and new.startswith("$argon2id$")
    execute(url, f"UPDATE accounts SET password = :p WHERE user_id = {KEY}", params={"p": new})
    if when is not None:
        execute(
            url,
            f"UPDATE accounts SET password_changed_at = :t WHERE user_id = {KEY}",
            params={"t": when},
        )


@pytest.mark.parametrize("policy", ["keep", "wrap"])
def test_legacy_password_change_replaces_the_imported_hash(
    tmp_path: Path, target_url: str, policy: str
) -> None:
    src = setup(tmp_path, target_url, policy)
    assert authmigrate.verify("pw-1", stored(target_url))
    change_legacy_password(src, "changed on the shop")
    res = sync_migration(load_spec(tmp_path / "m.toml"))
    assert res.updated == [KEY] and res.conflicts == []
    assert authmigrate.verify("changed on the shop", stored(target_url))
    assert not authmigrate.verify("pw-1", stored(target_url))
    assert verify_migration(load_spec(tmp_path / "m.toml")).ok


def test_verify_accepts_a_credential_upgraded_on_login(tmp_path: Path, target_url: str) -> None:
    setup(tmp_path, target_url)
    log_in_on_new_system(target_url, "pw-1")
    v = verify_migration(load_spec(tmp_path / "m.toml"))
    assert v.ok, v.as_dict()
    assert v.owned_by_new_system == 1


def test_upgraded_account_keeps_the_new_systems_password_and_the_conflict_is_listed(
    tmp_path: Path, target_url: str
) -> None:
    src = setup(tmp_path, target_url)
    log_in_on_new_system(target_url, "pw-1")
    upgraded = stored(target_url)
    change_legacy_password(src, "changed on the shop")
    res = sync_migration(load_spec(tmp_path / "m.toml"))
    assert [(c.key, c.winner) for c in res.conflicts] == [(KEY, "new-system")]
    assert stored(target_url) == upgraded
    assert verify_migration(load_spec(tmp_path / "m.toml")).ok
    again = sync_migration(load_spec(tmp_path / "m.toml"))
    assert again.changes == 0 and again.conflicts == []  # listed once, not on every pass


def test_newer_legacy_change_wins_when_both_sides_carry_a_time(
    tmp_path: Path, target_url: str
) -> None:
    src = setup(tmp_path, target_url, times=True)
    log_in_on_new_system(target_url, "pw-1", when=dt.datetime(2026, 1, 1, 10, 0))
    change_legacy_password(src, "changed on the shop", when="2026-01-02 09:00:00")
    res = sync_migration(load_spec(tmp_path / "m.toml"))
    assert [(c.key, c.winner) for c in res.conflicts] == [(KEY, "legacy")]
    assert authmigrate.verify("changed on the shop", stored(target_url))
    assert verify_migration(load_spec(tmp_path / "m.toml")).ok


def test_newer_new_system_change_wins_when_both_sides_carry_a_time(
    tmp_path: Path, target_url: str
) -> None:
    src = setup(tmp_path, target_url, times=True)
    log_in_on_new_system(target_url, "pw-1", when=dt.datetime(2026, 1, 3, 10, 0))
    change_legacy_password(src, "changed on the shop", when="2026-01-02 09:00:00")
    res = sync_migration(load_spec(tmp_path / "m.toml"))
    assert [(c.key, c.winner) for c in res.conflicts] == [(KEY, "new-system")]
    assert authmigrate.verify("pw-1", stored(target_url))
