"""Showing what happened: progress while it runs, a summary table and a JSON report after."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

from authmigrate.pipeline.run import PlanResult, RunResult

if TYPE_CHECKING:
    from authmigrate.continuity.status import MigrationStatus

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


def print_run(result: RunResult, rejects_at: str = "the target") -> None:
    """The summary table after a run; ``rejects_at`` names where the reject table is (an
    export keeps it in its own bookkeeping file, not in the files it writes)."""
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
    for reason, entry in result.as_dict()["rejects"].items():
        if entry["outcome"] == "rejected":
            keys = ", ".join(str(k) for k in entry["examples"][:5])
            console.print(Text(f"rejected {reason} ({entry['count']:,}), e.g. keys {keys}"))
            if entry.get("fix"):
                console.print(Text(f"  fix: {entry['fix']}"))
    if result.rejects:
        console.print(
            Text(
                "every reject, with its reason and detail: "
                f"table authmigrate_rejects in {rejects_at}"
            )
        )
    step = result.next_step
    console.print(Text(f"next: {step['command']}  ({step['why']})"))


def print_plan(result: PlanResult) -> None:
    """The summary of a dry run: what the run will do, how long it takes, what to fix."""
    from authmigrate.pipeline.advice import human_duration

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
    if result.tokens is not None:
        t.add_row("  get a token", f"{result.tokens:,}")
    # each reason under its outcome, as in the run's table
    for outcome, label, total in (
        ("rejected", "would reject", result.rejected),
        ("merged", "would merge", result.merged),
    ):
        t.add_row(label, f"{total:,}")
        for reason, n in result.by_reason.items():
            if result.outcomes.get(reason, "rejected") == outcome:
                t.add_row(f"  {reason}", f"{n:,}")
    for scheme, n in result.schemes.items():
        ok = result.self_tests.get(scheme)
        mark = "" if ok is None else (" self-test ok" if ok else " SELF-TEST FAILED")
        t.add_row(f"  scheme {scheme}{mark}", f"{n:,}")
    if result.path:
        t.add_row("batches", Text(f"{result.path['path']} path: {result.path['why']}"))
    if result.estimate:
        est = result.estimate
        took = human_duration(est["seconds"])
        how = f"{took if est['seconds'] < 1 else 'about ' + took} on {est['cores']} cores"
        if est.get("wrap_ms_per_account") is not None:
            how += f" (wrapping {est['wrap_ms_per_account']:.0f} ms/account/core)"
        t.add_row("run time", how)
    console.print(t)
    if result.routes:
        _print_routes(result)
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


def print_status(status: MigrationStatus) -> None:
    """The table of ``authmigrate status``."""
    t = Table(
        title=f"authmigrate status: {status.migration}", show_header=False, title_justify="left"
    )
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("source rows", f"{status.source_rows:,}")
    t.add_row("migrated", f"{status.migrated:,}")
    t.add_row("rejected", f"{status.rejected:,}")
    for reason, n in status.rejected_by_reason.items():
        t.add_row(Text(f"  {reason}"), f"{n:,}")
    t.add_row("merged", f"{status.merged:,}")
    for reason, n in status.merged_by_reason.items():
        t.add_row(Text(f"  {reason}"), f"{n:,}")
    t.add_row("pending (not yet migrated)", f"{status.pending:,}")
    deleted = status.deleted_in_source
    t.add_row("deleted in source", "n/a (no sync yet)" if deleted is None else f"{deleted:,}")
    if status.changed:
        t.add_row("changed, held back by sync", f"{status.changed:,}")
    cred = status.credentials
    t.add_row("on a legacy hash", f"{cred.legacy_total:,}")
    for scheme, n in cred.legacy.items():
        t.add_row(Text(f"  {scheme}"), f"{n:,}")
    t.add_row("wrapped", f"{cred.wrapped_total:,}")
    for scheme, n in cred.wrapped.items():
        t.add_row(Text(f"  {scheme}"), f"{n:,}")
    t.add_row("upgraded (argon2id)", f"{cred.upgraded:,}")
    t.add_row("reset required", f"{cred.reset:,}")
    t.add_row(f"dormant (not upgraded after {status.dormant_days} d)", f"{status.dormant:,}")
    last = status.last_run
    if last is None:
        t.add_row("last run", "never")
    else:
        when = (last.ended_at or last.started_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        t.add_row("last run", Text(f"{last.command} {last.status}, {when}"))
        t.add_row("lag", _duration(status.lag_seconds or 0.0))
    console.print(t)


def _duration(seconds: float) -> str:
    """``3 d 4 h``, ``5 h 2 min``, ``12 min``, ``40 s``."""
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


def _print_routes(result: PlanResult) -> None:
    """How the accounts would log in at each provider (the spec's provider first)."""
    names = list(result.routes)
    routes = ("native", "re-encoded", "bridge", "reset")
    r = Table("provider", *routes, title="export: accounts per route", title_justify="left")
    for n in names:
        r.add_row(n, *(f"{result.routes[n].get(x, 0):,}" for x in routes))
    console.print(r)
    for label, ok in result.export_self_tests.items():
        mark = "self-test ok" if ok else "SELF-TEST FAILED (run refuses this group)"
        console.print(f"  {names[0]} {label}: {mark}")


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
