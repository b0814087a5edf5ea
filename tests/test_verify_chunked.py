"""verify reads the bookkeeping one chunk of keys at a time: the same findings at any chunk
size, and memory that does not grow with the number of rows."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import make_source, write_spec


def _migrated_and_rejected(target: Path) -> tuple[list[int], list[int]]:
    conn = sqlite3.connect(target)
    migrated = [k for (k,) in conn.execute("SELECT user_id FROM accounts ORDER BY user_id")]
    rejected = [
        int(k)
        for (k,) in conn.execute(
            "SELECT source_key FROM authmigrate_rejects WHERE outcome = 'rejected'"
            " ORDER BY CAST(source_key AS INTEGER)"
        )
    ]
    conn.close()
    return migrated, rejected


def test_planted_differences_are_found_the_same_at_every_chunk_size(tmp_path: Path) -> None:
    src, dst = tmp_path / "legacy.db", tmp_path / "t.db"
    make_source(src, 2000)
    spec = write_spec(tmp_path / "m.toml", src, f"sqlite:///{dst}", batch=300)
    run_migration(load_spec(spec))
    migrated, rejected = _migrated_and_rejected(dst)
    here = set(migrated)
    # with chunks of 350 source rows, 700 ends a chunk and 351 starts one: the migrated keys
    # nearest to them (a rejected or merged key is not in the target)
    deleted_row = max(k for k in here if k <= 700)
    changed_first = min(k for k in here if k >= 351)
    changed_mid = min(k for k in here if k >= 1234)
    gone_from_source = max(k for k in here if k < 2000)
    assert deleted_row >= 695 and changed_first <= 356
    extra_for_rejected = rejected[-1]
    target = sqlite3.connect(dst)
    target.execute("DELETE FROM accounts WHERE user_id = ?", (deleted_row,))
    target.execute(
        "UPDATE accounts SET email = 'x@example.org' WHERE user_id = ?", (changed_first,)
    )
    target.execute("UPDATE accounts SET visits = visits + 1 WHERE user_id = ?", (changed_mid,))
    target.execute(
        "INSERT INTO accounts (user_id, email, origin) VALUES (?, 'r@example.org', 'legacy')",
        (extra_for_rejected,),
    )
    target.commit()
    target.close()
    source = sqlite3.connect(src)
    source.execute("DELETE FROM legacy_users WHERE user_id = ?", (gone_from_source,))
    source.execute(
        "INSERT INTO legacy_users VALUES (2001, 'late@example.com', 'Late', NULL, 1, 0, NULL)"
    )
    source.commit()
    source.close()

    results = [verify_migration(load_spec(spec), chunk=c) for c in (7, 350, 1000, 100_000)]
    for result in results:
        assert sorted(result.missing) == [deleted_row, 2001]
        assert sorted(result.extra) == sorted([extra_for_rejected, gone_from_source])
        assert sorted((d.key, d.columns) for d in result.different) == [
            (changed_first, ["email"]),
            (changed_mid, ["visits"]),
        ]
        assert result.source_rows == 2000
        assert result.rejected == len(rejected)
        # every written key the target holds: all but the deleted row (the one the source
        # lost is still in the target, so it counts, and is extra)
        assert result.migrated == len(migrated) - 1
        assert not result.doubled
    assert [r.chunks for r in results] == [286, 6, 2, 1]


def _verify_peak(tmp_path: Path, users: int) -> int:
    src, dst = tmp_path / f"legacy{users}.db", tmp_path / f"t{users}.db"
    make_source(src, users)
    spec = write_spec(tmp_path / f"m{users}.toml", src, f"sqlite:///{dst}", batch=1000)
    run_migration(load_spec(spec))
    loaded = load_spec(spec)
    verify_migration(loaded, chunk=500)  # warm: imports, compiled statements
    tracemalloc.start()
    try:
        result = verify_migration(loaded, chunk=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok, result.as_dict()
    return peak


@pytest.mark.slow
def test_verify_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    small = _verify_peak(tmp_path, 8_000)
    large = _verify_peak(tmp_path, 80_000)
    # ten times the rows: a set of every written key would hold ~60 bytes more per key
    # (about 4.3 MB here); one chunk and a few numbers per batch stay the same
    assert large < small * 1.3 + 300_000, (small, large)
