"""The house's import directions (issue 17): the spec is the contract and depends on nothing
above it; presets and transforms depend on the spec, never the other way round."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import authmigrate

ABOVE_THE_SPEC = (
    "authmigrate.presets",
    "authmigrate.transform",
    "authmigrate.pipeline",
    "authmigrate.load",
    "authmigrate.reconcile",
    "authmigrate.report",
    "authmigrate.cli",
)
"""Modules built on the spec: the spec imports none of them, not even inside a function."""


def _above(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in ABOVE_THE_SPEC)


def test_spec_module_imports_nothing_built_on_it() -> None:
    source = Path(authmigrate.__file__).with_name("spec.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert sorted(m for m in imported if _above(m)) == []


def test_validating_a_spec_loads_no_preset_and_no_transform() -> None:
    """A fresh interpreter: the spec module validates a spec with a template, normalizers and
    credentials, and nothing above the spec gets imported on the way."""
    code = """
import json, sys
from authmigrate.spec import Spec
spec = Spec.model_validate({
    "source": {"url": "sqlite:///legacy.db", "table": "users", "key": "id"},
    "target": {"url": "sqlite:///new.db", "table": "accounts"},
    "fields": {
        "email": {"from": "mail", "normalize": ["strip", "email"]},
        "name": {"template": "{first} {last}"},
    },
    "credentials": {"column": "pw", "scheme": "auto"},
})
assert spec.fields["name"].template == "{first} {last}"
print(json.dumps(sorted(m for m in sys.modules if m.startswith("authmigrate"))))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert "authmigrate.spec" in loaded
    assert [m for m in loaded if _above(m)] == []


PRINTS = {"cli.py", "__main__.py", "demo.py"}
"""Modules that may print besides ``report/``: the command line and the demo's printed tour."""


def _prints(source: str) -> list[str]:
    """What in a module's source talks to the terminal: rich, click.echo, print(), a console."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "rich" or node.module.startswith("rich."):
                found.append(f"from {node.module} import")
            if node.module == "authmigrate.report" and any(
                a.name in ("console", "err_console", "make_console") for a in node.names
            ):
                found.append("authmigrate.report's console")
        elif isinstance(node, ast.Attribute) and node.attr == "echo":
            found.append("click.echo")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            found.append("print()")
    return found


def test_the_library_prints_nothing() -> None:
    """All console output lives in cli.py and report/: library functions return results."""
    root = Path(authmigrate.__file__).parent
    printing = {}
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name.startswith("report/") or name in PRINTS:
            continue
        found = _prints(path.read_text(encoding="utf-8"))
        if found:
            printing[name] = sorted(set(found))
    assert printing == {}


def _calls(source: str, name: str) -> int:
    """How many calls of ``name`` (a function or a method) a module's source makes."""
    return sum(
        isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
        for node in ast.walk(ast.parse(source))
    )


def test_a_run_ends_in_one_place() -> None:
    """The end of a run (its status, its error, the result on the failure, ``end_run``, the
    snapshot, the lock) is ``pipeline.run.RunBookkeeping``, used by one process and by Dask:
    a fix to it cannot miss one of the two."""
    root = Path(authmigrate.__file__).parent
    ends = {}
    for name in ("pipeline/run.py", "cluster/run.py"):
        source = (root / name).read_text(encoding="utf-8")
        ends[name] = (_calls(source, "end_run"), _calls(source, "_record_snapshot"))
    assert ends == {"pipeline/run.py": (1, 1), "cluster/run.py": (0, 0)}


ONE_SITTING = 400
"""Lines a module of the proof may have: small enough to read in one sitting."""


def test_the_proof_reads_in_one_sitting() -> None:
    """``reconcile/`` splits verify by what it does (bookkeeping, chunks and bisection, the
    target side, credentials and tokens, the outbox); ``reconcile.verify`` keeps its names."""
    from authmigrate.reconcile import verify

    root = Path(authmigrate.__file__).parent / "reconcile"
    sizes = {
        p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(root.glob("*.py"))
    }
    assert {name: n for name, n in sizes.items() if n >= ONE_SITTING} == {}
    for name in ("LEAF_ROWS", "CredentialProblem", "Difference", "VerifyResult"):
        assert hasattr(verify, name)
    assert callable(verify.verify_migration) and callable(verify.verify_report)


def test_stages_take_their_own_section() -> None:
    """A stage (and the transform) is built from its own section of the spec and what it
    needs of the target, never the whole ``Spec``; ``pipeline.run`` wires them. A
    ``from_spec`` classmethod may still build one from a whole spec."""
    root = Path(authmigrate.__file__).parent
    whole = []
    for name in (
        "pipeline/stages.py",
        "pipeline/tokens.py",
        "pipeline/transform.py",
        "notify/outbox.py",
    ):
        for node in ast.walk(ast.parse((root / name).read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef) or node.name == "from_spec":
                continue
            if node.name != "__init__" and node.name != "token_segments":
                continue
            args = node.args.args + node.args.kwonlyargs
            if any(a.annotation is not None and ast.unparse(a.annotation) == "Spec" for a in args):
                whole.append(f"{name}: {node.name} (line {node.lineno})")
    assert whole == []


def test_a_duplicate_stage_is_built_from_its_groups_alone() -> None:
    from authmigrate.pipeline.batch import Batch, Record
    from authmigrate.pipeline.stages import DuplicateStage

    stage = DuplicateStage([("email",)], lambda group, values: {}, merge=True)
    batch = Batch(1, 1, 3, 3)
    batch.records = [
        Record(1, {}, {"email": "a@example.com"}),
        Record(2, {}, {"email": "a@example.com"}),
        Record(3, {}, {"email": "b@example.com"}),
    ]
    stage.process(batch)
    assert [r.key for r in batch.records] == [1, 3]
    assert [(j.key, j.reason, j.outcome, j.merged_into) for j in batch.rejects] == [
        (2, "duplicate.email", "merged", 1)
    ]
