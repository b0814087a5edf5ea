"""What a new user meets in the first hour: init that guesses right, a plan that predicts the
run, reports that say what to do next, strict spec types, messages that say what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from authmigrate.errors import SpecError
from authmigrate.spec import load_spec_text

BASE_SPEC = """\
[source]
url = "sqlite:///legacy.db"
table = "users"
key = "id"

[target]
url = "sqlite:///new.db"
table = "accounts"

[fields]
id = "id"
email = { from = "email", normalize = "email" }
"""


@pytest.mark.parametrize(
    "old,new,path,expected",
    [
        ("", '[run]\nbatch_size = "500"', "run.batch_size", "expected an integer"),
        ("", '[run]\nretries = "3"', "run.retries", "expected an integer"),
        ("", "[run]\nbatch_size = 500.0", "run.batch_size", "got a number"),
        (
            'table = "accounts"',
            'table = "accounts"\ncreate = "false"',
            "target.create",
            "true or false",
        ),
        (
            'normalize = "email" }',
            'normalize = "email", required = "yes" }',
            "fields.email.required",
            "true or false",
        ),
        ("", '[notify.smtp]\nport = "25"', "notify.smtp.port", "expected an integer"),
        ('key = "id"', "key = 5", "source.key", "expected a string"),
    ],
)
def test_spec_types_are_strict_and_name_the_key(
    old: str, new: str, path: str, expected: str
) -> None:
    """A string where a number or boolean belongs is refused, never coerced."""
    text = BASE_SPEC.replace(old, new, 1) if old else BASE_SPEC + "\n" + new + "\n"
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    assert err.value.path == path
    assert expected in err.value.message
    assert "got a" in err.value.message  # says what the spec wrote, by type, not the value


def test_strict_spec_still_takes_an_integer_for_a_float() -> None:
    """TOML writes 30 for a timeout of 30 seconds: an integer where a number goes is fine."""
    spec = load_spec_text(
        BASE_SPEC + "\n[notify]\nrate_per_second = 5\n[notify.smtp]\ntimeout = 30\n"
    )
    assert spec.notify is not None and spec.notify.smtp.timeout == 30.0


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``authmigrate`` command as a user runs it: a subprocess, not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_init_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    """A typo in the file name: say the file does not exist, exit 2, create no empty database."""
    done = run_cli("init", "--from", "sqlite:///legacy.db", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "the SQLite file " in done.stderr and "legacy.db does not exist" in done.stderr
    assert "shop platform" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["plan", "run", "verify"])
def test_no_command_creates_a_missing_source(tmp_path: Path, command: str) -> None:
    (tmp_path / "m.toml").write_text(BASE_SPEC, encoding="utf-8")
    done = run_cli(command, "m.toml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "legacy.db" in done.stderr
    assert not (tmp_path / "legacy.db").exists()


def _plan_details(
    tmp_path: Path, rows: list[tuple[object, ...]], fields: str, creds: str = ""
) -> dict[object, tuple[str, str]]:
    """``{key: (reason, detail)}`` of the rows ``plan`` would reject."""
    import sqlite3

    from authmigrate.pipeline import plan_migration

    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, n TEXT, pw TEXT)")
    conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    text = (
        f'[source]\nurl = "sqlite:///{db}"\ntable = "users"\nkey = "id"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/new.db"\ntable = "accounts"\nunique = []\n'
        f'[fields]\nid = "id"\n{fields}\n{creds}'
    )
    plan = plan_migration(load_spec_text(text), preview=100)
    return {p["key"]: (p["reason"], p["detail"]) for p in plan.preview}


def test_reject_details_say_what_is_wrong(tmp_path: Path) -> None:
    """Each reject's detail names the fault (a 10 KB email is too long, not 'not local@domain'),
    and never holds the value."""
    long_email = "a" * 10_000 + "@example.com"
    rows = [
        (1, long_email, "1", None),
        (2, "jane", "1", None),
        (3, "jane@localhost", "1", None),
        (4, "jane doe@example.com", "1", None),
        (5, "x" * 65 + "@example.com", "1", None),
        (6, "jane@exa_mple.com", "1", None),
        (7, "ok7@example.com", "seven", None),
        (8, "ok8@example.com", "123456789012", None),
        (9, None, "1", None),
    ]
    found = _plan_details(
        tmp_path,
        rows,
        'email = { from = "email", normalize = "email", required = true }\n'
        'n = { from = "n", type = "integer", max_length = 5 }',
    )
    assert found[1] == (
        "field.invalid_email",
        "longer than 254 characters (RFC 5321): 10,012 characters",
    )
    assert found[2] == ("field.invalid_email", "no @ (not local@domain)")
    assert found[3] == ("field.invalid_email", "domain has no dot (e.g. example.com)")
    assert found[4] == ("field.invalid_email", "local part contains a space or invisible character")
    assert found[5] == ("field.invalid_email", "local part longer than 64 characters (RFC 5321)")
    assert found[6][1] == "domain contains an underscore (not allowed in a host name)"
    assert found[7] == ("field.invalid_type", "text of 5 characters is not an integer")
    assert found[8] == ("field.out_of_range", 'integer does not fit 32 bits (type = "integer")')
    assert found[9] == ("field.missing", "no value (NULL or empty) in a required field")
    for key, (_, detail) in found.items():
        value = next(r for r in rows if r[0] == key)
        assert not any(isinstance(v, str) and len(v) > 3 and v in detail for v in value[1:])


def test_unrecognised_hash_detail_gives_its_shape_not_its_value(tmp_path: Path) -> None:
    md5 = "5f4dcc3b5aa765d61d8327deb882cf99"
    rows = [
        (1, "a@example.com", "1", md5),
        (2, "b@example.com", "1", "#locked"),
        (3, "c@example.com", "1", ""),
    ]
    found = _plan_details(
        tmp_path,
        rows,
        'email = "email"',
        '[credentials]\ncolumn = "pw"\non_missing = "reject"\n',
    )
    assert found[1] == (
        "credential.unrecognized",
        "no scheme of credentials.scheme (auto) recognises it: 32 characters, hex; "
        'a bare md5 digest? add "digest" with params.algorithm',
    )
    assert found[2][1].endswith("7 characters, letters and punctuation")
    assert found[3] == (
        "credential.missing",
        'NULL or empty password hash (credentials.on_missing = "reject")',
    )
    assert md5 not in str(found)


def _five_rejected_three_merged(tmp_path: Path) -> Path:
    """A legacy table of 40 accounts: 5 invalid emails, 3 case-only duplicates; its spec."""
    import sqlite3

    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    rows = [(i, f"user{i}@example.com") for i in range(1, 41)]
    for i in (3, 9, 15, 21, 27):
        rows[i - 1] = (i, f"user{i}-at-example.com")
    for i, twin in ((30, 1), (31, 2), (32, 4)):
        rows[i - 1] = (i, f"USER{twin}@Example.com")
    conn.executemany("INSERT INTO users VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    spec = tmp_path / "m.toml"
    spec.write_text(
        BASE_SPEC.replace('table = "accounts"', 'table = "accounts"\nunique = ["email"]')
        + '\n[run]\nbatch_size = 7\nduplicates = "merge"\n',
        encoding="utf-8",
    )
    return spec


def test_every_count_agrees_run_report_history_and_rollback(tmp_path: Path) -> None:
    """The run summary, the JSON report, the run's history row and the rollback's history row
    all say 5 rejected and 3 merged (the rollback row said 8 rejected, 0 merged)."""
    import json
    import sqlite3

    spec = _five_rejected_three_merged(tmp_path)
    done = run_cli("run", "m.toml", "--report", "r.json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"] == {"read": 40, "migrated": 32, "rejected": 5, "merged": 3}
    assert report["this_run"] == report["totals"]
    assert report["by_reason"] == {"field.invalid_email": 5}
    assert report["merged_by_reason"] == {"duplicate.email": 3}
    back = run_cli("rollback", "m.toml", "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert "32 accounts, 5 rejected and 3 merged rows" in back.stdout
    assert "removed 32 accounts, 5 rejected and 3 merged rows" in back.stdout
    assert "; 1 run marked rolled_back" in back.stdout  # it said "1 runs"
    conn = sqlite3.connect(spec.parent / "new.db")
    history = conn.execute(
        "SELECT command, rows_read, migrated, rejected, merged FROM authmigrate_runs "
        "ORDER BY started_at"
    ).fetchall()
    conn.close()
    assert history == [("run", 40, 32, 5, 3), ("rollback", -40, -32, -5, -3)]


def _mixed_hash_table(db: Path, rows: int = 6000) -> dict[str, int]:
    """Old accounts on bcrypt, newer ones on bare md5 hex (a PHP rewrite), some NULL, empty
    or locked: the md5 accounts all come after the first few thousand keys."""
    import hashlib
    import sqlite3

    import bcrypt

    salted = [bcrypt.hashpw(f"pw-{i}".encode(), bcrypt.gensalt(4)).decode() for i in range(5)]
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, pw TEXT)")
    planted = {"bcrypt": 0, "md5": 0, "empty": 0, "locked": 0}
    data = []
    for i in range(1, rows + 1):
        if i % 50 == 0:
            pw, kind = (None if i % 100 else ""), "empty"
        elif i % 77 == 0:
            pw, kind = "#locked", "locked"
        elif i <= rows * 6 // 10:
            pw, kind = salted[i % 5], "bcrypt"
        else:
            pw, kind = hashlib.md5(f"pw-{i}".encode()).hexdigest(), "md5"
        planted[kind] += 1
        data.append((i * 3, f"user{i}@example.com", pw))
    conn.executemany("INSERT INTO users VALUES (?, ?, ?)", data)
    conn.commit()
    conn.close()
    return planted


def test_init_samples_the_whole_key_range_and_covers_every_scheme(tmp_path: Path) -> None:
    """A table mixing bcrypt (first 60% of keys) with bare md5: init's spec names both, with
    the digest's parameters, counts per scheme, and unknown values by shape only; plan then
    rejects none as unrecognised but the locked ones."""
    from authmigrate.pipeline import plan_migration
    from authmigrate.spec import load_spec

    _mixed_hash_table(tmp_path / "legacy.db")
    done = run_cli(
        "init", "--from", "sqlite:///legacy.db", "--to", "sqlite:///new.db", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "migration.toml").read_text()
    spec = load_spec(tmp_path / "migration.toml")
    assert spec.credentials is not None
    assert spec.credentials.scheme == ["auto", "digest"]
    assert spec.credentials.params == {"algorithm": "md5", "encoding": "hex"}
    assert "# init sampled 3,000 of 6,000 rows of this column" in text
    counts = {
        line.split(":")[0].strip("# ").strip(): line
        for line in text.splitlines()
        if line.startswith("#   ")
    }
    assert "bcrypt" in counts and "bare md5 hex (scheme digest)" in counts
    assert "unknown, 7 characters, letters and punctuation" in counts
    assert "NULL or empty" in counts
    assert "#locked" not in text  # unknown values by shape, never by value
    plan = plan_migration(spec)
    assert list(plan.by_reason) in (["credential.unrecognized"], ["credential.malformed"])
    assert plan.rejected == 6000 // 77 - sum(1 for i in range(77, 6001, 77) if i % 50 == 0)


def _legacy_with_long_email(tmp_path: Path) -> str:
    import sqlite3

    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, created TEXT)")
    conn.executemany(
        "INSERT INTO users VALUES (?, ?, ?)",
        [
            (1, "ann@example.com", "2020-01-01 10:00:00"),
            (2, "a-very-long-address@example.com", "2021-02-03 04:05:06"),
        ],
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{db}"


def _existing_target(url: str, ddl: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(ddl))
    engine.dispose()


def _target_tables(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "ddl,fields,path,message",
    [
        (
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(320), "
            "tenant_id INTEGER NOT NULL)",
            'email = "email"',
            "fields",
            "column 'tenant_id' of the existing table 'accounts' is NOT NULL, has no default, "
            "and the spec does not fill it",
        ),
        (
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(20))",
            'email = { from = "email", normalize = "email" }',
            "fields.email",
            "the target column 'email' is VARCHAR(20) but the field's values can be up to 254 "
            "characters: set fields.email.max_length = 20",
        ),
        (
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT, created INTEGER)",
            'email = "email"\ncreated = { from = "created", type = "datetime" }',
            "fields.created",
            "the target column 'created' is INTEGER but the spec writes date-time there",
        ),
    ],
)
def test_plan_and_run_refuse_a_target_table_the_spec_does_not_fit(
    tmp_path: Path, target_url: str, ddl: str, fields: str, path: str, message: str
) -> None:
    """Checked before anything is written: NOT NULL columns the spec leaves empty, VARCHAR(n)
    shorter than the field's values, a column of another kind than the field's type."""
    from authmigrate.pipeline import plan_migration, run_migration

    _existing_target(target_url, ddl)
    text = (
        f'[source]\nurl = "{_legacy_with_long_email(tmp_path)}"\ntable = "users"\nkey = "id"\n'
        f'[target]\nurl = "{target_url}"\ntable = "accounts"\nunique = []\n'
        f'[fields]\nid = "id"\n{fields}\n'
    )
    for attempt in (plan_migration, run_migration):
        with pytest.raises(SpecError) as err:
            attempt(load_spec_text(text))
        assert err.value.path == path
        assert message in err.value.message
    assert _target_tables(target_url) == {"accounts"}  # nothing written, not even bookkeeping


def test_a_bounded_field_fits_a_short_column_and_rejects_the_long_values(
    tmp_path: Path, target_url: str
) -> None:
    """Once max_length says what the VARCHAR holds, the run goes, rejecting the long email as
    field.too_long instead of failing the batch."""
    from authmigrate.pipeline import run_migration

    _existing_target(
        target_url, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(20))"
    )
    text = (
        f'[source]\nurl = "{_legacy_with_long_email(tmp_path)}"\ntable = "users"\nkey = "id"\n'
        f'[target]\nurl = "{target_url}"\ntable = "accounts"\nunique = []\n'
        '[fields]\nid = "id"\nemail = { from = "email", normalize = "email", max_length = 20 }\n'
    )
    result = run_migration(load_spec_text(text))
    assert (result.migrated, result.by_reason) == (1, {"field.too_long": 1})


def _shop_for_plan(tmp_path: Path) -> dict[str, int]:
    """20 md5-crypt (weak), 10 bcrypt, 4 NULL hashes, 3 invalid emails, 2 case-only twins."""
    import sqlite3

    import bcrypt
    from passlib.hash import md5_crypt

    weak = md5_crypt.hash("pw")
    strong = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    conn = sqlite3.connect(tmp_path / "legacy.db")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, pw TEXT)")
    rows = [(i, f"u{i}@example.com", weak if i <= 20 else strong) for i in range(1, 31)]
    rows += [(i, f"u{i}@example.com", None) for i in range(31, 35)]
    rows += [(35, "u35 at example.com", weak), (36, "", weak), (37, "u37@", strong)]
    rows += [(38, "U1@EXAMPLE.COM", weak), (39, "u21@Example.com", strong)]
    conn.executemany("INSERT INTO users VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return {"wrapped": 20, "kept": 10, "reset": 4, "rejected": 5}


PLAN_SPEC = BASE_SPEC.replace('table = "accounts"', 'table = "accounts"\nunique = ["email"]') + (
    '\n[credentials]\ncolumn = "pw"\npolicy = "wrap"\n'
)


def test_plan_predicts_the_run_and_exits_1_with_a_fix_per_reject_reason(tmp_path: Path) -> None:
    import json

    expected = _shop_for_plan(tmp_path)
    (tmp_path / "m.toml").write_text(PLAN_SPEC, encoding="utf-8")
    done = run_cli("plan", "m.toml", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    assert body["accounts"] == {k: expected[k] for k in ("kept", "wrapped", "reset")}
    assert body["rejected"] == expected["rejected"]
    rejects = body["rejects"]
    assert rejects["field.invalid_email"]["count"] == 3
    assert rejects["field.invalid_email"]["examples"] == [35, 36, 37]
    assert rejects["duplicate.email"]["examples"] == [38, 39]
    assert "merge" in rejects["duplicate.email"]["fix"]
    assert body["target"]["writable"] is True and body["target"]["exists"] is False
    assert body["estimate"]["wrap_ms_per_account"] > 0 and body["estimate"]["cores"] >= 1
    assert body["next_step"]["action"] == "fix-and-rerun"
    assert body["next_step"]["command"].startswith("authmigrate plan m.toml")
    assert "authmigrate_rejects" in body["bookkeeping"]["tables"]
    text = run_cli("plan", "m.toml", cwd=tmp_path)
    assert text.returncode == 1
    assert "fix field.invalid_email (3): not email addresses" in text.stdout
    assert (
        'fix duplicate.email (2): accounts sharing a unique value: set run.duplicates = "merge"'
        in text.stdout
    )
    assert "password wrapped (argon2id)" in text.stdout and "run time" in text.stdout
    assert not (tmp_path / "new.db").exists()  # plan writes nothing


def test_plan_exits_0_when_nothing_would_be_rejected(tmp_path: Path) -> None:
    import json

    _shop_for_plan(tmp_path)
    (tmp_path / "m.toml").write_text(
        PLAN_SPEC.replace(
            'url = "sqlite:///legacy.db"\ntable = "users"',
            'url = "sqlite:///legacy.db"\nquery = "SELECT * FROM users WHERE id <= 34"',
        ),
        encoding="utf-8",
    )
    done = run_cli("plan", "m.toml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["next_step"]["action"] == "run"


def test_plan_says_when_wrapping_takes_hours_and_offers_keep(tmp_path: Path) -> None:
    """A million weak hashes: the wrap cost is measured on the spot, multiplied out, and the
    keep + upgrade-on-login alternative is shown."""
    from passlib.hash import md5_crypt

    from authmigrate.pipeline.advice import cores
    from authmigrate.pipeline.run import PlanResult, _estimate
    from authmigrate.spec import load_spec_text

    spec = load_spec_text(PLAN_SPEC)
    res = PlanResult(migration="m", wrapped=1_000_000, seconds=40.0)
    from authmigrate.credentials import import_hash

    samples = [import_hash("md5_crypt", md5_crypt.hash(f"pw{i}")) for i in range(3)]
    _estimate(spec, res, samples)
    per = res.estimate["wrap_ms_per_account"] / 1000
    assert per > 0.001  # argon2id with OWASP parameters: milliseconds, not microseconds
    assert res.estimate["wrap_seconds"] == pytest.approx(1_000_000 * per / cores(), rel=0.01)
    assert len(res.advice) == 1
    assert "wrapping 1,000,000 accounts takes about" in res.advice[0]
    assert 'With policy = "keep" the run takes about 40 s' in res.advice[0]
    assert "upgraded to argon2id at its next login" in res.advice[0]


def test_plan_checks_every_env_secret_before_the_run_needs_it(tmp_path: Path) -> None:
    _shop_for_plan(tmp_path)
    spec = (
        PLAN_SPEC
        + '\n[tokens]\ncolumn = "auth_token"\nserver_key = "env:FH_TOKEN_KEY"\n[notify]\noutbox_key = "env:FH_OUTBOX_KEY"\n'
    )
    (tmp_path / "m.toml").write_text(spec, encoding="utf-8")
    env = {"FH_TOKEN_KEY": "", "FH_OUTBOX_KEY": ""}
    done = run_cli("plan", "m.toml", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert (
        "environment variable not set: FH_TOKEN_KEY (tokens.server_key), "
        "FH_OUTBOX_KEY (notify.outbox_key)" in done.stderr
    )
    set_ = run_cli(
        "plan",
        "m.toml",
        "--json",
        cwd=tmp_path,
        env={"FH_TOKEN_KEY": "k" * 32, "FH_OUTBOX_KEY": "x"},
    )
    assert set_.returncode == 1, set_.stderr
    assert "k" * 32 not in set_.stdout + set_.stderr


def test_plan_refuses_a_target_it_could_not_write(tmp_path: Path, pg_server: object) -> None:
    """A PostgreSQL role without CREATE in the schema: plan says so (exit 2), before the run
    finds out at its first batch."""
    import sqlalchemy as sa

    _shop_for_plan(tmp_path)
    url = pg_server.create_database()  # type: ignore[attr-defined]
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP ROLE IF EXISTS fh_reader"))
        conn.execute(sa.text("CREATE ROLE fh_reader LOGIN"))
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    engine.dispose()
    reader = sa.make_url(url).set(username="fh_reader", password=None)
    spec = PLAN_SPEC.replace(
        'url = "sqlite:///new.db"', f'url = "{reader.render_as_string(hide_password=False)}"'
    )
    (tmp_path / "m.toml").write_text(spec, encoding="utf-8")
    done = run_cli("plan", "m.toml", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "a run could not write to" in done.stderr
    assert "no CREATE privilege in the schema" in done.stderr


def test_output_is_not_wrapped_at_80_columns_when_not_a_terminal(tmp_path: Path) -> None:
    """CI logs and pipes get whole lines (rich wrapped them at 80 columns)."""
    _shop_for_plan(tmp_path)
    (tmp_path / "m.toml").write_text(PLAN_SPEC, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", "plan", "m.toml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=env,
    )
    lines = done.stdout.splitlines()
    fix = next(line for line in lines if line.startswith("fix duplicate.email"))
    assert fix.endswith("or correct the source")
    assert max(len(line) for line in lines) > 80
    assert not any(line.startswith('"merge"') for line in lines)


def test_run_report_lists_rejects_by_reason_with_example_keys_and_the_next_step(
    tmp_path: Path,
) -> None:
    import json

    _shop_for_plan(tmp_path)
    (tmp_path / "m.toml").write_text(PLAN_SPEC, encoding="utf-8")
    done = run_cli("run", "m.toml", "--report", "r.json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["error"] is None
    assert report["rejects"]["field.invalid_email"]["examples"] == [35, 36, 37]
    assert report["rejects"]["field.invalid_email"]["count"] == 3
    assert report["rejects"]["duplicate.email"]["examples"] == [38, 39]
    assert "fix" in report["rejects"]["duplicate.email"]
    assert set(report["bookkeeping"]["tables"]) == {
        "authmigrate_rejects",
        "authmigrate_batches",
        "authmigrate_runs",
    }
    assert report["next_step"]["action"] == "verify"
    assert report["next_step"]["command"] == "authmigrate verify m.toml"
    assert "next: authmigrate verify m.toml" in done.stdout
    assert "rejected field.invalid_email (3), e.g. keys 35, 36, 37" in done.stdout
    # the example keys are keys only: no detail, no raw row
    assert "u35 at example.com" not in (tmp_path / "r.json").read_text()

    verified = run_cli("verify", "m.toml", "--json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    body = json.loads(verified.stdout)
    assert body["ok"] is True and body["rejects"]["field.invalid_email"]["examples"] == [35, 36, 37]
    assert body["next_step"]["action"] == "done"
    assert "authmigrate_rejects" in body["bookkeeping"]["tables"]

    import sqlite3

    conn = sqlite3.connect(tmp_path / "new.db")
    conn.execute("DELETE FROM accounts WHERE id = 7")
    conn.commit()
    conn.close()
    broken = run_cli("verify", "m.toml", "--json", cwd=tmp_path)
    assert broken.returncode == 1
    body = json.loads(broken.stdout)
    assert body["missing"] == [7] and body["next_step"]["action"] == "sync"


def test_report_of_a_failed_run_holds_its_error_and_says_fix_and_rerun(tmp_path: Path) -> None:
    """Another process holds the migration's lock (a real flock): the run fails, and its report
    says why and what to do."""
    import fcntl
    import json

    _shop_for_plan(tmp_path)
    (tmp_path / "m.toml").write_text(PLAN_SPEC, encoding="utf-8")
    with (tmp_path / "new.db.authmigrate-lock").open("ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run_cli("run", "m.toml", "--report", "r.json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "failed"
    assert "is writing to this target" in report["error"]
    assert report["next_step"]["action"] == "fix-and-rerun"
    assert report["next_step"]["command"].endswith("authmigrate run m.toml")


@pytest.mark.slow
def test_demo_takes_seconds_and_ends_with_the_commands_for_your_own_database(
    tmp_path: Path,
) -> None:
    """The default demo (5,000 customers, a wrapped sample) costs well under 20 s of CPU — on
    an idle machine that is its run time — and ends with what to run on one's own database."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = run_cli("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "building a legacy shop with 5,000 customers" in done.stdout
    assert cpu < 20, f"the demo took {cpu:.1f} s of CPU"
    lines = done.stdout.rstrip().splitlines()
    assert lines[-4] == "Next, on your own database:"
    assert lines[-3].strip().startswith("authmigrate init --from ")
    assert lines[-2].strip() == "authmigrate plan migration.toml"
    assert lines[-1].strip() == "authmigrate run migration.toml"
    assert "weak credentials wrapped in argon2id log in with the old password" in done.stdout


def test_demo_users_option_sizes_the_shop(tmp_path: Path) -> None:
    done = run_cli("demo", "--users", "300", "--dir", str(tmp_path / "d"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "building a legacy shop with 300 customers" in done.stdout
    refused = run_cli("demo", "--users", "0", cwd=tmp_path)
    assert refused.returncode == 2 and "--users" in refused.stderr


ROOT = Path(__file__).resolve().parent.parent


def test_readme_login_snippet_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's API snippet defines its keyring (it used KEYS without defining it)."""
    import hashlib
    import re
    import types

    from authmigrate.credentials import import_hash

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", readme, re.S)
    assert snippet is not None
    cookie_key = "k" * 56
    monkeypatch.setenv("PS_COOKIE_KEY", cookie_key)
    digest = hashlib.md5((cookie_key + "secret-1").encode()).hexdigest()
    user = types.SimpleNamespace(password=import_hash("prestashop", digest, key_id="prestashop"))
    scope = {"password": "secret-1", "user": user}
    exec(compile(snippet.group(1), "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["ok"] is True
    assert user.password.startswith("$argon2id$")


def test_presets_doc_woocommerce_example_matches_its_table_and_init() -> None:
    """docs/presets.md's WooCommerce example says what its table says (auto, then digest md5
    hex) and what init writes."""
    import tomllib

    from authmigrate.presets import get_preset
    from authmigrate.presets.init import render_spec

    doc = (ROOT / "docs" / "presets.md").read_text(encoding="utf-8")
    start = doc.index("## Example: the spec `init` writes for WooCommerce")
    block = doc[
        doc.index("```toml\n", start) + 8 : doc.index("```\n", doc.index("```toml\n", start) + 8)
    ]
    example = tomllib.loads(block)["credentials"]
    row = next(line for line in doc.splitlines() if line.startswith("| `woocommerce`"))
    assert "schemes `auto` then `digest` (md5 hex)" in row
    assert example["scheme"] == ["auto", "digest"]
    assert example["params"] == {"algorithm": "md5", "encoding": "hex"}
    written = render_spec(get_preset("woocommerce"), "wp_", "mysql+pymysql://u@h/wp", None)
    assert tomllib.loads(written)["credentials"] == example
