"""The fast path (Arrow decision + set-based SQLite write) equals the Python path it shortcuts.

Each test runs the same spec over the same source twice, once with ``AUTHMIGRATE_FASTPATH=0``
(every batch through today's Python transforms and stages) and once with the fast path, and
compares everything the run leaves behind: the accounts table, the rejects (reason, column,
detail, the redacted raw row, in the order written), the checkpoints and written keys, the key
state with its fingerprints, the run's counts, and verify's verdict.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authmigrate.pipeline import plan_migration, run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.sinks.keys import unpack_keys
from authmigrate.spec import load_spec

SPEC = """
[source]
url = "sqlite:///{src}"
table = "old_users"
key = "user_id"

[target]
url = "sqlite:///{dst}"
table = "new_users"

[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email" }}
{extra}

[run]
batch_size = {batch}
duplicates = "{duplicates}"
"""


def make_source(path: Path, rows: list[tuple[int, Any, Any]]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
    conn.executemany("INSERT INTO old_users VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()


def make_target(path: Path, rows: list[tuple[int, str, str | None]]) -> None:
    """Accounts the new system holds before the migration (its own spelling of emails)."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, name TEXT)"
    )
    conn.executemany("INSERT INTO new_users VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()


def dump(path: Path) -> dict[str, Any]:
    """Everything a run leaves in the target, without run ids and clock times."""
    conn = sqlite3.connect(path)
    try:
        q = conn.execute
        return {
            "accounts": q("SELECT * FROM new_users ORDER BY user_id").fetchall(),
            "rejects": q(
                "SELECT batch_no, source_key, outcome, reason, column_name, detail, "
                "merged_into, raw FROM authmigrate_rejects ORDER BY id"
            ).fetchall(),
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
            ).fetchall(),
            "runs": q(
                "SELECT status, rows_read, migrated, rejected, merged FROM authmigrate_runs"
            ).fetchall(),
        }
    finally:
        conn.close()


def run_both(
    work: Path,
    rows: list[tuple[int, Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    *,
    before: list[tuple[int, str, str | None]] | None = None,
    batch: int = 50,
    duplicates: str = "reject",
    extra: str = 'name = "name"',
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(Python path's outcome, fast path's outcome, batches the fast path did itself)."""
    src = work / "legacy.db"
    make_source(src, rows)
    outcomes = []
    fast_batches = 0
    for switch in ("0", "1"):
        dst = work / f"target-{switch}.db"
        if before is not None:
            make_target(dst, before)
        spec_file = work / f"spec-{switch}.toml"
        spec_file.write_text(
            SPEC.format(src=src, dst=dst, batch=batch, duplicates=duplicates, extra=extra)
        )
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            result = run_migration(load_spec(spec_file))
        if switch == "1":
            fast_batches = sum("fast path" in r.getMessage() for r in caplog.records)
        verified = verify_migration(load_spec(spec_file))
        out = dump(dst)
        out["verify"] = (verified.ok, verified.reconciled)
        out["result"] = (result.status, result.this_run, result.by_reason, result.unsynced)
        outcomes.append(out)
    return outcomes[0], outcomes[1], fast_batches


_PIECES = [
    "user",
    "User.5",
    "a",
    "@",
    "@@",
    ".",
    "..",
    "-",
    "_",
    "example",
    "EXAMPLE",
    "com",
    ".com",
    " ",
    "\t",
    "\n",
    "\u00a0",
    "\u200b",
    "\u2003",
    "é",
    "É",
    "ß",
    "İ",
    "\x00",
    "'",
    '"',
    "\\",
    "(",
    "+",
    "x" * 70,
    "y" * 300,
    "josé",
    "Ｆｕｌｌ",
]

_good_emails = st.builds(
    lambda pad, local, domain: f"{pad}{local}@{domain}{pad}",
    st.sampled_from(["", " ", "  ", "\t", "\u00a0"]),
    st.from_regex(r"[A-Za-z0-9._%+'-]{1,12}", fullmatch=True),
    st.sampled_from(["Example.COM", "x.org", "a-b.c.de", "-bad.com", "ok-.com", "X.ORG"]),
)
_emails = st.one_of(
    st.none(),
    _good_emails,
    _good_emails,
    st.lists(st.sampled_from(_PIECES), max_size=8).map("".join),
    st.text(max_size=20),
    st.integers(-5, 10**12),
    st.binary(max_size=12),
    st.sampled_from(["a@x.org", "A@X.ORG", " a@x.org ", "b@x.org"]),  # duplicates
)
_names = st.one_of(st.none(), st.text(max_size=10), st.integers(0, 99), st.just("Jane"))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(st.tuples(_emails, _names), min_size=1, max_size=120))
def test_fast_path_equals_python_on_fuzzed_values(
    rows: list[tuple[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keyed = [(i * 3 + 1, email, name) for i, (email, name) in enumerate(rows)]
        python, fast, fast_batches = run_both(Path(tmp), keyed, monkeypatch, caplog, batch=40)
    assert fast_batches >= 1
    assert fast == python


def test_fast_path_equals_python_with_target_accounts_and_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
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
    ]
    before = [
        (3, "three@x.org", None),
        (900, "first@y.org", None),
        (901, "User.5@Example.com", None),
    ]
    python, fast, fast_batches = run_both(
        tmp_path, rows, monkeypatch, caplog, before=before, batch=6, duplicates="merge"
    )
    assert fast_batches == 2
    assert fast == python
    reasons = [(r[1], r[3]) for r in fast["rejects"]]
    assert ("2", "duplicate.email") in reasons and ("3", "target.key_exists") in reasons


def test_an_exact_holder_wins_over_a_holder_spelled_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The target holds a value twice: exactly (key 950) and spelled otherwise (key 940, an
    account the new system wrote). The Python path names the exact holder as the first; the
    fast path named the other one."""
    rows = [(1, " User.7@Example.com", "a"), (2, "other@x.org", "b")]
    before = [(940, "User.7@Example.com", None), (950, "user.7@example.com", None)]
    for duplicates in ("merge", "reject"):
        work = tmp_path / duplicates
        work.mkdir()
        python, fast, fast_batches = run_both(
            work, rows, monkeypatch, caplog, before=before, batch=6, duplicates=duplicates
        )
        assert fast_batches == 1
        assert fast == python
        assert [str(r[6]) for r in fast["rejects"]] == ["950"]


def test_fast_path_equals_python_on_a_generated_50k_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rows = generated_rows(50_000)
    python, fast, fast_batches = run_both(tmp_path, rows, monkeypatch, caplog, batch=5000)
    assert fast_batches == 10
    assert fast == python
    assert python["runs"][0][2] > 45_000  # mostly clean rows: the fast path did the work


@pytest.mark.slow
def test_fast_path_equals_python_on_a_generated_1m_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rows = generated_rows(1_000_000)
    python, fast, fast_batches = run_both(tmp_path, rows, monkeypatch, caplog, batch=5000)
    assert fast_batches == 200
    assert fast == python


def generated_rows(n: int) -> list[tuple[int, Any, Any]]:
    """A shop's users: mostly clean mixed-case emails with padding, and 4% of trouble
    (unicode, invalid, NUL, duplicates, blobs, numbers)."""
    rng = random.Random(13)
    domains = ["Example.COM", "mail.example.org", "shop.EXAMPLE.net", "example.de"]
    trouble = [
        lambda i: f"José.{i}@example.com",
        lambda i: f"user{i}@@example.com",
        lambda i: f" user{i}@example.com\u00a0",
        lambda i: f"user{i % 500}@example.com",
        lambda i: f"o'brien{i}@example.com",
        lambda i: f"user{i}\x00@example.com",
        lambda i: None,
        lambda i: f"user{i}@localhost",
        lambda i: f"user{i}@example.com".encode(),
        lambda i: i,
        lambda i: "x" * 300 + "@example.com",
    ]
    rows: list[tuple[int, Any, Any]] = []
    for uid in range(1, n + 1):
        if rng.random() < 0.04:
            email = rng.choice(trouble)(uid)
        else:
            local = f"User.{uid}" if rng.random() < 0.5 else f"user{uid}"
            email = f" {local}@{rng.choice(domains)}"
        rows.append((uid * 2, email, rng.choice([None, "Jane", "Ｆｕｌｌ", "O'Hara"])))
    return rows


def test_plan_says_which_path_a_spec_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", None)])
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        SPEC.format(
            src=src, dst=tmp_path / "t.db", batch=10, duplicates="reject", extra='name = "name"'
        )
    )
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    assert plan_migration(load_spec(spec_file)).path["path"] == "fast"
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "0")
    off = plan_migration(load_spec(spec_file)).path
    assert off["path"] == "python" and "AUTHMIGRATE_FASTPATH=0" in off["why"]
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    spec_file.write_text(
        SPEC.format(
            src=src,
            dst=tmp_path / "t.db",
            batch=10,
            duplicates="reject",
            extra='name = { from = "name", normalize = ["nfkc"] }',
        )
    )
    why = plan_migration(load_spec(spec_file)).path
    assert why["path"] == "python" and "fields.name" in why["why"] and "nfkc" in why["why"]


def test_fast_path_interrupted_mid_batch_keeps_earlier_batches_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside the fast path's batch transaction, after its writes: the batch leaves
    nothing, the earlier ones stay, and the next run finishes with verify clean."""
    from authmigrate.pipeline.fast import FastPath

    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    make_source(src, [(i, f" User{i}@Example.com", None) for i in range(1, 10)])
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        SPEC.format(src=src, dst=dst, batch=3, duplicates="reject", extra='name = "name"')
    )
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", "1")
    original = FastPath._write
    calls = {"n": 0}

    def interrupted(self: FastPath, *args: Any) -> Any:
        calls["n"] += 1
        done = original(self, *args)
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, mid-transaction
        return done

    monkeypatch.setattr(FastPath, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        run_migration(load_spec(spec_file))
    assert info.value.result.this_run["read"] == 3  # type: ignore[attr-defined]
    conn = sqlite3.connect(dst)
    assert conn.execute("SELECT count(*) FROM new_users").fetchone() == (3,)
    assert conn.execute("SELECT count(*) FROM authmigrate_key_state").fetchone() == (3,)
    assert conn.execute("SELECT count(*) FROM authmigrate_batches").fetchone() == (1,)
    conn.close()
    monkeypatch.setattr(FastPath, "_write", original)
    again = run_migration(load_spec(spec_file))
    assert again.this_run["read"] == 6
    assert verify_migration(load_spec(spec_file)).ok
    assert dump(dst)["accounts"] == [(i, f"user{i}@example.com", None) for i in range(1, 10)]


def test_an_existing_table_without_the_unique_index_takes_the_python_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A target table the new system made without a unique index on email: the index cannot
    find duplicates there, so the run keeps to the Python path, with the same outcome."""
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", None), (2, "A@x.org", None), (3, "b@x.org", None)])
    outcomes = []
    for switch in ("0", "1"):
        dst = tmp_path / f"t{switch}.db"
        conn = sqlite3.connect(dst)
        conn.execute("CREATE TABLE new_users (user_id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
        conn.execute("INSERT INTO new_users VALUES (50, 'b@x.org', NULL)")
        conn.commit()
        conn.close()
        spec_file = tmp_path / f"s{switch}.toml"
        spec_file.write_text(
            SPEC.format(src=src, dst=dst, batch=10, duplicates="reject", extra='name = "name"')
        )
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            run_migration(load_spec(spec_file))
        assert not any("fast path" in r.getMessage() for r in caplog.records)
        outcomes.append(dump(dst))
        if switch == "1":
            why = plan_migration(load_spec(spec_file)).path
            assert why["path"] == "python" and "unique index" in why["why"]
    assert outcomes[0] == outcomes[1]
    assert [r[3] for r in outcomes[1]["rejects"]] == ["duplicate.email", "duplicate.email"]


def test_a_second_field_copying_the_key_takes_the_python_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    python, fast, fast_batches = run_both(
        tmp_path,
        [(1, "a@x.org", None), (2, "b@x.org", "n")],
        monkeypatch,
        caplog,
        extra='legacy_id = "user_id"',
    )
    assert fast_batches == 0
    assert fast == python
    assert fast["accounts"] == [(1, "a@x.org", 1), (2, "b@x.org", 2)]


SEED_EXTRA = """name = "name"

[credentials]
column = "password_hash"
scheme = "digest"
params = { algorithm = "md5" }
policy = "keep"
target_column = "password"

[tokens]
column = "auth_token"
delivery = "none"
"""


def run_seed_both(
    work: Path,
    rows: list[tuple[int, Any, Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    *,
    batch: int,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """:func:`run_both` for the seed's mapping (md5 kept, a token per account): the tokens are
    random, so each is replaced by its shape before comparing, and checked to be there."""
    src = work / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute(
        "CREATE TABLE old_users (user_id INTEGER PRIMARY KEY, email TEXT, name TEXT, "
        "password_hash TEXT)"
    )
    conn.executemany("INSERT INTO old_users VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    outcomes, fast_batches = [], 0
    for switch in ("0", "1"):
        dst = work / f"target-{switch}.db"
        spec_file = work / f"spec-{switch}.toml"
        spec_file.write_text(
            SPEC.format(src=src, dst=dst, batch=batch, duplicates="reject", extra=SEED_EXTRA)
        )
        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="authmigrate"):
            result = run_migration(load_spec(spec_file))
        if switch == "1":
            fast_batches = sum("fast path" in r.getMessage() for r in caplog.records)
        verified = verify_migration(load_spec(spec_file))
        out = dump(dst)
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


_hashes = st.one_of(
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    st.from_regex(r"[0-9A-F]{32}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
    st.sampled_from(["", " ", "nothex", "5f4dcc3b5aa765d61d8327deb882cf9", "!", None]),
    st.from_regex(r" [0-9a-f]{32} ", fullmatch=True),
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(st.tuples(_emails, _names, _hashes), min_size=1, max_size=80))
def test_fast_path_equals_python_for_the_seed_mapping_on_fuzzed_values(
    rows: list[tuple[Any, Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keyed = [(i * 2 + 1, email, name, h) for i, (email, name, h) in enumerate(rows)]
        python, fast, fast_batches = run_seed_both(Path(tmp), keyed, monkeypatch, caplog, batch=30)
    assert fast_batches >= 1
    assert fast == python


def test_fast_path_equals_python_for_the_seed_mapping_on_a_generated_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib

    rows = [
        (k, email, name, hashlib.md5(f"pw{k}".encode()).hexdigest() if k % 97 else None)
        for k, email, name in generated_rows(20_000)
    ]
    python, fast, fast_batches = run_seed_both(tmp_path, rows, monkeypatch, caplog, batch=5000)
    assert fast_batches == 4
    assert fast == python
    assert sum(python["result"][4].values()) > 18_000  # md5 kept for most accounts
    assert python["result"][5].get("reset", 0) > 100  # no hash: the account must reset
