"""``authmigrate notify`` on the terminal: the sending's progress, the outbox's counts, the
summary after a send and what to do about messages failed or in doubt."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from authmigrate.errors import AuthmigrateError
from authmigrate.notify.outbox import STATUSES
from authmigrate.notify.sender import SendReport

LINE_EVERY = 5.0
"""Seconds between two progress lines when the console is not a terminal."""


class NotifyProgress:
    """The progress of :func:`~authmigrate.notify.send_outbox` on a console, given to it as
    its ``progress`` callback: a bar on a terminal (or when ``bar`` says so), otherwise a
    plain line every :data:`LINE_EVERY` seconds.

    Use it as a context manager around the send, so that the bar is stopped however the send
    ends::

        with NotifyProgress(console) as progress:
            report = send_outbox(engine, spec, progress=progress)
    """

    def __init__(self, console: Console, *, bar: bool | None = None) -> None:
        self.console = console
        self.bar = console.is_terminal if bar is None else bar
        self._progress: Progress | None = None
        self._task: Any = None
        self._last: float | None = None

    def __enter__(self) -> NotifyProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, report: SendReport, total: int) -> None:
        """The counts so far, of ``total`` messages queued when the send started; the first
        call, before any message, starts the bar (or the clock of the lines)."""
        if self.bar:
            self._tick_bar(report, total)
        elif self._last is None:
            self._last = time.monotonic()
        elif time.monotonic() - self._last >= LINE_EVERY:
            self._last = time.monotonic()
            self.console.print(
                f"notify: {report.sent} sent, {report.failed} failed, "
                f"{report.retried} retried of {total}",
                highlight=False,
            )

    def _tick_bar(self, report: SendReport, total: int) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("notify"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("notify", total=total, detail="")
            return
        detail = f"failed {report.failed}" if report.failed else ""
        self._progress.update(
            self._task, completed=report.sent + report.failed + report.in_doubt, detail=detail
        )


def print_outbox_status(console: Console, counts: dict[str, dict[str, int]]) -> None:
    """The outbox's messages per segment and status (:func:`authmigrate.notify.status`)."""
    table = Table(title="outbox")
    table.add_column("segment")
    for state in STATUSES:
        table.add_column("in doubt (sending)" if state == "sending" else state, justify="right")
    for segment, by_status in counts.items():
        table.add_row(segment, *(str(by_status[s]) for s in STATUSES))
    console.print(table)


def print_sending(console: Console, counts: dict[str, int]) -> None:
    """The messages left ``sending`` (:func:`authmigrate.notify.sending_counts`), if any."""
    if counts["in_doubt"] or counts["held"]:
        console.print(
            f"sending: {counts['in_doubt']} in doubt (their sender is gone), "
            f"{counts['held']} being sent by a running notify",
            highlight=False,
        )


def print_rendered(console: Console, n: int, out: Path) -> None:
    """What ``notify --dry-run`` wrote."""
    console.print(f"notify: {n} message(s) rendered to {out} (nothing sent)")


def print_notify_error(console: Console, exc: AuthmigrateError) -> None:
    """Why ``notify`` stopped (the error's message names no value)."""
    console.print(f"[red]notify: {exc}[/red]", highlight=False)


def print_send_report(console: Console, report: SendReport) -> None:
    """The counts of a send, then what to do about messages in doubt and failed."""
    earlier = report.in_doubt_total - report.in_doubt
    console.print(
        f"notify: {report.sent} sent, {report.failed} failed, "
        f"{report.in_doubt_total} in doubt"
        + (f" ({max(earlier, 0)} left by earlier runs)" if earlier > 0 else "")
        + f", {report.retried} retried",
        highlight=False,
    )
    if report.in_doubt_total:
        console.print(
            "in doubt: look up their Message-ID in the mail server's log, then "
            "`authmigrate notify SPEC --requeue in_doubt` for those that never arrived "
            "(docs/notify.md)",
            highlight=False,
        )
    if report.failed:
        console.print(
            "failed: each message's reason is in the warnings above and in "
            "authmigrate_outbox.last_error; fix it, then `authmigrate notify SPEC --requeue "
            "failed` and `authmigrate notify SPEC` (docs/notify.md)",
            highlight=False,
        )
