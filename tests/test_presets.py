"""Shop presets end to end: real MariaDB shops in, PostgreSQL accounts out, passwords still work.

For each platform the customer tables are created from the platform's install DDL
(tests/fixtures/ddl), filled with accounts hashed by the platform's own code (PHP for the PHP
shops, Django for Saleor: tests/fixtures/*_accounts.json), then ``init`` must detect the platform
and table prefix and write a spec, ``run`` must migrate every customer into PostgreSQL, and
every migrated credential must verify the customer's password and refuse a wrong one.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import authmigrate
from authmigrate.cli import init_command
from authmigrate.pipeline import run_migration
from authmigrate.presets import (
    PRESETS,
    apply_preset,
    detect,
    get_preset,
    list_presets,
    write_init_spec,
)
from authmigrate.spec import load_spec
from tests.mariadb_server import fresh_database

pytestmark = pytest.mark.mariadb

FIXTURES = Path(__file__).parent / "fixtures"
SHOP = json.loads((FIXTURES / "shop_accounts.json").read_text(encoding="utf-8"))
SALEOR = json.loads((FIXTURES / "saleor_accounts.json").read_text(encoding="utf-8"))
KEYRING = {"prestashop": SHOP["ps_cookie_key"]}
WRONG = "not-the-password"


def create_tables(conn: sa.Connection, platform: str, prefix: str) -> None:
    """Run tests/fixtures/ddl/<platform>.sql with PREFIX_ replaced by ``prefix``."""
    text = (FIXTURES / "ddl" / f"{platform}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    for statement in body.split(";\n"):
        if statement.strip():
            conn.exec_driver_sql(statement.replace("PREFIX_", prefix))


def insert(conn: sa.Connection, table: str, **row: Any) -> int:
    """INSERT one row with bound values; returns the new auto-increment id."""
    cols = ", ".join(f"`{c}`" for c in row)
    binds = ", ".join(f":{c}" for c in row)
    return int(
        conn.execute(sa.text(f"INSERT INTO `{table}` ({cols}) VALUES ({binds})"), row).lastrowid
    )


WHEN = datetime(2019, 5, 17, 10, 30)


def load_woocommerce(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    for i, a in enumerate(accounts):
        # the first account keeps WordPress' zero default for user_registered
        registered = "0000-00-00 00:00:00" if i == 0 else WHEN
        uid = insert(
            conn,
            f"{p}users",
            user_login=f"user{i}",
            user_pass=a["hash"],
            user_email=a["email"],
            user_registered=registered,
            display_name=f"{a['first']} {a['last']}",
        )
        for key, value in (
            ("first_name", a["first"]),
            ("last_name", a["last"]),
            ("billing_phone", "+49 30 1234"),
            (f"{p}capabilities", 'a:1:{s:8:"customer";b:1;}'),
        ):
            insert(conn, f"{p}usermeta", user_id=uid, meta_key=key, meta_value=value)


def load_magento1(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    insert(
        conn,
        f"{p}eav_entity_type",
        entity_type_id=1,
        entity_type_code="customer",
        entity_model="customer/customer",
        entity_table="customer/entity",
    )
    attrs = {"firstname": 5, "lastname": 7, "password_hash": 12}
    for code, attr_id in attrs.items():
        insert(
            conn,
            f"{p}eav_attribute",
            attribute_id=attr_id,
            entity_type_id=1,
            attribute_code=code,
            backend_type="varchar",
        )
    for a in accounts:
        eid = insert(
            conn,
            f"{p}customer_entity",
            entity_type_id=1,
            attribute_set_id=0,
            website_id=1,
            email=a["email"],
            group_id=1,
            store_id=1,
            created_at=WHEN,
            updated_at=WHEN,
            is_active=1,
        )
        for code, value in (
            ("firstname", a["first"]),
            ("lastname", a["last"]),
            ("password_hash", a["hash"]),
        ):
            insert(
                conn,
                f"{p}customer_entity_varchar",
                entity_type_id=1,
                attribute_id=attrs[code],
                entity_id=eid,
                value=value,
            )


def load_magento2(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    insert(conn, f"{p}store_website", website_id=1, code="base", name="Main Website")
    insert(conn, f"{p}store_website", website_id=2, code="b2b", name="B2B Website")
    for a in accounts:
        insert(
            conn,
            f"{p}customer_entity",
            website_id=1,
            email=a["email"],
            group_id=1,
            store_id=1,
            created_at=WHEN,
            is_active=1,
            firstname=a["first"],
            lastname=a["last"],
            password_hash=a["hash"],
        )
    # the same person with an account of its own in the second website (per-website scope)
    first = accounts[0]
    insert(
        conn,
        f"{p}customer_entity",
        website_id=2,
        email=first["email"],
        group_id=2,
        store_id=2,
        created_at=WHEN,
        is_active=1,
        firstname=first["first"],
        lastname=first["last"],
        password_hash=first["hash"],
    )


def load_prestashop(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    insert(
        conn, f"{p}configuration", name="PS_SHOP_NAME", value="Test", date_add=WHEN, date_upd=WHEN
    )
    for a in accounts:
        insert(
            conn,
            f"{p}customer",
            id_gender=1,
            firstname=a["first"],
            lastname=a["last"],
            email=a["email"],
            passwd=a["hash"],
            secure_key=uuid.uuid4().hex,
            active=1,
            date_add=WHEN,
            date_upd=WHEN,
        )
    # a guest checkout is not an account: the preset does not read it
    insert(
        conn,
        f"{p}customer",
        id_gender=0,
        firstname="Guest",
        lastname="Buyer",
        email="guest@example.com",
        passwd=accounts[0]["hash"],
        secure_key="x",
        is_guest=1,
        active=1,
        date_add=WHEN,
        date_upd=WHEN,
    )


def load_opencart(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    insert(conn, f"{p}customer_group", customer_group_id=1, approval=0, sort_order=1)
    legacy = "salt" in accounts[0]
    for i, a in enumerate(accounts):
        row = dict(
            customer_group_id=1,
            store_id=0,
            language_id=1,
            firstname=a["first"],
            lastname=a["last"],
            email=a["email"],
            telephone="555",
            password=a["hash"],
            custom_field="",
            ip="127.0.0.1",
            status=1,
            safe=0,
            token="",
            code="",
            date_added="0000-00-00 00:00:00" if i == 1 else WHEN,
        )
        if legacy:
            row.update(salt=a["salt"], fax="")
        insert(conn, f"{p}customer", **row)


def load_shopware6(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    channel = uuid.uuid4().bytes
    insert(
        conn,
        f"{p}sales_channel",
        id=channel,
        type_id=uuid.uuid4().bytes,
        access_key="k",
        created_at=WHEN,
    )
    for i, a in enumerate(accounts):
        native = a["hash"].startswith("$2")
        insert(
            conn,
            f"{p}customer",
            id=uuid.uuid4().bytes,
            customer_group_id=b"\0" * 16,
            default_payment_method_id=b"\0" * 16,
            sales_channel_id=channel,
            language_id=b"\0" * 16,
            default_billing_address_id=b"\0" * 16,
            default_shipping_address_id=b"\0" * 16,
            customer_number=f"1000{i}",
            salutation_id=b"\0" * 16,
            first_name=a["first"],
            last_name=a["last"],
            email=a["email"],
            password=a["hash"] if native else None,
            legacy_password=None if native else a["hash"],
            legacy_encoder=None if native else "Sha256",
            created_at=WHEN,
        )


def load_drupal7(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    insert(conn, f"{p}users", uid=0, name="", mail="", created=0, status=0, **{"pass": ""})
    for i, a in enumerate(accounts, start=1):
        insert(
            conn,
            f"{p}users",
            uid=i,
            name=f"{a['first']} {a['last']}",
            mail=a["email"],
            created=int(WHEN.timestamp()),
            status=1,
            init=a["email"],
            **{"pass": a["hash"]},
        )
        insert(conn, f"{p}users_roles", uid=i, rid=2)


def load_joomla(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    for i, a in enumerate(accounts):
        uid = insert(
            conn,
            f"{p}users",
            name=f"{a['first']} {a['last']}",
            username=f"user{i}",
            email=a["email"],
            password=a["hash"],
            block=0,
            registerDate=WHEN,
            activation="",
            params="{}",
        )
        insert(conn, f"{p}user_usergroup_map", user_id=uid, group_id=2)


def load_saleor(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    insert(conn, f"{p}django_migrations", app="account", name="0001_initial", applied=WHEN)
    for a in accounts:
        insert(
            conn,
            f"{p}account_user",
            is_superuser=0,
            email=a["email"],
            is_staff=0,
            is_active=1,
            password=a["hash"],
            date_joined=WHEN,
            first_name=a["first"],
            last_name=a["last"],
            is_confirmed=1,
            language_code="en",
            updated_at=WHEN,
            uuid=uuid.uuid4().hex,
            jwt_token_key="k" * 12,
            search_document="",
        )


def load_spree(conn: sa.Connection, p: str, accounts: list[dict[str, Any]]) -> None:
    insert(conn, f"{p}roles", name="user")
    for a in accounts:
        insert(
            conn,
            f"{p}users",
            email=a["email"],
            encrypted_password=a["hash"],
            created_at=WHEN,
            updated_at=WHEN,
        )


@dataclass(frozen=True)
class Shop:
    """One platform fixture: its DDL, prefix, accounts and how to load them."""

    preset: str
    ddl: str
    prefix: str
    load: Callable[[sa.Connection, str, list[dict[str, Any]]], None]
    accounts: list[dict[str, Any]]
    extra: int = 0
    """Accounts the loader adds beyond ``accounts`` (Magento 2's second website)."""


SHOPS = [
    Shop("woocommerce", "woocommerce", "wp7x_", load_woocommerce, SHOP["woocommerce"]),
    Shop("magento1", "magento1", "", load_magento1, SHOP["magento1"]),
    Shop("magento2", "magento2", "", load_magento2, SHOP["magento2"], extra=1),
    Shop("prestashop16", "prestashop16", "ps_", load_prestashop, SHOP["prestashop16"]),
    Shop("prestashop", "prestashop", "shop_", load_prestashop, SHOP["prestashop"]),
    Shop("opencart", "opencart", "oc_", load_opencart, SHOP["opencart"]),
    Shop("opencart4", "opencart4", "oc_", load_opencart, SHOP["opencart4"]),
    Shop("shopware6", "shopware6", "", load_shopware6, SHOP["shopware6"]),
    Shop("drupal7", "drupal7", "", load_drupal7, SHOP["drupal7"]),
    Shop("joomla", "joomla", "x7k2a_", load_joomla, SHOP["joomla"]),
    Shop("saleor", "saleor", "", load_saleor, SALEOR["saleor"]),
    Shop("spree", "spree", "spree_", load_spree, SHOP["spree"]),
]


SHOP_PARAMS = [pytest.param(s, id=s.preset) for s in SHOPS]


def build_shop(server_url: str, shop: Shop) -> str:
    """A fresh MariaDB database holding ``shop``'s tables and accounts; returns its URL."""
    url = fresh_database(server_url, shop.preset)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        create_tables(conn, shop.ddl, shop.prefix)
        shop.load(conn, shop.prefix, shop.accounts)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def _cookie_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PS_COOKIE_KEY", SHOP["ps_cookie_key"])


@pytest.mark.postgres
@pytest.mark.parametrize("shop", SHOP_PARAMS)
def test_init_detects_shop_and_every_migrated_password_verifies(
    shop: Shop,
    mariadb_url: str,
    pg_url: str,
    tmp_path: Path,
) -> None:
    source = build_shop(mariadb_url, shop)

    spec_path = write_init_spec(source, pg_url, None, tmp_path / "migration.toml")
    text = spec_path.read_text(encoding="utf-8")
    assert f"# preset: {shop.preset} prefix={json.dumps(shop.prefix)}" in text
    assert SHOP["ps_cookie_key"] not in text
    spec = load_spec(spec_path)

    result = run_migration(spec)
    expected = len(shop.accounts) + shop.extra
    assert (result.migrated, result.rejected) == (expected, 0), result.by_reason

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM accounts"))]
    engine.dispose()
    assert len(rows) == expected
    by_email: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_email.setdefault(row["email"], []).append(row)
    for account in shop.accounts:
        email = account["email"].lower()
        for row in by_email[email]:
            credential = row["password"]
            assert authmigrate.verify(account["password"], credential, keyring=KEYRING), email
            assert not authmigrate.verify(WRONG, credential, keyring=KEYRING), email
            if "first_name" in row:
                assert (row["first_name"], row["last_name"]) == (account["first"], account["last"])


def test_zero_date_is_read_as_null(mariadb_url: str, pg_url: str, tmp_path: Path) -> None:
    """WordPress' 0000-00-00 user_registered arrives as NULL, the other dates intact."""
    shop = SHOPS[0]
    source = build_shop(mariadb_url, shop)
    spec = load_spec(write_init_spec(source, pg_url, None, tmp_path / "m.toml"))
    run_migration(spec)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text("SELECT email, created_at FROM accounts")).all())
    engine.dispose()
    first, *others = [a["email"].lower() for a in shop.accounts]
    assert got[first] is None
    assert all(got[e] is not None and got[e].year == WHEN.year for e in others)


def test_latin1_names_arrive_as_unicode(mariadb_url: str, pg_url: str, tmp_path: Path) -> None:
    """Names stored in WordPress' latin1 tables arrive as the same Unicode text."""
    source = build_shop(mariadb_url, SHOPS[0])
    engine = sa.create_engine(source)
    with engine.connect() as conn:
        charset = conn.execute(
            sa.text(
                "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'wp7x_usermeta' "
                "AND COLUMN_NAME = 'meta_value'"
            )
        ).scalar()
    engine.dispose()
    assert charset == "latin1"
    spec = load_spec(write_init_spec(source, pg_url, None, tmp_path / "m.toml"))
    run_migration(spec)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT last_name FROM accounts")).scalars())
    engine.dispose()
    assert {"Müller", "O'Brien"} <= names


def test_invalid_date_is_null_or_reject_not_crash(
    mariadb_url: str,
    pg_url: str,
    tmp_path: Path,
) -> None:
    """A date MariaDB kept under ALLOW_INVALID_DATES (Feb 30) does not stop the run."""
    source = build_shop(mariadb_url, SHOPS[0])
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        conn.exec_driver_sql(
            "UPDATE wp7x_users SET user_registered = '2019-02-30 10:00:00' WHERE ID = 2"
        )
    engine.dispose()
    spec = load_spec(write_init_spec(source, pg_url, None, tmp_path / "m.toml"))
    result = run_migration(spec)
    assert result.migrated + result.rejected == len(SHOPS[0].accounts)
    assert result.rejected <= 1


def test_detect_finds_prefix_and_version(mariadb_url: str) -> None:
    """PrestaShop 1.6 and 1.7 share table names: the passwd width tells them apart."""
    assert detect(build_shop(mariadb_url, SHOPS[3])) == ("prestashop16", "ps_")
    assert detect(build_shop(mariadb_url, SHOPS[4])) == ("prestashop", "shop_")
    assert detect(build_shop(mariadb_url, SHOPS[9])) == ("joomla", "x7k2a_")


def test_init_refuses_empty_database_and_bad_url(
    mariadb_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = fresh_database(mariadb_url, "empty")
    out = tmp_path / "m.toml"
    assert init_command(empty, None, None, out) == 2
    err = capsys.readouterr().err
    assert "no known shop platform" in err and "no table with an email column" in err
    assert init_command("not a url", None, None, out) == 2
    assert init_command("mysql+pymysql://root:s3cret@127.0.0.1:1/x", None, None, out) == 2
    err = capsys.readouterr().err
    assert "s3cret" not in err
    assert init_command(empty, None, "no-such-shop", out) == 2
    assert "no-such-shop" in capsys.readouterr().err
    assert not out.exists()


def test_init_with_named_preset_writes_a_spec(
    mariadb_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = build_shop(mariadb_url, SHOPS[5])
    out = tmp_path / "m.toml"
    assert init_command(source, None, "opencart", out) == 0
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    assert data["credentials"]["salt_column"] == "salt"
    assert "FROM `oc_customer` c" in data["source"]["query"]  # quoted for MariaDB
    assert "next: authmigrate plan" in capsys.readouterr().err


def test_apply_preset_keeps_the_users_own_keys() -> None:
    raw = {
        "source": {
            "url": "mysql+pymysql://u@h/shop",
            "preset": "wordpress",
            "table_prefix": "blog_",
        },
        "target": {"url": "sqlite://", "table": "accounts"},
        "fields": {"email": {"from": "user_email"}, "phone": False, "nick": "user_nicename"},
        "credentials": {"policy": "wrap"},
    }
    data = apply_preset(raw)
    assert "FROM blog_users u" in data["source"]["query"]
    assert "charset=utf8mb4" in data["source"]["url"]
    assert data["fields"]["email"] == {"from": "user_email"}
    assert "phone" not in data["fields"] and data["fields"]["nick"] == "user_nicename"
    assert data["credentials"] == {
        "column": "user_pass",
        "scheme": ["auto", "digest"],
        "params": {"algorithm": "md5", "encoding": "hex"},
        "login_rules": ["trim"],
        "policy": "wrap",
    }
    assert "table_prefix" not in data["source"]
    assert raw["source"]["table_prefix"] == "blog_"  # the input is not modified


def test_every_preset_is_listed_and_never_holds_a_secret() -> None:
    names = [name for name, _ in list_presets()]
    assert names == [p.name for p in PRESETS]
    for preset in PRESETS:
        assert get_preset(preset.name) is preset
        for ref in preset.credentials.get("keys", {}).values():
            assert ref.startswith("env:")


def test_init_on_a_home_grown_table_writes_a_spec_that_runs(tmp_path: Path) -> None:
    """No platform recognised: init guesses the accounts table, and the spec migrates it."""
    import sqlite3

    legacy = tmp_path / "legacy.db"
    conn = sqlite3.connect(legacy)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute(
        "CREATE TABLE members (member_id INTEGER PRIMARY KEY, Email TEXT, nick TEXT, "
        "pwd TEXT, created TEXT)"
    )
    from passlib.hash import md5_crypt

    conn.execute(
        "INSERT INTO members VALUES (1, 'Ann@Example.com', 'ann', ?, '2020-01-01')",
        (md5_crypt.hash("password"),),
    )
    conn.commit()
    conn.close()
    out = tmp_path / "m.toml"
    assert init_command(f"sqlite:///{legacy}", f"sqlite:///{tmp_path}/new.db", None, out) == 0
    text = out.read_text()
    assert 'table = "members"' in text and 'column = "pwd"' in text
    result = run_migration(load_spec(out))
    assert (result.migrated, result.rejected) == (1, 0)
    engine = sa.create_engine(f"sqlite:///{tmp_path}/new.db")
    with engine.connect() as c:
        email, cred = c.execute(sa.text("SELECT email, password FROM accounts")).one()
    engine.dispose()
    assert email == "ann@example.com"
    assert authmigrate.verify("password", cred)


def test_init_recognises_bare_hex_digests_and_text_dates(tmp_path: Path) -> None:
    """A home-grown table of unsalted md5 hex and ISO date strings: init names the digest
    scheme and types the date column, so the first run needs no edit."""
    import hashlib
    import sqlite3

    legacy = tmp_path / "home.db"
    conn = sqlite3.connect(legacy)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, mail TEXT, pw TEXT, joined TEXT)")
    conn.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        [
            (
                i,
                f"u{i}@example.com",
                hashlib.md5(f"p{i}".encode()).hexdigest(),
                "2021-03-04 05:06:07",
            )
            for i in range(1, 30)
        ],
    )
    conn.commit()
    conn.close()
    out = tmp_path / "m.toml"
    assert init_command(f"sqlite:///{legacy}", f"sqlite:///{tmp_path}/new.db", None, out) == 0
    spec = load_spec(out)
    assert spec.credentials is not None and spec.credentials.scheme == "digest"
    assert spec.fields["joined"].type == "datetime"
    result = run_migration(spec)
    assert (result.migrated, result.rejected) == (29, 0)
    engine = sa.create_engine(f"sqlite:///{tmp_path}/new.db")
    with engine.connect() as c:
        cred = c.execute(sa.text("SELECT password FROM accounts WHERE id = 7")).scalar_one()
    engine.dispose()
    assert authmigrate.verify("p7", cred) and not authmigrate.verify("p8", cred)
