"""CSV and JSONL sources.

A file has no key order, so it is first streamed into a temporary SQLite table (a few seconds
per million rows, constant memory) and then paged by key like any SQL source. The staging table
is rebuilt from the file on every run, so resuming after a crash reads the same rows.
Key values that are all digits become integers, so ``10`` sorts after ``9``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from authmigrate.errors import SourceError, SpecError
from authmigrate.sources.sql import SqlSource
from authmigrate.spec import SourceSpec

_CHUNK = 5000


def _file_path(url: str) -> Path:
    scheme, _, rest = url.partition(":///")
    if not rest:
        raise SpecError("source.url", f"expected {scheme}:///path/to/file")
    # as with sqlite:///, three slashes then a relative path, four for an absolute one
    return Path(rest)


class FileSource:
    """A CSV or JSONL file, staged into SQLite and paged by key."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.path = _file_path(spec.url)
        if not self.path.is_file():
            raise SourceError(f"source file not found: {self.path}")
        self._dir = Path(tempfile.mkdtemp(prefix="authmigrate-stage-"))
        self._int_keys = True
        db = self._dir / "stage.db"
        try:
            columns = self._stage(db)
            if spec.key not in columns:
                raise SpecError("source.key", f"{self.path.name} has no column {spec.key!r}")
            staged = spec.model_copy(update={"url": f"sqlite:///{db}", "table": "src"})
            self._sql = SqlSource(staged)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.columns = columns

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        kind = self.spec.url.split(":", 1)[0]
        try:
            with self.path.open(
                encoding=self.spec.encoding, errors="surrogateescape", newline=""
            ) as fh:
                if kind == "csv":
                    reader = csv.DictReader(fh, delimiter=self.spec.delimiter)
                    for line, row in enumerate(reader, start=2):
                        if None in row:
                            raise SourceError(
                                f"{self.path.name} line {line}: more values than columns"
                            )
                        yield line, dict(row)
                    return
                for line, text in enumerate(fh, start=1):
                    if not text.strip():
                        continue
                    try:
                        obj = json.loads(text)
                    except json.JSONDecodeError as exc:
                        raise SourceError(
                            f"{self.path.name} line {line}: not JSON ({exc.msg})"
                        ) from None
                    if not isinstance(obj, dict):
                        raise SourceError(f"{self.path.name} line {line}: not a JSON object")
                    yield line, obj
        except UnicodeError as exc:
            raise SourceError(
                f"{self.path.name}: cannot decode as {self.spec.encoding}: {exc}"
            ) from None

    def _stage(self, db: Path) -> list[str]:
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        columns: list[str] = []
        pending: list[tuple[int, dict[str, Any]]] = []
        key = self.spec.key

        def flush() -> None:
            if not pending:
                return
            fresh = [
                n for n in dict.fromkeys(n for _, row in pending for n in row) if n not in columns
            ]
            if not _table_exists(conn):
                columns.extend(fresh)
                cols = ", ".join(f'"{_q(c)}"' for c in columns)
                conn.execute(f"CREATE TABLE src ({cols})")
            else:
                for name in fresh:  # a JSONL line may bring a key the earlier ones lacked
                    conn.execute(f'ALTER TABLE src ADD COLUMN "{_q(name)}"')
                    columns.append(name)
            names = ", ".join(f'"{_q(c)}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            staged = [
                tuple(
                    _key_text(r.get(c), line, self.path.name) if c == key else _cell(r.get(c))
                    for c in columns
                )
                for line, r in pending
            ]
            k = columns.index(key) if key in columns else -1
            if k >= 0 and self._int_keys:
                self._int_keys = all(_is_int_key(row[k]) for row in staged)
            conn.executemany(f"INSERT INTO src ({names}) VALUES ({marks})", staged)
            pending.clear()

        for line, row in self._rows():
            pending.append((line, row))
            if len(pending) >= _CHUNK:
                flush()
        flush()
        if not columns:
            conn.execute(f'CREATE TABLE src ("{_q(key)}")')
            columns.append(key)
        if self._int_keys:
            # every key is a plain integer: page and store them as numbers (10 after 9)
            conn.execute(f'UPDATE src SET "{_q(key)}" = CAST("{_q(key)}" AS INTEGER)')
        conn.execute(f'CREATE INDEX src_key ON src ("{_q(key)}")')
        conn.commit()
        conn.close()
        return columns

    def count(self) -> int:
        return self._sql.count()

    def page(self, after: Any, limit: int) -> list[dict[str, Any]]:
        return self._sql.page(after, limit)

    def null_key_rows(self) -> Iterator[dict[str, Any]]:
        return self._sql.null_key_rows()

    def duplicate_keys(self, limit: int = 5) -> list[Any]:
        return self._sql.duplicate_keys(limit)

    def column_types(self) -> dict[str, Any]:
        """Files carry no types; a key whose every value is an integer becomes BIGINT, any
        other key is text."""
        return {self.spec.key: sa.BigInteger() if self._int_keys else sa.Text()}

    def key_value_types(self) -> list[str]:
        """Staged keys are all integers or all text: one type."""
        return []

    def close(self) -> None:
        self._sql.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _q(name: str) -> str:
    return name.replace('"', '""')


def _table_exists(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'src'").fetchone() is not None


_CANONICAL_INT = re.compile(r"-?[1-9][0-9]{0,18}|0")


def _key_text(value: Any, line: int, path: str) -> str | None:
    """A key as text, the same whatever the file's typing: JSON ``1`` and CSV ``1`` agree,
    ``true`` stays ``true``; blank is NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if not text:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SourceError(f"{path} line {line}: the key is not valid text") from None
    return text


def _is_int_key(text: str | None) -> bool:
    """Digits that read back the same as an integer (no leading zero: ``007`` stays text)."""
    return text is None or (
        _CANONICAL_INT.fullmatch(text) is not None and -(2**63) <= int(text) < 2**63
    )


def _cell(value: Any) -> Any:
    """A non-key file value as SQLite stores it."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return str(value)  # SQLite integers are 64-bit: keep a bigger number as its digits
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        # keep undecodable bytes visible but storable: sqlite3 cannot bind lone surrogates
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value
