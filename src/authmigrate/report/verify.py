"""``authmigrate verify`` on the terminal: the result as a table, then the keys at fault."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authmigrate.reconcile.verify import VerifyResult, verify_report
from authmigrate.spec import Spec

SHOWN = 20
"""Keys listed per kind of problem on the terminal (the JSON has them all)."""


def print_verify(spec: Spec, res: VerifyResult, spec_path: str | None = None) -> None:
    """Print what :func:`~authmigrate.reconcile.verify_migration` found: the counts and
    checks as a table, the keys of each kind of problem (at most :data:`SHOWN` of each), the
    verdict and, with ``spec_path``, the next command."""
    from rich.table import Table

    from authmigrate.report import console

    t = Table(title=f"authmigrate verify: {res.migration}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("source rows", f"{res.source_rows:,}")
    t.add_row("migrated", f"{res.migrated:,}")
    t.add_row("rejected", f"{res.rejected:,}")
    t.add_row("merged", f"{res.merged:,}")
    total = res.migrated + res.rejected + res.merged
    sign = "=" if res.reconciled else "≠"
    t.add_row(
        "reconciliation",
        f"{res.source_rows:,} {sign} {res.migrated:,} + {res.rejected:,} + {res.merged:,}"
        + ("" if res.reconciled else f" (= {total:,})"),
    )
    t.add_row(
        "chunks checksummed", f"{res.chunks:,} ({res.checksums}), {res.chunks_bisected:,} bisected"
    )
    t.add_row(
        "rows missing / extra / different",
        f"{len(res.missing)} / {len(res.extra)} / {len(res.different)}",
    )
    if res.doubled:
        t.add_row("keys counted twice", f"{len(res.doubled):,}")
    if spec.credentials is not None:
        t.add_row("credentials compared", f"{res.credentials_checked:,}")
        if res.wrapped_total:
            t.add_row(
                "wrapped, argon2id checked", f"{res.wrapped_checked:,} of {res.wrapped_total:,}"
            )
    if spec.tokens is not None:
        t.add_row("tokens checked", f"{res.tokens_checked:,}")
    if spec.notify is not None:
        t.add_row("outbox rows checked", f"{res.outbox_checked:,}")
    t.add_row("time", f"{res.seconds:.2f} s")
    console.print(t)
    for note in res.notes:
        console.print(f"[bold red]problem:[/] {note}")
    _print_keys("missing (should be in the target, are not)", res.missing)
    _print_keys("extra (in the target, should not be)", res.extra)
    _print_keys("counted twice (written and in the rejects, or rejected twice)", res.doubled)
    _print_keys(
        "different (mapped values differ)",
        [f"{d.key!r}: {', '.join(d.columns)}" for d in res.different],
        raw=True,
    )
    _print_keys("accounts without their message in the outbox", res.unnotified)
    _print_keys(
        "credentials and tokens",
        [f"{p.key!r}: {p.column} {p.reason}" for p in res.credential_problems],
        raw=True,
    )
    console.print("[bold green]verify ok[/]" if res.ok else "[bold red]verify found problems[/]")
    if spec_path is not None:
        from rich.text import Text

        step = verify_report(spec, res, spec_path)["next_step"]
        if step["command"]:
            console.print(Text(f"next: {step['command']}  ({step['why']})"))


def _print_keys(title: str, items: Sequence[Any], *, raw: bool = False) -> None:
    from rich.markup import escape

    from authmigrate.report import console

    if not items:
        return
    console.print(f"[bold red]{escape(title)}:[/] {len(items):,}")
    for item in items[:SHOWN]:
        console.print(f"  {escape(item if raw else repr(item))}")
    if len(items) > SHOWN:
        console.print(f"  ... and {len(items) - SHOWN:,} more")
