"""The names of the files an export writes, and their removal by ``rollback``.

Every file the export sink writes has one of these exact names (``N`` the batch number, eight
digits), possibly with ``.tmp`` while it is being written:

- ``<provider>-bN-gGG-PPP.json``: the import files;
- ``bridge-bN.jsonl``: the accounts listed apart for the bridge;
- ``manifest-bN.json``: what batch N wrote (written last);
- ``import.sh`` (Firebase): one ``firebase auth:import`` per file listed by a manifest;
- ``.authmigrate-export.json``: which migration and provider the directory's files belong to,
  written before the first file.

Nothing else in ``dir`` is ever touched: a file of the user's whose name merely contains
``-b00000001`` is not ours. A directory holding another migration's (or another provider's)
export, or export files without the marker, is refused (``target.dir``): batch numbers start
at 1 in every migration, so sharing a directory would replace or roll back the other's files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from authmigrate.errors import SpecError

MARKER = ".authmigrate-export.json"

_OURS = re.compile(
    r"^(?:(?P<provider>[a-z0-9]+)-b(?P<b1>\d{8})-g\d{2}-\d{3}\.json"
    r"|bridge-b(?P<b2>\d{8})\.jsonl"
    r"|manifest-b(?P<b3>\d{8})\.json)(?:\.tmp)?$"
)


def batch_of(name: str, provider: str) -> int | None:
    """The batch number of a file the export of ``provider`` writes, or None when ``name`` is
    not such a file."""
    m = _OURS.match(name)
    if m is None or m["provider"] not in (None, provider):
        return None
    return int(m["b1"] or m["b2"] or m["b3"])


def batch_files(directory: Path, provider: str, batches: Iterable[int]) -> list[Path]:
    """The files of ``batches`` in ``directory`` (listed or not by a manifest, finished or
    ``.tmp``), by their exact names."""
    wanted = set(batches)
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir() if p.is_file() and batch_of(p.name, provider) in wanted
    )


def unbooked_files(directory: Path, provider: str, booked: set[int]) -> list[Path]:
    """The export files of every batch the bookkeeping does not hold (rolled back, or written
    by a run that crashed before its batch committed)."""
    if not directory.is_dir():
        return []
    numbers = {
        n
        for p in directory.iterdir()
        if (n := batch_of(p.name, provider)) is not None and n not in booked
    }
    return batch_files(directory, provider, numbers)


def _owner(directory: Path) -> tuple[str, str] | None:
    """(migration, provider) of the directory's marker, None without one."""
    try:
        data = json.loads((directory / MARKER).read_text(encoding="utf-8"))
        return str(data["migration"]), str(data["provider"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return ("?", "?")  # unreadable: someone else's


def check_dir(directory: Path, migration: str, provider: str) -> None:
    """Refuse a ``dir`` that holds another export (``SpecError`` naming ``target.dir``).

    Raises:
        SpecError: the marker names another migration or provider, or export files are there
            without a marker, or ``dir`` is not a directory.
    """
    if directory.exists() and not directory.is_dir():
        raise SpecError("target.dir", f"{directory} exists and is not a directory")
    owner = _owner(directory)
    if owner is not None and owner != (migration, provider):
        raise SpecError(
            "target.dir",
            f"{directory} holds the export of another migration or provider "
            f"({owner[0]!r} to {owner[1]}): give this migration a directory of its own",
        )
    if owner is None and directory.is_dir():
        foreign = sorted(
            p.name for p in directory.iterdir() if _OURS.match(p.name) or p.name == "import.sh"
        )
        if foreign:
            raise SpecError(
                "target.dir",
                f"{directory} holds export files authmigrate did not write for this migration "
                f"(first: {foreign[0]}): give this migration a directory of its own",
            )


def write_marker(directory: Path, migration: str, provider: str) -> None:
    """Record which migration and provider ``directory``'s export files belong to."""
    if _owner(directory) is not None:
        return
    path = directory / MARKER
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"migration": migration, "provider": provider}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def owned_files(directory: Path, provider: str, migration: str) -> list[Path]:
    """Every file this migration's export wrote in ``directory``: what a full rollback
    removes (none when the marker names another migration)."""
    owner = _owner(directory)
    if owner is not None and owner != (migration, provider):
        return []
    files = unbooked_files(directory, provider, set())
    if provider == "firebase" and (directory / "import.sh").exists():
        files.append(directory / "import.sh")
    if owner is not None:
        files.append(directory / MARKER)
    return files


def remove_unbooked(directory: Path, provider: str, booked: set[int], migration: str) -> int:
    """Remove the export files of the batches the bookkeeping does not hold; rewrite
    Firebase's ``import.sh`` for the files that stay (removed when none does), and the marker
    when no export file stays. Returns how many files were removed. Nothing is removed from a
    directory whose marker names another migration. Safe to run again after an
    interruption."""
    owner = _owner(directory)
    if owner is not None and owner != (migration, provider):
        return 0
    gone = 0
    for path in unbooked_files(directory, provider, booked):
        try:
            path.unlink()
            gone += 1
        except FileNotFoundError:
            pass
    script = directory / "import.sh"
    if provider == "firebase" and script.exists():
        from ._sink import write_firebase_script

        if write_firebase_script(directory) is None:
            script.unlink()
            gone += 1
    if owner is not None and not unbooked_files(directory, provider, set()):
        (directory / MARKER).unlink()
        gone += 1
    if gone and directory.is_dir():
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return gone
