"""The fast path into a MariaDB target equals the Python path it shortcuts.

As in tests/test_fastpath_postgres.py: each test runs the same spec over the same source twice,
once with ``AUTHMIGRATE_FASTPATH=0`` (every batch through today's Python transforms and stages,
the accounts by PyMySQL's ``executemany``) and once with the fast path (Arrow decision, the
multi-row INSERT text built column-wise), each into its own fresh database of the suite's real
MariaDB server, and compares everything the run leaves behind: the accounts, the rejects
(reason, column, detail, the redacted raw row, in the order written), the checkpoints and
written keys, the key state with its fingerprints, the run's counts, and verify's verdict.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import plan_migration, run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.sinks.keys import unpack_keys
from authmigrate.spec import load_spec
from tests.mariadb_server import fresh_database
from tests.pg_server import PgServer
from tests.test_fastpath import SEED_EXTRA, SPEC, _emails, _hashes, _names, generated_rows
from tests.test_fastpath_postgres import make_pg_source, make_source
from tests.test_fastpath_postgres_hostile import _change_source, _sync_view


def dump(url: str) -> dict[str, Any]:
    """Everything a run leaves in the target database, without run ids and clock times."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:

            def q(sql: str) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in conn.exec_driver_sql(sql)]

            return {
                "accounts": q("SELECT * FROM new_users ORDER BY user_id"),
                "rejects": q(
                    "SELECT batch_no, source_key, outcome, reason, column_name, detail, "
                    "merged_into, raw FROM authmigrate_rejects ORDER BY id"
                ),
                "batches": [
                    (*row[:-1], unpack_keys(row[-1]))
                    for row in q(
                        "SELECT batch_no, first_key, last_key, rows_read, migrated, rejected, "
                        "merged, written_keys FROM authmigrate_batches ORDER BY batch_no"
                    )
                ],
                "state": q(
                    "SELECT source_key, state, fingerprint, credential_fp, target_fp "
                    "FROM authmigrate_key_state ORDER BY source_key"
                ),
                "runs": sorted(
                    q("SELECT status, rows_read, migrated, rejected, merged FROM authmigrate_runs")
                ),
            }
    finally:
        engine.dispose()


DEFAULT_TABLE = (
    "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, name TEXT)"
)
"""A table the new system made: the server's default collation (case-insensitive, PAD SPACE)."""


def make_target(
    url: str, rows: list[tuple[int, str, str | None]], table: str = DEFAULT_TABLE
) -> None:
    """Accounts the new system holds before the migration (its own spelling of emails)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(table)
        for row in rows:
            conn.execute(
                sa.text("INSERT INTO new_users VALUES (:k, :e, :n)"), dict(zip("ken", row))
            )
    engine.dispose()


def run_both(
    server_url: str,
    src: Path,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    *,
    before: list[tuple[int, str, str | None]] | None = None,
    table: str = DEFAULT_TABLE,
    batch: int = 50,
    duplicates: str = "reject",
    extra: str = 'name = "name"',
    copy_email: bool = False,
    source_url: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(Python path's outcome, fast path's outcome, batches the fast path did itself);
    ``copy_email``: the unique field copied as it is (no ``normalize``)."""
    outcomes = []
    fast_batches = 0
    for switch in ("0", "1"):
        url = fresh_database(server_url, "fastmaria")
        if before is not None:
            make_target(url, before, table)
        spec_file = work / f"spec-{switch}.toml"
        text = SPEC.format(src=src, dst="X", batch=batch, duplicates=duplicates, extra=extra)
        if copy_email:
            text = text.replace(COPIED_FROM, 'email = "email"')
        if source_url is not None:
            text = text.replace(f'"sqlite:///{src}"', f'"{source_url}"')
        spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            result = run_migration(load_spec(spec_file))
        if switch == "1":
            said = [r.getMessage() for r in caplog.records]
            fast_batches = sum("fast path," in m for m in said)
            fast_batches -= sum(m.endswith(": Python path") for m in said)
        verified = verify_migration(load_spec(spec_file))
        out = dump(url)
        if "[tokens]" in extra:
            tokens = [row[-1] for row in out["accounts"]]
            assert all(t is not None and t.startswith("$amtok$v=1,alg=sha256,") for t in tokens)
            assert len(set(tokens)) == len(tokens)
            out["accounts"] = [row[:-1] for row in out["accounts"]]
        out["verify"] = (verified.ok, verified.reconciled)
        out["result"] = (
            result.status,
            result.this_run,
            result.by_reason,
            result.unsynced,
            result.schemes,
            result.segments,
        )
        outcomes.append(out)
    return outcomes[0], outcomes[1], fast_batches


COPIED_FROM = 'email = { from = "email", normalize = "email" }'


_settings = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# values that collide under MariaDB's default collations (case, trailing spaces) but not in
# Python, and values a literal must escape
_collide = st.sampled_from(
    ["a@x.org", "A@X.ORG", "a@x.org ", "b@x.org", "B@x.org", "bob", "Bob", "bob ", "BOB  "]
)
_hostile = st.sampled_from(
    ["it's", "back\\slash", "nul\x00byte", "100%", "a_b", "%_%", "'; DROP TABLE x; --", '"q"']
)


@_settings
@given(rows=st.lists(st.tuples(_emails, st.one_of(_names, _collide, _hostile)), max_size=100))
def test_mariadb_fast_path_equals_python_on_fuzzed_values(
    rows: list[tuple[Any, Any]],
    mariadb_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = rows or [("a@x.org", "x")]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "legacy.db"
        make_source(src, [(i * 3 + 1, email, name) for i, (email, name) in enumerate(rows)])
        python, fast, fast_batches = run_both(
            mariadb_url, src, Path(tmp), monkeypatch, caplog, batch=40
        )
    assert fast_batches >= 1
    assert fast == python


@_settings
@given(rows=st.lists(st.tuples(_collide, _hostile), min_size=1, max_size=60))
def test_mariadb_fast_path_equals_python_with_a_copied_unique_field_under_the_collation(
    rows: list[tuple[Any, Any]],
    mariadb_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The unique field copied as it is (no normalize): ``bob`` and ``Bob `` are two values to
    Python and one to a case-insensitive PAD SPACE index; a table the new system made with the
    server's default collation, holding some of them already."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "legacy.db"
        make_source(src, [(i + 1, email, name) for i, (email, name) in enumerate(rows)])
        python, fast, _ = run_both(
            mariadb_url,
            src,
            Path(tmp),
            monkeypatch,
            caplog,
            before=[(900, "BOB", None), (901, "a@x.org ", None)],
            batch=15,
            copy_email=True,
        )
    assert fast == python


def test_mariadb_fast_path_equals_python_for_a_copied_unique_field(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A unique field copied without normalize: trailing spaces and case collide in the
    index, not in Python; both paths end alike (the index's refusals rejected per row)."""
    rows = [
        (1, "bob", "a"),
        (2, "Bob", "b"),
        (3, "bob ", "c"),
        (4, "carl", "d"),
        (5, "carl", "e"),
        (6, "dan", "f"),
    ]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    binary = DEFAULT_TABLE.replace("UNIQUE", "COLLATE utf8mb4_bin UNIQUE")
    # batch 1 (bob, Bob, "bob "): one value to either index, three to Python: the target
    # refuses what the Python path decides, so the Python path does the batch (it rejects
    # them as target.constraint); batch 2 (carl twice, dan beside the target's DAN): the
    # fast path's own decision stands under utf8mb4_bin, not under the default collation
    for table, fast_expected in ((DEFAULT_TABLE, 0), (binary, 1)):
        python, fast, fast_batches = run_both(
            mariadb_url,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            before=[(900, "DAN", None)],
            table=table,
            batch=3,
            copy_email=True,
        )
        assert fast == python
        assert fast_batches == fast_expected
        reasons = {r[1]: r[3] for r in fast["rejects"]}
        assert reasons["5"] == "duplicate.email"
        assert reasons["3"] == "target.constraint"


def test_mariadb_fast_path_takes_clean_batches_and_equals_python(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, generated_rows(5_000))
    python, fast, fast_batches = run_both(
        mariadb_url, src, tmp_path, monkeypatch, caplog, batch=1000
    )
    assert fast_batches == 5
    assert fast == python
    assert python["runs"][0][2] > 4_500


def test_mariadb_fast_path_equals_python_with_target_accounts_and_merges(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # keys the target holds, emails the new system wrote in its own spelling, and duplicates
    # inside a batch, across batches, and in the residue, merged into the first in key order
    rows = [
        (1, " Jane@Example.COM", "a"),
        (2, "jane@example.com", "b"),  # duplicate of 1 in the same batch
        (3, "old@x.org", "c"),  # the target holds key 3
        (4, "User.5@Example.com", None),  # the target holds user.5@example.com spelled otherwise
        (5, "\u00a0jane@EXAMPLE.com", "d"),  # residue (non-ASCII edge), duplicate of 1
        (6, "kept@x.org", "e"),
        (7, "KEPT@x.org", "f"),  # next batch: duplicate of an earlier batch's account
        (8, "first@y.org", "g"),  # the target holds first@y.org under key 900
        (9, "not an email", "h"),
        (10, None, "i"),
        (11, None, "j"),
        (12, "first@y.org", "k"),  # the target's value again, in the same batch
        (13, " Other@Z.org", "l"),
        (14, "other@z.ORG ", "m"),  # duplicate of 13 spelled otherwise in the source
        (15, "Twin@X.org", "n"),
    ]
    before: list[tuple[int, str, str | None]] = [
        (3, "three@x.org", None),
        (900, "first@y.org", None),
        (901, "User.5@Example.com", None),
        (904, "twin@x.org", None),
    ]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    binary = DEFAULT_TABLE.replace("UNIQUE", "COLLATE utf8mb4_bin UNIQUE")
    for duplicates, table in (("merge", DEFAULT_TABLE), ("reject", binary)):
        python, fast, fast_batches = run_both(
            mariadb_url,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            before=before,
            table=table,
            batch=6,
            duplicates=duplicates,
        )
        assert fast_batches == 3
        assert fast == python
        reasons = [(r[1], r[3], r[6]) for r in fast["rejects"]]
        assert ("2", "duplicate.email", "1") in reasons
        assert ("3", "target.key_exists", None) in reasons
        assert ("4", "duplicate.email", "901") in reasons
        assert ("7", "duplicate.email", "6") in reasons
        assert ("12", "duplicate.email", "900") in reasons
        assert ("14", "duplicate.email", "13") in reasons
        assert ("15", "duplicate.email", "904") in reasons


@_settings
@given(rows=st.lists(st.tuples(_emails, _names, _hashes), min_size=1, max_size=80))
def test_mariadb_fast_path_equals_python_for_the_seed_mapping_on_fuzzed_values(
    rows: list[tuple[Any, Any, Any]],
    mariadb_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "legacy.db"
        keyed = [(i * 2 + 1, email, name, h) for i, (email, name, h) in enumerate(rows)]
        make_source(src, keyed, seed=True)
        python, fast, fast_batches = run_both(
            mariadb_url, src, Path(tmp), monkeypatch, caplog, batch=30, extra=SEED_EXTRA
        )
    assert fast_batches >= 1
    assert fast == python


def test_mariadb_fast_path_equals_python_for_the_seed_mapping_on_a_generated_dataset(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [
        (k, email, name, hashlib.md5(f"pw{k}".encode()).hexdigest() if k % 97 else None)
        for k, email, name in generated_rows(6_000)
    ]
    src = tmp_path / "legacy.db"
    make_source(src, rows, seed=True)
    python, fast, fast_batches = run_both(
        mariadb_url, src, tmp_path, monkeypatch, caplog, batch=2000, extra=SEED_EXTRA
    )
    assert fast_batches == 3
    assert fast == python
    assert sum(python["result"][4].values()) > 5_000
    assert python["result"][5].get("reset", 0) > 20


def test_mariadb_fast_path_escapes_hostile_values_exactly(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Quotes and backslashes reach the statement text through PyMySQL's escape (the Arrow
    decision keeps them out of the fast rows: the residue), percent, underscore and double
    quotes through the Arrow paste (fast rows), and arrive in the target byte for byte; a
    NUL is rejected by the transform on both paths (so it never reaches the text)."""
    names = ["it's", "back\\slash", "nul\x00byte", "100%", "a_b", "%s %(x)s", "\\'", '"q"']
    rows = [(i + 1, f"u{i}@x.org", name) for i, name in enumerate(names)]
    rows.append((len(names) + 1, "clean@x.org", "plain"))
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    python, fast, fast_batches = run_both(mariadb_url, src, tmp_path, monkeypatch, caplog)
    assert fast_batches == 1
    assert fast == python
    assert [row[2] for row in fast["accounts"]] == [n for n in names if "\x00" not in n] + ["plain"]
    assert [r[1] for r in fast["rejects"]] == ["3"]


def test_mariadb_fast_path_interrupted_mid_batch_keeps_earlier_batches_and_resumes(
    mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure inside the batch transaction, after the fast path's writes: the batch leaves
    nothing, the earlier ones stay, and the next run resumes, verify clean, rollback exact."""
    from authmigrate.pipeline.fast_mariadb import MariaDBFastPath

    url = fresh_database(mariadb_url, "fastmaria")
    src = tmp_path / "legacy.db"
    make_source(src, [(i, f" User{i}@Example.com", None) for i in range(1, 10)])
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=3, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    original = MariaDBFastPath._write
    calls = {"n": 0}

    def interrupted(self: MariaDBFastPath, *args: Any) -> Any:
        calls["n"] += 1
        done = original(self, *args)
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, mid-transaction
        return done

    monkeypatch.setattr(MariaDBFastPath, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_migration(load_spec(spec_file))
    got = dump(url)
    assert len(got["accounts"]) == 3 and len(got["state"]) == 3 and len(got["batches"]) == 1
    monkeypatch.setattr(MariaDBFastPath, "_write", original)
    again = run_migration(load_spec(spec_file))
    assert again.this_run["read"] == 6
    assert verify_migration(load_spec(spec_file)).ok
    assert dump(url)["accounts"] == [(i, f"user{i}@example.com", None) for i in range(1, 10)]
    rollback(load_spec(spec_file))
    assert dump(url)["accounts"] == []


@pytest.mark.parametrize(
    ("table", "why"),
    [
        (
            DEFAULT_TABLE.replace(" UNIQUE", ""),
            "the target table 'new_users' has no unique index on email to find duplicates",
        ),
        (
            DEFAULT_TABLE.replace("name TEXT", "name BLOB"),
            "the target column name is of type blob",
        ),
        (
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320), "
            "name TEXT, UNIQUE (email(20)))",
            "the target table 'new_users' has no unique index on email to find duplicates",
        ),
        (
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320), "
            "name TEXT, UNIQUE (email, name(10)))",
            "the target table 'new_users' has no unique index on email to find duplicates",
        ),
    ],
)
def test_mariadb_plan_says_why_a_target_table_keeps_the_python_path(
    table: str, why: str, mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(mariadb_url, "fastmaria")
    make_target(url, [], table)
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", "a")])
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=3, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    plan = plan_migration(load_spec(spec_file))
    assert plan.path == {"path": "python", "why": why}


def test_mariadb_plan_says_why_a_trigger_keeps_the_python_path(
    mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(mariadb_url, "fastmaria")
    make_target(url, [])
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER t BEFORE INSERT ON new_users FOR EACH ROW SET NEW.name = 'x'"
        )
    engine.dispose()
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", "a")])
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=3, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    plan = plan_migration(load_spec(spec_file))
    assert plan.path == {"path": "python", "why": "the target table 'new_users' has a trigger"}
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "0")
    assert (
        plan_migration(load_spec(spec_file)).path["why"] == "switched off (AUTHMIGRATE_FASTPATH=0)"
    )


def test_mariadb_plan_says_a_fresh_target_takes_the_fast_path(
    mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database(mariadb_url, "fastmaria")
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", "a")])
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=3, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    assert plan_migration(load_spec(spec_file)).path["path"] == "fast"


def test_mariadb_source_changed_then_sync_then_run_same_on_both_paths(
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a run, the source changes; sync, a second run, verify and rollback leave the
    same on both paths (the fast path's key state is the one sync reads)."""
    rows = [(i, f"{chr(96 + i)}@X.org", None) for i in range(1, 10)]
    outcomes = []
    for switch in ("0", "1"):
        work = tmp_path / switch
        work.mkdir()
        src = work / "legacy.db"
        make_source(src, rows)
        url = fresh_database(mariadb_url, "fastmaria")
        spec_file = work / "spec.toml"
        text = SPEC.format(src=src, dst="X", batch=3, duplicates="reject", extra='name = "name"')
        spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            first = run_migration(load_spec(spec_file))
        assert switch == "0" or sum("fast path," in r.getMessage() for r in caplog.records) == 3
        out = dump(url)
        _change_source(src)
        synced = _sync_view(sync_migration(load_spec(spec_file)))
        after_sync = dump(url)
        again = run_migration(load_spec(spec_file))
        v = verify_migration(load_spec(spec_file))
        rolled = rollback(load_spec(spec_file))
        outcomes.append(
            (out, first.unsynced, synced, after_sync, dump(url), again.this_run, v.ok, rolled)
        )
    for i, (python, fast) in enumerate(zip(*outcomes, strict=True)):
        if isinstance(python, dict):
            for part in python:
                assert fast[part] == python[part], (i, part)
        assert fast == python, i
    assert outcomes[0][6] is True


def test_mariadb_fast_path_from_a_postgres_source_equals_python(
    pg_server: PgServer,
    mariadb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL source (read as Arrow by the ADBC driver) into a MariaDB target holding
    accounts already, merged duplicates."""
    source = pg_server.create_database("fastsrc")
    make_pg_source(source, generated_rows(3_000))
    before: list[tuple[int, str, str | None]] = [
        (4, "three@x.org", None),
        (900, "USER10@example.com", None),
    ]
    python, fast, fast_batches = run_both(
        mariadb_url,
        Path("SRC"),
        tmp_path,
        monkeypatch,
        caplog,
        batch=1000,
        source_url=source,
        before=before,
        duplicates="merge",
    )
    assert fast_batches == 3
    assert fast == python
    assert ("4", "target.key_exists") in [(r[1], r[3]) for r in fast["rejects"]]


def test_mariadb_source_stays_on_the_python_path_and_plan_says_why(
    mariadb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = fresh_database(mariadb_url, "fastsrc")
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE old_users (user_id BIGINT PRIMARY KEY, email TEXT, name TEXT)"
        )
        conn.exec_driver_sql("INSERT INTO old_users VALUES (1, 'a@x.org', 'a')")
    engine.dispose()
    url = fresh_database(mariadb_url, "fastmaria")
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src="SRC", dst="X", batch=3, duplicates="reject", extra='name = "name"')
    text = text.replace('"sqlite:///SRC"', f'"{source}"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    assert plan_migration(load_spec(spec_file)).path == {
        "path": "python",
        "why": "the fast path reads SQLite and PostgreSQL sources only so far",
    }
    result = run_migration(load_spec(spec_file))
    assert result.this_run["migrated"] == 1
    assert verify_migration(load_spec(spec_file)).ok


def test_mariadb_statement_literals_read_back_as_the_values_on_the_server(
    mariadb_url: str,
) -> None:
    """Every column form the statement text takes (pasted in Arrow, or escaped by PyMySQL
    when any value of the column needs it: a quote, a backslash, a NUL) reads back on the
    server as the value itself."""
    import pyarrow as pa
    import pymysql

    from authmigrate.pipeline.fast_mariadb import MariaDBFastPath

    url = sa.make_url(mariadb_url)
    conn = pymysql.connect(host=url.host, port=url.port, user=url.username, charset="utf8mb4")
    try:
        cur = conn.cursor()
        columns = [
            ["plain", "100%", "a_b", '"q"', None, "%s %(x)s", ""],  # pasted in Arrow
            ["it's", "back\\slash", "nul\x00byte", "\\'", "'; DROP TABLE x; --", None],
            ["é\u00a0ü", "tab\there", "new\nline", "\x1a"],
        ]
        for values in columns:
            literals = MariaDBFastPath._literals(conn.escape, pa.array(values, pa.string()), None)
            cur.execute("SELECT " + ", ".join(literals.to_pylist()))
            assert list(cur.fetchone()) == values
            # the first column is pasted as it is (PyMySQL would have sent \"q\")
            assert ("'\"q\"'" in literals.to_pylist()) == (values is columns[0])
        ints = MariaDBFastPath._literals(conn.escape, pa.array([1, None, -5], pa.int64()), None)
        assert ints.to_pylist() == ["1", "NULL", "-5"]
    finally:
        conn.close()
