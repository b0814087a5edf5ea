"""Secrets in database URLs (the password, ``?password=``, ``sslpassword``, tokens, keys) are
masked wherever a URL is shown or stored: error messages, ``authmigrate_runs.error``, and the
spec ``init`` writes (which names environment variables instead)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.cli import init_command
from authmigrate.db import safe_url, scrub
from authmigrate.errors import SourceError
from authmigrate.pipeline import run_migration
from authmigrate.spec import load_spec, load_spec_text
from tests.helpers_verify import cli, execute, scalar

SECRET = "Hunter2-Sw0rdfish"
OTHER = "Zebra9-Tangerine"


@pytest.mark.parametrize(
    "param",
    [
        "password",
        "PASSWORD",
        "passwd",
        "pwd",
        "secret",
        "token",
        "key",
        "sslpassword",
        "api_key",
        "access_token",
        "client_secret",
    ],
)
def test_secret_looking_url_parameters_are_masked(param: str) -> None:
    url = f"postgresql+psycopg://app:{OTHER}@db.example:5432/shop?{param}={SECRET}&sslmode=require"
    shown = safe_url(url)
    assert SECRET not in shown and OTHER not in shown
    assert "sslmode=require" in shown and "db.example" in shown and f"{param}=***" in shown


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_target_error_hides_the_query_password(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    execute(f"sqlite:///{src}", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    port = _closed_port()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "users"
key = "id"
[target]
url = "postgresql+psycopg://app@127.0.0.1:{port}/auth?password={SECRET}&sslpassword={OTHER}"
table = "accounts"
[fields]
id = "id"
email = "email"
""",
        encoding="utf-8",
    )
    for command in ("plan", "run", "verify", "rollback"):
        extra = ["--yes"] if command == "rollback" else []
        done = cli(command, str(spec), *extra, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        for secret in (SECRET, OTHER):
            assert secret not in done.stdout + done.stderr, command
        assert "password=***" in done.stderr, (command, done.stderr)


def test_run_error_stored_in_the_target_hides_the_source_password(
    tmp_path: Path, pg_url: str
) -> None:
    execute(
        pg_url,
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT)",
        *[f"INSERT INTO legacy_users VALUES ({i}, 'u{i}@example.com')" for i in range(1, 41)],
    )
    source_url = f"{pg_url}?password={SECRET}"  # trust authentication ignores it
    target = f"sqlite:///{tmp_path / 't.db'}"
    spec = load_spec_text(
        f"""
name = "secrets"
[source]
url = "{source_url}"
table = "legacy_users"
key = "user_id"
[target]
url = "{target}"
table = "accounts"
[fields]
user_id = "user_id"
email = "email"
[run]
batch_size = 10
retries = 0
"""
    )

    def drop_the_source_table(done: int, total: int) -> None:
        if done == 10:  # after the first batch: the next read fails
            execute(pg_url, "DROP TABLE legacy_users")

    with pytest.raises(SourceError) as raised:
        run_migration(spec, progress=drop_the_source_table)
    assert SECRET not in str(raised.value)
    stored = scalar(target, "SELECT error FROM authmigrate_runs")
    assert stored and "legacy_users" in stored
    assert SECRET not in stored and "password=***" in stored


def test_scrub_masks_a_secret_a_driver_echoes(tmp_path: Path) -> None:
    safe_url(f"mysql+pymysql://root:{SECRET}@127.0.0.1/shop")
    assert scrub(f"Access denied for 'root' using password '{SECRET}'") == (
        "Access denied for 'root' using password '***'"
    )


def test_init_writes_env_references_instead_of_the_passwords(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute(
        pg_url,
        "CREATE TABLE members (member_id INTEGER PRIMARY KEY, email TEXT, pwd TEXT)",
        "INSERT INTO members VALUES (1, 'ann@example.com', NULL)",
    )
    parsed = sa.make_url(pg_url)
    from_url = parsed.set(password=SECRET).render_as_string(hide_password=False)
    to_url = f"sqlite:///{tmp_path / 'new.db'}?token={OTHER}"
    out = tmp_path / "m.toml"
    assert init_command(from_url, f"sqlite:///{tmp_path / 'new.db'}", None, out) == 0
    text = out.read_text(encoding="utf-8")
    assert SECRET not in text
    assert 'password = "env:AUTHMIGRATE_SOURCE_PASSWORD"' in text
    with pytest.raises(Exception, match="AUTHMIGRATE_SOURCE_PASSWORD is not set"):
        load_spec(out)
    monkeypatch.setenv("AUTHMIGRATE_SOURCE_PASSWORD", SECRET)
    spec = load_spec(out)
    assert sa.make_url(spec.source.url).password == SECRET
    assert SECRET not in spec.migration_name
    assert run_migration(spec).migrated == 1

    out2 = tmp_path / "m2.toml"
    assert init_command(from_url, to_url, None, out2) == 0
    text2 = out2.read_text(encoding="utf-8")
    assert OTHER not in text2 and SECRET not in text2
    assert 'url = "env:AUTHMIGRATE_TARGET_URL"' in text2


def test_spec_password_must_be_an_env_reference() -> None:
    with pytest.raises(Exception, match=r"^source\.password: must be an env:NAME reference"):
        load_spec_text(
            '[source]\nurl = "postgresql+psycopg://u@h/db"\npassword = "plain"\nkey = "id"\n'
            'table = "u"\n[target]\nurl = "sqlite:///y.db"\ntable = "n"\n[fields]\nid = "id"\n'
        )
