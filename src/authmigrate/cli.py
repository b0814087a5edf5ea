"""The ``authmigrate`` command: parse, call the library, print. Nothing else lives here.

Exit codes: 0 success; 1 the migration ran but found problems (rejects, verify mismatches);
2 bad input (spec, URL, arguments), with a message naming the culprit and nothing written;
130 interrupted (Ctrl-C), at any moment: committed batches are kept.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from authmigrate.errors import AuthmigrateError, SpecError

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED = 130
"""Exit code of a command stopped by Ctrl-C (SIGINT), whenever it comes."""


def _fail(message: str, code: int) -> None:
    if "sqlalchemy" in sys.modules:  # a URL was parsed: mask any secret it held
        from authmigrate.db import scrub

        message = scrub(message)
    click.echo(f"authmigrate: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Turn library errors into a one-line message and the documented exit code.

    An unexpected exception is shown by type and first line only: SQLAlchemy appends the
    statement's parameters to its messages, and those may hold credentials.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            _fail(str(exc), 2)
        except AuthmigrateError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; committed batches are kept, run again to resume", INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            orig = getattr(exc, "orig", None) or exc
            first = (str(orig).strip().splitlines() or [""])[0]
            _fail(f"internal error: {type(exc).__name__}: {first}", 1)

    return wrapper  # type: ignore[return-value]


def _check_writable(path: Path, option: str) -> None:
    """Refuse a report path that cannot be written, before the work starts.

    Raises:
        SpecError: the folder is missing, the path is a folder, or a file cannot be made there.
    """
    if path.is_dir():
        raise SpecError(option, f"{path} is a folder, not a file")
    if not path.parent.is_dir():
        raise SpecError(option, f"the folder {path.parent} does not exist")
    probe = path.with_suffix(path.suffix + ".tmp")  # what write_report writes first
    try:
        probe.open("ab").close()
        probe.unlink()
    except OSError as exc:
        raise SpecError(option, f"cannot write {path}: {exc.strerror or exc}") from None


def _load(spec_path: str) -> Any:
    from authmigrate.spec import load_spec

    return load_spec(spec_path)


class _Command(click.Group):
    """The command group, with Ctrl-C during start-up (parsing, logging set-up, imports)
    answered like Ctrl-C during the work: exit 130, not click's "Aborted!" with exit 1."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        run: Any = super().main  # click types main() per standalone_mode (Never or Any)
        if not kwargs.pop("standalone_mode", True):
            return run(*args, standalone_mode=False, **kwargs)
        try:
            rv = run(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):
                _fail("interrupted", INTERRUPTED)
            click.echo("Aborted!", err=True)  # end of input at a prompt, as click says it
            sys.exit(1)
        except KeyboardInterrupt:
            _fail("interrupted", INTERRUPTED)
        except click.exceptions.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="authmigrate")
@click.option("-v", "--verbose", is_flag=True, help="More log output.")
def main(verbose: bool) -> None:
    """Move user accounts into a new auth system: no password reset, no lost row."""
    from authmigrate.report import setup_logging

    setup_logging(verbose)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--preview", default=20, show_default=True, help="Rejected rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@handle_errors
def plan(spec: str, preview: int, as_json: bool) -> None:
    """Dry run: predicts the run (counts, rejects and their fixes, time). Writes nothing.

    Exit 1 when rows would be rejected (each reason is shown with its likely fix)."""
    import json

    from authmigrate.pipeline import plan_migration
    from authmigrate.report import print_plan, progress_reporter

    s = _load(spec)
    with progress_reporter("plan") as progress:
        result = plan_migration(s, preview=preview, progress=progress)
    result.spec_path = spec
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print_plan(result)
    if result.rejected or (result.self_tests and not all(result.self_tests.values())):
        sys.exit(1)  # the run would reject rows (or a scheme failed its self-test)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="JSON report file.")
@handle_errors
def run(spec: str, report_path: str | None) -> None:
    """Run or resume the migration: batches, one transaction each, checkpointed."""
    from authmigrate.pipeline import run_migration
    from authmigrate.report import print_run, progress_reporter, write_report

    s = _load(spec)
    path = Path(report_path) if report_path else Path(spec).with_suffix(".report.json")
    _check_writable(path, "--report")  # before any batch, not after all of them
    try:
        with progress_reporter("migrate") as progress:
            result = run_migration(s, progress=progress)
    except BaseException as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:  # a failed or interrupted run still says what it did
            partial.spec_path = spec
            write_report(path, partial.as_dict())
            click.echo(f"report: {path}", err=True)
        raise
    result.spec_path = spec
    print_run(result)
    write_report(path, result.as_dict())
    click.echo(f"report: {path}")
    if result.this_run["rejected"]:
        sys.exit(1)  # this run rejected rows (earlier runs' rejects are in the totals)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--sample", default=None, type=int, help="Wrapped credentials to check (default: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def verify(spec: str, sample: int | None, as_json: bool) -> None:
    """Reconcile source and target: counts, chunk checksums, wrapped credentials."""
    from authmigrate.reconcile import verify_command

    sys.exit(verify_command(_load(spec), sample=sample, as_json=as_json, spec_path=spec))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def rollback(spec: str, yes: bool) -> None:
    """Remove exactly what this migration wrote, nothing else."""
    from authmigrate.rollback import rollback_command

    sys.exit(rollback_command(_load(spec), yes=yes))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Render messages to files instead of sending.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for --dry-run .eml files.")
@click.option("--status", is_flag=True, help="Count queued, sent and failed messages per segment.")
@click.option(
    "--requeue",
    type=click.Choice(["in_doubt", "failed"]),
    help="Put messages left in doubt (check the mail log first) or failed back in the queue.",
)
@handle_errors
def notify(spec: str, dry_run: bool, out: str | None, status: bool, requeue: str | None) -> None:
    """Send the outbox's messages over SMTP, once per user."""
    from authmigrate.notify import notify_command, sending_counts
    from authmigrate.notify import requeue as requeue_messages

    if dry_run and not out:
        raise SpecError("--out", "--dry-run needs --out DIR")
    if requeue:
        from authmigrate.db import make_engine

        loaded = _load(spec)
        engine = make_engine(
            loaded.target.url, path="target.url", synchronous=loaded.target_synchronous
        )
        try:
            from authmigrate.sinks.sql import adopt_recorded_name

            adopt_recorded_name(loaded, engine)
            n = requeue_messages(engine, loaded, which=requeue)  # type: ignore[arg-type]
            held = sending_counts(engine, loaded)["held"] if requeue == "in_doubt" else 0
        finally:
            engine.dispose()
        click.echo(f"requeued {n} message(s)")
        if held:
            click.echo(f"left alone: {held} message(s) a running notify is sending")
        return
    # the path, not a loaded spec: template paths are relative to the spec's folder
    sys.exit(notify_command(spec, dry_run=dry_run, out=Path(out) if out else None, status=status))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--listen", required=True, help="HOST:PORT to listen on, e.g. 127.0.0.1:8085.")
@click.option("--certfile", type=click.Path(dir_okay=False), help="TLS certificate (PEM).")
@click.option("--keyfile", type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@handle_errors
def bridge(spec: str, listen: str, certfile: str | None, keyfile: str | None) -> None:
    """Serve the login-time password bridge for identity providers' migration hooks."""
    from authmigrate.bridge.app import bridge_command

    bridge_command(_load(spec), listen, certfile=certfile, keyfile=keyfile)


@main.command()
@click.option("--from", "from_url", required=True, help="Source database URL.")
@click.option(
    "--to", "to_url", default="sqlite:///new_users.db", show_default=True, help="Target URL."
)
@click.option("--preset", default=None, help="Platform preset (see `authmigrate presets`).")
@click.option(
    "-o", "--output", default="migration.toml", show_default=True, type=click.Path(dir_okay=False)
)
@handle_errors
def init(from_url: str, to_url: str, preset: str | None, output: str) -> None:
    """Inspect a source, detect the platform and write a starting spec."""
    from authmigrate.presets import init_command

    sys.exit(init_command(from_url, to_url, preset, Path(output)))


@main.command()
@handle_errors
def schemes() -> None:
    """List every supported hash scheme id."""
    from rich.table import Table
    from rich.text import Text

    from authmigrate.credentials import schemes as all_schemes
    from authmigrate.report import console

    t = Table("scheme", "weak", "description", title="hash schemes", title_justify="left")
    for s in all_schemes():
        t.add_row(Text(s.id), "yes" if s.weak else "", Text(s.description))
    console.print(t)


@main.command()
@handle_errors
def presets() -> None:
    """List the shop and framework presets."""
    from rich.table import Table
    from rich.text import Text

    from authmigrate.presets import list_presets
    from authmigrate.report import console

    t = Table("preset", "platform", title="presets", title_justify="left")
    for name, description in list_presets():
        t.add_row(Text(name), Text(description))
    console.print(t)


@main.command()
@click.option(
    "--users",
    default=5_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Customers in the legacy shop (more: a longer demo).",
)
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Keep the files here.")
@handle_errors
def demo(users: int, directory: str | None) -> None:
    """Build a legacy shop in SQLite, migrate it, verify it, print the report."""
    from authmigrate.demo import run_demo

    sys.exit(run_demo(users=users, directory=Path(directory) if directory else None))


if __name__ == "__main__":
    main()
