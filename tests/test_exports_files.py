"""The export files as a whole: rollback removes exactly the files the export wrote (and
nothing of the user's beside them), verify reads every file back and notices a file changed or
lost after it was written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback, rollback_preview
from authmigrate.spec import load_spec_text
from tests.test_exports import make_source, mixed_rows, spec_for

USER_FILES = {
    "notes.txt": b"the operator's own notes\n",
    "photo-b00000001.png": b"\x89PNG not ours",
    "okta-b00000001-g01-001.json.bak": b"[]",
    "firebase-b00000002.json": b"{}",
}


def _put_user_files(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in USER_FILES.items():
        (out / name).write_bytes(data)


def _ours(out: Path) -> set[str]:
    return {
        p.name
        for p in out.iterdir()
        if p.name not in USER_FILES and not p.name.startswith("authmigrate.sqlite")
    }


@pytest.mark.parametrize("provider", ["firebase", "auth0"])
def test_rollback_removes_exactly_the_export_files_it_wrote(tmp_path: Path, provider: str) -> None:
    make_source(tmp_path / "legacy.db", mixed_rows(45))
    out = tmp_path / "out"
    _put_user_files(out)
    spec = load_spec_text(spec_for(tmp_path, provider, batch=10))
    assert run_migration(spec).migrated == 45
    written = _ours(out)
    assert any(n.startswith("manifest-b") for n in written)
    assert any(n.startswith(f"{provider}-b") for n in written)
    assert any(n.startswith("bridge-b") for n in written)  # phpass and friends, listed apart
    assert rollback_preview(spec).export_files == len(written)
    counts = rollback(spec)
    assert counts.export_files == len(written)
    assert _ours(out) == set()  # every file the export wrote is gone, import.sh too
    for name, data in USER_FILES.items():  # and nothing of the user's beside them
        assert (out / name).read_bytes() == data
    # a second rollback finds nothing more to remove
    assert rollback(spec).export_files == 0


def test_rollback_removes_the_files_of_a_batch_that_crashed_before_its_bookkeeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault a real part cannot show on demand: the process dies between the durable files of
    # batch 3 and its bookkeeping commit; those files belong to no committed batch.
    from authmigrate.sinks.sql import SqlTarget

    make_source(tmp_path / "legacy.db", mixed_rows(45))
    spec = load_spec_text(spec_for(tmp_path, "kratos", batch=10))
    real_commit = SqlTarget.commit_batch

    def die_on_batch_3(self: Any, batch: Any, *args: Any) -> Any:
        if batch.number == 3:
            raise KeyboardInterrupt
        return real_commit(self, batch, *args)

    monkeypatch.setattr(SqlTarget, "commit_batch", die_on_batch_3)
    with pytest.raises(KeyboardInterrupt):
        run_migration(spec)
    out = tmp_path / "out"
    assert list(out.glob("kratos-b00000003-*"))
    rollback(spec)
    assert _ours(out) == set()


def test_a_batch_never_removes_a_users_file_whose_name_looks_like_ours(tmp_path: Path) -> None:
    # the sink clears what an earlier attempt of a batch left: by exact names only
    make_source(tmp_path / "legacy.db", mixed_rows(25))
    out = tmp_path / "out"
    _put_user_files(out)
    run_migration(load_spec_text(spec_for(tmp_path, "okta", batch=10)))
    for name, data in USER_FILES.items():
        assert (out / name).read_bytes() == data, name


def test_verify_finds_an_export_file_changed_after_it_was_written(tmp_path: Path) -> None:
    make_source(tmp_path / "legacy.db", mixed_rows(30))
    spec = load_spec_text(spec_for(tmp_path, "auth0", batch=10))
    run_migration(spec)
    assert verify_migration(spec).ok
    victim = sorted((tmp_path / "out").glob("auth0-b00000002-*.json"))[0]
    users = json.loads(victim.read_text())
    users[0]["email"] = "attacker@example.com"  # same keys, same count: only a checksum sees it
    victim.write_text(json.dumps(users, ensure_ascii=False))
    res = verify_migration(spec)
    assert not res.ok
    assert any(f"{victim.name} was changed after it was written" in n for n in res.notes)
    assert not any("attacker" in n for n in res.notes)


def test_verify_finds_a_bridge_list_lost_or_changed(tmp_path: Path) -> None:
    make_source(tmp_path / "legacy.db", mixed_rows(30))
    spec = load_spec_text(spec_for(tmp_path, "auth0", batch=10))
    run_migration(spec)
    bridge = sorted((tmp_path / "out").glob("bridge-b*.jsonl"))
    assert bridge
    bridge[0].write_text(bridge[0].read_text() + '{"key": "999"}\n')
    bridge[-1].unlink() if len(bridge) > 1 else None
    res = verify_migration(spec)
    assert not res.ok
    assert any(f"{bridge[0].name} was changed after it was written" in n for n in res.notes)
    if len(bridge) > 1:
        assert any(f"{bridge[-1].name} is missing or unreadable" in n for n in res.notes)


def test_the_exports_own_bookkeeping_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """``<dir>/authmigrate.sqlite`` holds the same hashes as the export files (0600): it is
    created 0600 too, whatever the umask, and so are SQLite's journal files beside it."""
    import os
    import stat

    make_source(tmp_path / "legacy.db", mixed_rows(45))
    spec = load_spec_text(spec_for(tmp_path, "kratos", batch=10))
    old = os.umask(0o022)
    try:
        assert run_migration(spec).migrated == 45
    finally:
        os.umask(old)
    out = tmp_path / "out"
    names = {"authmigrate.sqlite", *(f"authmigrate.sqlite-{s}" for s in ("wal", "shm", "journal"))}
    files = [p for p in out.iterdir() if p.name in names]  # not the lock file: no data in it
    assert any(p.name == "authmigrate.sqlite" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
    assert verify_migration(spec).ok
