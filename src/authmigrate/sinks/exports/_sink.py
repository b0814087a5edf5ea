"""The export sink: each batch's accounts written as the provider's import files.

Order of a batch (docs/exports.md, "Crash safety"):

1. every group of the batch not yet self-tested is self-tested (:mod:`._selftest`); a failing
   group raises :class:`ExportRefused` and nothing of the batch is written;
2. the files a crashed earlier attempt of this batch number may have left are removed;
3. each file is written to ``<name>.tmp``, fsynced, renamed to ``<name>``; the batch's
   manifest (``manifest-b<N>.json``: its files, keys and hash configurations) is written the
   same way, last, and the directory fsynced;
4. only then does the pipeline commit the batch's bookkeeping (checkpoint, written keys,
   rejects) in the bookkeeping database.

A crash before 4 leaves files the bookkeeping does not know: the resumed run does the same batch
number again from the same checkpoint and replaces them (step 2), so no account is exported
twice and none is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authmigrate.errors import TargetError
from authmigrate.pipeline.batch import Batch, Record, Reject

from . import Routed, provider_named, route
from ._files import batch_files, check_dir, write_marker
from ._model import Account, Provider
from ._selftest import group_passes

_ACCOUNT_FIELDS = ("email", "email_verified", "name", "given_name", "family_name", "username")
_ALIASES = {
    "first_name": "given_name",
    "last_name": "family_name",
    "firstname": "given_name",
    "lastname": "family_name",
    "verified": "email_verified",
}


class ExportRefused(TargetError):
    """A group of accounts failed the export self-test: nothing of its batch was written."""

    exit_code = 1


@dataclass
class BatchFiles:
    """What one batch wrote (its manifest)."""

    batch: int
    files: list[dict[str, Any]] = field(default_factory=list)
    bridge: list[dict[str, Any]] = field(default_factory=list)
    routes: Counter[str] = field(default_factory=Counter)


def account_of(record: Record, credential_column: str | None, hidden: frozenset[str]) -> Account:
    """The export view of a record: known profile fields, the rest as metadata."""
    acc = Account(key=record.key)
    for column, value in record.values.items():
        name = _ALIASES.get(column, column)
        if column == credential_column or column in hidden:
            continue
        if name in _ACCOUNT_FIELDS:
            if name == "email_verified":
                value = None if value is None else bool(value)
            setattr(acc, name, value)
        elif value is not None:
            acc.metadata[column] = value if isinstance(value, int | float | bool) else str(value)
    return acc


class ExportSink:
    """Writes each batch as ``provider``'s files in ``directory``."""

    def __init__(
        self,
        provider: Provider,
        directory: Path,
        *,
        credential_column: str | None,
        hidden: Iterable[str] = (),
        keyring: Mapping[str, bytes | str] | None = None,
        migration: str = "",
    ) -> None:
        self.provider = provider
        self.migration = migration
        self.dir = directory
        self.credential_column = credential_column
        self.hidden = frozenset(hidden)
        self.keyring = keyring
        self.tested: dict[tuple[Any, ...], bool] = {}

    @classmethod
    def from_spec(cls, spec: Any, hidden: Iterable[str] = ()) -> ExportSink:
        """The sink a spec's ``[target] export``/``dir``/``provider`` describe."""
        from authmigrate.pipeline.stages import load_keyring

        cred = spec.credentials
        keyring = load_keyring(cred) if cred is not None and cred.keys else {}
        check_dir(Path(spec.target.dir), spec.migration_name, spec.target.export)
        return cls(
            provider_named(spec.target.export, spec.target.provider),
            Path(spec.target.dir),
            credential_column=None if cred is None else cred.target_column,
            hidden=hidden,
            keyring=keyring,
            migration=spec.migration_name,
        )

    # -- routes ------------------------------------------------------------------------------

    def routed(self, record: Record) -> Routed:
        """How ``record`` goes to the provider."""
        value = record.values.get(self.credential_column) if self.credential_column else None
        return route(self.provider, value, self.keyring, record.scheme)

    def self_test(self, routed: Routed, credential: str) -> bool:
        """The group's self-test result (run once per group per run)."""
        group = routed.group
        if group not in self.tested:
            self.tested[group] = group_passes(self.provider, routed, credential, self.keyring)
        return self.tested[group]

    def _checked(self, batch: Batch) -> list[tuple[Record, Routed]]:
        out: list[tuple[Record, Routed]] = []
        for record in batch.records:
            r = self.routed(record)
            if r.route in ("native", "re-encoded"):
                credential = str(record.values[self.credential_column or ""])
                if not self.self_test(r, credential):
                    raise ExportRefused(
                        f"export self-test failed for {self.provider.name}: scheme {r.scheme} "
                        f"({_describe(r)}) does not verify as the provider documents it; "
                        f"batch {batch.number} was not written"
                    )
            out.append((record, r))
        return out

    # -- writing -----------------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> BatchFiles:
        """Self-test, then write the batch's files durably (see the module docstring)."""
        routed = self._checked(batch)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_marker(self.dir, self.migration, self.provider.name)
        self._remove_batch(batch.number)
        out = BatchFiles(batch.number)
        groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
        keys: dict[tuple[tuple[str, str], ...], list[str]] = {}
        sizes: dict[tuple[tuple[str, str], ...], list[int]] = {}
        doomed: list[tuple[Record, Reject]] = []
        for record, r in routed:
            account = account_of(record, self.credential_column, self.hidden)
            apart = r.route == "bridge" and not r.fields
            user = None if apart else self.provider.user(account, r.fields)
            size = self._size(user)
            problem = self._refusal(record, size)
            if problem is not None:
                doomed.append((record, problem))
                continue
            out.routes[r.route] += 1
            if user is None:
                out.bridge.append(
                    {
                        "key": str(record.key),
                        "email": account.email,
                        "scheme": r.scheme,
                        "reason": r.reason,
                    }
                )
                continue
            groups.setdefault(r.config, []).append(user)
            keys.setdefault(r.config, []).append(str(record.key))
            sizes.setdefault(r.config, []).append(size)
        batch.drop(doomed)  # rejected with their reason, in the batch's bookkeeping commit
        # every chunk is cut before the first file is written: a refusal writes nothing
        chunked = [
            (config, list(self._split(users, keys[config], sizes[config])))
            for config, users in groups.items()
        ]
        for g, (config, chunks) in enumerate(chunked, start=1):
            for part, (chunk, chunk_keys) in enumerate(chunks, start=1):
                name = f"{self.provider.name}-b{batch.number:08d}-g{g:02d}-{part:03d}.json"
                data = json.dumps(
                    self.provider.document(chunk), ensure_ascii=False, default=str
                ).encode()
                _write_atomic(self.dir / name, data)
                out.files.append(
                    {
                        "file": name,
                        "users": len(chunk),
                        "keys": chunk_keys,
                        "config": dict(config),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
        bridge_sha = ""
        if out.bridge:
            name = f"bridge-b{batch.number:08d}.jsonl"
            lines = "".join(
                json.dumps(b, ensure_ascii=False, default=str) + "\n" for b in out.bridge
            )
            _write_atomic(self.dir / name, lines.encode())
            bridge_sha = hashlib.sha256(lines.encode()).hexdigest()
        manifest: dict[str, Any] = {
            "provider": self.provider.name,
            "batch": batch.number,
            "files": out.files,
            "bridge": [b["key"] for b in out.bridge],
            "routes": dict(out.routes),
        }
        if out.bridge:
            manifest["bridge_sha256"] = bridge_sha
        _write_atomic(self.dir / _manifest_name(batch.number), json.dumps(manifest).encode())
        if self.provider.name == "firebase":
            write_firebase_script(self.dir)
        _fsync_dir(self.dir)
        return out

    def _size(self, user: dict[str, Any] | None) -> int:
        """Bytes ``user`` takes in a file of a provider that limits file sizes (0 otherwise,
        or for an account listed apart)."""
        if user is None or self.provider.max_bytes is None:
            return 0
        one = json.dumps(self.provider.document([user]), ensure_ascii=False, default=str)
        return len(one.encode())

    def _refusal(self, record: Record, size: int) -> Reject | None:
        """The reject of an account the provider cannot take whatever its credential (no
        value in the detail), or None."""
        limit = getattr(self.provider, "max_key_chars", None)
        if limit is not None and len(str(record.key)) > limit:
            return Reject(
                record.key,
                "export.invalid_key",
                None,
                f"{self.provider.name} takes ids of at most {limit} characters",
                record.source,
            )
        most = self.provider.max_bytes
        if most is not None and size + 2 > most:
            return Reject(
                record.key,
                "export.too_large",
                None,
                f"the {self.provider.name} user object is {size:,} bytes; "
                f"{self.provider.name} takes files of at most {most:,} bytes",
                record.source,
            )
        return None

    def _split(
        self, users: list[dict[str, Any]], keys: list[str], sizes: list[int]
    ) -> Iterable[tuple[list[dict[str, Any]], list[str]]]:
        """Chunks within the provider's users-per-file and bytes-per-file limits (``sizes``:
        each user's bytes, from :meth:`_size`)."""
        limit_bytes = self.provider.max_bytes
        chunk: list[dict[str, Any]] = []
        chunk_keys: list[str] = []
        size = 2
        for user, key, one in zip(users, keys, sizes, strict=True):
            if chunk and (
                len(chunk) >= self.provider.max_users
                or (limit_bytes and size + one + 1 > limit_bytes)
            ):
                yield chunk, chunk_keys
                chunk, chunk_keys, size = [], [], 2
            if limit_bytes and one + 2 > limit_bytes:  # _refusal rejected these already
                raise ExportRefused(
                    f"account {key!r} alone is larger than {self.provider.name}'s file limit"
                )
            chunk.append(user)
            chunk_keys.append(key)
            size += one + 1
        if chunk:
            yield chunk, chunk_keys

    def _remove_batch(self, number: int) -> None:
        """The files an earlier, uncommitted attempt of batch ``number`` left (by their exact
        names: a file of the user's is never touched)."""
        for path in batch_files(self.dir, self.provider.name, [number]):
            path.unlink()


def write_firebase_script(directory: Path) -> Path | None:
    """``import.sh``: one ``firebase auth:import`` per file the manifests list, with that
    file's flags; None (and nothing written) when no manifest lists a file."""
    lines = [
        "#!/bin/sh",
        "# Written by authmigrate: imports every file with its own hash flags.",
        "set -eu",
        'cd "$(dirname "$0")"',
    ]
    commands = 0
    for manifest in read_manifests(directory):
        for f in manifest["files"]:
            flags = " ".join(_flag(k, v) for k, v in f["config"].items())
            lines.append(f"firebase auth:import {f['file']} {flags}".rstrip())
            commands += 1
    if not commands:
        return None
    path = directory / "import.sh"
    _write_atomic(path, ("\n".join(lines) + "\n").encode(), mode=0o755)
    return path


def _flag(name: str, value: str) -> str:
    if value.startswith("env:"):
        return f'--{name}="${{{value[4:]}}}"'
    return f"--{name}={value}"


def _describe(r: Routed) -> str:
    if r.config:
        return ", ".join(f"{k}={v}" for k, v in r.config if k != "hash-key")
    return "its parameters"


def _manifest_name(number: int) -> str:
    return f"manifest-b{number:08d}.json"


def read_manifests(directory: Path) -> list[dict[str, Any]]:
    """Every batch manifest in ``directory``, in batch order."""
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(directory.glob("manifest-b*.json"))
    ]


def _write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # never through a symlink planted under the temporary name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ExportRefused", "ExportSink", "account_of", "read_manifests"]
