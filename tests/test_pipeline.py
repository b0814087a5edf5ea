"""The migration pipeline end to end, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.errors import SpecError
from authmigrate.pipeline import plan_migration, run_migration
from authmigrate.spec import load_spec_text

SEED_SPEC = """
[source]
url = "sqlite:///{src}"
table = "old_users"
key = "user_id"

[target]
url = "{dst}"
table = "new_users"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}

[run]
batch_size = {batch}
duplicates = "{dupes}"
"""


def make_seed_source(path: Path, emails: list[str | None]) -> None:
    """The seed scenario's legacy table: old_users(user_id, email)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany(
        "INSERT INTO old_users VALUES (?, ?)", [(i + 1, e) for i, e in enumerate(emails)]
    )
    conn.commit()
    conn.close()


def seed_spec(src: Path, dst: str, *, batch: int = 3, dupes: str = "reject") -> str:
    return SEED_SPEC.format(src=src, dst=dst, batch=batch, dupes=dupes)


def target_rows(url: str, query: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(query))]
    engine.dispose()
    return rows


def test_seed_scenario_migrates_normalized_emails_in_batches(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(
        src,
        [
            "Ann@Example.COM",
            " bob@example.com ",
            "carl@EXAMPLE.org",
            "dana@example.net",
            "eve@example.com",
            "frank@example.com",
            "gina@example.com",
        ],
    )
    spec = load_spec_text(seed_spec(src, target_url, batch=3))
    result = run_migration(spec)
    assert result.status == "done"
    assert (result.read, result.migrated, result.rejected, result.merged) == (7, 7, 0, 0)
    rows = target_rows(target_url, "SELECT user_id, email FROM new_users ORDER BY user_id")
    assert rows[:3] == [(1, "ann@example.com"), (2, "bob@example.com"), (3, "carl@example.org")]
    batches = target_rows(
        target_url, "SELECT batch_no, rows_read FROM authmigrate_batches ORDER BY batch_no"
    )
    assert batches == [(1, 3), (2, 3), (3, 1)]


def test_rerun_of_finished_migration_writes_nothing(tmp_path: Path, target_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, [f"user{i}@example.com" for i in range(10)])
    spec = load_spec_text(seed_spec(src, target_url, batch=4))
    run_migration(spec)
    again = run_migration(spec)
    assert again.this_run == {"read": 0, "migrated": 0, "rejected": 0, "merged": 0}
    assert again.migrated == 10
    assert target_rows(target_url, "SELECT count(*) FROM new_users") == [(10,)]
    runs = target_rows(
        target_url, "SELECT status, migrated FROM authmigrate_runs ORDER BY started_at"
    )
    assert runs == [("done", 10), ("done", 0)]


def test_new_source_rows_after_a_run_are_picked_up_by_the_next(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, [f"user{i}@example.com" for i in range(5)])
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(seed_spec(src, dst, batch=2))
    run_migration(spec)
    conn = sqlite3.connect(src)
    conn.execute("INSERT INTO old_users VALUES (6, 'late@example.com')")
    conn.commit()
    conn.close()
    again = run_migration(spec)
    assert again.this_run["migrated"] == 1
    assert target_rows(dst, "SELECT email FROM new_users WHERE user_id = 6") == [
        ("late@example.com",)
    ]


def test_resume_after_failed_batch_continues_at_last_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails mid-way leaves the earlier batches committed and nothing of its own.

    The fault is injected into the Python path's commit; the fast path's own is in
    tests/test_fastpath.py."""
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "0")
    src = tmp_path / "legacy.db"
    make_seed_source(src, [f"user{i}@example.com" for i in range(9)])
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(seed_spec(src, dst, batch=3))
    calls = {"n": 0}
    import authmigrate.sinks.sql as sink

    original = sink.SqlTarget.commit_batch

    def failing(self: sink.SqlTarget, batch, run_id, redact):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            with self.engine.begin() as conn:
                self._write(conn, batch, run_id, redact)
                raise KeyboardInterrupt  # the operator's Ctrl-C, mid-transaction
        return original(self, batch, run_id, redact)

    sink.SqlTarget.commit_batch = failing  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            run_migration(spec)
    finally:
        sink.SqlTarget.commit_batch = original  # type: ignore[method-assign]
    assert info.value.result.this_run["read"] == 3  # what the CLI writes as the report
    assert target_rows(dst, "SELECT count(*) FROM new_users") == [(3,)]
    assert target_rows(dst, "SELECT status FROM authmigrate_runs") == [("interrupted",)]
    result = run_migration(spec)
    assert result.this_run["read"] == 6
    assert target_rows(dst, "SELECT count(*), count(DISTINCT user_id) FROM new_users") == [(9, 9)]


@pytest.mark.parametrize("rule,outcome", [("reject", "rejected"), ("merge", "merged")])
def test_duplicate_emails_differing_in_case_and_unicode_follow_the_rule(
    tmp_path: Path, rule: str, outcome: str
) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(
        src,
        [
            "jose\u0301@example.com",
            "ann@example.com",
            "Ann@EXAMPLE.com",
            "jos\u00e9@Example.com",
            "zed@example.com",
        ],
    )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(seed_spec(src, dst, batch=2, dupes=rule))
    result = run_migration(spec)
    assert result.migrated == 3
    rows = target_rows(
        dst, "SELECT source_key, outcome, reason, merged_into FROM authmigrate_rejects ORDER BY id"
    )
    assert rows == [("3", outcome, "duplicate.email", "2"), ("4", outcome, "duplicate.email", "1")]
    assert result.read == result.migrated + result.rejected + result.merged


def test_invalid_values_become_rejects_with_reason_and_column(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, ["ok@example.com", "not-an-email", None, "a b@example.com", "x@y"])
    spec_text = seed_spec(src, target_url).replace(
        'normalize = "email" }', 'normalize = "email", required = true }'
    )
    result = run_migration(load_spec_text(spec_text))
    assert result.migrated == 1
    rows = target_rows(
        target_url,
        "SELECT source_key, reason, column_name FROM authmigrate_rejects ORDER BY source_key",
    )
    assert rows == [
        ("2", "field.invalid_email", "email"),
        ("3", "field.missing", "email"),
        ("4", "field.invalid_email", "email"),
        ("5", "field.invalid_email", "email"),
    ]


def test_rejected_rows_keep_the_raw_row_with_credentials_redacted(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT, pass TEXT)")
    conn.execute("INSERT INTO u VALUES (1, 'broken', '$P$BsecrethashXXXXXXXXXXXXXXXXXXX')")
    conn.commit()
    conn.close()
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "u"
key = "id"
[target]
url = "{dst}"
table = "accounts"
[fields]
id = "id"
email = {{ from = "email", normalize = "email" }}
[credentials]
column = "pass"
"""
    )
    run_migration(spec)
    (raw,) = target_rows(dst, "SELECT raw FROM authmigrate_rejects")[0]
    assert json.loads(raw) == {"id": 1, "email": "broken", "pass": "[redacted]"}


def test_transforms_template_constant_default_and_types(tmp_path: Path) -> None:
    src = tmp_path / "people.csv"
    src.write_text(
        "id,first,last,mail,joined,active\n"
        "10,  Zoë ,Müller,ZOE@Example.com,2020-01-02 03:04:05,1\n"
        "9,ﬁona,,fiona@example.com,,0\n"
        "11,X,Y,x@example.com,yesterday,1\n",
        encoding="utf-8",
    )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(
        f"""
[source]
url = "csv:///{src}"
key = "id"
[target]
url = "{dst}"
table = "people"
key = "legacy_id"
[fields]
legacy_id = "id"
email = {{ from = "mail", normalize = "email", lowercase_local = false }}
first_name = {{ from = "first", normalize = ["strip", "nfkc"] }}
name = {{ template = "{{first}} {{last}}", normalize = ["collapse_spaces", "nfkc"] }}
origin = {{ value = "csv-import" }}
last_name = {{ from = "last", normalize = "none_if_empty", default = "(none)" }}
joined = {{ type = "datetime", normalize = "none_if_empty" }}
active = {{ type = "boolean" }}
"""
    )
    result = run_migration(spec)
    assert (result.migrated, result.rejected) == (2, 1)
    rows = target_rows(
        dst,
        "SELECT legacy_id, email, first_name, name, origin, last_name, joined, active "
        "FROM people ORDER BY legacy_id",
    )
    assert rows == [
        (9, "fiona@example.com", "fiona", "fiona", "csv-import", "(none)", None, 0),
        (
            10,
            "ZOE@example.com",
            "Zoë",
            "Zoë Müller",
            "csv-import",
            "Müller",
            "2020-01-02 03:04:05.000000",
            1,
        ),
    ]
    assert target_rows(dst, "SELECT source_key, reason, column_name FROM authmigrate_rejects") == [
        ("11", "field.invalid_type", "joined")
    ]


def test_jsonl_source_with_null_and_blank_keys_rejects_them(tmp_path: Path) -> None:
    src = tmp_path / "users.jsonl"
    src.write_text(
        '{"uid": 2, "email": "b@example.com"}\n'
        '{"uid": null, "email": "nokey@example.com"}\n'
        '{"uid": 1, "email": "a@example.com"}\n',
        encoding="utf-8",
    )
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(
        f"""
[source]
url = "jsonl:///{src}"
key = "uid"
[target]
url = "{dst}"
table = "accounts"
[fields]
uid = "uid"
email = {{ from = "email", normalize = "email" }}
"""
    )
    result = run_migration(spec)
    assert (result.read, result.migrated, result.rejected) == (3, 2, 1)
    assert target_rows(dst, "SELECT reason FROM authmigrate_rejects") == [("source.null_key",)]


def test_existing_target_rows_are_never_overwritten(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, ["a@example.com", "b@example.com", "c@example.com"])
    dst = f"sqlite:///{tmp_path}/t.db"
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("CREATE TABLE new_users (user_id INTEGER PRIMARY KEY, email TEXT, extra TEXT)")
    conn.execute("INSERT INTO new_users VALUES (2, 'someone@example.com', 'kept')")
    conn.execute("INSERT INTO new_users VALUES (50, 'c@example.com', 'kept')")
    conn.commit()
    conn.close()
    result = run_migration(load_spec_text(seed_spec(src, dst)))
    assert result.migrated == 1
    assert target_rows(dst, "SELECT user_id, email, extra FROM new_users ORDER BY user_id") == [
        (1, "a@example.com", None),
        (2, "someone@example.com", "kept"),
        (50, "c@example.com", "kept"),
    ]
    assert target_rows(dst, "SELECT source_key, reason FROM authmigrate_rejects ORDER BY id") == [
        ("2", "target.key_exists"),
        ("3", "duplicate.email"),
    ]


def test_plan_counts_rejects_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, ["a@example.com", "bad", "A@example.com", "c@example.com"])
    dst_file = tmp_path / "t.db"
    spec = load_spec_text(seed_spec(src, f"sqlite:///{dst_file}"))
    plan = plan_migration(spec)
    assert (plan.source_rows, plan.would_migrate, plan.rejected) == (4, 2, 2)
    assert plan.by_reason == {"duplicate.email": 1, "field.invalid_email": 1}
    assert (
        not dst_file.exists()
        or sa.inspect(sa.create_engine(f"sqlite:///{dst_file}")).get_table_names() == []
    )


def test_non_unique_source_key_is_refused_before_writing(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE old_users (user_id INTEGER, email TEXT)")
    conn.executemany("INSERT INTO old_users VALUES (?, ?)", [(1, "a@x.io"), (1, "b@x.io")])
    conn.commit()
    conn.close()
    dst_file = tmp_path / "t.db"
    with pytest.raises(SpecError, match="source.key: 'user_id' is not unique"):
        run_migration(load_spec_text(seed_spec(src, f"sqlite:///{dst_file}")))
    assert not dst_file.exists()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            ('normalize = "email"', 'normalize = "emial"'),
            "fields.email.normalize: unknown transform 'emial'",
        ),
        (('table = "old_users"', 'table = "old_usrs"'), "source.table: no table 'old_usrs'"),
        (("email = {", 'email = { frm = "x", '), "fields.email.frm: unknown key"),
        (("batch_size = 3", 'batch_size = "many"'), "run.batch_size"),
        (
            ('from = "email"', 'from = "emial"'),
            "fields.email.from: source has no column 'emial' (did you mean 'email'?)",
        ),
        (
            ('table = "new_users"', 'table = "new_users; DROP TABLE x"'),
            "target.table: not a plain SQL identifier",
        ),
        (('url = "sqlite:///', 'url = "nosuchdb:///'), "source.url"),
        (('url = "sqlite:///', 'url = "sqlite:///nowhere'), "source.url: no such SQLite file"),
        (
            ("email = {", 'name = { template = "{email:>30}" }\nemail = {'),
            "fields.name.template: template field {email} takes no format spec",
        ),
        (("[run]", "[target.x]\n[run]"), "target.x: unknown key"),
        (
            ('user_id = "user_id"', 'user_id = "user_id"\nbad-name = "email"'),
            "fields.bad-name: not a plain SQL identifier",
        ),
        (
            ('user_id = "user_id"', 'user_id = "user_id"\nn = { value = "abc", type = "integer" }'),
            "fields.n.value: text of 3 characters is not an integer",
        ),
        (
            ("[run]", '[tokens]\ncolumn = "email"\n[run]'),
            "fields.email: the column is already filled by tokens.column",
        ),
        (
            ('table = "new_users"', 'table = "new_users"\nunique = ["emial"]'),
            "target.unique[0]: no field 'emial'",
        ),
    ],
)
def test_bad_spec_exits_2_naming_the_key_and_writes_nothing(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, ["a@example.com"])
    dst_file = tmp_path / "t.db"
    text = seed_spec(src, f"sqlite:///{dst_file}").replace(*edit, 1)
    spec = tmp_path / "m.toml"
    spec.write_text(text)
    proc = run_cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not dst_file.exists()


def test_cli_run_prints_summary_and_writes_json_report(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, ["a@example.com", "bad", "c@example.com"])
    spec = tmp_path / "m.toml"
    spec.write_text(seed_spec(src, f"sqlite:///{tmp_path}/t.db"))
    proc = run_cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 1  # ran, with a reject
    assert "migrated" in proc.stdout and "field.invalid_email" in proc.stdout
    report = json.loads((tmp_path / "m.report.json").read_text())
    assert report["totals"] == {"read": 3, "migrated": 2, "rejected": 1, "merged": 0}
    assert report["by_reason"] == {"field.invalid_email": 1}
    assert "migrate:" in proc.stderr  # plain progress lines when not on a terminal


def test_target_unreachable_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_seed_source(src, ["a@example.com"])
    spec = tmp_path / "m.toml"
    spec.write_text(seed_spec(src, "postgresql+psycopg://u:hunter2@127.0.0.1:1/nodb"))
    proc = run_cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2
    assert "cannot reach target" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_unique_group_allows_same_email_in_two_websites(tmp_path: Path) -> None:
    """Magento keeps one account per email per website: unique together, not apart."""
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, website_id INTEGER, email TEXT)")
    conn.executemany(
        "INSERT INTO c VALUES (?, ?, ?)",
        [(1, 1, "a@example.com"), (2, 2, "A@example.com"), (3, 1, "a@EXAMPLE.com")],
    )
    conn.commit()
    conn.close()
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "c"
key = "id"
[target]
url = "{dst}"
table = "customers"
unique = [["website_id", "email"]]
[fields]
id = "id"
website_id = "website_id"
email = {{ from = "email", normalize = "email" }}
"""
    )
    result = run_migration(spec)
    assert (result.migrated, result.rejected) == (2, 1)
    assert target_rows(dst, "SELECT source_key, reason FROM authmigrate_rejects") == [
        ("3", "duplicate.website_id+email")
    ]
    engine = sa.create_engine(dst)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:
        c.execute(sa.text("INSERT INTO customers VALUES (9, 2, 'a@example.com')"))
    engine.dispose()


def test_scheme_list_reads_a_column_that_mixes_formats(tmp_path: Path) -> None:
    """Joomla 3 keeps bcrypt for new accounts and md5:salt for old ones in one column."""
    import hashlib

    import bcrypt

    import authmigrate

    old = hashlib.md5(b"secret-1" + b"SALTsalt").hexdigest() + ":SALTsalt"
    new = bcrypt.hashpw(b"secret-2", bcrypt.gensalt(4)).decode()
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT, password TEXT)")
    conn.executemany(
        "INSERT INTO u VALUES (?, ?, ?)",
        [(1, "a@example.com", old), (2, "b@example.com", new), (3, "c@example.com", "garbage")],
    )
    conn.commit()
    conn.close()
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "u"
key = "id"
[target]
url = "{dst}"
table = "accounts"
[fields]
id = "id"
email = {{ from = "email", normalize = "email" }}
[credentials]
column = "password"
scheme = ["auto", "joomla"]
"""
    )
    result = run_migration(spec)
    assert (result.migrated, result.rejected) == (2, 1)
    creds = dict(target_rows(dst, "SELECT id, password FROM accounts"))
    assert authmigrate.verify("secret-1", creds[1]) and authmigrate.verify("secret-2", creds[2])
    assert not authmigrate.verify("secret-2", creds[1])
    assert target_rows(dst, "SELECT reason FROM authmigrate_rejects") == [("credential.malformed",)]


def test_unknown_scheme_in_spec_names_the_key_and_a_suggestion() -> None:
    text = """
[source]
url = "sqlite://"
table = "u"
key = "id"
[target]
url = "sqlite://"
table = "n"
[fields]
id = "id"
[credentials]
column = "pass"
scheme = "phpas"
"""
    with pytest.raises(
        SpecError, match=r"credentials.scheme: unknown scheme 'phpas' \(did you mean 'phpass'\?\)"
    ):
        load_spec_text(text)


def test_duplicates_found_across_batches_on_a_typed_unique_field(
    tmp_path: Path, target_url: str
) -> None:
    """The prepared lookup gives back typed values (dates), so a taken date is seen as taken."""
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, day TEXT)")
    conn.executemany(
        "INSERT INTO m VALUES (?, ?)",
        [(1, "2024-01-01"), (2, "2024-01-02"), (3, "2024-01-01"), (4, "2024-01-02 00:00:00")],
    )
    conn.commit()
    conn.close()
    spec = load_spec_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "m"
key = "id"
[target]
url = "{target_url}"
table = "days"
unique = ["day"]
[fields]
id = "id"
day = {{ type = "date" }}
[run]
batch_size = 2
"""
    )
    result = run_migration(spec)
    assert (result.migrated, result.rejected) == (2, 2)
    assert target_rows(
        target_url, "SELECT source_key, merged_into FROM authmigrate_rejects ORDER BY id"
    ) == [
        ("3", "1"),
        ("4", "2"),
    ]


def test_two_sources_with_the_same_table_name_keep_separate_checkpoints(tmp_path: Path) -> None:
    """Two shops' old_users into one target: the second must not resume from the first."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    make_seed_source(a, [f"a{i}@example.com" for i in range(5)])
    make_seed_source(b, [f"b{i}@example.com" for i in range(10)])
    dst = f"sqlite:///{tmp_path}/t.db"
    first = run_migration(load_spec_text(seed_spec(a, dst).replace("new_users", "shop_a")))
    second = run_migration(load_spec_text(seed_spec(b, dst).replace("new_users", "shop_b")))
    third = run_migration(
        load_spec_text(seed_spec(b, dst).replace('table = "new_users"', 'table = "shop_a"'))
    )
    assert first.migrated == 5 and second.migrated == 10
    assert first.migration != second.migration
    assert third.this_run["read"] == 10  # same target table, other source: its own progress
    assert third.by_reason == {"target.key_exists": 5}


def test_a_row_the_target_refuses_is_rejected_and_the_rest_migrates(
    tmp_path: Path, target_url: str
) -> None:
    """A constraint the spec does not know (here a CHECK) must not block the migration."""
    src = tmp_path / "legacy.db"
    make_seed_source(
        src, ["a@example.com", "much.too.long.for.the.check@example.com", "c@example.com"]
    )
    engine = sa.create_engine(target_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE new_users (user_id INTEGER PRIMARY KEY, "
                "email VARCHAR(320) UNIQUE CHECK (length(email) < 20))"
            )
        )
    engine.dispose()
    result = run_migration(load_spec_text(seed_spec(src, target_url, batch=10)))
    assert (result.migrated, result.rejected) == (2, 1)
    (reason, key, detail) = target_rows(
        target_url, "SELECT reason, source_key, detail FROM authmigrate_rejects"
    )[0]
    assert (reason, key) == ("target.constraint", "2")
    assert "check" in detail.lower()
    assert "much.too.long" not in detail


def test_file_keys_keep_their_text_unless_every_one_is_a_plain_integer(
    tmp_path: Path, target_url: str
) -> None:
    """007 is not 7: a file whose keys are not all plain integers keeps them all as text."""
    src = tmp_path / "users.csv"
    src.write_text("id,email\n007,a@x.io\n7,b@x.io\nabc,c@x.io\n", encoding="utf-8")
    spec = load_spec_text(
        f"""
[source]
url = "csv:///{src}"
key = "id"
[target]
url = "{target_url}"
table = "accounts"
[fields]
id = "id"
email = "email"
"""
    )
    result = run_migration(spec)
    assert result.migrated == 3
    assert sorted(r[0] for r in target_rows(target_url, "SELECT id FROM accounts")) == [
        "007",
        "7",
        "abc",
    ]


def test_query_source_keeps_integer_keys_integers(tmp_path: Path, target_url: str) -> None:
    """A query has no reflected types: they are read off its rows, so keys stay numbers."""
    src = tmp_path / "legacy.db"
    make_seed_source(src, [f"u{i}@example.com" for i in range(12)])
    text = seed_spec(src, target_url, batch=5).replace(
        'table = "old_users"', 'query = "SELECT user_id, email FROM old_users WHERE user_id > 2"'
    )
    result = run_migration(load_spec_text(text))
    assert result.migrated == 10
    again = run_migration(load_spec_text(text))
    assert again.this_run["read"] == 0
    keys = [r[0] for r in target_rows(target_url, "SELECT user_id FROM new_users ORDER BY user_id")]
    assert keys == list(range(3, 13))


def test_source_that_disappears_mid_run_stops_clearly_then_resumes(
    tmp_path: Path, pg_url: str
) -> None:
    """The legacy table vanishes after the first batch: the run stops with an error naming
    the source (exit 1: batches were committed), and once it is back the next run finishes
    with nothing lost and nothing doubled."""
    from authmigrate.errors import SourceError

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT)"))
        conn.execute(
            sa.text(
                "INSERT INTO old_users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 50) g"
            )
        )
    text = (
        SEED_SPEC.format(src="x", dst=f"sqlite:///{tmp_path}/t.db", batch=10, dupes="reject")
        .replace("sqlite:///x", pg_url)
        .replace('duplicates = "reject"', 'duplicates = "reject"\nretries = 1')
    )
    spec = load_spec_text(text)

    def vanish(done: int, total: int) -> None:
        if done == 10:
            with engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE old_users RENAME TO old_users_away"))

    with pytest.raises(SourceError, match="reading source postgresql") as info:
        run_migration(spec, progress=vanish)
    assert info.value.exit_code == 1
    assert target_rows(f"sqlite:///{tmp_path}/t.db", "SELECT count(*) FROM new_users") == [(10,)]
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE old_users_away RENAME TO old_users"))
    engine.dispose()
    result = run_migration(spec)
    assert (result.read, result.migrated) == (50, 50)
    assert target_rows(
        f"sqlite:///{tmp_path}/t.db", "SELECT count(*), count(DISTINCT user_id) FROM new_users"
    ) == [(50, 50)]


def test_empty_csv_cells_in_typed_columns_are_null_not_rejects(tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("id,score,joined\n1,,\n2,1.5,2020-01-01 00:00:00\n3, , \n", encoding="utf-8")
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec_text(
        f"""
[source]
url = "csv:///{src}"
key = "id"
[target]
url = "{dst}"
table = "p"
[fields]
id = "id"
score = {{ type = "float" }}
joined = {{ type = "datetime" }}
"""
    )
    result = run_migration(spec)
    assert (result.migrated, result.rejected) == (3, 0)
    assert target_rows(dst, "SELECT id, score, joined IS NULL FROM p ORDER BY id") == [
        (1, None, 1),
        (2, 1.5, 0),
        (3, None, 1),
    ]


@pytest.mark.parametrize(
    "params,message",
    [
        (
            '{ algoritm = "md5" }',
            "credentials.params: digest: unknown import parameter(s): algoritm",
        ),
        ('{ algorithm = "md55" }', "credentials.params: digest: algorithm must be"),
    ],
)
def test_wrong_credential_params_are_a_spec_error_before_anything_is_written(
    tmp_path: Path, params: str, message: str
) -> None:
    import hashlib

    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT, pw TEXT)")
    conn.executemany(
        "INSERT INTO u VALUES (?, ?, ?)",
        [(i, f"u{i}@example.com", hashlib.md5(b"pw").hexdigest()) for i in range(5)],
    )
    conn.commit()
    conn.close()
    dst = tmp_path / "t.db"
    spec = load_spec_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "u"
key = "id"
[target]
url = "sqlite:///{dst}"
table = "accounts"
[fields]
id = "id"
email = "email"
[credentials]
column = "pw"
scheme = "digest"
params = {params}
"""
    )
    with pytest.raises(SpecError) as info:
        run_migration(spec)
    assert str(info.value).startswith(message)
    assert not dst.exists()


def test_raw_rows_redact_credential_like_columns_by_name() -> None:
    """Even a column the spec does not name as the credential is redacted if it looks like one."""
    from authmigrate.sinks.sql import raw_row

    raw = json.loads(
        raw_row(
            {
                "id": 1,
                "pw": "a",
                "user_pw": "b",
                "crypted_password": "c",
                "pepper": "d",
                "api_key": "e",
                "email": "x@y.io",
                "pinned": True,
                "key": 7,
            },
            frozenset(),
        )
    )
    assert raw == {
        "id": 1,
        "pw": "[redacted]",
        "user_pw": "[redacted]",
        "crypted_password": "[redacted]",
        "pepper": "[redacted]",
        "api_key": "[redacted]",
        "email": "x@y.io",
        "pinned": True,
        "key": 7,
    }


def test_spec_defined_segment_routes_accounts_to_its_own_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[notify.segments.vip] with `when`: matching accounts whose password carries over get
    the vip message; an account that must reset keeps its reset message."""
    from authmigrate.notify import generate_outbox_key

    monkeypatch.setenv("AM_TEST_OUTBOX", generate_outbox_key())
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT, tier TEXT, pass TEXT)")
    md5crypt = "$1$saltsalt$hYtMp2GDmBnaa1BNedlXH1"
    conn.executemany(
        "INSERT INTO u VALUES (?, ?, ?, ?)",
        [
            (1, "a@example.com", "gold", md5crypt),
            (2, "b@example.com", "basic", md5crypt),
            (3, "c@example.com", "gold", None),
        ],
    )
    conn.commit()
    conn.close()
    (tmp_path / "vip.txt").write_text("Dear {{ shop_name }} VIP\n", encoding="utf-8")
    (tmp_path / "m.toml").write_text(
        f"""
[source]
url = "sqlite:///{src}"
table = "u"
key = "id"
[target]
url = "sqlite:///{tmp_path}/t.db"
table = "accounts"
[fields]
id = "id"
email = {{ from = "email", normalize = "email" }}
tier = "tier"
[credentials]
column = "pass"
[notify]
outbox_key = "env:AM_TEST_OUTBOX"
[notify.segments.kept]
enabled = true
[notify.segments.vip]
subject = "For our best customers"
text_template = "vip.txt"
when = {{ tier = ["gold"] }}
""",
        encoding="utf-8",
    )
    from authmigrate.spec import load_spec

    run_migration(load_spec(tmp_path / "m.toml"))
    rows = target_rows(
        f"sqlite:///{tmp_path}/t.db",
        "SELECT source_key, segment FROM authmigrate_outbox ORDER BY source_key",
    )
    assert rows == [("1", "vip"), ("2", "kept"), ("3", "reset")]


def test_spec_defined_segment_needs_a_when_rule_naming_real_fields() -> None:
    base = """
[source]
url = "sqlite://"
table = "u"
key = "id"
[target]
url = "sqlite://"
table = "n"
[fields]
id = "id"
[notify.segments.vip]
text_template = "vip.txt"
"""
    with pytest.raises(SpecError, match="say which accounts get it with `when`"):
        load_spec_text(base)
    with pytest.raises(SpecError, match="notify.segments.vip.when: no field 'tier'"):
        load_spec_text(base + 'when = { tier = ["gold"] }\n')
