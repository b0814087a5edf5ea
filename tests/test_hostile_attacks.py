"""A hostile user's attacks on what issues 9 and 10 hardened, each run through the CLI
against real databases; every test here failed on the code as the attack found it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers_verify import cli

SECRET = "Hunter2-Sw0rdfish"
_YES = {"plan": (), "run": (), "verify": (), "rollback": ("--yes",)}


def _legacy(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?)", [(i, f"u{i}@example.com") for i in range(1, 31)]
    )
    conn.commit()
    conn.close()


def _spec(tmp_path: Path, target_url: str) -> Path:
    _legacy(tmp_path / "legacy.db")
    spec = tmp_path / "m.toml"
    spec.write_text(
        f"""
name = "hostile"
[source]
url = "sqlite:///{tmp_path / "legacy.db"}"
table = "legacy_users"
key = "user_id"
[target]
url = "{target_url}"
table = "accounts"
[fields]
user_id = "user_id"
email = "email"
[run]
retries = 0
""",
        encoding="utf-8",
    )
    return spec


def test_rollback_with_an_unknown_connection_option_exits_2_naming_target_url(
    tmp_path: Path, pg_url: str
) -> None:
    """``?nosuchopt=1`` makes psycopg raise ProgrammingError at connect: plan, run and verify
    said so with exit 2; rollback ended in "internal error" with exit 1."""
    spec = _spec(tmp_path, f"{pg_url}?nosuchopt=1&password={SECRET}")
    for command in ("plan", "run", "verify", "rollback"):
        done = cli(command, str(spec), *_YES[command], cwd=tmp_path, timeout=120)
        assert done.returncode == 2, (command, done.stderr)
        assert "internal error" not in done.stderr, (command, done.stderr)
        assert "target" in done.stderr, (command, done.stderr)
        assert SECRET not in done.stdout + done.stderr, command


def test_password_with_a_raw_at_sign_is_not_shown_in_part(tmp_path: Path, pg_url: str) -> None:
    """``user:p@ssword@host``: SQLAlchemy takes ``p`` as the password and ``ssword@host`` as
    the host, so the mask covered one letter and the rest of the password was printed
    (``cannot reach target ...:***@ssword@127.0.0.1``, and psycopg's "failed to resolve host
    'ssword@127.0.0.1'")."""
    port_and_db = pg_url.split("@", 1)[1]
    spec = _spec(tmp_path, f"postgresql+psycopg://postgres:p@{SECRET}@{port_and_db}")
    for command in ("plan", "run", "verify", "rollback"):
        done = cli(command, str(spec), *_YES[command], cwd=tmp_path, timeout=120)
        assert done.returncode == 2, (command, done.stderr)
        assert SECRET not in done.stdout + done.stderr, (command, done.stderr)
        assert "Sw0rdfish" not in done.stdout + done.stderr, (command, done.stderr)


def _file_spec(tmp_path: Path, url: str) -> Path:
    spec = tmp_path / "f.toml"
    spec.write_text(
        f"""
name = "files"
[source]
url = "{url}"
key = "user_id"
[target]
url = "sqlite:///{tmp_path / "target.db"}"
table = "accounts"
[fields]
user_id = "user_id"
email = "email"
[run]
retries = 0
""",
        encoding="utf-8",
    )
    return spec


def test_csv_with_bom_and_quoted_header_reads_its_columns(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" quotes every cell after the BOM: the BOM made the first quote a
    character of an unquoted cell, so the first column was named '"user_id"'."""
    path = tmp_path / "users.csv"
    path.write_bytes(b'\xef\xbb\xbf"user_id","email"\r\n"1","a@example.com"\r\n"2","b@x.org"\r\n')
    spec = _file_spec(tmp_path, f"csv:///{path}")
    done = cli("run", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(tmp_path / "target.db")
    rows = conn.execute("SELECT user_id, email FROM accounts ORDER BY user_id").fetchall()
    conn.close()
    assert rows == [(1, "a@example.com"), (2, "b@x.org")]


def test_csv_columns_differing_only_in_case_are_named_as_repeated(tmp_path: Path) -> None:
    """``email`` and ``Email``: staging failed with SQLite's "duplicate column name" dressed as
    a full temporary folder ("set TMPDIR ...")."""
    path = tmp_path / "users.csv"
    path.write_text("user_id,email,Email\n1,a@example.com,b@example.com\n", encoding="utf-8")
    done = cli("plan", str(_file_spec(tmp_path, f"csv:///{path}")), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "TMPDIR" not in done.stderr, done.stderr
    assert "line 1 column 3" in done.stderr and "'Email'" in done.stderr, done.stderr


def test_jsonl_keys_differing_only_in_case_are_named_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text(
        '{"user_id": 1, "email": "a@example.com"}\n{"user_id": 2, "Email": "b@example.com"}\n',
        encoding="utf-8",
    )
    done = cli("plan", str(_file_spec(tmp_path, f"jsonl:///{path}")), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "TMPDIR" not in done.stderr, done.stderr
    assert "line 2" in done.stderr and "'Email'" in done.stderr, done.stderr


def test_jsonl_empty_key_name_is_exit_2_naming_the_line(tmp_path: Path) -> None:
    """``{"": 1}`` ended in "internal error: ArgumentError" (a column with a blank name)."""
    path = tmp_path / "users.jsonl"
    path.write_text(
        '{"user_id": 1, "email": "a@example.com"}\n{"user_id": 2, "email": "b@x.org", "": 3}\n',
        encoding="utf-8",
    )
    for command in ("plan", "run", "verify"):
        done = cli(command, str(_file_spec(tmp_path, f"jsonl:///{path}")), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "internal error" not in done.stderr, done.stderr
        assert "line 2" in done.stderr, done.stderr


def _sha512_crypt_at_budget(length: int, password: str) -> str:
    """A ``$6$`` hash of ``password`` whose rounds use the whole work budget for a password
    of ``length`` bytes (the most a crafted row may ask at that length)."""
    from passlib.hash import sha512_crypt

    from authmigrate.credentials import _limits

    fixed, per_byte = _limits._SHA_CRYPT_ROUND["sha512"]
    rounds = int(_limits.WORK_BUDGET_SECONDS / (fixed + per_byte * length))
    return str(sha512_crypt.using(rounds=rounds, salt="saltsalt").hash(password))


@pytest.mark.serial
def test_html_rule_prices_the_escaped_password_not_the_typed_one() -> None:
    """The html rule hashes ``htmlspecialchars(typed)``: 682 typed ``"`` are 4,092 escaped
    bytes, but the work was priced with 682, so a row at the budget for 682 bytes cost 5.6 s
    of CPU (the budget is 1 s) per login attempt."""
    import time

    from authmigrate.credentials import verify
    from authmigrate.credentials.rules import with_rules

    stored = _sha512_crypt_at_budget(682, "not the password")
    start = time.process_time()
    assert verify("a" * 682, stored) is False
    plain = time.process_time() - start
    crafted = with_rules(stored, ["html"])
    start = time.process_time()
    assert verify('"' * 682, crafted) is False
    escaped = time.process_time() - start
    # two candidates at most, each within the budget: never much over twice the plain check
    assert escaped < 2.5 * plain, (escaped, plain)


def test_html_rule_escaped_form_over_the_cap_still_tries_the_raw_password() -> None:
    """A typed password under 4096 bytes whose escaped form is over it: the escaped
    candidate raised, so the raw candidate (the hash OpenCart's admin sets) was never tried,
    the right password answered False and the hook was told the credential is malformed."""
    from passlib.hash import md5_crypt

    from authmigrate.credentials import set_credential_hook, verify, verify_and_update
    from authmigrate.credentials.rules import with_rules

    password = 'pw"' * 700  # 2,100 bytes typed, 4,900 escaped
    stored = with_rules(md5_crypt.hash(password), ["html"])
    told: list[object] = []
    previous = set_credential_hook(told.append)
    try:
        assert verify(password, stored) is True
        assert verify(password + "x", stored) is False
        ok, replacement = verify_and_update(password, stored, profile="TEST")
        assert ok is True and replacement is not None
        assert verify(password, replacement) is True
        assert verify(password + "x", replacement) is False
    finally:
        set_credential_hook(previous)
    assert told == []


def test_verify_reports_a_target_value_that_is_not_utf8_as_different(tmp_path: Path) -> None:
    """A tamperer writes one byte that is not UTF-8 into a SQLite target's TEXT column:
    verify ended in "internal error: user-defined aggregate's 'step' method raised error"
    (exit 1) instead of naming the row as different."""
    spec = _spec(tmp_path, f"sqlite:///{tmp_path / 'target.db'}")
    assert cli("run", str(spec), cwd=tmp_path).returncode == 0
    conn = sqlite3.connect(tmp_path / "target.db")
    conn.execute("UPDATE accounts SET email = 'u5@example.com' || x'ff' WHERE user_id = 5")
    conn.commit()
    conn.close()
    done = cli("verify", str(spec), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stderr, done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert "5" in json.dumps(report["different"]), report["different"]
    assert "\\u00ff" not in done.stdout and "example.com" not in done.stdout


def test_sqlite_target_names_the_os_refuses_are_exit_2_naming_target_url(
    tmp_path: Path,
) -> None:
    """A file name over the file system's 255 bytes ended plan, run and verify in "internal
    error: OSError: File name too long"; a NUL in the path ended run in "internal error:
    ValueError: embedded null byte"."""
    for name, why in (("a" * 300 + ".db", "too long"), ("t\\u0000.db", "NUL")):
        (tmp_path / why).mkdir()
        spec = _spec(tmp_path / why, f"sqlite:///{tmp_path / why / name}")
        for command in ("plan", "run", "verify", "rollback"):
            done = cli(command, str(spec), *_YES[command], cwd=tmp_path)
            assert done.returncode == 2, (why, command, done.stderr)
            assert "internal error" not in done.stderr, (why, command, done.stderr)
            assert "target.url" in done.stderr, (why, command, done.stderr)


def test_a_floor_that_is_not_a_finite_number_of_seconds_is_a_value_error() -> None:
    """``min_seconds=nan`` silently gave no floor at all (every comparison with NaN is
    false), and ``inf`` raised OverflowError from ``time.sleep`` after the verification."""
    import pytest

    from authmigrate.credentials import dummy_verify, verify

    stored = "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"
    for bad in (float("nan"), float("inf"), 1e300):
        with pytest.raises(ValueError, match="min_seconds"):
            verify("password", stored, min_seconds=bad)
        with pytest.raises(ValueError, match="min_seconds"):
            dummy_verify(min_seconds=bad)
    assert verify("password", stored, min_seconds=0.0) is False


def test_column_names_with_a_nul_or_invalid_text_are_exit_2_naming_the_line(
    tmp_path: Path,
) -> None:
    """A NUL in a CSV header or JSONL key ended in "internal error: ProgrammingError: the
    query contains a null character"; a lone surrogate in a JSONL key (or a byte that is not
    UTF-8 in a CSV header) in "internal error: UnicodeEncodeError"."""
    files = {
        "nul.csv": b"user_id,email,x\x00y\n1,a@example.com,z\n",
        "bytes.csv": b"user_id,email,x\xffy\n1,a@example.com,z\n",
        "nul.jsonl": b'{"user_id": 1, "email": "a@example.com", "a\\u0000b": 2}\n',
        "surrogate.jsonl": b'{"user_id": 1, "email": "a@example.com", "\\ud800": 2}\n',
    }
    for name, data in files.items():
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_bytes(data)
        kind = name.rsplit(".", 1)[1]
        spec = _file_spec(folder, f"{kind}:///{folder / name}")
        for command in ("plan", "run"):
            done = cli(command, str(spec), cwd=folder)
            assert done.returncode == 2, (name, command, done.stderr)
            assert "internal error" not in done.stderr, (name, command, done.stderr)
            assert f"{name} line 1" in done.stderr, (name, command, done.stderr)


def test_verify_sees_a_postgresql_timestamp_moved_to_before_christ(
    tmp_path: Path, pg_url: str
) -> None:
    """``to_char(..., 'YYYY-...')`` drops the era: a tamperer moving an account's timestamp
    from 2020 AD to 2020 BC left the keyed checksum unchanged and verify said ok; the row
    could then not even be read back (psycopg has no year before 1)."""
    import json

    from tests.helpers_verify import execute

    legacy = tmp_path / "legacy.db"
    conn = sqlite3.connect(legacy)
    conn.execute("CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT, made TEXT)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?, ?)",
        [(i, f"u{i}@example.com", f"2020-01-{i:02d} 10:00:00") for i in range(1, 31)],
    )
    conn.commit()
    conn.close()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f"""
name = "era"
[source]
url = "sqlite:///{legacy}"
table = "legacy_users"
key = "user_id"
[target]
url = "{pg_url}"
table = "accounts"
[fields]
user_id = "user_id"
email = "email"
made = {{ from = "made", type = "datetime" }}
""",
        encoding="utf-8",
    )
    assert cli("run", str(spec), cwd=tmp_path).returncode == 0
    assert cli("verify", str(spec), cwd=tmp_path).returncode == 0
    execute(pg_url, "UPDATE accounts SET made = made - interval '4039 years' WHERE user_id = 3")
    done = cli("verify", str(spec), "--json", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    report = json.loads(done.stdout)
    assert [(d["key"], d["columns"]) for d in report["different"]] == [(3, ["made"])]
