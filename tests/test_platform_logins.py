"""Each platform's login rule travels with its accounts, and presets take their platform's hashes.

tests/fixtures/platform_logins.json holds accounts hashed as each platform's sign-up hashes them
and, for several typed passwords, whether the platform's own login accepts them (made with PHP by
tests/fixtures/gen_platform_logins.php). Imported through the platform's preset, every account
must verify exactly what its platform's login accepted, kept or wrapped, and after the upgrade on
login.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import authmigrate
from authmigrate.credentials import identify, verify, verify_and_update, wrap
from authmigrate.errors import CredentialError, MalformedHashError
from authmigrate.pipeline.stages import prepare_credentials
from authmigrate.presets import get_preset
from authmigrate.spec import CredentialsSpec

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "platform_logins.json").read_text(encoding="utf-8")
)
KEYRING = {"prestashop": FIXTURE["ps_cookie_key"]}
PLATFORMS = ["woocommerce", "drupal7", "prestashop16", "opencart", "magento1", "shopware6"]


def preset_spec(name: str, **overrides: Any) -> CredentialsSpec:
    """The ``[credentials]`` section a spec with ``source.preset = name`` gets."""
    return CredentialsSpec(**{**get_preset(name).credentials, **overrides})


def imported(name: str, accounts: list[dict[str, Any]], **overrides: Any) -> list[str]:
    """Each account's credential as a run with the preset writes it."""
    spec = preset_spec(name, **overrides)
    items = [(a["hash"], a.get("salt")) for a in accounts]
    formats = [a.get("encoder") for a in accounts] if spec.scheme_column else None
    out = prepare_credentials(spec, items, keyring=KEYRING, workers=1, formats=formats)
    bad = [getattr(r, "code", "") for r in out if isinstance(r, Exception)]
    assert not bad, bad
    return [r.credential for r in out]


@pytest.mark.parametrize("policy", ["keep", "wrap"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_account_verifies_exactly_what_its_platforms_login_accepts(
    platform: str, policy: str
) -> None:
    accounts = FIXTURE[platform]
    credentials = imported(platform, accounts, policy=policy, profile="TEST")
    if policy == "wrap" and platform != "drupal7":  # weak schemes (not $S$, bcrypt) wrapped
        assert any("$wrap$" in c for c in credentials)
    for account, credential in zip(accounts, credentials, strict=True):
        for typed in account["accepted"]:
            assert verify(typed, credential, keyring=KEYRING), (platform, typed)
        for typed in account["refused"]:
            widened = platform == "opencart" and typed == escaped(account["set"])
            # OpenCart: the escaped text typed literally is the raw form of the stored hash;
            # "escaped, then raw" accepts it (docs/credentials.md says so)
            assert verify(typed, credential, keyring=KEYRING) is widened, (platform, typed)


def escaped(text: str) -> str:
    """PHP htmlspecialchars(ENT_COMPAT), written out here independently of the scheme code."""
    table = {"&": "&amp;", '"': "&quot;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(c, c) for c in text)


def test_wordpress_accepts_both_the_typed_and_the_trimmed_password() -> None:
    """The issue's case: set with spaces, WordPress hashed it trimmed and trims at login."""
    account = next(a for a in FIXTURE["woocommerce"] if a["set"] == "trail-space  ")
    (credential,) = imported("woocommerce", [account])
    assert verify("trail-space  ", credential) and verify("trail-space", credential)
    assert not verify("trail-spacex", credential)


def test_prestashop16_account_with_spaces_matches_the_login_that_trims() -> None:
    """PrestaShop 1.6 hashed ' lead-space' untrimmed but trims at login: nothing logs in."""
    account = next(a for a in FIXTURE["prestashop16"] if a["set"] == " lead-space")
    assert account["accepted"] == []
    (credential,) = imported("prestashop16", [account])
    for typed in (" lead-space", "lead-space"):
        assert not verify(typed, credential, keyring=KEYRING)


def test_the_rule_survives_the_upgrade_on_login() -> None:
    account = next(a for a in FIXTURE["drupal7"] if a["set"] == "\ttab and newline\n")
    (credential,) = imported("drupal7", [account], policy="wrap", profile="TEST")
    ok, new = verify_and_update("  tab and newline ", credential, profile="TEST")
    assert ok and new is not None
    assert new.startswith("$login-rule$trim=1$$argon2id$")
    assert verify("tab and newline", new) and verify("\ttab and newline\n", new)
    assert not verify("tab and newlinex", new)
    assert verify_and_update("tab and newline", new, profile="TEST") == (True, None)


def test_opencart_upgrade_keeps_the_form_that_matched() -> None:
    account = next(a for a in FIXTURE["opencart"] if a["set"] == "Tom&Jerry<3")
    (credential,) = imported("opencart", [account])
    ok, new = verify_and_update("Tom&Jerry<3", credential, profile="TEST")
    assert ok and new is not None and new.startswith("$login-rule$html=1$$argon2id$")
    assert verify("Tom&Jerry<3", new) and not verify("Tom&Jerry<4", new)


def test_standard_forms_stay_byte_for_byte_where_no_rule_applies() -> None:
    bcrypt_hash = next(a["hash"] for a in FIXTURE["magento1"] if a["hash"].startswith("$2y$"))
    assert imported("magento1", [{"hash": bcrypt_hash}]) == [bcrypt_hash]
    django_hash = "pbkdf2_sha256$1000000$c2FsdA$S8SmxQjJdKvxtg3UQ6d6RKuOIzKxFC6wNkAaxoFr8Wc="
    spec = preset_spec("django")
    (out,) = prepare_credentials(spec, [(django_hash, None)], workers=1)
    assert out.credential == django_hash
    wp = next(a["hash"] for a in FIXTURE["woocommerce"] if a["hash"].startswith("$P$"))
    assert imported("woocommerce", [{"hash": wp}]) == ["$login-rule$trim=1$" + wp]


@pytest.mark.parametrize(
    "bad",
    [
        "$login-rule$trim=1$",
        "$login-rule$$$P$BTHOgysfMZ1XGtM6XumaI6po6dW2BO/",
        "$login-rule$trim=2$$P$BTHOgysfMZ1XGtM6XumaI6po6dW2BO/",
        "$login-rule$shout=1$$P$BTHOgysfMZ1XGtM6XumaI6po6dW2BO/",
        "$login-rule$trim=1$$login-rule$trim=1$$P$BTHOgysfMZ1XGtM6XumaI6po6dW2BO/",
        "$login-rule$trim=1$not a hash",
    ],
)
def test_a_broken_rule_form_never_verifies(bad: str) -> None:
    assert not verify("password", bad)
    with pytest.raises(MalformedHashError):
        authmigrate.import_hash("auto", bad)


def test_wrapping_keeps_the_rule_outside_and_refuses_an_unknown_rule() -> None:
    from authmigrate.credentials.rules import with_rules

    credential = with_rules("$P$BTHOgysfMZ1XGtM6XumaI6po6dW2BO/", ["trim"])
    wrapped = wrap(credential, profile="TEST")
    assert wrapped.startswith("$login-rule$trim=1$$wrap$phpass$")
    assert identify(wrapped) == "login_rule"
    assert verify(" password ", wrapped) and not verify("passwor", wrapped)
    with pytest.raises(CredentialError):
        with_rules(credential, ["shout"])


def test_wrapped_rule_accounts_pass_verify_after_a_run(tmp_path: Path) -> None:
    """run with policy = "wrap", then `verify` (reconcile) accepts the rule-carrying wraps."""
    accounts = [a for a in FIXTURE["woocommerce"] if a["hash"].startswith("$P$")]
    source = tmp_path / "wp.db"
    con = sqlite3.connect(source)
    wordpress_tables(con, "wp_")
    for i, a in enumerate(accounts, start=1):
        con.execute(
            "INSERT INTO wp_users VALUES (?, ?, ?, ?, '2020-01-01 00:00:00', 'n', 0)",
            (i, f"u{i}", a["hash"], f"u{i}@example.com"),
        )
    con.commit()
    con.close()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "sqlite:///{source}"\npreset = "woocommerce"\n'
        f'[target]\nurl = "sqlite:///{tmp_path / "new.db"}"\ntable = "accounts"\n'
        '[credentials]\npolicy = "wrap"\nprofile = "TEST"\n'
    )
    for command in ("run", "verify"):
        done = subprocess.run(
            [sys.executable, "-m", "authmigrate", command, str(spec)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    stored = sqlite3.connect(tmp_path / "new.db").execute("SELECT email, password FROM accounts")
    by_email = dict(stored.fetchall())
    for i, a in enumerate(accounts, start=1):
        credential = by_email[f"u{i}@example.com"]
        assert credential.startswith("$login-rule$trim=1$$wrap$phpass$")
        for typed in a["accepted"]:
            assert verify(typed, credential)
        for typed in a["refused"]:
            assert not verify(typed, credential)


def test_a_rule_credential_imports_again_as_it_is() -> None:
    from authmigrate.credentials.rules import with_rules

    keyed = with_rules("$prestashop$k=prestashop$" + FIXTURE["prestashop16"][8]["hash"], ["trim"])
    assert authmigrate.import_hash("auto", keyed) == keyed
    assert verify(" plain ", keyed, keyring=KEYRING)


# -- unusable passwords ------------------------------------------------------------------------


def django_unusable() -> str:
    """Django's own ``make_password(None)``, in a child process: configuring Django here would
    leave this process's settings to whichever test module configured them first."""
    code = (
        "from django.conf import settings; settings.configure(); "
        "from django.contrib.auth.hashers import make_password; print(make_password(None))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("policy", ["keep", "wrap"])
def test_unusable_password_markers_become_resets(policy: str) -> None:
    marker = django_unusable()
    assert marker.startswith("!") and len(marker) == 41
    spec = preset_spec("django", policy=policy, profile="TEST")
    values = [marker, "!", "*"]
    out = prepare_credentials(spec, [(v, None) for v in values], workers=1)
    assert [(r.credential, r.segment, r.scheme) for r in out] == [(None, "reset", "unusable")] * 3
    for value in values:
        assert not verify("", value) and not verify(value, value)


def test_a_locked_crypt_hash_is_not_taken_for_a_marker() -> None:
    spec = preset_spec("django")
    (out,) = prepare_credentials(spec, [("!$6$saltsalt$abc", None)], workers=1)
    assert isinstance(out, CredentialError) and out.code == "credential.unrecognized"


def test_run_migrates_django_unusable_passwords_as_resets_and_exits_0(tmp_path: Path) -> None:
    source = tmp_path / "django.db"
    con = sqlite3.connect(source)
    con.execute(
        "CREATE TABLE auth_user (id INTEGER PRIMARY KEY, username TEXT, password TEXT, "
        "email TEXT, first_name TEXT, last_name TEXT, is_active INT, is_staff INT, "
        "date_joined TEXT, last_login TEXT)"
    )
    con.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT)")
    for i, pw in enumerate([django_unusable(), "!"], start=1):
        con.execute(
            "INSERT INTO auth_user VALUES (?, ?, ?, ?, '', '', 1, 0, '2024-01-01 10:00:00', NULL)",
            (i, f"u{i}", pw, f"u{i}@example.com"),
        )
    con.commit()
    con.close()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "sqlite:///{source}"\npreset = "django"\n'
        f'[target]\nurl = "sqlite:///{tmp_path / "new.db"}"\ntable = "accounts"\n'
    )
    for command in ("plan", "run"):
        done = subprocess.run(
            [sys.executable, "-m", "authmigrate", command, str(spec)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    con = sqlite3.connect(tmp_path / "new.db")
    rows = con.execute("SELECT password, password_reset_required FROM accounts").fetchall()
    assert rows == [(None, 1), (None, 1)]
    verified = subprocess.run(
        [sys.executable, "-m", "authmigrate", "verify", str(spec)], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- Magento, Shopware -------------------------------------------------------------------------


def test_magento2_hash_upgraded_by_customer_hash_upgrade_verifies() -> None:
    for account in FIXTURE["magento2_upgraded"]:
        assert account["hash"].endswith(":1:3")
        (credential,) = imported("magento2", [account])
        assert verify(account["set"], credential)
        assert not verify(account["set"] + "x", credential)


def test_shopware6_unknown_legacy_encoder_is_rejected_by_name() -> None:
    spec = preset_spec("shopware6")
    account = FIXTURE["shopware6"][0]
    (out,) = prepare_credentials(spec, [(account["hash"], None)], formats=["Crc32"], workers=1)
    assert isinstance(out, CredentialError) and out.code == "credential.unknown_format"
    assert account["hash"] not in str(out)


@pytest.mark.mariadb
def test_shopware6_legacy_encoder_chooses_each_rows_scheme(
    mariadb_url: str, tmp_path: Path
) -> None:
    from tests.mariadb_server import fresh_database
    from tests.test_presets import create_tables, insert

    url = fresh_database(mariadb_url, "sw6")
    engine = sa.create_engine(url)
    accounts = FIXTURE["shopware6"]
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        create_tables(conn, "shopware6", "")
        channel = uuid.uuid4().bytes
        insert(conn, "sales_channel", id=channel, type_id=uuid.uuid4().bytes, access_key="k")
        for i, a in enumerate(accounts):
            zero = b"\0" * 16
            insert(
                conn,
                "customer",
                id=uuid.uuid4().bytes,
                customer_group_id=zero,
                default_payment_method_id=zero,
                sales_channel_id=channel,
                language_id=zero,
                default_billing_address_id=zero,
                default_shipping_address_id=zero,
                customer_number=f"1000{i}",
                salutation_id=zero,
                first_name="A",
                last_name="B",
                email=f"c{i}@example.com",
                password=None,
                legacy_password=a["hash"],
                legacy_encoder=a["encoder"],
            )
    engine.dispose()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "{url}"\npreset = "shopware6"\n'
        f'[target]\nurl = "sqlite:///{tmp_path / "new.db"}"\ntable = "accounts"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", "run", str(spec)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    con = sqlite3.connect(tmp_path / "new.db")
    stored = dict(con.execute("SELECT email, password FROM accounts").fetchall())
    for i, account in enumerate(accounts):
        credential = stored[f"c{i}@example.com"]
        for typed in account["accepted"]:
            assert verify(typed, credential)
        for typed in account["refused"]:
            assert not verify(typed, credential)


# -- init and table names ----------------------------------------------------------------------

HOSTILE = "wp_ /*'; DROP TABLE x; --*/ "


def wordpress_tables(con: sqlite3.Connection, prefix: str) -> None:
    con.execute(
        f'CREATE TABLE "{prefix}users" (ID INTEGER PRIMARY KEY, user_login TEXT, user_pass TEXT, '
        "user_email TEXT, user_registered TEXT, display_name TEXT, user_status INT)"
    )
    con.execute(
        f'CREATE TABLE "{prefix}usermeta" (umeta_id INTEGER PRIMARY KEY, user_id INT, '
        "meta_key TEXT, meta_value TEXT)"
    )


def test_init_never_writes_a_hostile_table_name_into_the_spec(tmp_path: Path) -> None:
    source = tmp_path / "wp.db"
    con = sqlite3.connect(source)
    wordpress_tables(con, HOSTILE)
    con.execute("CREATE TABLE x (id INTEGER)")
    con.commit()
    con.close()
    out = tmp_path / "m.toml"
    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", "init", "--from", f"sqlite:///{source}", "-o", out],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    # no preset's query with that prefix: at most a home-grown spec naming the table as data
    assert "DROP TABLE" not in data["source"].get("query", "")
    assert "# preset: woocommerce" not in out.read_text(encoding="utf-8")
    con = sqlite3.connect(source)
    assert con.execute("SELECT name FROM sqlite_master WHERE name = 'x'").fetchone() == ("x",)


def test_init_quotes_the_table_names_it_writes(tmp_path: Path) -> None:
    source = tmp_path / "wp.db"
    con = sqlite3.connect(source)
    wordpress_tables(con, HOSTILE)
    wordpress_tables(con, "wp_")
    con.commit()
    con.close()
    out = tmp_path / "m.toml"
    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", "init", "--from", f"sqlite:///{source}", "-o", out],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text(encoding="utf-8")
    assert "DROP TABLE" not in text
    assert 'FROM "wp_users" u' in text and 'FROM "wp_usermeta" m' in text
