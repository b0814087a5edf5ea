"""Where legacy accounts come from: any SQLAlchemy URL (table or query), CSV and JSONL files.

Every source is read in key order, in pages that start after the last key read (keyset
pagination, never OFFSET), so a batch can be re-read exactly after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from authmigrate.spec import SourceSpec


class Source(Protocol):
    """A readable legacy user store."""

    columns: list[str]
    """Column names, in source order."""

    def only(self, columns: Iterable[str]) -> None:
        """From now on, read only these columns (and the key): the ones the spec uses, so an
        unmapped BLOB is never fetched."""
        ...

    def count(self) -> int:
        """Number of rows in the source (all of them, NULL keys included)."""
        ...

    def page(self, after: Any, limit: int, upto: Any = None) -> list[dict[str, Any]]:
        """Up to ``limit`` rows whose key is greater than ``after`` (None: from the start)
        and at most ``upto`` (None: no bound), in key order."""
        ...

    def key_at(self, offset: int, after: Any = None) -> Any:
        """The non-NULL key at position ``offset`` in key order after ``after`` (None: from
        the start), None past the end."""
        ...

    def key_page(self, after: Any, limit: int) -> list[Any]:
        """Up to ``limit`` non-NULL keys greater than ``after`` (None: from the start), in key
        order, reading the key column alone."""
        ...

    def keys_in(self, keys: Sequence[Any]) -> list[Any]:
        """Those of ``keys`` the source has (the key column alone, any order)."""
        ...

    def rows_by_key(self, keys: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of those of ``keys`` the source has (read columns only, any order)."""
        ...

    def null_key_rows(self) -> Iterator[dict[str, Any]]:
        """Rows whose key is NULL: they cannot be paged by key, so they are rejected apart."""
        ...

    def duplicate_keys(self, limit: int = 5) -> list[Any]:
        """Up to ``limit`` key values that occur more than once (paging needs unique keys)."""
        ...

    def column_types(self) -> dict[str, Any]:
        """SQLAlchemy types of the columns, where the source knows them."""
        ...

    def key_value_types(self) -> list[str]:
        """SQLite storage classes of the non-NULL keys (``integer``, ``text``...), where a
        column can hold several; empty for databases whose columns hold one type."""
        ...

    def close(self) -> None:
        """Release connections and temporary files."""
        ...


def open_source(spec: SourceSpec) -> Source:
    """Open the source a spec describes.

    Raises:
        SourceError: the URL is wrong, the server is unreachable, or the table is missing.
        SpecError: the key column is not in the source.
    """
    if spec.is_file:
        from authmigrate.sources.files import FileSource

        return FileSource(spec)
    from authmigrate.sources.sql import SqlSource

    return SqlSource(spec)
