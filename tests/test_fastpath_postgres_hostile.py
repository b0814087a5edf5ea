"""Hostile differential tests: the PostgreSQL fast path against the Python path it shortcuts.

Each test runs the same spec over the same source once with ``AUTHMIGRATE_FASTPATH=0`` and once
with the fast path, each into its own fresh database of the suite's real PostgreSQL server, and
compares everything the run leaves (tests/test_fastpath_postgres.py's ``dump``), or asserts a
promise (nothing lost, nothing doubled, first in key order wins) directly.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authmigrate.continuity.sync import sync_migration
from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.spec import load_spec
from tests.pg_server import PgServer
from tests.test_fastpath import SPEC
from tests.test_fastpath_postgres import dump, make_source

Setup = Callable[[str], None]


def ddl(*statements: str) -> Setup:
    """A target set up by ``statements`` before the run."""

    def setup(url: str) -> None:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for s in statements:
                conn.exec_driver_sql(s)
        engine.dispose()

    return setup


PLAIN = "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, name TEXT)"


def spec_text(
    src: Path | str, url: str, *, batch: int, duplicates: str, extra: str, source_url: str | None
) -> str:
    text = SPEC.format(src=src, dst="X", batch=batch, duplicates=duplicates, extra=extra)
    text = text.replace('"sqlite:///X"', f'"{url}"')
    if source_url is not None:
        text = text.replace(f'"sqlite:///{src}"', f'"{source_url}"')
    return text


def one_path(
    server: PgServer,
    switch: str,
    src: Path | str,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    *,
    setup: Setup | None = None,
    batch: int = 4,
    duplicates: str = "reject",
    extra: str = 'name = "name"',
    source_url: str | None = None,
    progress_for: Callable[[str], Any] | None = None,
    search_path: str | None = None,
) -> tuple[dict[str, Any], int, str, Path]:
    """(outcome, batches the fast path did itself, target url, spec file)."""
    url = server.create_database("hostile")
    if setup is not None:
        setup(url)
    spec_file = work / f"spec-{switch}-{url.rsplit('/', 1)[-1]}.toml"
    if source_url == "SAME":  # the source table is in the target database
        source_url = url
    spec_file.write_text(
        spec_text(src, url, batch=batch, duplicates=duplicates, extra=extra, source_url=source_url)
    )
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
    caplog.clear()
    error = None
    with caplog.at_level(logging.DEBUG, logger="authmigrate"):
        try:
            progress = progress_for(url) if progress_for is not None else None
            result = run_migration(load_spec(spec_file), progress=progress)
            res: Any = (
                result.status,
                result.this_run,
                result.by_reason,
                result.unsynced,
                result.schemes,
                result.segments,
            )
        except Exception as exc:  # noqa: BLE001 - the two paths must fail alike too
            error = exc
            res = ("error", type(exc).__name__, str(exc))
    if isinstance(res, tuple) and res[0] == "error":
        res = (*res[:2], res[2].replace(url.rsplit("/", 1)[-1], "DB"))
    said = [r.getMessage() for r in caplog.records]
    fast = sum("fast path," in m for m in said) - sum(m.endswith(": Python path") for m in said)
    try:
        out = dump(url if search_path is None else f"{url}?options=-csearch_path%3D{search_path}")
    except sa.exc.ProgrammingError:  # the run stopped before its bookkeeping tables
        out = {"accounts": None}
    out["result"] = res
    if error is None:
        v = verify_migration(load_spec(spec_file))
        out["verify"] = (v.ok, v.reconciled)
    return out, fast, url, spec_file


def both(
    server: PgServer,
    src: Path | str,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    **kw: Any,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    python, _, _, _ = one_path(server, "0", src, work, monkeypatch, caplog, **kw)
    fast, n, _, _ = one_path(server, "1", src, work, monkeypatch, caplog, **kw)
    return python, fast, n


def _key(stored: str) -> int:
    """A rejects row's source key (an encoded decimal is JSON)."""
    return int(json.loads(stored)["v"]) if stored.startswith("{") else int(stored)


def promises(out: dict[str, Any], source_keys: list[int], held: tuple[int, ...] = ()) -> None:
    """Nothing lost, nothing doubled: every source key is an account xor a reject (``held``:
    the keys of the target's accounts from before the run)."""
    written = [r[0] for r in out["accounts"] if r[0] not in held]
    rejected = [_key(r[1]) for r in out["rejects"] if r[1] is not None]
    assert len(set(rejected)) == len(rejected), "a key rejected twice"
    kept = [k for k in written if k in set(source_keys)]
    assert sorted(set(kept) | set(rejected)) == sorted(source_keys), "a key lost"
    assert not set(kept) & set(rejected), "a key both written and rejected"


# -- 1. the target's accounts spelled otherwise -------------------------------------------


TARGET_SPELLINGS = [
    (900, "Case@X.org", None),
    (901, " space@x.org", None),
    (902, "space2@x.org  ", None),
    (903, "JOSÉ@x.org", None),
    (904, "josé@x.org", None),  # the exact spelling of 903's value, lower case
    (905, "Ｆｕｌｌ@x.org", None),  # full-width letters
    (906, "cafe\u0301@x.org", None),  # NFD
    (907, "UPPER@X.ORG", None),
    (908, "upper@x.org", None),  # both spellings held: the exact one wins
]

SOURCE_SPELLINGS = [
    (1, "case@x.org", "a"),
    (2, "CASE@X.ORG", "b"),
    (3, "space@x.org", "c"),
    (4, " SPACE2@x.org", "d"),
    (5, "josé@x.org", "e"),
    (6, "JOSÉ@X.ORG", "f"),
    (7, "ｆｕｌｌ@x.org", "g"),
    (8, "café@x.org", "h"),  # NFC of 906's value
    (9, "cafe\u0301@x.org", "i"),
    (10, "upper@x.org", "j"),
    (11, "Upper@x.org", "k"),
    (12, "fresh@x.org", "l"),
    (13, "FRESH@x.org", "m"),
]


@pytest.mark.parametrize("duplicates", ["reject", "merge"])
def test_target_accounts_spelled_otherwise_case_space_unicode(
    duplicates: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, SOURCE_SPELLINGS)
    before = [
        "INSERT INTO new_users VALUES "
        + ", ".join(f"({k}, '{e}', NULL)" for k, e, _ in TARGET_SPELLINGS)
    ]
    python, fast, n = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=ddl(PLAIN, *before),
        batch=3,
        duplicates=duplicates,
    )
    assert n >= 1
    assert fast == python
    promises(fast, [r[0] for r in SOURCE_SPELLINGS], held=tuple(r[0] for r in TARGET_SPELLINGS))


# -- 2. duplicates inside a batch, across batches, fast and residue rows, both orders ------


DUPES = [
    (1, "a@x.org", "n1"),
    (2, "A@x.org", "n2"),  # same batch, after
    (3, "b@x.org", "n3"),
    (4, "ß@x.org", "n4"),  # residue (non-ASCII)
    (5, "ẞ@x.org", "n5"),  # residue, capital sharp s
    (6, "B@X.ORG", "n6"),  # next batch, duplicate of 3
    (7, "c@x.org", "Ö"),  # residue by its name, value c@x.org
    (8, "C@x.org", "n8"),  # fast row, duplicate of residue row 7
    (9, " d@x.org", "ü"),  # residue (name), before the fast duplicate
    (10, "d@x.org", None),
    (11, "e@x.org", None),  # fast first ...
    (12, "E@x.org", "é"),  # ... residue second, same batch
    (13, "a@x.org", None),  # far later duplicate of 1
    (14, "ss@x.org", None),
]


@pytest.mark.parametrize("duplicates", ["reject", "merge"])
@pytest.mark.parametrize("batch", [1, 2, 5, 100])
def test_duplicates_inside_and_across_batches_fast_and_residue(
    duplicates: str,
    batch: int,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, DUPES)
    python, fast, n = both(
        pg_server, src, tmp_path, monkeypatch, caplog, batch=batch, duplicates=duplicates
    )
    assert n >= 1
    assert fast == python
    promises(fast, [r[0] for r in DUPES])
    firsts = {r[1]: r[6] for r in fast["rejects"]}
    assert firsts["2"] == "1" and firsts["6"] == "3" and firsts["8"] == "7"
    assert firsts["10"] == "9" and firsts["12"] == "11" and firsts["13"] == "1"


# -- 3. keys: int64 limits, negative, gaps, and a target key column of type integer --------


EXTREME_KEYS = [
    -(2**63),
    -(2**63) + 1,
    -(2**31) - 1,
    -5,
    -1,
    0,
    1,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 2,
    2**63 - 1,
]


def test_keys_at_int64_limits_negative_and_gaps(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    rows = [(k, f"u{i}@x.org" if i != 7 else "U0@x.org", None) for i, k in enumerate(EXTREME_KEYS)]
    make_source(src, rows)
    python, fast, n = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=ddl(PLAIN, f"INSERT INTO new_users VALUES ({2**63 - 1}, 'max@x.org', NULL)"),
        batch=3,
    )
    assert n >= 1
    assert fast == python
    promises(fast, EXTREME_KEYS, held=(2**63 - 1,))


def test_keys_beyond_an_integer_target_key_column(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    rows = [(k, f"u{i}@x.org", None) for i, k in enumerate(EXTREME_KEYS)]
    make_source(src, rows)
    python, fast, _ = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=ddl(
            "CREATE TABLE new_users (user_id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)"
        ),
        batch=3,
    )
    assert fast == python


# -- 4. values PostgreSQL text cannot hold, invalid UTF-8, values too long -----------------


def test_nul_and_invalid_utf8_in_the_sqlite_source(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(
        src,
        [
            (1, "a@x.org", "ok"),
            (2, "b\x00@x.org", "ok"),
            (3, "c@x.org", "na\x00me"),
            (4, "d@x.org", "fine"),
            (5, "e@x.org", "fine"),
            (6, "f@x.org", "fine"),
            (7, "g@x.org", "fine"),
            (8, "h@x.org", "fine"),
        ],
    )
    conn = sqlite3.connect(src)
    conn.execute("UPDATE old_users SET email = CAST(x'67ff40782e6f7267' AS TEXT) WHERE user_id = 7")
    conn.execute("UPDATE old_users SET name = CAST(x'c328' AS TEXT) WHERE user_id = 8")
    conn.execute("INSERT INTO old_users VALUES (9, CAST(x'c3a9' AS TEXT) || '@x.org', 'x')")
    conn.commit()
    conn.close()
    python, fast, n = both(pg_server, src, tmp_path, monkeypatch, caplog, batch=3)
    assert fast == python
    promises(fast, list(range(1, 10)))


def test_value_longer_than_a_varchar_target_column(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    rows = [(k, f"u{k}@x.org", "n" * (3 if k % 3 else 9)) for k in range(1, 10)]
    make_source(src, rows)
    python, fast, _ = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=ddl(
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(320) UNIQUE, "
            "name VARCHAR(5))"
        ),
        batch=4,
    )
    assert fast == python
    if python["result"][0] != "error":
        promises(fast, list(range(1, 10)))


def test_email_longer_than_a_varchar_email_column(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    rows = [(k, ("x" * 30 if k % 4 == 0 else "") + f"u{k}@x.org", None) for k in range(1, 10)]
    make_source(src, rows)
    python, fast, _ = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=ddl(
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email VARCHAR(20) UNIQUE, "
            "name TEXT)"
        ),
        batch=4,
    )
    assert fast == python


# -- 5. a target that refuses some rows ----------------------------------------------------


REFUSED = [(k, f"u{k}@x.org", "bad" if k in (3, 7) else f"n{k}") for k in range(1, 11)]


@pytest.mark.parametrize(
    "constraint",
    [
        "ALTER TABLE new_users ADD CONSTRAINT no_bad CHECK (name <> 'bad')",
        "CREATE UNIQUE INDEX name_once ON new_users (name)",
        "CREATE UNIQUE INDEX email_ci ON new_users (lower(email))",
    ],
    ids=["check", "unique-other-column", "unique-expression"],
)
def test_target_constraint_refusing_some_rows(
    constraint: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, REFUSED)
    python, fast, _ = both(
        pg_server, src, tmp_path, monkeypatch, caplog, setup=ddl(PLAIN, constraint), batch=4
    )
    assert fast == python
    if python["result"][0] != "error":
        promises(fast, [r[0] for r in REFUSED])


def test_target_with_extra_not_null_column_without_default(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, REFUSED)
    python, fast, _ = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=ddl(
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT, "
            "tenant INTEGER NOT NULL)"
        ),
        batch=4,
    )
    assert fast == python
    assert fast["accounts"] in (None, [])
    assert python["result"][0] == "error"


def test_trigger_added_to_the_target_refusing_rows(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, REFUSED)
    python, fast, n = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=ddl(
            PLAIN,
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN IF NEW.name = 'bad' THEN RAISE EXCEPTION 'no'; END IF; RETURN NEW; END$$",
            "CREATE TRIGGER t BEFORE INSERT ON new_users FOR EACH ROW EXECUTE FUNCTION refuse()",
        ),
        batch=4,
    )
    assert n == 0
    assert fast == python


# -- 6. interrupted on one path, resumed on the other ---------------------------------------


INTERRUPTED = [
    (k, e, None)
    for k, e in [
        (1, "a@x.org"),
        (2, "b@x.org"),
        (3, "c@x.org"),
        (4, "A@x.org"),  # batch 2: duplicate of batch 1
        (5, "held@x.org"),  # the target holds it spelled otherwise
        (6, "d@x.org"),
        (7, "é@x.org"),  # residue, batch 3
        (8, "D@x.org"),  # batch 3: duplicate of batch 2
        (9, "É@x.org"),
        (10, "e@x.org"),
        (11, "c@X.org"),  # batch 4: after the interruption, duplicate of batch 1
        (12, "f@x.org"),
        (13, "E@x.org"),
    ]
]


class _Stop:
    def __init__(self, after: int) -> None:
        self.after, self.calls = after, 0

    def __call__(self, done: int, total: Any) -> None:
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("first,second", [("1", "0"), ("0", "1"), ("1", "1")])
@pytest.mark.parametrize("duplicates", ["reject", "merge"])
def test_interrupted_then_resumed_on_the_other_path(
    first: str,
    second: str,
    duplicates: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, INTERRUPTED)
    setup = ddl(
        PLAIN, "INSERT INTO new_users VALUES (500, 'HELD@x.org', NULL), (2, 'two@x.org', NULL)"
    )
    # the reference: one uninterrupted run on the Python path
    python, _, _, _ = one_path(
        pg_server,
        "0",
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=setup,
        batch=3,
        duplicates=duplicates,
    )
    url = pg_server.create_database("hostile")
    setup(url)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        spec_text(src, url, batch=3, duplicates=duplicates, extra='name = "name"', source_url=None)
    )
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", first)
    with pytest.raises(KeyboardInterrupt):
        run_migration(load_spec(spec_file), progress=_Stop(2))
    mid = dump(url)
    assert 1 <= len(mid["batches"]) < 5
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", second)
    run_migration(load_spec(spec_file))
    assert verify_migration(load_spec(spec_file)).ok
    got = dump(url)
    for part in ("accounts", "rejects", "batches", "state"):
        assert got[part] == python[part], part
    promises(got, [r[0] for r in INTERRUPTED], held=(500, 2))


# -- 7. a source row changed between runs, then sync; rollback then a rerun ---------------


def _change_source(src: Path) -> None:
    conn = sqlite3.connect(src)
    conn.execute("UPDATE old_users SET email = 'changed@x.org' WHERE user_id = 1")
    conn.execute("UPDATE old_users SET name = 'renamed' WHERE user_id = 3")
    conn.execute("UPDATE old_users SET email = 'C@x.org' WHERE user_id = 6")  # now dup of 3
    conn.execute("DELETE FROM old_users WHERE user_id = 2")
    conn.execute("INSERT INTO old_users VALUES (20, 'NEW@x.org', NULL)")
    conn.execute("INSERT INTO old_users VALUES (21, 'new@x.org', NULL)")
    conn.execute("INSERT INTO old_users VALUES (0, 'zero@x.org', NULL)")  # below the checkpoint
    conn.commit()
    conn.close()


def _sync_view(r: Any) -> tuple[Any, ...]:
    return (
        r.status,
        r.compared,
        sorted(map(str, r.inserted)),
        sorted(map(str, r.updated)),
        sorted(map(str, r.retried)),
        sorted((str(k), v) for k, v in r.rejected.items()),
        sorted((str(k), v) for k, v in r.deleted.items()),
        sorted(map(str, r.restored)),
        len(r.conflicts),
    )


def test_source_changed_then_sync_then_run_same_on_both_paths(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = []
    for switch in ("0", "1"):
        work = tmp_path / switch
        work.mkdir()
        src = work / "legacy.db"
        make_source(src, INTERRUPTED)
        out, n, url, spec_file = one_path(
            pg_server, switch, src, work, monkeypatch, caplog, setup=ddl(PLAIN), batch=3
        )
        assert switch == "0" or n >= 1
        _change_source(src)
        synced = _sync_view(sync_migration(load_spec(spec_file)))
        after_sync = dump(url)
        again = run_migration(load_spec(spec_file))
        v = verify_migration(load_spec(spec_file))
        outcomes.append((out, synced, after_sync, dump(url), again.this_run, again.unsynced, v.ok))
    assert outcomes[1] == outcomes[0]


def test_rollback_after_a_fast_run_then_a_rerun(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, INTERRUPTED)
    before = "INSERT INTO new_users VALUES (500, 'HELD@x.org', 'kept'), (2, 'two@x.org', 'kept')"
    outcomes = []
    for switch in ("0", "1"):
        out, _, url, spec_file = one_path(
            pg_server,
            switch,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            setup=ddl(PLAIN, before),
            batch=3,
            duplicates="merge",
        )
        counts = rollback(load_spec(spec_file))
        rolled = dump(url)
        assert rolled["accounts"] == [(2, "two@x.org", "kept"), (500, "HELD@x.org", "kept")]
        assert rolled["rejects"] == [] and rolled["batches"] == [] and rolled["state"] == []
        again = run_migration(load_spec(spec_file))
        v = verify_migration(load_spec(spec_file))
        final = dump(url)
        final["runs"] = sorted(final["runs"])
        outcomes.append((out, counts, final, again.this_run, v.ok))
    assert outcomes[1] == outcomes[0]
    assert outcomes[1][2]["accounts"] == outcomes[1][0]["accounts"]


# -- 8. accounts written by someone else while the run goes on ------------------------------


def test_live_system_writes_between_batches(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After batch 1 the new system writes an account holding a later row's email exactly,
    one holding a later row's key, and one holding a later row's email spelled otherwise."""
    src = tmp_path / "legacy.db"
    rows = [(k, f"u{k}@x.org", None) for k in range(1, 13)]
    make_source(src, rows)
    outcomes = []
    for switch in ("0", "1"):
        url = pg_server.create_database("hostile")
        ddl(PLAIN)(url)
        spec_file = tmp_path / f"live-{switch}.toml"
        spec_file.write_text(
            spec_text(
                src, url, batch=3, duplicates="reject", extra='name = "name"', source_url=None
            )
        )
        engine = sa.create_engine(url)
        calls = {"n": 0}

        def live(done: int, total: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                with engine.begin() as conn:
                    conn.exec_driver_sql(
                        "INSERT INTO new_users VALUES (700, 'u5@x.org', 'live'), "
                        "(8, 'eight@x.org', 'live'), (701, 'U11@X.org', 'live')"
                    )

        monkeypatch.setenv("AUTHMIGRATE_FASTPATH", switch)
        result = run_migration(load_spec(spec_file), progress=live)
        engine.dispose()
        out = dump(url)
        out["result"] = (result.this_run, result.by_reason)
        outcomes.append(out)

    assert outcomes[1] == outcomes[0]
    promises(outcomes[1], [r[0] for r in rows], held=(700, 701, 8))


# -- 9. rejects of several kinds on one row -----------------------------------------------


def test_row_with_a_held_key_and_a_bad_or_duplicate_email(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [
        (1, "a@x.org", None),
        (2, "not an email", None),  # the target holds key 2
        (3, "A@x.org", None),  # the target holds key 3, and a duplicate of 1
        (4, "held@x.org", None),  # the target holds key 4 and this value spelled otherwise
        (5, "ü@x.org", None),  # residue, the target holds key 5
        (6, "b@x.org", "é"),  # residue by name, the target holds key 6
        (7, "B@x.org", None),  # duplicate of 6, whose key is held (6 is not written)
        (8, None, None),
    ]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    setup = ddl(
        PLAIN,
        "INSERT INTO new_users VALUES (2, 'two@x.org', NULL), (3, 'three@x.org', NULL), "
        "(4, 'HELD@x.org', NULL), (5, 'five@x.org', NULL), (6, 'six@x.org', NULL)",
    )
    for duplicates in ("reject", "merge"):
        python, fast, n = both(
            pg_server,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            setup=setup,
            batch=8,
            duplicates=duplicates,
        )
        assert n == 1
        assert fast == python
        promises(fast, [r[0] for r in rows], held=(2, 3, 4, 5, 6))


# -- 10. a PostgreSQL source: column types, NULLs, key types --------------------------------


PG_ROWS = [
    (1, "a@x.org", "Ann"),
    (2, None, None),
    (3, " B@X.org ", "  "),
    (4, "a@X.ORG", ""),
    (5, "café@x.org", "Zoë"),
    (6, "b@x.org", None),
    (7, "", "x"),
    (2**31 - 1, "max@x.org", "m"),
]


@pytest.mark.parametrize(
    "key_type,email_type,name_type",
    [
        ("integer", "text", "text"),
        ("bigint", "varchar(100)", "char(5)"),
        ("bigint", "citext", "varchar(10)"),
        ("numeric", "text", "text"),
        ("smallint", "text", "text"),
    ],
)
def test_postgres_source_column_and_key_types(
    key_type: str,
    email_type: str,
    name_type: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = pg_server.create_database("hostilesrc")
    rows = [r for r in PG_ROWS if key_type != "smallint" or r[0] < 2**15]
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        if email_type == "citext":
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS citext")
        conn.exec_driver_sql(
            f"CREATE TABLE old_users (user_id {key_type} PRIMARY KEY, email {email_type}, "
            f"name {name_type})"
        )
        for row in rows:
            conn.exec_driver_sql("INSERT INTO old_users VALUES (%s, %s, %s)", row)
    engine.dispose()
    python, fast, n = both(
        pg_server,
        "SRC",
        tmp_path,
        monkeypatch,
        caplog,
        batch=3,
        source_url=source,
        duplicates="merge",
    )
    assert fast == python
    promises(fast, [r[0] for r in rows])


# -- 11. a batch handed to the Python path after fast batches -------------------------------


def after_first_batch(*statements: str) -> Callable[[str], Any]:
    """A progress callback that runs ``statements`` on the target once, after batch 1."""

    def make(url: str) -> Any:
        calls = {"n": 0}

        def progress(done: int, total: Any) -> None:
            calls["n"] += 1
            if done and calls["n"] == 1 or calls["n"] == 2 and not calls.get("ran"):
                if calls.get("ran"):
                    return
                calls["ran"] = 1
                engine = sa.create_engine(url)
                with engine.begin() as conn:
                    for s in statements:
                        conn.exec_driver_sql(s)
                engine.dispose()

        return progress

    return make


HANDED = [
    (1, "a@x.org", "n1"),
    (2, "b@x.org", "n2"),
    (3, "c@x.org", "n3"),
    (4, "A@x.org", "bad"),  # batch 2: refused by the CHECK added after batch 1, duplicate of 1
    (5, "B@X.org", "n5"),  # duplicate of 2
    (6, "d@x.org", "bad"),
    (7, "C@x.org", "n7"),  # batch 3: duplicate of 3
    (8, "é@x.org", "bad"),
    (9, "e@x.org", "n9"),
]


@pytest.mark.parametrize("duplicates", ["reject", "merge"])
def test_batches_handed_to_the_python_path_after_fast_batches(
    duplicates: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, HANDED)
    check = "ALTER TABLE new_users ADD CONSTRAINT no_bad CHECK (name IS DISTINCT FROM 'bad')"
    python, fast, n = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        batch=3,
        duplicates=duplicates,
        progress_for=after_first_batch(check),
    )
    assert n >= 1
    assert fast == python
    promises(fast, [r[0] for r in HANDED])
    assert [r[1] for r in fast["rejects"] if r[3] == "target.constraint"] == ["6", "8"]


def test_tokens_and_credentials_when_a_batch_is_handed_over(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.test_fastpath import SEED_EXTRA

    src = tmp_path / "legacy.db"
    rows = [(k, e, n, f"{k:032x}" if k % 4 else None) for k, e, n in HANDED]
    make_source(src, rows, seed=True)
    check = "ALTER TABLE new_users ADD CONSTRAINT no_bad CHECK (name IS DISTINCT FROM 'bad')"
    outs = []
    for switch in ("0", "1"):
        out, n, url, _ = one_path(
            pg_server,
            switch,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            batch=3,
            extra=SEED_EXTRA,
            progress_for=after_first_batch(check),
        )
        tokens = [row[-1] for row in out["accounts"]]
        assert all(t is not None for t in tokens) and len(set(tokens)) == len(tokens)
        out["accounts"] = [row[:-1] for row in out["accounts"]]
        outs.append(out)
    assert outs[1] == outs[0]


# -- 12. targets whose unique index or table shape the gate may not expect -----------------


@pytest.mark.parametrize(
    "statements",
    [
        # a deferred unique constraint: COPY does not see the duplicate, COMMIT does
        (
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT, name TEXT, "
            "CONSTRAINT e UNIQUE (email) DEFERRABLE INITIALLY DEFERRED)",
        ),
        # NULL emails that the index refuses to hold twice
        (
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT, name TEXT, "
            "CONSTRAINT e UNIQUE NULLS NOT DISTINCT (email))",
        ),
        # accounts in a child table: the parent's unique index does not cover them
        (
            PLAIN,
            "CREATE TABLE old_accounts () INHERITS (new_users)",
            "INSERT INTO old_accounts VALUES (800, 'a@x.org', 'child'), (801, 'D@x.org', NULL)",
        ),
        # the same, no account spelled otherwise anywhere (so no stage unless the index refuses)
        pytest.param(
            (
                PLAIN,
                "CREATE TABLE old_accounts () INHERITS (new_users)",
                "INSERT INTO old_accounts VALUES (800, 'a@x.org', 'child'), (801, 'd@x.org', NULL)",
            ),
        ),
        # the key is an identity column the new system numbers
        (
            "CREATE TABLE new_users (user_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "email TEXT UNIQUE, name TEXT)",
        ),
        # a foreign key checked at commit
        (
            "CREATE TABLE names (name TEXT PRIMARY KEY)",
            "INSERT INTO names VALUES ('n1'), ('n2'), ('n3'), ('n5'), ('n7'), ('n9')",
            "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, "
            "name TEXT REFERENCES names DEFERRABLE INITIALLY DEFERRED)",
        ),
    ],
    ids=[
        "deferred-unique",
        "nulls-not-distinct",
        "inherited-accounts",
        "inherited-accounts-exact",
        "identity",
        "deferred-fk",
    ],
)
def test_target_shapes(
    statements: tuple[str, ...],
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [*HANDED, (10, None, "n1"), (11, None, "n2"), (12, "D@x.org", "n3")]
    src = tmp_path / "legacy.db"
    make_source(src, rows)
    python, fast, n = both(
        pg_server, src, tmp_path, monkeypatch, caplog, setup=ddl(*statements), batch=4
    )
    assert fast == python


def test_an_inheriting_table_holding_the_value(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", None)])
    setup = ddl(
        PLAIN,
        "CREATE TABLE old_accounts () INHERITS (new_users)",
        "INSERT INTO old_accounts VALUES (800, 'a@x.org', NULL)",
    )
    python, fast, n = both(pg_server, src, tmp_path, monkeypatch, caplog, setup=setup)
    assert [(r[1], r[3], r[6]) for r in python["rejects"]] == [("1", "duplicate.email", "800")]
    # a direct COPY trusted the parent's unique index, which does not cover the child's rows,
    # and wrote a second account holding a@x.org: such a target now stays on the Python path
    assert n == 0
    assert fast == python


# -- 13. source shapes: a query, duplicate and odd keys; a target in a schema ---------------


def test_sqlite_source_query(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, HANDED + [(k, f"q{k % 3}@x.org", None) for k in range(20, 40)])
    python, fast, _ = both(pg_server, src, tmp_path, monkeypatch, caplog, batch=4)
    assert fast == python
    # the same through a query that renames and filters
    monkeypatch.setattr(
        "tests.test_fastpath_postgres_hostile.SPEC",
        SPEC.replace(
            'table = "old_users"',
            'query = "SELECT user_id, upper(email) AS email, name FROM old_users '
            'WHERE user_id % 2 = 0"',
        ),
    )
    python, fast, _ = both(pg_server, src, tmp_path, monkeypatch, caplog, batch=4)
    assert fast == python
    assert python["result"][1]["read"] == len([k for k, *_ in HANDED if k % 2 == 0]) + 10


@pytest.mark.parametrize(
    "values",
    [
        [(1, "a@x.org"), (2, "b@x.org"), (2, "c@x.org"), (3, "d@x.org"), (3, "B@x.org")],
        [(1, "a@x.org"), ("2", "b@x.org"), (2.5, "c@x.org"), (3, "d@x.org"), ("x", "e@x.org")],
        [(1, "a@x.org"), (None, "b@x.org"), (None, "c@x.org"), (3, "A@x.org")],
    ],
    ids=["duplicate-keys", "mixed-key-types", "null-keys"],
)
def test_sqlite_source_with_odd_keys(
    values: list[tuple[Any, str]],
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE old_users (user_id INTEGER, email TEXT, name TEXT)")
    conn.executemany("INSERT INTO old_users VALUES (?, ?, NULL)", values)
    conn.commit()
    conn.close()
    python, fast, _ = both(pg_server, src, tmp_path, monkeypatch, caplog, batch=2)
    assert fast == python


def test_target_in_a_schema_beside_a_same_named_public_table(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, HANDED)
    setup = ddl(
        PLAIN,
        "INSERT INTO new_users VALUES (1, 'z@x.org', NULL), (900, 'b@x.org', NULL), "
        "(901, 'C@x.org', NULL)",
        "CREATE SCHEMA auth",
        "CREATE TABLE auth.new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT)",
        "INSERT INTO auth.new_users VALUES (902, 'e@x.org', NULL)",
    )
    monkeypatch.setattr(
        "tests.test_fastpath_postgres_hostile.SPEC",
        SPEC.replace('table = "new_users"', 'table = "auth.new_users"'),
    )
    python, fast, n = both(
        pg_server,
        src,
        tmp_path,
        monkeypatch,
        caplog,
        setup=setup,
        batch=3,
        search_path="auth%2Cpublic",
    )
    assert n >= 1
    assert fast == python
    assert [(r[1], r[3]) for r in fast["rejects"]] == [
        ("4", "duplicate.email"),
        ("5", "duplicate.email"),
        ("7", "duplicate.email"),
        ("9", "duplicate.email"),
    ]


@pytest.mark.parametrize(
    "column_type",
    [
        "INTEGER",
        "SMALLINT",
        "BIGINT",
        pytest.param(
            "BOOLEAN",
        ),
        "VARCHAR",
    ],
)
def test_text_field_into_a_non_text_target_column(
    column_type: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    names = ["42", " 7", "true", "x", None, "99999", "0", "f", "-3"]
    make_source(src, [(k, f"u{k}@x.org", names[k - 1]) for k in range(1, 10)])
    setup = ddl(
        "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, "
        f"name {column_type})"
    )
    python, fast, _ = both(pg_server, src, tmp_path, monkeypatch, caplog, setup=setup, batch=3)
    assert fast == python


def test_text_into_a_boolean_column_is_not_written_as_its_truth(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, [(1, "a@x.org", "false"), (2, "b@x.org", "0"), (3, "c@x.org", "f")])
    setup = ddl(
        "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, name BOOLEAN)"
    )
    python, fast, n = both(pg_server, src, tmp_path, monkeypatch, caplog, setup=setup, batch=3)
    assert python["result"][0] == "error" and python["accounts"] == []
    assert (1, "a@x.org", True) not in fast["accounts"]
    assert fast == python


@pytest.mark.parametrize("unique", ["[]", '["name"]'])
def test_spec_unique_other_than_the_targets_unique_index(
    unique: str,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    rows: list[tuple[Any, ...]] = [
        (1, "a@x.org", "x"),
        (2, "A@x.org", "y"),
        (3, "b@x.org", "x"),
        (4, "c@x.org", "Z"),
    ]
    rows += [(5, "d@x.org", "z"), (6, "held@x.org", "w"), (7, "e@x.org", None)]
    make_source(src, rows)
    setup = ddl(
        "CREATE TABLE new_users (user_id BIGINT PRIMARY KEY, email TEXT UNIQUE, name TEXT UNIQUE)",
        "INSERT INTO new_users VALUES (900, 'held@x.org', 'held'), (901, 'q@x.org', 'Z')",
    )
    monkeypatch.setattr(
        "tests.test_fastpath_postgres_hostile.SPEC",
        SPEC.replace('table = "new_users"', f'table = "new_users"\nunique = {unique}'),
    )
    python, fast, _ = both(pg_server, src, tmp_path, monkeypatch, caplog, setup=setup, batch=3)
    assert fast == python


# -- 14. the source changes while a run is interrupted; status afterwards ------------------


def _status_view(spec_file: Path) -> tuple[Any, ...]:
    from authmigrate.continuity.status import migration_status

    s = migration_status(load_spec(spec_file), record=False)
    return (
        s.source_rows,
        s.migrated,
        s.rejected,
        s.merged,
        s.pending,
        s.rejected_by_reason,
        s.merged_by_reason,
        s.deleted_in_source,
        s.changed,
    )


def _interrupted_then_changed(
    server: PgServer, work: Path, monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> tuple[Any, ...]:
    src = work / f"legacy-{first}{second}.db"
    make_source(src, INTERRUPTED)
    url = server.create_database("hostile")
    ddl(PLAIN, "INSERT INTO new_users VALUES (500, 'HELD@x.org', NULL)")(url)
    spec_file = work / f"spec-{first}{second}.toml"
    spec_file.write_text(
        spec_text(src, url, batch=3, duplicates="merge", extra='name = "name"', source_url=None)
    )
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", first)
    with pytest.raises(KeyboardInterrupt):
        run_migration(load_spec(spec_file), progress=_Stop(2))
    conn = sqlite3.connect(src)
    conn.execute("UPDATE old_users SET email = 'moved@x.org' WHERE user_id = 1")
    conn.execute("INSERT INTO old_users VALUES (0, 'zero@x.org', NULL)")
    conn.execute("UPDATE old_users SET email = ' B@X.ORG' WHERE user_id = 12")
    conn.execute("UPDATE old_users SET email = 'held@X.org' WHERE user_id = 13")
    conn.commit()
    conn.close()
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", second)
    result = run_migration(load_spec(spec_file))
    v = verify_migration(load_spec(spec_file))
    got = dump(url)
    return (got, result.this_run, result.unsynced, (v.ok, v.reconciled), _status_view(spec_file))


def test_source_changed_while_interrupted_then_resumed(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted after batch 1; meanwhile a migrated row changes, a row appears below the
    checkpoint, a later row becomes a duplicate of a migrated account and another a
    duplicate spelled otherwise of the target's. Every combination of paths ends as the
    Python path alone does."""
    reference = _interrupted_then_changed(pg_server, tmp_path, monkeypatch, "0", "0")
    for first, second in (("1", "0"), ("0", "1"), ("1", "1")):
        got = _interrupted_then_changed(pg_server, tmp_path, monkeypatch, first, second)
        assert got == reference, (first, second)


# -- 15. PostgreSQL sources: extreme keys, non-text columns, the target's own database ------


@pytest.mark.parametrize("with_json", [False, True])
@pytest.mark.parametrize("same_database", [False, True])
def test_postgres_source_extreme_keys_and_non_text_columns(
    same_database: bool,
    with_json: bool,
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    statements = [
        "CREATE TABLE old_users (user_id BIGINT PRIMARY KEY, email TEXT, name TEXT, "
        "blob BYTEA, meta JSONB, uid UUID)",
        *(
            f"INSERT INTO old_users VALUES ({k}, 'u{i % 5}@x.org', "
            f"{'NULL' if i % 3 else repr(str(k))}, '\\x00ff', '{{\"a\": {i}}}', NULL)"
            for i, k in enumerate(EXTREME_KEYS)
        ),
        "UPDATE old_users SET email = convert_from('\\x4dc3a4'::bytea, 'UTF8') || '@x.org' "
        "WHERE user_id = 0",
    ]
    extra = 'name = "name"\nnote = "meta"' if with_json else 'name = "name"'
    if same_database:
        python, fast, n = both(
            pg_server,
            "SRC",
            tmp_path,
            monkeypatch,
            caplog,
            setup=ddl(*statements),
            batch=3,
            source_url="SAME",
            duplicates="merge",
            extra=extra,
        )
    else:
        source = pg_server.create_database("hostilesrc")
        ddl(*statements)(source)
        python, fast, n = both(
            pg_server,
            "SRC",
            tmp_path,
            monkeypatch,
            caplog,
            batch=3,
            source_url=source,
            duplicates="merge",
            extra=extra,
        )
    assert n >= 1 or with_json  # a JSON column is not text: the Python path
    assert fast == python
    promises(fast, EXTREME_KEYS)


def test_empty_source_and_only_null_keys(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE old_users (user_id INTEGER, email TEXT, name TEXT)")
    conn.commit()
    python, fast, _ = both(pg_server, src, tmp_path, monkeypatch, caplog)
    assert fast == python
    conn.executemany("INSERT INTO old_users VALUES (NULL, ?, NULL)", [("a@x.org",), ("b@x.org",)])
    conn.commit()
    conn.close()
    python, fast, _ = both(pg_server, src, tmp_path, monkeypatch, caplog)
    assert fast == python


def test_rollback_after_fast_and_handed_over_batches_then_rerun(
    pg_server: PgServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, HANDED)
    check = "ALTER TABLE new_users ADD CONSTRAINT no_bad CHECK (name IS DISTINCT FROM 'bad')"
    before = ("INSERT INTO new_users VALUES (100, 'E@x.org', 'pre'), (3, 'three@x.org', 'pre')",)
    outcomes = []
    for switch in ("0", "1"):
        out, n, url, spec_file = one_path(
            pg_server,
            switch,
            src,
            tmp_path,
            monkeypatch,
            caplog,
            setup=ddl(PLAIN, *before),
            batch=3,
            duplicates="merge",
            progress_for=after_first_batch(check),
        )
        assert switch == "0" or n >= 1
        counts = rollback(load_spec(spec_file))
        rolled = dump(url)
        assert rolled["accounts"] == [(3, "three@x.org", "pre"), (100, "E@x.org", "pre")]
        assert rolled["rejects"] == rolled["batches"] == rolled["state"] == []
        again = run_migration(load_spec(spec_file))
        final = dump(url)
        final["runs"] = sorted(final["runs"])
        outcomes.append((out, counts, final, again.this_run))
    assert outcomes[1] == outcomes[0]


def _interrupted_synced_resumed(
    server: PgServer, work: Path, monkeypatch: pytest.MonkeyPatch, first: str
) -> tuple[Any, ...]:
    src = work / f"legacy-sync-{first}.db"
    make_source(src, INTERRUPTED)
    url = server.create_database("hostile")
    ddl(PLAIN)(url)
    spec_file = work / f"spec-sync-{first}.toml"
    spec_file.write_text(
        spec_text(src, url, batch=3, duplicates="reject", extra='name = "name"', source_url=None)
    )
    monkeypatch.setenv("AUTHMIGRATE_FASTPATH", first)
    with pytest.raises(KeyboardInterrupt):
        run_migration(load_spec(spec_file), progress=_Stop(2))
    conn = sqlite3.connect(src)
    # below the checkpoint: sync carries it; its value is one a later batch holds too
    conn.execute("INSERT INTO old_users VALUES (0, 'F@x.org', NULL)")
    conn.execute("UPDATE old_users SET email = 'e@x.org ' WHERE user_id = 2")
    conn.commit()
    conn.close()
    synced = _sync_view(sync_migration(load_spec(spec_file)))
    result = run_migration(load_spec(spec_file))
    v = verify_migration(load_spec(spec_file))
    got = dump(url)
    return (synced, got, result.this_run, result.unsynced, (v.ok, v.reconciled))


def test_interrupted_then_synced_then_resumed(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unique value an account sync wrote (key 0, f@x.org) is taken when the run resumes:
    key 12 loses to it, whichever path the interrupted run took."""
    python = _interrupted_synced_resumed(pg_server, tmp_path, monkeypatch, "0")
    fast = _interrupted_synced_resumed(pg_server, tmp_path, monkeypatch, "1")
    assert fast == python
    assert ("12", "duplicate.email", "0") in [(r[1], r[3], r[6]) for r in fast[1]["rejects"]]
