"""The ``authmigrate`` command: parse, call the library, print. Nothing else lives here.

Exit codes: 0 success; 1 the migration ran but found problems (rejects, verify mismatches);
2 bad input (spec, URL, arguments), with a message naming the culprit and nothing written;
130 interrupted (Ctrl-C), at any moment: committed batches are kept.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from authmigrate.errors import AuthmigrateError, SpecError

if TYPE_CHECKING:
    from rich.console import Console

    from authmigrate.spec import Spec

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED = 130
"""Exit code of a command stopped by Ctrl-C (SIGINT), whenever it comes."""


def _fail(message: str, code: int) -> None:
    if "sqlalchemy" in sys.modules:  # a URL was parsed: mask any secret it held
        from authmigrate.db import scrub

        message = scrub(message)
    click.echo(f"authmigrate: error: {message}", err=True)
    sys.exit(code)


def interrupted_inside(exc: BaseException) -> bool:
    """Whether a Ctrl-C is what this exception carries: Python wraps a KeyboardInterrupt
    raised inside some machinery (``__set_name__`` while a class of the spec is built at
    import, on 3.11: ``RuntimeError: Error calling __set_name__``) in another exception."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


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
            if interrupted_inside(exc):
                _fail("interrupted; committed batches are kept, run again to resume", INTERRUPTED)
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
    from authmigrate.load import load_spec

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
        except Exception as exc:
            if interrupted_inside(exc):
                _fail("interrupted", INTERRUPTED)
            raise
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

    from authmigrate.pipeline.run import plan_migration
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
    if not all(result.export_self_tests.values()):
        sys.exit(1)  # an export group failed its self-test: run would refuse it


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="JSON report file.")
@click.option(
    "--dask",
    "dask_address",
    default=None,
    help='Run the key ranges as Dask tasks: "local" or tcp://scheduler:8786 (as [run] dask).',
)
@handle_errors
def run(spec: str, report_path: str | None, dask_address: str | None) -> None:
    """Run or resume the migration: batches, one transaction each, checkpointed."""
    from authmigrate.pipeline.run import run_migration
    from authmigrate.report import print_run, progress_reporter, write_report

    s = _load(spec)
    address = s.run.dask
    if dask_address is not None:
        from authmigrate.spec import check_dask_address

        try:
            address = check_dask_address(dask_address)
        except ValueError as exc:
            raise SpecError("--dask", str(exc)) from None
    path = Path(report_path) if report_path else Path(spec).with_suffix(".report.json")
    _check_writable(path, "--report")  # before any batch, not after all of them
    try:
        with progress_reporter("migrate") as progress:
            if address is not None:
                from authmigrate.cluster.run import run_on_dask

                result = run_on_dask(s, address, progress=progress)
            else:
                result = run_migration(s, progress=progress)
    except BaseException as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:  # a failed or interrupted run still says what it did
            partial.spec_path = spec
            write_report(path, partial.as_dict())
            click.echo(f"report: {path}", err=True)
        raise
    result.spec_path = spec
    if s.target.export is not None:
        from authmigrate.spec import EXPORT_BOOKKEEPING

        print_run(result, rejects_at=str(Path(s.target.dir) / EXPORT_BOOKKEEPING))
    else:
        print_run(result)
    if result.unsynced:
        click.echo(
            f"{result.unsynced:,} source rows are not migrated yet: keys added below the "
            "checkpoint (or with a NULL key) since the bulk copy read past them; "
            f"run `authmigrate sync {spec}` to carry them"
        )
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
    from authmigrate.reconcile import verify_migration, verify_report
    from authmigrate.report.verify import print_verify

    loaded = _load(spec)
    res = verify_migration(loaded, sample=sample)
    if as_json:
        import json

        click.echo(json.dumps(verify_report(loaded, res, spec), indent=2, default=str))
    else:
        print_verify(loaded, res, spec)
    sys.exit(0 if res.ok else 1)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--dormant-days",
    default=30,
    show_default=True,
    type=click.IntRange(min=0),
    help="Days after migration from which an account not yet upgraded counts as dormant.",
)
@handle_errors
def status(spec: str, as_json: bool, dormant_days: int) -> None:
    """Where the move stands: counts, credentials by state, dormant accounts, last run."""
    import json

    from authmigrate.continuity.status import migration_status
    from authmigrate.report import print_status

    result = migration_status(_load(spec), dormant_days=dormant_days)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        print_status(result)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write its data.")
@click.option("--examples", default=5, show_default=True, type=click.IntRange(min=0))
@handle_errors
def report(spec: str, output: str, json_path: str | None, examples: int) -> None:
    """Write the migration report: one self-contained HTML file with charts."""
    from authmigrate.report.html import write_html_report

    data = write_html_report(
        _load(spec),
        Path(output),
        examples=examples,
        json_path=Path(json_path) if json_path else None,
    )
    click.echo(f"report: {output} ({data['summary']['source_rows']:,} source rows)")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--full", is_flag=True, help="Compare the fingerprints of every row.")
@click.option("--follow", is_flag=True, help="Sync every [sync] interval until stopped.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per pass.")
@handle_errors
def sync(spec: str, full: bool, follow: bool, as_json: bool) -> None:
    """Carry what changed on the legacy side: new keys, changed rows, deletes.

    With --follow, SIGINT or SIGTERM ends after the chunk in flight is committed: exit 130
    after SIGINT, 0 after SIGTERM (a service manager's normal stop).
    """
    from authmigrate.continuity import sync as sync_mod

    s = _load(spec)

    def show(result: Any) -> None:
        if as_json:
            click.echo(json.dumps(result.as_dict(), default=str))
        else:
            _print_sync(result)

    if not follow:
        result = sync_mod.sync_migration(s, full=full)
        show(result)
        sys.exit(1 if result.rejected else 0)
    got: list[int] = []
    with _stop_signals(got):
        sync_mod.follow(s, full=full, stop=lambda: bool(got), each=show)
    sys.exit(130 if got and got[0] == signal.SIGINT else 0)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--max-passes", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="The result as JSON.")
@handle_errors
def cutover(spec: str, max_passes: int, as_json: bool) -> None:
    """Sync until a pass finds nothing, verify, print the switch-over checklist.

    Exit 0 only when the last pass found nothing and verify is clean.
    """
    from authmigrate.continuity.cutover import cutover as run_cutover

    s = _load(spec)
    res = run_cutover(s, max_passes=max_passes, on_pass=None if as_json else _print_sync)
    if as_json:
        click.echo(json.dumps(res.as_dict(), default=str, indent=2))
        sys.exit(0 if res.ok else 1)
    v = res.verify
    assert v is not None
    click.echo(f"cutover {res.migration}:")
    settled = "yes" if res.settled else f"no (after {len(res.passes)} passes)"
    click.echo(f"  source in step:     {settled}")
    click.echo(f"  verify:             {'ok' if v.ok else 'PROBLEMS (run authmigrate verify)'}")
    click.echo(
        f"  source rows:        {v.source_rows:,} = {v.migrated:,} migrated + "
        f"{v.rejected:,} rejected + {v.merged:,} merged"
    )
    if v.deleted_in_source:
        click.echo(f"  deleted in source:  {v.deleted_in_source:,}")
    rejects = ", ".join(f"{r} {n:,}" for r, n in res.open_rejects.items()) or "none"
    click.echo(f"  open rejects:       {rejects}")
    c = res.credentials
    legacy = ", ".join(f"{s_} {n:,}" for s_, n in c.legacy.items()) or "none"
    click.echo(f"  on a legacy hash:   {legacy}")
    click.echo(
        f"  wrapped {c.wrapped:,}, upgraded {c.upgraded:,}, reset required "
        f"{c.reset_required:,}, disabled {c.disabled:,}"
    )
    click.echo("next steps:")
    for i, step in enumerate(res.next_steps, 1):
        click.echo(f"  {i}. {step}")
    click.echo("cutover ready" if res.ok else "cutover NOT ready")
    sys.exit(0 if res.ok else 1)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--apply", "apply_", is_flag=True, help="Act (the default is a dry run).")
@click.option("--json", "as_json", is_flag=True, help="The result as JSON.")
@handle_errors
def sunset(spec: str, apply_: bool, as_json: bool) -> None:
    """After [sunset] after_days, act on accounts still on a legacy hash (dry run by default)."""
    from authmigrate.continuity.sunset import sunset as run_sunset

    res = run_sunset(_load(spec), apply=apply_)
    if as_json:
        click.echo(json.dumps(res.as_dict(), default=str, indent=2))
        return
    verb = {"reset": "reset", "disable": "disable", "keep": "keep"}[res.action]
    head = "" if res.applied else "dry run: would "
    click.echo(
        f"sunset {res.migration}: {head}{verb} {len(res.keys):,} accounts still on a legacy "
        f"hash after {res.after_days} days"
    )
    _keys_line("accounts", res.keys)
    if res.notified:
        click.echo(f"  reset messages queued: {res.notified:,} (send them with authmigrate notify)")
    if not res.applied and res.keys and res.action != "keep":
        click.echo("  run again with --apply to act")


SHOWN = 20
"""Keys listed per kind on the terminal (the --json output has them all)."""


def _keys_line(title: str, keys: list[Any], *, raw: bool = False) -> None:
    if not keys:
        return
    shown = ", ".join(k if raw else repr(k) for k in keys[:SHOWN])
    more = f" ... and {len(keys) - SHOWN:,} more" if len(keys) > SHOWN else ""
    click.echo(f"  {title} ({len(keys):,}): {shown}{more}")


def _print_sync(result: Any) -> None:
    click.echo(
        f"sync {result.migration}: {result.mode} pass, {result.compared:,} "
        f"row{'' if result.compared == 1 else 's'} compared, "
        f"{result.changes:,} change{'' if result.changes == 1 else 's'}, "
        f"{result.seconds:.2f} s ({result.status})"
    )
    _keys_line("new", [k for k in result.inserted if k not in set(result.retried)])
    _keys_line("rejected before, migrated now", result.retried)
    _keys_line("updated", result.updated)
    _keys_line("back in the source", result.restored)
    _keys_line("rejected", [f"{k!r} {r}" for k, r in result.rejected.items()], raw=True)
    _keys_line("deleted in the source", [f"{k!r} {a}" for k, a in result.deleted.items()], raw=True)
    _keys_line(
        "password conflicts",
        [f"{c.key!r} {c.winner} wins ({c.reason})" for c in result.conflicts],
        raw=True,
    )
    if result.null_key_rows:
        click.echo(f"  rows with a NULL key: {result.null_key_rows:+,} (rejected, as in run)")


@contextlib.contextmanager
def _stop_signals(got: list[int]) -> Iterator[None]:
    """SIGINT/SIGTERM set a flag instead of interrupting: the chunk in flight finishes."""

    def handler(signum: int, frame: Any) -> None:
        got.append(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def rollback(spec: str, yes: bool) -> None:
    """Remove exactly what this migration wrote, nothing else."""
    sys.exit(rollback_command(_load(spec), yes=yes))


def rollback_command(spec: Spec, *, yes: bool) -> int:
    """``authmigrate rollback``: show what would go, ask (on a terminal), remove, report.

    Returns:
        0 when the rollback ran, 1 when the operator declined or recorded keys were not found.

    Raises:
        SpecError: not on a terminal and ``--yes`` not given (exit code 2, nothing removed).
    """
    from authmigrate.db import safe_url
    from authmigrate.report import console
    from authmigrate.rollback import rollback, rollback_preview

    preview = rollback_preview(spec)
    where = safe_url(spec.target.url)
    console.print(
        f"rollback of {spec.migration_name!r} in {where}: {preview.accounts:,} accounts, "
        f"{preview.rejected:,} rejected and {preview.merged:,} merged rows, "
        f"{preview.batches:,} batches, {preview.outbox:,} outbox rows"
        + (f", {preview.export_files:,} export files" if spec.target.export else "")
    )
    if not yes:
        if not sys.stdin.isatty():
            raise SpecError("--yes", "not on a terminal: pass --yes to confirm the rollback")
        if not click.confirm(
            "Remove them? Rows that were in the target before stay.", default=False
        ):
            console.print("rollback cancelled; nothing removed")
            return 1
    done = rollback(spec)
    console.print(
        f"removed {done.accounts:,} accounts, {done.rejected:,} rejected and {done.merged:,} "
        f"merged rows, {done.batches:,} batches, {done.outbox:,} outbox rows"
        + (f", {done.export_files:,} export files" if spec.target.export else "")
        + "; "
        f"{done.runs:,} run{'' if done.runs == 1 else 's'} marked rolled_back"
    )
    if done.not_found:
        console.print(
            f"problem: {done.not_found:,} keys recorded as written by this migration are not in "
            f"{spec.target.table!r}; their batches stay recorded (with those keys only) and "
            "the runs are not marked rolled_back. Check whether the new system deleted them."
        )
        return 1
    return 0


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
    from authmigrate.notify import requeue as requeue_messages
    from authmigrate.notify import sending_counts

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


def notify_command(
    spec: Spec | str | Path,
    *,
    dry_run: bool = False,
    out: Path | None = None,
    status: bool = False,
    console: Console | None = None,
    base_dir: Path | None = None,
) -> int:
    """Run ``authmigrate notify SPEC [--dry-run --out DIR] [--status]``; return the exit code.

    ``spec`` is a loaded spec or the path of its file; relative template paths are read from
    the file's folder, or from ``base_dir`` for a loaded spec. What it prints is drawn by
    :mod:`authmigrate.report.notify` (on ``console``, default: standard output).

    0: done (every message sent); 1: some messages failed or are in doubt, or the server
    cannot be used; 2: bad spec or arguments (nothing sent).
    """
    from authmigrate.db import make_engine
    from authmigrate.load import load_spec
    from authmigrate.notify import dry_run as render_outbox
    from authmigrate.notify import send_outbox, sending_counts
    from authmigrate.notify import status as outbox_status
    from authmigrate.report import make_console
    from authmigrate.report import notify as shown
    from authmigrate.spec import Spec

    if console is None:
        console = make_console()
    try:
        if not isinstance(spec, Spec):
            base_dir = Path(spec).resolve().parent
            spec = load_spec(spec)
        engine = make_engine(
            spec.target.url, path="target.url", synchronous=spec.target_synchronous
        )
        from authmigrate.sinks.sql import adopt_recorded_name  # an earlier version's name

        adopt_recorded_name(spec, engine)
        try:
            if status:
                shown.print_outbox_status(console, outbox_status(engine, spec))
                shown.print_sending(console, sending_counts(engine, spec))
                return 0
            if dry_run:
                if out is None:
                    raise SpecError("--out", "--dry-run needs --out DIR")
                n = render_outbox(engine, spec, out, base_dir=base_dir)
                shown.print_rendered(console, n, out)
                return 0
            with shown.NotifyProgress(console) as progress:
                report = send_outbox(engine, spec, base_dir=base_dir, progress=progress)
        finally:
            engine.dispose()
    except AuthmigrateError as exc:
        shown.print_notify_error(console, exc)
        return exc.exit_code
    shown.print_send_report(console, report)
    return 0 if report.ok else 1


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
    sys.exit(init_command(from_url, to_url, preset, Path(output)))


def init_command(from_url: str, to_url: str | None, preset: str | None, out: Path) -> int:
    """The ``authmigrate init`` command: write the spec, print what was found.

    Returns:
        0 on success, 2 on bad input (URL, preset, unreachable source, unknown platform).
    """
    from rich.markup import escape

    from authmigrate.presets.init import _guessed_table, _read_back, secret_free, write_init_spec
    from authmigrate.report import make_console

    console = make_console(stderr=True)
    try:
        path = write_init_spec(from_url, to_url, preset, Path(out))
    except AuthmigrateError as exc:
        console.print("authmigrate: error: ", end="", highlight=False, markup=False)
        console.print(str(exc), highlight=False, markup=False, emoji=False, soft_wrap=True)
        return 2
    for section, url in (("source", from_url), ("target", to_url or "")):
        _, env, what = secret_free(url, section)
        if env is not None:
            console.print(
                f"  before running: export {env}=...   ({what} of the {section}, kept out of "
                "the spec)",
                highlight=False,
            )
    found = _read_back(path)
    if found is None:
        table = _guessed_table(path)
        which = escape(f"the table {table!r}") if table else "a home-grown table"
        console.print(
            f"No shop platform recognised: wrote [bold]{path}[/] for {which} (the most "
            "account-like one); check the guesses in it, and its table if you meant another.",
            highlight=False,
        )
        console.print(f"  next: authmigrate plan {path}")
        return 0
    chosen, prefix = found
    console.print(
        f"Found [bold]{chosen.title}[/] (table prefix [cyan]{prefix or '(none)'}[/]); "
        f"wrote [bold]{path}[/].",
        highlight=False,
    )
    for key_id, ref in chosen.credentials.get("keys", {}).items():
        console.print(f"  before running: export {ref[4:]}=...   (secret for key {key_id!r})")
    console.print(f"  next: authmigrate plan {path}")
    return 0


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
