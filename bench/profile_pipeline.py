"""Where a run's time goes: wall time per pipeline stage on one spec.

    .venv/bin/python bench/profile_pipeline.py SPEC

Wraps the stage methods with timers (in this process only), runs the migration once, and
prints seconds per stage. Run it on a fresh target (it migrates for real).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import authmigrate.pipeline.run as pipeline
import authmigrate.pipeline.stages as stages
import authmigrate.sinks.sql as sink
import authmigrate.sources.sql as source
from authmigrate.spec import load_spec

spent: Counter[str] = Counter()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start

    return wrapper


def main() -> None:
    source.SqlSource.page = timed("read pages", source.SqlSource.page)  # type: ignore[method-assign]
    pipeline.Migration.transform_batch = timed(  # type: ignore[method-assign]
        "transform + records", pipeline.Migration.transform_batch
    )
    pipeline.Migration._reject_existing_keys = timed(  # type: ignore[method-assign]
        "existing-key check", pipeline.Migration._reject_existing_keys
    )
    stages.DuplicateStage.process = timed("duplicate check", stages.DuplicateStage.process)  # type: ignore[method-assign]
    sink.BulkInsert.__call__ = timed("insert accounts", sink.BulkInsert.__call__)  # type: ignore[method-assign]
    sink.SqlTarget.commit_batch = timed("commit (incl. insert)", sink.SqlTarget.commit_batch)  # type: ignore[method-assign]
    spec = load_spec(sys.argv[1])
    start = time.perf_counter()
    result = pipeline.run_migration(spec)
    total = time.perf_counter() - start
    print(f"{result.this_run['read']:,} rows in {total:.2f} s")
    rows = max(result.this_run["read"], 1)
    for name, seconds in spent.most_common():
        print(f"  {name:24} {seconds:6.2f} s  {seconds / rows * 1e6:5.2f} us/row")


if __name__ == "__main__":
    main()
