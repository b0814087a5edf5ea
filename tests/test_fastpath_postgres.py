"""The fast path into a PostgreSQL target equals the Python path it shortcuts.

As in tests/test_fastpath.py: each test runs the same spec over the same source twice, once with
``AUTHMIGRATE_FASTPATH=0`` (every batch through today's Python transforms and stages, the
accounts by binary COPY) and once with the fast path (Arrow decision, COPY into a TEMP stage,
set-based SQL), each into its own fresh database of the suite's real PostgreSQL server, and
compares everything the run leaves behind: the accounts, the rejects (reason, column, detail,
the redacted raw row, in the order written), the checkpoints and written keys, the key state
with its fingerprints, the run's counts, and verify's verdict.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authmigrate.pipeline import plan_migration, run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.sinks.keys import unpack_keys
from authmigrate.spec import load_spec
from tests.pg_server import PgServer
from tests.test_fastpath import SEED_EXTRA, SPEC, _emails, _hashes, _names, generated_rows


def make_source(path: Path, rows: list[tuple[Any, ...]], *, seed: bool = False) -> None:
    conn = sqlite3.connect(path)
    extra = ", password_hash TEXT" if seed else ""
    conn.execute(
        f"CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT, name TEXT{extra})"
    )
    conn.executemany(f"INSERT INTO old_users VALUES (?, ?, ?{', ?' if seed else ''})", rows)
    conn.commit()
    conn.close()


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
                "runs": q(
                    "SELECT status, rows_read, migrated, rejected, merged FROM authmigrate_runs"
                ),
            }
    finally:
        engine.dispose()


def make_target(url: str, rows: list[tuple[int, str, str | None]]) -> None:
    """Accounts the new system holds before the migration (its own spelling of emails)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, "
            "name TEXT)"
        )
        for row in rows:
            conn.execute(
                sa.text("INSERT INTO new_users VALUES (:k, :e, :n)"), dict(zip("ken", row))
            )
    engine.dispose()


def run_both(
    server: PgServer,
    src: Path,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    *,
    before: list[tuple[int, str, str | None]] | None = None,
    batch: int = 50,
    duplicates: str = "reject",
    extra: str = 'name = "name"',
    source_url: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(Python path's outcome, fast path's outcome, batches the fast path did itself): from
    the SQLite file ``src`` or the database ``source_url``, into a fresh PostgreSQL database."""
    outcomes = []
    fast_batches = 0
    for switch in ("0", "1"):
        url = server.create_database("fastpg")
        if before is not None:
            make_target(url, before)
        spec_file = work / f"spec-{switch}.toml"
        text = SPEC.format(src=src, dst="X", batch=batch, duplicates=duplicates, extra=extra)
        text = text.replace('"sqlite:///X"', f'"{url}"')
        if source_url is not None:
            text = text.replace(f'"sqlite:///{src}"', f'"{source_url}"')
        spec_file.write_text(text)
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            result = run_migration(load_spec(spec_file))
        if switch == "1":
            said = [r.getMessage() for r in caplog.records]
            # batches the fast path began, less those it handed to the Python path
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


def _has_nul(rows: list[tuple[Any, ...]]) -> bool:
    return any(isinstance(v, str) and "\x00" in v for row in rows for v in row)


_settings = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_settings
@given(rows=st.lists(st.tuples(_emails, _names), min_size=1, max_size=120))
def test_postgres_fast_path_equals_python_on_fuzzed_values(
    rows: list[tuple[Any, Any]],
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "legacy.db"
        make_source(src, [(i * 3 + 1, email, name) for i, (email, name) in enumerate(rows)])
        python, fast, fast_batches = run_both(
            pg_server, src, Path(tmp), monkeypatch, caplog, batch=40
        )
    # a NUL (which PostgreSQL text cannot hold) in a value the Python path writes makes the
    # stage's COPY fail: that batch is handed to the Python path, whose INSERT rejects it
    assert fast_batches >= 1 or _has_nul(rows)
    assert fast == python


def test_postgres_fast_path_takes_clean_batches_and_equals_python(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, generated_rows(5_000))
    python, fast, fast_batches = run_both(pg_server, src, tmp_path, monkeypatch, caplog, batch=1000)
    # generated_rows puts text names with a quote (O'Hara) and non-ASCII ones in the residue,
    # but every batch stays on the fast path
    assert fast_batches == 5
    assert fast == python
    assert python["runs"][0][2] > 4_500


def test_postgres_fast_path_equals_python_with_target_accounts_and_merges(
    pg_server: PgServer,
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
        (15, "Twin@X.org", "n"),  # the target holds it exactly (904) and spelled otherwise
    ]
    before = [
        (3, "three@x.org", None),
        (900, "first@y.org", None),
        (901, "User.5@Example.com", None),
        (903, "TWIN@x.org", None),
        (904, "twin@x.org", None),
    ]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    for duplicates in ("merge", "reject"):
        python, fast, fast_batches = run_both(
            pg_server,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            before=before,
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
def test_postgres_fast_path_equals_python_for_the_seed_mapping_on_fuzzed_values(
    rows: list[tuple[Any, Any, Any]],
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "legacy.db"
        keyed = [(i * 2 + 1, email, name, h) for i, (email, name, h) in enumerate(rows)]
        make_source(src, keyed, seed=True)
        python, fast, fast_batches = run_both(
            pg_server, src, Path(tmp), monkeypatch, caplog, batch=30, extra=SEED_EXTRA
        )
    # a NUL (which PostgreSQL text cannot hold) in a value the Python path writes makes the
    # stage's COPY fail: that batch is handed to the Python path, whose INSERT rejects it
    assert fast_batches >= 1 or _has_nul(rows)
    assert fast == python


def test_postgres_fast_path_equals_python_for_the_seed_mapping_on_a_generated_dataset(
    pg_server: PgServer,
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
        pg_server, src, tmp_path, monkeypatch, caplog, batch=2000, extra=SEED_EXTRA
    )
    assert fast_batches == 3
    assert fast == python
    assert sum(python["result"][4].values()) > 5_000  # md5 kept for most accounts
    assert python["result"][5].get("reset", 0) > 20  # no hash: the account must reset


def test_postgres_fast_path_interrupted_mid_batch_keeps_earlier_batches_and_resumes(
    pg_server: PgServer, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside the batch transaction, after the fast path's writes: the batch leaves
    nothing, the earlier ones stay, and the next run finishes with verify clean."""
    from authmigrate.pipeline.fast_server import PostgresFastPath

    src = tmp_path / "legacy.db"
    make_source(src, [(i, f" User{i}@Example.com", None) for i in range(1, 10)])
    spec_file = tmp_path / "spec.toml"
    text = SPEC.format(src=src, dst="X", batch=3, duplicates="reject", extra='name = "name"')
    spec_file.write_text(text.replace('"sqlite:///X"', f'"{pg_url}"'))
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    original = PostgresFastPath._write
    calls = {"n": 0}

    def interrupted(self: PostgresFastPath, *args: Any) -> Any:
        calls["n"] += 1
        done = original(self, *args)
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, mid-transaction
        return done

    monkeypatch.setattr(PostgresFastPath, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        run_migration(load_spec(spec_file))
    assert info.value.result.this_run["read"] == 3  # type: ignore[attr-defined]
    got = dump(pg_url)
    assert len(got["accounts"]) == 3 and len(got["state"]) == 3 and len(got["batches"]) == 1
    monkeypatch.setattr(PostgresFastPath, "_write", original)
    again = run_migration(load_spec(spec_file))
    assert again.this_run["read"] == 6
    assert verify_migration(load_spec(spec_file)).ok
    assert dump(pg_url)["accounts"] == [(i, f"user{i}@example.com", None) for i in range(1, 10)]


def test_plan_says_a_postgres_target_takes_the_fast_path_or_why_not(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", None)])
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")

    def plan(url: str) -> dict[str, Any]:
        spec_file = tmp_path / "spec.toml"
        text = SPEC.format(src=src, dst="X", batch=10, duplicates="reject", extra='name = "name"')
        spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
        return plan_migration(load_spec(spec_file)).path

    assert plan(pg_server.create_database("fastpg"))["path"] == "fast"
    with_trigger = pg_server.create_database("fastpg")
    engine = sa.create_engine(with_trigger)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT)"
        )
        conn.exec_driver_sql(
            "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER t BEFORE INSERT ON new_users FOR EACH ROW EXECUTE FUNCTION f()"
        )
    engine.dispose()
    why = plan(with_trigger)
    assert why["path"] == "python" and "trigger" in why["why"]
    no_index = pg_server.create_database("fastpg")
    engine = sa.create_engine(no_index)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT, name TEXT)"
        )
    engine.dispose()
    why = plan(no_index)
    assert why["path"] == "python" and "unique index" in why["why"]


def test_postgres_target_without_the_unique_index_takes_the_python_path_with_same_outcome(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", None), (2, "A@x.org", None), (3, "b@x.org", None)])
    outcomes = []
    for switch in ("0", "1"):
        url = pg_server.create_database("fastpg")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT, name TEXT)"
            )
            conn.exec_driver_sql("INSERT INTO new_users VALUES (50, 'b@x.org', NULL)")
        engine.dispose()
        spec_file = tmp_path / f"s{switch}.toml"
        text = SPEC.format(src=src, dst="X", batch=10, duplicates="reject", extra='name = "name"')
        spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            run_migration(load_spec(spec_file))
        assert not any("fast path," in r.getMessage() for r in caplog.records)
        outcomes.append(dump(url))
    assert outcomes[0] == outcomes[1]
    assert [r[3] for r in outcomes[1]["rejects"]] == ["duplicate.email", "duplicate.email"]


def test_postgres_unsynced_count_on_the_server_equals_the_python_count(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys added below the checkpoint after a run, and a key whose state says deleted, are
    what ``run`` leaves to ``sync``: the server's anti-join counts them as Python does."""
    counted = {}
    for switch in ("0", "1"):
        src = tmp_path / f"legacy-{switch}.db"
        make_source(src, [(k, f"u{k}@x.org", None) for k in range(2, 40, 2)])
        url = pg_server.create_database("fastpg")
        spec_file = tmp_path / f"spec-{switch}.toml"
        text = SPEC.format(src=src, dst="X", batch=7, duplicates="reject", extra='name = "name"')
        spec_file.write_text(text.replace('"sqlite:///X"', f'"{url}"'))
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        assert run_migration(load_spec(spec_file)).unsynced == 0
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE authmigrate_key_state SET state = 'deleted' WHERE source_key = '10'"
            )
        engine.dispose()
        conn2 = sqlite3.connect(src)
        conn2.executemany(
            "INSERT INTO old_users VALUES (?, ?, NULL)",
            [(k, f"n{k}@x.org") for k in (3, 5, 7)],
        )
        conn2.commit()
        conn2.close()
        counted[switch] = run_migration(load_spec(spec_file)).unsynced
    assert counted == {"0": 4, "1": 4}


def make_pg_source(url: str, rows: list[tuple[int, Any, Any]]) -> None:
    """``old_users`` in PostgreSQL (text columns: a value that is not text is stored as its
    ``repr``, and NUL, which PostgreSQL text cannot hold, is left out)."""

    def text(v: Any) -> str | None:
        if v is None:
            return None
        return (v if isinstance(v, str) else repr(v)).replace("\x00", "")

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE old_users (user_id BIGINT PRIMARY KEY, email TEXT, name VARCHAR(40))"
        )
        for k, email, name in rows:
            conn.exec_driver_sql(
                "INSERT INTO old_users VALUES (%s, %s, %s)", (k, text(email), text(name))
            )
    engine.dispose()


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(st.tuples(_emails, _names), min_size=1, max_size=100))
def test_fast_path_from_a_postgres_source_equals_python_on_fuzzed_values(
    rows: list[tuple[Any, Any]],
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL source (read as Arrow by the ADBC driver) into a PostgreSQL target."""
    source = pg_server.create_database("fastsrc")
    make_pg_source(source, [(i * 3 + 1, e, n) for i, (e, n) in enumerate(rows)])
    with tempfile.TemporaryDirectory() as tmp:
        python, fast, fast_batches = run_both(
            pg_server, Path("SRC"), Path(tmp), monkeypatch, caplog, batch=30, source_url=source
        )
    assert fast_batches >= 1
    assert fast == python


def test_fast_path_from_a_postgres_source_takes_every_batch(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = pg_server.create_database("fastsrc")
    make_pg_source(source, generated_rows(3_000))
    before = [(4, "three@x.org", None), (900, "user10@example.com", None)]
    python, fast, fast_batches = run_both(
        pg_server,
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
    assert python["runs"][0][2] > 2_700
