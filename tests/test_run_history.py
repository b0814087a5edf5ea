"""Every run records its id, start, end, spec hash, status and counts in the target."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import make_source, write_spec


def runs(url: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT run_id, command, spec_hash, started_at, ended_at, status, rows_read,"
                " migrated, rejected, merged, error FROM authmigrate_runs ORDER BY started_at"
            )
        ).all()
    engine.dispose()
    return rows


def test_runs_record_id_times_spec_hash_status_and_counts(tmp_path: Path, target_url: str) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 1000)
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, batch=100))
    calls = [0]

    def interrupt_after_three_batches(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt

    def fail_after_two_batches(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("disk on fire")

    with pytest.raises(KeyboardInterrupt):
        run_migration(spec, progress=interrupt_after_three_batches)
    calls[0] = 0
    with pytest.raises(RuntimeError):
        run_migration(spec, progress=fail_after_two_batches)
    done = run_migration(spec)

    history = runs(target_url)
    assert [r.status for r in history] == ["interrupted", "failed", "done"]
    assert [r.rows_read for r in history] == [300, 200, 500]
    assert sum(r.migrated + r.rejected + r.merged for r in history) == 1000
    assert history[-1].run_id == done.run_id
    assert len({r.run_id for r in history}) == 3
    for r in history:
        assert r.command == "run" and r.spec_hash == spec.fingerprint()
        assert r.started_at is not None and r.ended_at is not None and r.ended_at >= r.started_at
    assert "interrupted" in history[0].error and "disk on fire" in history[1].error
    assert history[2].error is None


def test_a_killed_run_is_marked_crashed_by_the_next(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 300)
    dst = f"sqlite:///{tmp_path}/t.db"
    spec = load_spec(write_spec(tmp_path / "m.toml", src, dst, batch=100))
    run_migration(spec)
    engine = sa.create_engine(dst)
    with engine.begin() as conn:  # what a kill -9 leaves behind: a run that never ended
        conn.execute(
            sa.text(
                "UPDATE authmigrate_runs SET status = 'running', ended_at = NULL,"
                " rows_read = 0, migrated = 0"
            )
        )
    engine.dispose()
    run_migration(spec)
    history = runs(dst)
    assert [r.status for r in history] == ["crashed", "done"]
    assert history[0].rows_read == 300  # counts rebuilt from the batches it committed
    assert history[0].ended_at is None and "killed" in history[0].error
