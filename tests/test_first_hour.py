"""What a new user meets in the first hour: init that guesses right, a plan that predicts the
run, reports that say what to do next, strict spec types, messages that say what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from authmigrate.errors import SpecError
from authmigrate.spec import load_spec_text

BASE_SPEC = """\
[source]
url = "sqlite:///legacy.db"
table = "users"
key = "id"

[target]
url = "sqlite:///new.db"
table = "accounts"

[fields]
id = "id"
email = { from = "email", normalize = "email" }
"""


@pytest.mark.parametrize(
    "old,new,path,expected",
    [
        ("", '[run]\nbatch_size = "500"', "run.batch_size", "expected an integer"),
        ("", '[run]\nretries = "3"', "run.retries", "expected an integer"),
        ("", "[run]\nbatch_size = 500.0", "run.batch_size", "got a number"),
        (
            'table = "accounts"',
            'table = "accounts"\ncreate = "false"',
            "target.create",
            "true or false",
        ),
        (
            'normalize = "email" }',
            'normalize = "email", required = "yes" }',
            "fields.email.required",
            "true or false",
        ),
        ("", '[notify.smtp]\nport = "25"', "notify.smtp.port", "expected an integer"),
        ('key = "id"', "key = 5", "source.key", "expected a string"),
    ],
)
def test_spec_types_are_strict_and_name_the_key(
    old: str, new: str, path: str, expected: str
) -> None:
    """A string where a number or boolean belongs is refused, never coerced."""
    text = BASE_SPEC.replace(old, new, 1) if old else BASE_SPEC + "\n" + new + "\n"
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    assert err.value.path == path
    assert expected in err.value.message
    assert "got a" in err.value.message  # says what the spec wrote, by type, not the value


def test_strict_spec_still_takes_an_integer_for_a_float() -> None:
    """TOML writes 30 for a timeout of 30 seconds: an integer where a number goes is fine."""
    spec = load_spec_text(
        BASE_SPEC + "\n[notify]\nrate_per_second = 5\n[notify.smtp]\ntimeout = 30\n"
    )
    assert spec.notify is not None and spec.notify.smtp.timeout == 30.0


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``authmigrate`` command as a user runs it: a subprocess, not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_init_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    """A typo in the file name: say the file does not exist, exit 2, create no empty database."""
    done = run_cli("init", "--from", "sqlite:///legacy.db", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "the SQLite file legacy.db does not exist" in done.stderr
    assert "shop platform" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["plan", "run", "verify"])
def test_no_command_creates_a_missing_source(tmp_path: Path, command: str) -> None:
    (tmp_path / "m.toml").write_text(BASE_SPEC, encoding="utf-8")
    done = run_cli(command, "m.toml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "legacy.db" in done.stderr
    assert not (tmp_path / "legacy.db").exists()
