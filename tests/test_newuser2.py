"""What a second new user met following README and docs on a WooCommerce shop, a Magento 2
shop and a home-grown table (session of 2026-12-01): each test is one finding."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``authmigrate`` as a user runs it in a pipe (no terminal, no COLUMNS)."""
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**base, **(env or {})},
    )


def _members(path: Path, n: int = 5) -> None:
    """A home-grown accounts table: id, email, an md5 hex password."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT NOT NULL, pw TEXT)")
    db.executemany(
        "INSERT INTO members VALUES (?, ?, ?)",
        [(i, f"m{i}@shop.example", f"{i:032x}") for i in range(1, n + 1)],
    )
    db.commit()
    db.close()


def test_init_with_output_in_another_folder_writes_paths_the_spec_can_read(
    tmp_path: Path,
) -> None:
    """`init -o specs/m.toml` run beside the database: the spec reads relative paths from its
    own folder, so the paths typed on the command line are written re-based on it (the spec
    `init` wrote used to name specs/data/shop.db, and `plan` found no such file)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "specs").mkdir()
    _members(tmp_path / "data" / "shop.db")
    made = run_cli(
        "init",
        "--from",
        "sqlite:///data/shop.db",
        "--to",
        "sqlite:///auth.db",
        "-o",
        "specs/m.toml",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "specs" / "m.toml").read_text(encoding="utf-8")
    assert 'url = "sqlite:///../data/shop.db"' in text
    assert 'url = "sqlite:///../auth.db"' in text
    done = run_cli("run", "specs/m.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "auth.db").is_file()
    assert not (tmp_path / "specs" / "auth.db").exists()
    count = sqlite3.connect(tmp_path / "auth.db").execute("SELECT count(*) FROM accounts")
    assert count.fetchone()[0] == 5


def test_init_in_the_spec_folder_keeps_the_paths_as_typed(tmp_path: Path) -> None:
    _members(tmp_path / "shop.db")
    made = run_cli("init", "--from", "sqlite:///shop.db", "--to", "sqlite:///auth.db", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "migration.toml").read_text(encoding="utf-8")
    assert 'url = "sqlite:///shop.db"' in text and 'url = "sqlite:///auth.db"' in text


URL_SPEC = """\
[source]
url = "{url}"
table = "members"
key = "id"

[target]
url = "sqlite:///auth.db"
table = "accounts"

[fields]
id = "id"
"""


def test_a_url_for_a_driver_authmigrate_lacks_says_which_url_to_write(tmp_path: Path) -> None:
    """`postgres://` (the DATABASE_URL of many hosts), `mysql://` (SQLAlchemy's mysqlclient)
    and `postgresql+psycopg2://`: the message named a plugin or a module the user cannot act
    on; it now names the URL scheme whose driver authmigrate installs. Nothing is written and
    the password never shows."""
    cases = {
        "postgres://u:Pw-9x@127.0.0.1:1/legacy": "postgresql+psycopg://",
        "mysql://u:Pw-9x@127.0.0.1:1/legacy": "mysql+pymysql://",
        "postgresql+psycopg2://u:Pw-9x@127.0.0.1:1/legacy": "postgresql+psycopg://",
    }
    for url, better in cases.items():
        (tmp_path / "m.toml").write_text(URL_SPEC.format(url=url), encoding="utf-8")
        done = run_cli("plan", "m.toml", cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.startswith("authmigrate: error: source.url: "), done.stderr
        assert f"write the URL as {better}" in done.stderr, done.stderr
        assert "Pw-9x" not in done.stdout + done.stderr
        made = run_cli("init", "--from", url, "-o", "i.toml", cwd=tmp_path)
        assert made.returncode == 2, made.stdout + made.stderr
        assert f"write the URL as {better}" in made.stderr, made.stderr
        assert "Pw-9x" not in made.stdout + made.stderr
        assert not (tmp_path / "i.toml").exists()
    assert not (tmp_path / "auth.db").exists()


def test_init_on_a_csv_file_says_how_to_write_the_spec(tmp_path: Path) -> None:
    """`init --from csv:///users.csv` was refused with "a csv/jsonl source has no platform",
    which names no way forward: it now says to write the spec by hand, and with what."""
    (tmp_path / "users.csv").write_text("id,email\n1,a@x.example\n", encoding="utf-8")
    made = run_cli("init", "--from", "csv:///users.csv", cwd=tmp_path)
    assert made.returncode == 2
    assert "write the spec by hand" in made.stderr and 'url = "csv:///' in made.stderr
    assert not (tmp_path / "migration.toml").exists()


SYNC_SPEC = """\
[source]
url = "sqlite:///shop.db"
table = "members"
key = "id"

[target]
url = "sqlite:///auth.db"
table = "accounts"

[fields]
id = "id"
email = { from = "email", normalize = "email" }
"""


def test_rollback_announces_the_accounts_it_then_removes_after_a_sync(tmp_path: Path) -> None:
    """After a sync that disabled an account deleted in the source, rollback announced one
    account fewer than it removed (the batch rows' net count): the preview now counts the
    accounts the target holds, as the rollback removes them."""
    _members(tmp_path / "shop.db", n=6)
    (tmp_path / "m.toml").write_text(SYNC_SPEC, encoding="utf-8")
    assert run_cli("run", "m.toml", cwd=tmp_path).returncode == 0
    shop = sqlite3.connect(tmp_path / "shop.db")
    shop.execute("DELETE FROM members WHERE id = 2")
    shop.execute("INSERT INTO members VALUES (7, 'm7@shop.example', NULL)")
    shop.commit()
    shop.close()
    synced = run_cli("sync", "m.toml", cwd=tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    auth = sqlite3.connect(tmp_path / "auth.db")
    held = auth.execute("SELECT count(*) FROM accounts").fetchone()[0]
    auth.close()
    assert held == 7  # 6 migrated, 1 new, the deleted one kept disabled
    done = run_cli("rollback", "m.toml", "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f": {held} accounts," in done.stdout, done.stdout
    assert f"removed {held} accounts" in done.stdout, done.stdout


def test_verify_after_the_source_changed_points_to_sync(tmp_path: Path) -> None:
    """A shop that stays open: after the run a customer signs up, one changes their email and
    one leaves. verify said "plan (after the fix), then run", which carries none of it; it
    now says sync, and sync makes verify hold. After a rollback it still says run."""
    import json

    _members(tmp_path / "shop.db", n=6)
    (tmp_path / "m.toml").write_text(SYNC_SPEC, encoding="utf-8")
    assert run_cli("run", "m.toml", cwd=tmp_path).returncode == 0
    shop = sqlite3.connect(tmp_path / "shop.db")
    shop.execute("INSERT INTO members VALUES (7, 'm7@shop.example', NULL)")
    shop.execute("UPDATE members SET email = 'new3@shop.example' WHERE id = 3")
    shop.execute("DELETE FROM members WHERE id = 2")
    shop.commit()
    shop.close()
    drift = run_cli("verify", "m.toml", "--json", cwd=tmp_path)
    assert drift.returncode == 1
    body = json.loads(drift.stdout)
    assert body["missing"] == [7] and body["extra"] == [2]
    assert body["next_step"]["action"] == "sync"
    assert body["next_step"]["command"] == "authmigrate sync m.toml, then authmigrate verify m.toml"
    shown = run_cli("verify", "m.toml", cwd=tmp_path)
    assert "next: authmigrate sync m.toml" in shown.stdout, shown.stdout
    assert run_cli("sync", "m.toml", cwd=tmp_path).returncode == 0
    assert run_cli("verify", "m.toml", cwd=tmp_path).returncode == 0
    assert run_cli("rollback", "m.toml", "--yes", cwd=tmp_path).returncode == 0
    gone = json.loads(run_cli("verify", "m.toml", "--json", cwd=tmp_path).stdout)
    assert gone["next_step"]["action"] == "fix-and-rerun"


def test_a_sync_pass_over_one_row_says_row_not_rows(tmp_path: Path) -> None:
    """A sync pass over one row printed "1 rows compared"."""
    _members(tmp_path / "shop.db", n=1)
    (tmp_path / "m.toml").write_text(SYNC_SPEC, encoding="utf-8")
    assert run_cli("run", "m.toml", cwd=tmp_path).returncode == 0
    done = run_cli("sync", "m.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "full pass, 1 row compared, 0 changes" in done.stdout, done.stdout
