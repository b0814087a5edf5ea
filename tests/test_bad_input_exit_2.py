"""Bad input a user can cause ends with exit 2 and a message naming the key or path at fault,
never "internal error", and writes nothing (issue 9 item 20)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from authmigrate.cli import main
from tests.helpers_verify import OUTBOX_KEY, cli, make_source, write_spec


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _assert_exit_2(code: int, out: str, *names: str) -> None:
    assert code == 2, out
    assert "internal error" not in out and "Traceback" not in out, out
    for name in names:
        assert name in out, (name, out)


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    src = tmp_path / "legacy.db"
    make_source(src, 30)
    return src


def _spec(tmp_path: Path, src: Path, target: str, **kw: object) -> Path:
    return write_spec(tmp_path / "m.toml", src, target, **kw)  # type: ignore[arg-type]


def _edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_sqlite_source_that_is_not_a_database(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, just some text that is long enough " * 20)
    spec = _spec(tmp_path, notes, f"sqlite:///{tmp_path / 't.db'}")
    for command in ("plan", "run", "verify"):
        _assert_exit_2(*_invoke(command, str(spec)), "source.url")
    assert not (tmp_path / "t.db").exists()


def test_sqlite_target_that_is_not_a_database(tmp_path: Path, legacy: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, just some text that is long enough " * 20)
    before = notes.read_bytes()
    spec = _spec(tmp_path, legacy, f"sqlite:///{notes}")
    for command in ("plan", "run"):
        _assert_exit_2(*_invoke(command, str(spec)), "target.url")
    assert notes.read_bytes() == before


@pytest.mark.parametrize("folder", ["missing/deeper", "a-file.txt"])
def test_target_in_a_folder_that_does_not_exist(tmp_path: Path, legacy: Path, folder: str) -> None:
    (tmp_path / "a-file.txt").write_text("x")
    spec = _spec(tmp_path, legacy, f"sqlite:///{tmp_path / folder / 't.db'}")
    for command in ("plan", "run"):
        _assert_exit_2(*_invoke(command, str(spec)), "target.url")


@pytest.mark.parametrize(
    "table",
    ["authmigrate_runs", "authmigrate_batches", "AUTHMIGRATE_REJECTS", "authmigrate_outbox"],
)
def test_target_table_named_like_our_bookkeeping(tmp_path: Path, legacy: Path, table: str) -> None:
    spec = _edit(
        _spec(tmp_path, legacy, f"sqlite:///{tmp_path / 't.db'}"),
        'table = "accounts"',
        f'table = "{table}"',
    )
    _assert_exit_2(*_invoke("run", str(spec)), "target.table")
    assert not (tmp_path / "t.db").exists()


def test_name_longer_than_postgresql_identifiers(tmp_path: Path, legacy: Path) -> None:
    spec = _spec(tmp_path, legacy, f"sqlite:///{tmp_path / 't.db'}", name="n" * 64)
    _assert_exit_2(*_invoke("run", str(spec)), "name")
    assert not (tmp_path / "t.db").exists()


def test_latin1_spec_file(tmp_path: Path, legacy: Path) -> None:
    spec = _spec(tmp_path, legacy, f"sqlite:///{tmp_path / 't.db'}", name="café")
    spec.write_bytes(spec.read_text(encoding="utf-8").encode("latin-1"))
    _assert_exit_2(*_invoke("plan", str(spec)), "not UTF-8", "line 2")


def test_rate_per_second_too_small(tmp_path: Path, legacy: Path) -> None:
    spec = _spec(tmp_path, legacy, f"sqlite:///{tmp_path / 't.db'}", notify=True)
    _edit(spec, 'outbox_key = "env:', 'rate_per_second = 1e-300\noutbox_key = "env:')
    os.environ.setdefault("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    _assert_exit_2(*_invoke("notify", str(spec)), "notify.rate_per_second")
    _assert_exit_2(*_invoke("run", str(spec)), "notify.rate_per_second")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_target(tmp_path: Path, legacy: Path, url: str) -> None:
    spec = _spec(tmp_path, legacy, url)
    for command in ("plan", "run"):
        _assert_exit_2(*_invoke(command, str(spec)), "target.url", "in-memory")


def test_unwritable_report_path_is_refused_before_any_batch(tmp_path: Path, legacy: Path) -> None:
    target = tmp_path / "t.db"
    spec = _spec(tmp_path, legacy, f"sqlite:///{target}")
    for report in (tmp_path / "missing" / "r.json", tmp_path):
        _assert_exit_2(*_invoke("run", str(spec), "--report", str(report)), "--report")
    assert not target.exists()  # refused before the first batch, not after the last


def test_full_tmpdir_while_staging_a_csv(tmp_path: Path) -> None:
    """A file size limit (RLIMIT_FSIZE) makes the staging copy hit "disk full" for real."""
    csv = tmp_path / "users.csv"
    with csv.open("w", encoding="utf-8") as fh:
        fh.write("user_id,email,name\n")
        for i in range(60_000):
            fh.write(f"{i},user{i}@example.com,{'n' * 40}\n")
    staging = tmp_path / "tmp"
    staging.mkdir()
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "csv:///{csv}"\nkey = "user_id"\n'
        f'[target]\nurl = "sqlite:///{tmp_path / "t.db"}"\ntable = "accounts"\n'
        '[fields]\nuser_id = "user_id"\nemail = "email"\n',
        encoding="utf-8",
    )

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    done = subprocess.run(
        [sys.executable, "-m", "authmigrate", "plan", str(spec)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(staging)},
        preexec_fn=small_files,
        timeout=120,
    )
    _assert_exit_2(done.returncode, done.stderr, str(staging), "TMPDIR")
    assert list(staging.iterdir()) == []  # the partial copy is removed


def test_verify_writes_no_lock_file_and_no_byte_of_the_target(tmp_path: Path, legacy: Path) -> None:
    target = tmp_path / "target" / "t.db"
    target.parent.mkdir()
    spec = _spec(tmp_path, legacy, f"sqlite:///{target}")
    assert cli("run", str(spec), cwd=tmp_path).returncode in (0, 1)
    Path(f"{target}.authmigrate-lock").unlink()  # a copy of the database alone
    before = (target.read_bytes(), target.stat().st_mtime_ns)
    done = cli("verify", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before
    # SQLite's own shared-memory index of a WAL database may appear; no lock file, no data
    assert {p.name for p in target.parent.iterdir()} - {"t.db-wal", "t.db-shm"} == {"t.db"}


def test_verify_on_a_target_in_a_read_only_folder(tmp_path: Path, legacy: Path) -> None:
    """The folder and the file are immutable (chattr +i: even root may not write there)."""
    import shutil

    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed")
    target = tmp_path / "target" / "t.db"
    target.parent.mkdir()
    spec = _spec(tmp_path, legacy, f"sqlite:///{target}")
    assert cli("run", str(spec), cwd=tmp_path).returncode in (0, 1)
    Path(f"{target}.authmigrate-lock").unlink()
    assert sorted(p.name for p in target.parent.iterdir()) == ["t.db"]
    frozen = subprocess.run([chattr, "+i", str(target), str(target.parent)], capture_output=True)
    if frozen.returncode != 0:
        pytest.skip(f"cannot make the folder immutable here: {frozen.stderr!r}")
    try:
        done = cli("verify", str(spec), cwd=tmp_path)
        listing = sorted(p.name for p in target.parent.iterdir())
    finally:
        subprocess.run([chattr, "-i", str(target), str(target.parent)], check=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify ok" in done.stdout
    assert listing == ["t.db"]


def test_run_into_a_folder_it_may_not_write(tmp_path: Path, legacy: Path) -> None:
    """The lock file cannot be made (chattr +i: not even root may write there)."""
    import shutil

    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed")
    folder = tmp_path / "target"
    folder.mkdir()
    spec = _spec(tmp_path, legacy, f"sqlite:///{folder / 't.db'}")
    frozen = subprocess.run([chattr, "+i", str(folder)], capture_output=True)
    if frozen.returncode != 0:
        pytest.skip(f"cannot make the folder immutable here: {frozen.stderr!r}")
    try:
        code, out = _invoke("run", str(spec))
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)
    _assert_exit_2(code, out, "target.url", "lock file")
    assert list(folder.iterdir()) == []
