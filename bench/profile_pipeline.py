"""Where a run's time goes: wall and CPU time per pipeline stage on one spec.

    .venv/bin/python bench/profile_pipeline.py SPEC

Wraps the stage methods with timers (in this process only), runs the migration once, and
prints seconds per stage, for the fast path's stages and the Python path's alike (a stage a
spec does not use shows no line). Nested stages are indented under the one that holds them.
Run it on a fresh target (it migrates for real).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import authmigrate.continuity.sync as sync
import authmigrate.pipeline.fast as fastpath
import authmigrate.pipeline.run as pipeline
import authmigrate.pipeline.stages as stages
import authmigrate.sinks.sql as sink
import authmigrate.sources.arrow as arrow
import authmigrate.sources.sql as source
from authmigrate.spec import load_spec

wall: Counter[str] = Counter()
cpu: Counter[str] = Counter()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start, used = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            wall[name] += time.perf_counter() - start
            cpu[name] += time.process_time() - used

    return wrapper


def patch(owner: Any, attr: str, name: str) -> None:
    setattr(owner, attr, timed(name, getattr(owner, attr)))


STAGES = [
    (pipeline.Migration, "__init__", "open: checks of source, spec and target"),
    # the fast path
    (arrow.SqliteArrowPages, "page", "fast: read page (ADBC -> Arrow)"),
    (fastpath.FastPath, "split", "fast: decide per row (Arrow compute)"),
    (fastpath.FastPath, "commit", "fast: batch (residue + transaction)"),
    (fastpath.FastPath, "_residue", "  residue: read again + Python transforms"),
    (fastpath.FastPath, "_write", "  transaction body"),
    (fastpath.FastPath, "_stage", "    stage: fingerprints + TEMP insert"),
    # the Python path
    (source.SqlSource, "page", "python: read pages"),
    (pipeline.Migration, "transform_batch", "python: transform + records"),
    (pipeline.Migration, "_reject_existing_keys", "python: existing-key check"),
    (stages.CredentialStage, "process", "python: credentials"),
    (stages.DuplicateStage, "process", "python: duplicate check"),
    (sink.SqlTarget, "commit_batch", "python: commit (incl. insert)"),
    (sink.BulkInsert, "__call__", "  insert rows (accounts, key state)"),
    # the end of a run
    (sync, "count_unsynced", "end: count keys left to sync"),
    (pipeline, "_record_snapshot", "end: status snapshot"),
]


def main() -> None:
    from authmigrate.pipeline.tokens import TokenStage

    STAGES.append((TokenStage, "process", "python: tokens"))
    STAGES.append((TokenStage, "issue_columns", "      tokens of the fast rows"))
    for owner, attr, name in STAGES:
        patch(owner, attr, name)
    order = [name for _, _, name in STAGES]
    spec = load_spec(sys.argv[1])
    start, used = time.perf_counter(), time.process_time()
    result = pipeline.run_migration(spec)
    total, total_cpu = time.perf_counter() - start, time.process_time() - used
    rows = max(result.this_run["read"], 1)
    print(f"{result.this_run['read']:,} rows in {total:.2f} s wall, {total_cpu:.2f} s CPU")
    print(f"  {'stage':44} {'wall':>8} {'CPU':>8} {'CPU us/row':>10}")
    for name in order:
        if name in wall:
            print(
                f"  {name:44} {wall[name]:7.2f}s {cpu[name]:7.2f}s {cpu[name] / rows * 1e6:10.2f}"
            )


if __name__ == "__main__":
    main()
