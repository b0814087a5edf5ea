"""CSV and JSONL sources.

A file has no key order, so it is first streamed into a temporary SQLite table (a few seconds
per million rows, constant memory) and then paged by key like any SQL source. The staging table
is rebuilt from the file on every run, so resuming after a crash reads the same rows.
Key values that are all digits become integers, so ``10`` sorts after ``9``.

Parsing is strict: a malformed file (a row with more or fewer values than the header, a quote
that never closes, a repeated or empty column name, a JSON key given twice) stops with a
:class:`SourceError` naming the line, before anything is written. A value that cannot be read
(a JSON ``NaN``, an integer beyond 64 bits, a lone surrogate) becomes an
:class:`~authmigrate.pipeline.batch.InvalidValue`, so only its row is rejected.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from authmigrate.errors import SourceError, SpecError
from authmigrate.pipeline.batch import InvalidValue
from authmigrate.sources.sql import SqlSource
from authmigrate.spec import SourceSpec

_CHUNK = 5000
_INVALID = "authmigrate:invalid"
"""Staging column noting a row's unreadable values (reason and detail, never the value)."""


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
        try:
            self._dir = Path(tempfile.mkdtemp(prefix="authmigrate-stage-"))
        except OSError as exc:
            raise SourceError(_no_room(self.path, exc.strerror or str(exc))) from None
        self._int_keys = True
        db = self._dir / "stage.db"
        try:
            try:
                columns = self._stage(db)
            except (OSError, sqlite3.OperationalError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise SourceError(_no_room(self.path, reason)) from None
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
                    # a UTF-8 byte order mark, as spreadsheets write, before csv reads a quote
                    first = fh.readline().removeprefix("\ufeff")
                    yield from self._csv_rows(itertools.chain([first], fh))
                else:
                    yield from self._jsonl_rows(fh)
        except UnicodeError as exc:
            raise SourceError(
                f"{self.path.name}: cannot decode as {self.spec.encoding}: {exc}"
            ) from None

    def _csv_rows(self, fh: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Strict CSV: quotes must close, every row has as many values as the header.

        A malformed row stops the staging (exit 2, naming its line): past a broken quote,
        where a row ends is a guess, and a guess could shift a password into an email.
        """
        name = self.path.name
        reader = csv.reader(fh, delimiter=self.spec.delimiter, strict=True)
        header = self._csv_header(reader)
        width = len(header)
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise SourceError(f"{name} line {start}: {_csv_problem(str(exc))}") from None
            if row:  # a blank line is no row
                if len(row) != width:
                    raise SourceError(
                        f"{name} line {start}: {len(row)} values, the header has {width}"
                        + (" (a quoted value spans lines?)" if reader.line_num != start else "")
                    )
                yield start, dict(zip(header, row, strict=True))
            start = reader.line_num + 1

    def _csv_header(self, reader: Any) -> list[str]:
        name = self.path.name
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise SourceError(f"{name} line 1: {_csv_problem(str(exc))}") from None
        if not header or not any(h.strip() for h in header):
            raise SourceError(f"{name} line 1: the header is empty (expected column names)")
        seen: dict[str, int] = {}
        for column, title in enumerate(header, start=1):
            if not title.strip():
                raise SourceError(f"{name} line 1 column {column}: the column has no name")
            if _bad_name(title):
                raise SourceError(f"{name} line 1 column {column}: {_bad_name(title)}")
            if _fold(title) in seen:
                first = seen[_fold(title)]
                case = "" if title == header[first - 1] else f" ({header[first - 1]!r}: "
                raise SourceError(
                    f"{name} line 1 column {column}: {title!r} repeats column {first}"
                    + (f"{case}names differing only in case are one column)" if case else "")
                )
            seen[_fold(title)] = column
        if _INVALID in seen:
            raise SourceError(f"{name} line 1: {_INVALID!r} is a name authmigrate reserves")
        if self.spec.key not in seen:
            hint = ""
            if len(header) == 1 and any(d in header[0] for d in ",;\t|"):
                hint = f" (one column {header[0]!r}: is source.delimiter right?)"
            raise SpecError("source.key", f"{name} has no column {self.spec.key!r}{hint}")
        return header

    def _jsonl_rows(self, fh: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
        name = self.path.name
        keys: dict[str, tuple[str, int]] = {}  # folded name -> (name, first line)
        for line, text in enumerate(fh, start=1):
            if line == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                obj = json.loads(text, object_pairs_hook=_unique_keys)
            except _RepeatedKey as exc:
                raise SourceError(
                    f"{name} line {line}: the key {exc.key!r} appears twice"
                ) from None
            except json.JSONDecodeError as exc:
                raise SourceError(f"{name} line {line}: not JSON ({exc.msg})") from None
            except RecursionError:
                raise SourceError(f"{name} line {line}: JSON nested too deeply") from None
            except ValueError as exc:  # e.g. an integer of more than 4300 digits
                raise SourceError(f"{name} line {line}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise SourceError(f"{name} line {line}: not a JSON object")
            if _INVALID in obj:
                raise SourceError(
                    f"{name} line {line}: {_INVALID!r} is a name authmigrate reserves"
                )
            for key in obj:
                if not key.strip():
                    raise SourceError(f"{name} line {line}: a key has no name")
                if _bad_name(key):
                    raise SourceError(f"{name} line {line}: a key {_bad_name(key)}")
                known, since = keys.setdefault(_fold(key), (key, line))
                if known != key:
                    raise SourceError(
                        f"{name} line {line}: the key {key!r} differs from {known!r} (line "
                        f"{since}) only in case; names differing only in case are one column"
                    )
            yield line, obj

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
                cols = ", ".join(f'"{_q(c)}"' for c in [*columns, _INVALID])
                conn.execute(f"CREATE TABLE src ({cols})")
            else:
                for name in fresh:  # a JSONL line may bring a key the earlier ones lacked
                    conn.execute(f'ALTER TABLE src ADD COLUMN "{_q(name)}"')
                    columns.append(name)
            names = ", ".join(f'"{_q(c)}"' for c in [*columns, _INVALID])
            marks = ", ".join("?" for _ in range(len(columns) + 1))
            staged = [_staged_row(r, columns, key, line, self.path.name) for line, r in pending]
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
            conn.execute(f'CREATE TABLE src ("{_q(key)}", "{_INVALID}")')
            columns.append(key)
        if self._int_keys:
            # every key is a plain integer: page and store them as numbers (10 after 9)
            conn.execute(f'UPDATE src SET "{_q(key)}" = CAST("{_q(key)}" AS INTEGER)')
        conn.execute(f'CREATE INDEX src_key ON src ("{_q(key)}")')
        conn.commit()
        conn.close()
        return columns

    def only(self, columns: Iterable[str]) -> None:
        self._sql.only([*columns, _INVALID])

    def count(self) -> int:
        return self._sql.count()

    def page(self, after: Any, limit: int, upto: Any = None) -> list[dict[str, Any]]:
        return [_with_invalid(row) for row in self._sql.page(after, limit, upto)]

    def key_at(self, offset: int, after: Any = None) -> Any:
        return self._sql.key_at(offset, after)

    def null_key_rows(self) -> Iterator[dict[str, Any]]:
        return (_with_invalid(row) for row in self._sql.null_key_rows())

    def key_page(self, after: Any, limit: int) -> list[Any]:
        return self._sql.key_page(after, limit)

    def keys_in(self, keys: Sequence[Any]) -> list[Any]:
        return self._sql.keys_in(keys)

    def rows_by_key(self, keys: Sequence[Any]) -> list[dict[str, Any]]:
        return [_with_invalid(row) for row in self._sql.rows_by_key(keys)]

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


def _no_room(path: Path, reason: str) -> str:
    return (
        f"cannot stage {path.name} in the temporary folder {tempfile.gettempdir()}: {reason} "
        "(set TMPDIR to a folder with room for a copy of the file)"
    )


def _q(name: str) -> str:
    return name.replace('"', '""')


def _bad_name(name: str) -> str:
    """Why a column name cannot be a column ('' when it can): SQLite refuses a NUL in SQL
    text, and text that is not valid Unicode cannot be written at all."""
    if "\x00" in name:
        return "the name holds a NUL character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid text (bytes that are not UTF-8, or a lone surrogate)"
    return ""


def _fold(name: str) -> str:
    """A column name as SQLite compares it: ASCII letters without case, the rest exact."""
    return "".join(c.lower() if c.isascii() else c for c in name)


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


def _staged_row(
    row: dict[str, Any], columns: list[str], key: str, line: int, path: str
) -> tuple[Any, ...]:
    """One file row as the staging table stores it: the columns, then the
    :data:`_INVALID` note of the values that cannot be read (stored as NULL)."""
    cells: list[Any] = []
    invalid: dict[str, list[str]] = {}
    for c in columns:
        if c == key:
            cells.append(_key_text(row.get(c), line, path))
            continue
        value = _cell(row.get(c))
        if type(value) is InvalidValue:
            invalid[c] = [value.reason, value.detail]
            value = None
        cells.append(value)
    cells.append(json.dumps(invalid) if invalid else None)
    return tuple(cells)


def _with_invalid(row: dict[str, Any]) -> dict[str, Any]:
    """A staged row with its unreadable values back as :class:`InvalidValue`."""
    note = row.pop(_INVALID, None)
    if note:
        for column, (reason, detail) in json.loads(note).items():
            row[column] = InvalidValue(reason, detail)
    return row


def _cell(value: Any) -> Any:
    """A non-key file value as SQLite stores it, or an :class:`InvalidValue` that rejects
    its row: JSON's ``NaN``/``Infinity``, an integer beyond 64 bits, a lone surrogate."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return InvalidValue("field.invalid_type", "an integer beyond 64 bits")
    if isinstance(value, float) and not math.isfinite(value):
        return InvalidValue("field.invalid_type", "not a finite number (NaN or Infinity)")
    if isinstance(value, dict | list):
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            return InvalidValue("field.invalid_text", "not valid Unicode (a lone surrogate)")
        except ValueError:
            return InvalidValue("field.invalid_type", "holds NaN or Infinity")
    if isinstance(value, str):
        # keep undecodable bytes visible but storable: sqlite3 cannot bind lone surrogates
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:
                return value.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                # a JSON \ud800 escape: no byte of the file stands behind it
                return InvalidValue("field.invalid_text", "not valid Unicode (a lone surrogate)")
    return value


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a JSON object naming a key twice is refused, not last-wins."""
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise _RepeatedKey(name)
        obj[name] = value
    return obj


_CSV_PROBLEMS = {
    "unexpected end of data": "a quoted value opened here is never closed",
    "field larger than field limit": "a value is longer than {limit:,} characters "
    "(an unclosed quote?)",
}


def _csv_problem(message: str) -> str:
    """The csv module's error in words that say what to fix (it never quotes a value)."""
    for start, text in _CSV_PROBLEMS.items():
        if message.startswith(start):
            return text.format(limit=csv.field_size_limit())
    return message
