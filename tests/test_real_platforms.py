"""End to end with the real platforms' own code: their accounts log in after `init` + `run`
with exactly what the platform's own login accepted, and nothing else.

- WordPress: Debian's ``wordpress`` package (6.1) hashes with its own ``wp_hash_password``
  (phpass), and WordPress 6.8's ``wp_hash_password`` (tests/real_platforms/wp68_pluggable.php,
  loaded as a plugin's pluggable functions are) makes ``$wp$`` hashes; WordPress's own
  ``wp_authenticate`` + ``wp_check_password`` say which typed passwords log in
  (tests/real_platforms/wordpress.php). The accounts live in a MariaDB ``wp_users``.
- Django: a project's ``auth_user`` filled by Django's ``create_user`` under six hashers, plus
  unusable passwords; Django's ``authenticate`` says which typed passwords log in.

Passwords have leading and trailing spaces, non-ASCII letters, more than 72 bytes, HTML
characters; the typed variants add and drop the spaces.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.credentials import verify

HERE = Path(__file__).parent / "real_platforms"
WORDPRESS = Path("/usr/share/wordpress/wp-includes/pluggable.php")

PASSWORDS = [
    " leading space",
    "trailing spaces  ",
    "\tboth\n",
    "inner  spaces stay",
    "pässwörd ☃ ünïcode",
    "über-long " + "ß" * 40 + " tail ",  # well over 72 bytes
    'Tom&Jerry<3 "q"',
    "plain",
]


def typed_variants(password: str) -> list[str]:
    """What a user may type: as set, trimmed, re-padded, and near misses."""
    core = password.strip(" \t\n\r\0\x0b")
    variants = [password, core, f"  {core} ", f"\n{core}\t", core + "x", core[:-1], core.upper()]
    return list(dict.fromkeys(variants))


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *map(str, args)], capture_output=True, text=True
    )


def wordpress(request: dict[str, Any], *, wp68: bool = False) -> dict[str, Any]:
    env = {"PATH": "/usr/bin:/bin"}
    if wp68:
        env["WP68_PLUGGABLE"] = str(HERE / "wp68_pluggable.php")
    done = subprocess.run(
        ["php", str(HERE / "wordpress.php")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.mariadb
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed")
@pytest.mark.skipif(not WORDPRESS.exists(), reason="Debian's wordpress package is not installed")
def test_wordpress_accounts_log_in_with_what_wordpress_accepted(
    mariadb_url: str, tmp_path: Path
) -> None:
    from tests.mariadb_server import fresh_database
    from tests.test_presets import create_tables, load_woocommerce

    phpass = wordpress({"hash": PASSWORDS})["hashes"]
    bcrypt = wordpress({"hash": [*PASSWORDS, "x" * 4097]}, wp68=True)["hashes"]
    assert all(h.startswith("$P$") for h in phpass) and bcrypt[-1] == "*"
    hashes = phpass + bcrypt
    accounts = [
        {"email": f"c{i}@example.com", "hash": h, "first": "A", "last": "B"}
        for i, h in enumerate(hashes)
    ]
    typed = [typed_variants(p) for p in PASSWORDS] * 2 + [["x" * 4097, ""]]
    cases = [[t, h] for h, ts in zip(hashes, typed, strict=True) for t in ts]
    accepted = iter(wordpress({"login": cases}, wp68=True)["accepted"])
    real = wordpress({"login": cases[: sum(map(len, typed[: len(PASSWORDS)]))]})["accepted"]
    expected = [[next(accepted) for _ in ts] for ts in typed]
    # WordPress 6.1's own check agrees with 6.8's on the phpass accounts
    assert sum(expected[: len(PASSWORDS)], []) == real
    # the platform's rule as the issue states it: set with spaces, typed with or without them
    assert expected[1][:2] == [True, True] and expected[len(PASSWORDS) + 1][:2] == [True, True]

    url = fresh_database(mariadb_url, "wp")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        create_tables(conn, "woocommerce", "wp_")
        load_woocommerce(conn, "wp_", accounts)
    engine.dispose()

    spec = tmp_path / "migration.toml"
    target = f"sqlite:///{tmp_path / 'accounts.db'}"
    done = cli("init", "--from", url, "--to", target, "-o", spec)
    assert done.returncode == 0, done.stderr
    assert "# preset: woocommerce" in spec.read_text(encoding="utf-8")
    done = cli("run", spec)
    assert done.returncode == 0, done.stdout + done.stderr
    stored = dict(
        sqlite3.connect(tmp_path / "accounts.db")
        .execute("SELECT email, password FROM accounts")
        .fetchall()
    )
    for i, (ts, answers) in enumerate(zip(typed, expected, strict=True)):
        credential = stored[f"c{i}@example.com"]
        if hashes[i] == "*":
            assert credential is None  # wp_hash_password's "*": a reset, as WordPress refuses all
            continue
        for t, ok in zip(ts, answers, strict=True):
            assert verify(t, credential) is ok, (i, t, ok)


DJANGO_HASHERS = [
    "PBKDF2PasswordHasher",
    "PBKDF2SHA1PasswordHasher",
    "Argon2PasswordHasher",
    "BCryptSHA256PasswordHasher",
    "ScryptPasswordHasher",
    "MD5PasswordHasher",
]


@pytest.mark.slow
def test_django_accounts_log_in_with_what_django_accepted(tmp_path: Path) -> None:
    pytest.importorskip("django")
    accounts: list[list[Any]] = []
    for i, password in enumerate(PASSWORDS):
        accounts.append([f"user{i}", password, DJANGO_HASHERS[i % len(DJANGO_HASHERS)]])
    # the two PBKDF2 hashers get the over-72-byte and non-ASCII passwords as well
    accounts.append(["user_long", PASSWORDS[5], "PBKDF2SHA1PasswordHasher"])
    accounts.append(["user_utf8", PASSWORDS[4], "MD5PasswordHasher"])
    accounts += [["nopass1", None, "PBKDF2PasswordHasher"], ["nopass2", None, "MD5PasswordHasher"]]
    # Django's PBKDF2 runs a million rounds per check: four typed variants each, the
    # unusable accounts get the empty password and the marker's own first character too
    typed = {
        name: typed_variants(pw)[:3] + [pw.strip() + "x"] if pw else ["", "!", " x "]
        for name, pw, _ in accounts
    }
    db = tmp_path / "django.db"
    done = subprocess.run(
        [sys.executable, str(HERE / "django_accounts.py"), str(db)],
        input=json.dumps({"accounts": accounts, "typed": typed}),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["stored"]["nopass1"].startswith("!") and len(answer["stored"]["nopass1"]) == 41
    assert answer["accepted"]["user1"][:2] == [True, False]  # Django never trims

    spec = tmp_path / "migration.toml"
    target = f"sqlite:///{tmp_path / 'accounts.db'}"
    done = cli("init", "--from", f"sqlite:///{db}", "--to", target, "-o", spec)
    assert done.returncode == 0, done.stderr
    assert "# preset: django" in spec.read_text(encoding="utf-8")
    done = cli("run", spec)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = sqlite3.connect(tmp_path / "accounts.db").execute(
        "SELECT username, password, password_reset_required FROM accounts"
    )
    stored = {name: (pw, reset) for name, pw, reset in rows}
    assert len(stored) == len(accounts)
    for name, _, _ in accounts:
        credential, reset = stored[name]
        if name.startswith("nopass"):
            assert (credential, reset) == (None, 1)
            continue
        assert credential == answer["stored"][name]  # Django's own form, byte for byte
        for t, ok in zip(typed[name], answer["accepted"][name], strict=True):
            assert verify(t, credential) is ok, (name, t, ok)
