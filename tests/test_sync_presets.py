"""sync with the WooCommerce and Magento presets on MariaDB: Magento's ``updated_at`` as the
change column (set by the table's own ON UPDATE), WooCommerce (no change column on wp_users)
by fingerprints; password hashes made by the platforms themselves (the fixture accounts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import authmigrate
from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import run_migration
from authmigrate.presets.init import write_init_spec
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.test_presets import KEYRING, SHOPS, build_shop

pytestmark = pytest.mark.mariadb

CASES = {
    "woocommerce": ("wp7x_users", "ID", "user_email", "user_pass", None),
    "magento1": None,  # EAV: the hash lives in customer_entity_varchar (covered by magento2)
    "magento2": ("customer_entity", "entity_id", "email", "password_hash", "updated_at"),
}


@pytest.mark.parametrize("preset", ["woocommerce", "magento2"])
def test_sync_carries_password_and_email_changes_on_mariadb(
    preset: str, mariadb_url: str, tmp_path: Path
) -> None:
    shop = next(s for s in SHOPS if s.preset == preset)
    case = CASES[preset]
    assert case is not None
    table, key, email_col, hash_col, changed = case
    source = build_shop(mariadb_url, shop)
    spec_path = write_init_spec(source, f"sqlite:///{tmp_path}/t.db", None, tmp_path / "m.toml")
    text = spec_path.read_text(encoding="utf-8")
    assert (f'changed_column = "{changed}"' in text) == (changed is not None)
    spec = load_spec(spec_path)
    run_migration(spec)
    first = sync_migration(load_spec(spec_path))
    assert first.changes == 0

    a, b = shop.accounts[0], shop.accounts[1]
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        ids = list(
            conn.execute(sa.text(f"SELECT {key} FROM {table} ORDER BY {key} LIMIT 2")).scalars()
        )
        # account a takes b's password (a hash the platform made) and a new email
        conn.execute(
            sa.text(f"UPDATE {table} SET {hash_col} = :h, {email_col} = :e WHERE {key} = :k"),
            {"h": b["hash"], "e": "moved.a@example.com", "k": ids[0]},
        )
    engine.dispose()
    res = sync_migration(load_spec(spec_path))
    assert res.mode == ("changed" if changed else "full")
    assert res.updated == [ids[0]]
    t = sa.create_engine(f"sqlite:///{tmp_path}/t.db")
    with t.connect() as conn:
        email, credential = conn.execute(
            sa.text("SELECT email, password FROM accounts WHERE legacy_id = :k"), {"k": ids[0]}
        ).one()
    t.dispose()
    assert email == "moved.a@example.com"
    assert authmigrate.verify(b["password"], credential, keyring=KEYRING)
    assert not authmigrate.verify(a["password"], credential, keyring=KEYRING)
    assert verify_migration(load_spec(spec_path)).ok
