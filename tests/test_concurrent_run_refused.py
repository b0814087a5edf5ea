"""A second run while one holds the migration's lock is refused (exit 2), on SQLite and
PostgreSQL; the first run finishes untroubled."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers_verify import cli, make_source, write_spec

pytestmark = pytest.mark.slow


def test_second_run_while_one_is_writing_exits_2_with_a_clear_message(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 60_000)
    spec = write_spec(tmp_path / "m.toml", src, target_url, batch=200)
    first = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "run", str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    engine = sa.create_engine(target_url)
    deadline = time.monotonic() + 60
    while True:  # wait until the first run is writing
        try:
            with engine.connect() as conn:
                if conn.execute(sa.text("SELECT count(*) FROM authmigrate_batches")).scalar():
                    break
        except sa.exc.DBAPIError:
            pass
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = cli("run", str(spec), cwd=tmp_path)
    still_running = first.poll() is None
    _, first_err = first.communicate(timeout=120)
    assert still_running, "the first run ended before the second started: make the source bigger"
    assert second.returncode == 2, second.stdout + second.stderr
    assert "another run of migration 'legacy->accounts' is writing to this target" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 1, first_err  # done, with rejects
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT status FROM authmigrate_runs")).scalars().all()
    engine.dispose()
    assert runs == ["done"]  # the refused run wrote nothing, not even its run row
    assert cli("verify", str(spec), cwd=tmp_path).returncode == 0
