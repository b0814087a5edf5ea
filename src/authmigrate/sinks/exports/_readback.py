"""``verify`` for exports: the files read back and reconciled with the bookkeeping.

Every file a manifest lists must exist, parse as the provider's document, hold the users the
manifest says, under the keys it says; no key may appear twice across files and bridge lists;
and the keys found must be exactly the keys the bookkeeping recorded as migrated.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from ._sink import read_manifests


def user_key(provider: str, user: dict[str, Any]) -> str | None:
    """The legacy key an exported user object carries."""
    try:
        if provider == "auth0":
            return str(user["user_id"])
        if provider in ("kratos", "clerk"):
            return str(user["external_id"])
        if provider == "firebase":
            return str(user["localId"])
        if provider == "keycloak":
            return str(user["attributes"]["legacy_key"][0])
        if provider == "okta":
            return str(user["profile"]["legacyKey"])
        if provider == "zitadel":
            return str(user["userId"])
        if provider == "supabase":
            return str(user["app_metadata"]["legacy_key"])
        if provider == "fusionauth":
            return str(user["data"]["legacy_key"])
    except (KeyError, IndexError, TypeError):
        return None
    return None


def users_of(provider: str, document: Any) -> list[dict[str, Any]]:
    """The user objects of one file's document."""
    if provider == "kratos":
        return [item["create"] for item in document["identities"]]
    if provider in ("firebase", "keycloak", "fusionauth"):
        return list(document["users"])
    return list(document)


def reconcile_files(directory: Path, provider: str, written: set[str]) -> tuple[list[str], int]:
    """Problems found (no values in them) and the number of users read back."""
    notes: list[str] = []
    seen: Counter[str] = Counter()
    count = 0
    listed: set[str] = set()
    for manifest in read_manifests(directory):
        if manifest.get("provider") != provider:
            notes.append(f"batch {manifest.get('batch')} was exported for another provider")
            continue
        for entry in manifest["files"]:
            listed.add(entry["file"])
            path = directory / entry["file"]
            try:
                data = path.read_bytes()
                users = users_of(provider, json.loads(data.decode("utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                notes.append(f"export file {entry['file']} is missing or unreadable")
                continue
            if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]:
                notes.append(f"export file {entry['file']} was changed after it was written")
            keys = [user_key(provider, u) for u in users]
            count += len(users)
            if len(users) != entry["users"] or keys != entry["keys"]:
                notes.append(
                    f"export file {entry['file']} does not hold the users its manifest lists"
                )
            seen.update(k for k in keys if k is not None)
        seen.update(manifest.get("bridge", []))
        if manifest.get("bridge"):
            notes.extend(_bridge_notes(directory, manifest))
    stray = sorted(p.name for p in directory.glob(f"{provider}-b*.json") if p.name not in listed)
    if stray:
        notes.append(f"{len(stray)} export file(s) no batch manifest lists (first: {stray[0]})")
    twice = [k for k, n in seen.items() if n > 1]
    if twice:
        notes.append(f"{len(twice)} key(s) exported more than once")
    missing = written - set(seen)
    extra = set(seen) - written
    if missing:
        notes.append(f"{len(missing)} migrated key(s) are in no export file")
    if extra:
        notes.append(f"{len(extra)} exported key(s) are not recorded as migrated")
    return notes, count


def _bridge_notes(directory: Path, manifest: dict[str, Any]) -> list[str]:
    """The bridge list of a batch read back: present, unchanged, the keys its manifest lists."""
    name = f"bridge-b{int(manifest['batch']):08d}.jsonl"
    try:
        data = (directory / name).read_bytes()
        keys = [str(json.loads(line)["key"]) for line in data.decode("utf-8").splitlines()]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"bridge list {name} is missing or unreadable"]
    want = manifest.get("bridge_sha256")
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        return [f"bridge list {name} was changed after it was written"]
    if keys != [str(k) for k in manifest["bridge"]]:
        return [f"bridge list {name} does not hold the keys its manifest lists"]
    return []


def verify_export(spec: Any, conn: Any) -> list[str]:
    """``verify``'s export check: the files in ``[target] dir`` against the keys the
    bookkeeping holds as migrated (problems only; an empty list when all holds)."""
    import sqlalchemy as sa

    schema, _, name = spec.target.table.rpartition(".")
    table = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema or None)
    written = {str(k) for k in conn.execute(sa.select(table.c[spec.target_key])).scalars()}
    directory = Path(spec.target.dir)
    if not directory.is_dir():
        return [f"export directory {directory} does not exist"]
    notes, _ = reconcile_files(directory, spec.target.export, written)
    return notes
