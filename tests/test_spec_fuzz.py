"""Spec fuzzing: 160 seeded mutations of a valid spec, each run through the CLI in-process.

Every outcome must be exit 0 or 1 with a run that verify then finds correct, or exit 2 with a
message naming the key (or the section) at fault. Never "internal error", never a traceback.
The mutations are deterministic (``random.Random(seed)``): a failure names its seed.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from authmigrate.cli import main
from tests.helpers_verify import OUTBOX_KEY, make_source

CASES = 160

STRANGE_VALUES: list[Any] = [
    "",
    " ",
    "x",
    "Ünïcødé ✓",
    "a" * 5000,
    "env:AUTHMIGRATE_FUZZ_UNSET",
    "env:",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///missing-folder/x.db",
    "postgresql+psycopg://u:pw@127.0.0.1:1/db?password=pw",
    "nosuchdriver://h/db",
    "csv:///missing.csv",
    "SELECT 1 AS user_id; DELETE FROM legacy_users",
    "legacy_users; DROP TABLE x",
    'a"b',
    "authmigrate_runs",
    "../../etc/passwd",
    0,
    -1,
    1,
    2**63,
    10**30,
    1e-300,
    1e300,
    math.inf,
    -math.inf,
    math.nan,
    0.5,
    True,
    False,
    [],
    ["x", 1],
    [["email"]],
    {},
    {"from": "nope"},
    {"unknown": 1},
]

TARGETED: list[tuple[tuple[str, ...], list[Any]]] = [
    (
        ("target", "url"),
        [
            "sqlite://",
            "sqlite:///:memory:",
            "sqlite:///missing-folder/x.db",
            "@NOTES",
            "sqlite:///@DIR",
        ],
    ),
    (("source", "url"), ["@NOTES", "sqlite:///missing.db", "sqlite:///@DIR", "csv:///@NOTES"]),
    (("target", "table"), ["authmigrate_runs", "authmigrate_outbox", "x" * 64, "public.accounts"]),
    (("name",), ["n" * 64, "", " padded ", "tab\there"]),
    (("notify", "rate_per_second"), [1e-300, math.inf, 1e300, 0.0009]),
    (("notify", "smtp", "timeout"), [math.inf, 1e300, 1e-300]),
    (("run", "batch_size"), [0, 1, 10**9, 2.5]),
    (("source", "key"), ["email", "name", "nope", "user_id; --"]),
]
"""Key paths where bad input used to end as an internal error, with values to try there."""

FIELD_KEYS = ["from", "value", "template", "normalize", "type", "default", "required", "max_length"]


def _base(src: Path, dst: Path) -> dict[str, Any]:
    return {
        "name": "fuzz",
        "source": {"url": f"sqlite:///{src}", "table": "legacy_users", "key": "user_id"},
        "target": {"url": f"sqlite:///{dst}", "table": "accounts", "unique": ["email"]},
        "fields": {
            "user_id": "user_id",
            "email": {"from": "email", "normalize": "email", "required": True},
            "name": {"from": "name", "normalize": ["strip", "none_if_empty"], "max_length": 60},
            "created_at": {"from": "created", "type": "datetime"},
            "active": {"from": "active", "type": "boolean"},
            "visits": {"from": "visits", "type": "integer", "default": 0},
            "origin": {"value": "legacy"},
        },
        "credentials": {"column": "password_hash", "policy": "keep", "profile": "TEST"},
        "tokens": {"column": "auth_token", "expires_in": "7d"},
        "notify": {
            "outbox_key": "env:AUTHMIGRATE_OUTBOX_KEY",
            "rate_per_second": 10.0,
            "smtp": {"port": 25, "timeout": 30.0},
        },
        "run": {"batch_size": 7, "duplicates": "merge", "retries": 0},
    }


# -- a small TOML writer (the stdlib reads TOML, it does not write it) ----------------------


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dump_toml(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    lines = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not _is_section(k, v, prefix)]
    out = "\n".join(lines) + "\n"
    for k, v in data.items():
        if _is_section(k, v, prefix):
            path = ".".join(_key(p) for p in (*prefix, k))
            out += f"\n[{path}]\n" + dump_toml(v, (*prefix, k))
    return out


def _is_section(key: str, value: Any, prefix: tuple[str, ...]) -> bool:
    # [fields] entries stay inline tables, as specs write them
    return isinstance(value, dict) and prefix != ("fields",)


# -- mutations -----------------------------------------------------------------------------


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


def _parent(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    return node  # type: ignore[no-any-return]


def mutate(data: dict[str, Any], rng: random.Random, tmp: Path) -> tuple[str, ...]:
    """Apply one mutation in place; returns the key path it touched."""
    if rng.random() < 0.35:
        where, values = rng.choice(TARGETED)
        node = data
        for part in where[:-1]:
            node = node.setdefault(part, {})
        value = rng.choice(values)
        if isinstance(value, str):
            value = value.replace("@NOTES", str(tmp / "notes.txt")).replace("@DIR", str(tmp))
            if value.startswith("/"):
                value = "sqlite:///" + value
        node[where[-1]] = value
        return where
    path = rng.choice(_paths(data))
    parent = _parent(data, path)
    leaf = path[-1]
    kind = rng.choice(["delete", "replace", "replace", "replace", "unknown", "typo", "field"])
    if kind == "delete":
        del parent[leaf]
    elif kind == "replace":
        parent[leaf] = copy.deepcopy(rng.choice(STRANGE_VALUES))
    elif kind == "unknown":
        inside = isinstance(parent[leaf], dict)
        target = parent[leaf] if inside else parent
        added = "fuzz_" + rng.choice(["x", "url", "batch"])
        target[added] = rng.choice(["x", 1])
        return (*(path if inside else path[:-1]), added)
    elif kind == "typo" and len(leaf) > 2:
        i = rng.randrange(len(leaf))
        parent[leaf[:i] + leaf[i + 1 :]] = parent.pop(leaf)
    else:
        name = rng.choice(list(data.get("fields") or {"email": 1}))
        fields = data.setdefault("fields", {})
        spec = fields.get(name)
        if not isinstance(spec, dict):
            spec = {"from": spec} if isinstance(spec, str) else {}
        spec[rng.choice(FIELD_KEYS)] = copy.deepcopy(rng.choice(STRANGE_VALUES))
        fields[name] = spec
        return ("fields", name)
    return path


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("fuzz-source") / "legacy.db"
    make_source(src, 25, hashes=True)
    return src


_ERROR = re.compile(r"^authmigrate: error: (.+)$", re.MULTILINE)


@pytest.mark.parametrize("seed", range(CASES))
def test_mutated_spec_runs_correctly_or_is_refused_naming_the_key(
    seed: int, legacy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    monkeypatch.delenv("AUTHMIGRATE_FUZZ_UNSET", raising=False)
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "legacy.db"
    shutil.copy(legacy, src)
    data = _base(src, tmp_path / "target.db")
    rng = random.Random(seed)
    (tmp_path / "notes.txt").write_text("some notes, not a database " * 40, encoding="utf-8")
    touched = [mutate(data, rng, tmp_path) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    spec = tmp_path / "m.toml"
    spec.write_text(dump_toml(data), encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(main, ["run", str(spec)], catch_exceptions=True)
    out = done.output
    context = f"seed {seed}, touched {touched}:\n{spec.read_text()}\n{out}"
    assert done.exception is None or isinstance(done.exception, SystemExit), (
        context,
        repr(done.exception),
    )
    assert "internal error" not in out and "Traceback" not in out, context
    assert done.exit_code in (0, 1, 2), context
    if done.exit_code == 2:
        found = _ERROR.search(out)
        assert found, context
        message = found.group(1)
        names = {p for path in touched for p in path} | {
            "source",
            "target",
            "fields",
            "credentials",
            "tokens",
            "notify",
            "run",
            "name",
        }
        assert any(n in message for n in names), context
        return
    verified = runner.invoke(main, ["verify", str(spec)], catch_exceptions=True)
    assert verified.exit_code == 0, f"{context}\nverify:\n{verified.output}"
