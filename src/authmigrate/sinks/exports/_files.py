"""The names of the files an export writes, and their removal by ``rollback``.

Every file the export sink writes has one of these exact names (``N`` the batch number, eight
digits), possibly with ``.tmp`` while it is being written:

- ``<provider>-bN-gGG-PPP.json``: the import files;
- ``bridge-bN.jsonl``: the accounts listed apart for the bridge;
- ``manifest-bN.json``: what batch N wrote (written last);
- ``import.sh`` (Firebase): one ``firebase auth:import`` per file listed by a manifest.

Nothing else in ``dir`` is ever touched: a file of the user's whose name merely contains
``-b00000001`` is not ours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

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


def remove_unbooked(directory: Path, provider: str, booked: set[int]) -> int:
    """Remove the export files of the batches the bookkeeping does not hold; rewrite
    Firebase's ``import.sh`` for the files that stay (removed when none does). Returns how
    many files were removed. Safe to run again after an interruption."""
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
    if gone and directory.is_dir():
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return gone
