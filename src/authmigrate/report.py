"""Showing what happened: progress while it runs, a summary table and a JSON report after."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from authmigrate.pipeline import PlanResult, RunResult

log = logging.getLogger("authmigrate")
# no emoji codes (":salt:" in "hash:salt:version" would become a picture), no highlighting;
# data goes into tables as Text, never as markup
PLAIN_WIDTH = 10_000
"""Line width when not on a terminal: a CI log or a pipe gets whole lines, never rich's 80."""


def make_console(*, stderr: bool = False) -> Console:
    """A console for authmigrate's output: the terminal's width on a terminal; otherwise
    (pipes, CI logs, files) lines are not wrapped, unless ``COLUMNS`` says a width."""
    import os

    out = Console(stderr=stderr, highlight=False, emoji=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PLAIN_WIDTH
    return out


console = make_console()
err_console = make_console(stderr=True)


class RateColumn(TextColumn):
    """Rows per second."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:  # noqa: D102
        speed = task.finished_speed or task.speed
        if not speed and task.elapsed:
            speed = task.completed / task.elapsed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="progress.data.speed")


@contextmanager
def progress_reporter(label: str, *, interval: float = 5.0) -> Iterator[Any]:
    """A ``(done, total)`` callback: a progress bar with rate and ETA on a terminal, plain log
    lines every ``interval`` seconds otherwise."""
    if err_console.is_terminal:
        bar = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        task = bar.add_task(label, total=None)
        with bar:

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            yield update
        return
    start = time.monotonic()
    last = [0.0, 0]

    def plain(done: int, total: int) -> None:
        now = time.monotonic()
        if last[1] == 0:
            last[1] = done or -1  # rows already done before this run (resume)
            last[0] = now  # the first line comes after the first interval, with a real rate
            return
        if now - last[0] < interval and done < total:
            return
        last[0] = now
        elapsed = now - start
        base = max(last[1], 0)
        rate = (done - base) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        pct = 100.0 * done / total if total else 100.0
        log.info(
            "%s: %d/%d rows (%.0f%%), %.0f rows/s, ETA %.0fs", label, done, total, pct, rate, eta
        )

    yield plain


def print_run(result: RunResult) -> None:
    """The summary table after a run."""
    t = Table(title=f"authmigrate run: {result.migration}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("status", result.status)
    t.add_row("source rows", f"{result.source_rows:,}")
    t.add_row("read", f"{result.read:,}")
    t.add_row("migrated", f"{result.migrated:,}")
    t.add_row("rejected", f"{result.rejected:,}")
    for reason, n in result.by_reason.items():
        t.add_row(f"  {reason}", f"{n:,}")
    t.add_row("merged", f"{result.merged:,}")
    for reason, n in result.merged_by_reason.items():
        t.add_row(f"  {reason}", f"{n:,}")
    for scheme, n in sorted(result.schemes.items(), key=lambda kv: -kv[1]):
        t.add_row(f"  this run: scheme {scheme}", f"{n:,}")
    for seg, n in sorted(result.segments.items()):
        t.add_row(f"  this run: segment {seg}", f"{n:,}")
    t.add_row("this run read", f"{result.this_run.get('read', 0):,}")
    t.add_row("time", f"{result.seconds:.2f} s")
    t.add_row("rate", f"{result.rows_per_second:,.0f} rows/s")
    console.print(t)
    for reason, entry in result.rejects.items():
        if entry["outcome"] == "rejected":
            keys = ", ".join(str(k) for k in entry["examples"][:5])
            console.print(Text(f"rejected {reason} ({entry['count']:,}), e.g. keys {keys}"))
    if result.rejects:
        console.print(
            Text(
                "every reject, with its reason and detail: table authmigrate_rejects in the target"
            )
        )
    step = result.next_step
    console.print(Text(f"next: {step['command']}  ({step['why']})"))


def print_plan(result: PlanResult) -> None:
    """The summary of a dry run: what the run will do, how long it takes, what to fix."""
    from authmigrate.advice import human_duration

    t = Table(
        title=f"authmigrate plan: {result.migration}", show_header=False, title_justify="left"
    )
    t.add_column(style="bold")
    t.add_column(justify="right")
    if result.target:
        state = "exists" if result.target.get("exists") else "created by the run"
        t.add_row("target", Text(f"{result.target['url']} ({state}, writable)"))
    if result.secrets:
        t.add_row("secrets (env)", Text(", ".join(result.secrets) + ": set"))
    t.add_row("source rows", f"{result.source_rows:,}")
    if result.already_done:
        t.add_row("already migrated (earlier runs)", f"{result.already_done:,}")
    t.add_row("would migrate", f"{result.would_migrate:,}")
    if result.kept or result.wrapped or result.reset:
        t.add_row("  password kept", f"{result.kept:,}")
        t.add_row("  password wrapped (argon2id)", f"{result.wrapped:,}")
        t.add_row("  password reset (none usable)", f"{result.reset:,}")
    t.add_row("would reject", f"{result.rejected:,}")
    t.add_row("would merge", f"{result.merged:,}")
    for reason, n in result.by_reason.items():
        t.add_row(f"  {reason}", f"{n:,}")
    for scheme, n in result.schemes.items():
        ok = result.self_tests.get(scheme)
        mark = "" if ok is None else (" self-test ok" if ok else " SELF-TEST FAILED")
        t.add_row(f"  scheme {scheme}{mark}", f"{n:,}")
    if result.estimate:
        est = result.estimate
        how = f"about {human_duration(est['seconds'])} on {est['cores']} cores"
        if est.get("wrap_ms_per_account") is not None:
            how += f" (wrapping {est['wrap_ms_per_account']:.0f} ms/account/core)"
        t.add_row("run time", how)
    console.print(t)
    if result.preview:
        cols = ("key", "outcome", "reason", "column", "detail")
        p = Table(*cols, title="reject preview", title_justify="left")
        for row in result.preview:
            p.add_row(*(Text("" if row[c] is None else str(row[c])) for c in cols))
        console.print(p)
    for reason, fix in result.fixes.items():
        console.print(Text(f"fix {reason} ({result.by_reason[reason]:,}): {fix}"))
    for line in result.advice:
        console.print(Text(f"note: {line}"))
    step = result.next_step
    console.print(Text(f"next: {step['command']}  ({step['why']})"))


def write_report(path: Path, body: dict[str, Any]) -> None:
    """Write the JSON report (atomically: a crash leaves the old one or the new one)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def setup_logging(verbose: bool = False) -> None:
    """Plain log lines to stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
