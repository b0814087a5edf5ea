"""PostgreSQL ``COPY ... FROM STDIN`` payloads in the text format, built column-wise in Arrow.

The fast path's batches are Arrow columns already; turning each row into Python objects for
psycopg's ``write_row`` cost the client more than the rest of its per-row work. Here every
column becomes text in Arrow compute (integers and booleans cast, text escaped), the columns
are joined with tabs, the rows with newlines, and the one buffer that results is what the
server reads.

The text format's rules (PostgreSQL's ``COPY`` documentation, "Text Format"): a backslash, a
newline, a carriage return and the delimiter (tab) inside a value are written as ``\\\\``,
``\\n``, ``\\r``, ``\\t``; NULL is ``\\N``; anything else is the value's bytes in the client
encoding. Every string value is escaped here, whatever the fast path's decision guarantees
about it, so a value can never end a field, a row, or the data early. The bytes are UTF-8:
:func:`text_payload` is for connections whose client encoding is UTF-8.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

INTEGER_TYPES = frozenset({"int2", "int4", "int8"})
TEXT_TYPES = frozenset({"text", "varchar"})

NULL = "\\N"
"""The text format's NULL (COPY's default ``NULL`` option)."""

_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
"""Backslash first, so the backslashes the other escapes add are not doubled."""


_RESERVED = r"[\\\t\n\r]"
"""RE2: a character :data:`_ESCAPES` rewrites."""


class NotText(Exception):  # noqa: N818 - a control-flow signal
    """A column's values are not of a kind its target type takes as text here."""


def escape(value: str) -> str:
    """One value in the text format (the same escapes as :func:`text_column`)."""
    for char, escaped in _ESCAPES:
        value = value.replace(char, escaped)
    return value


def stamp_text(value: object) -> str:
    """A ``timestamp without time zone`` value in ISO form (read alike under any
    ``DateStyle``)."""
    if not isinstance(value, dt.datetime) or value.tzinfo is not None:
        raise NotText("the key state's stamp is not a naive datetime")
    return value.isoformat(sep=" ")


def text_column(values: pa.Array | pa.ChunkedArray, pg_type: str) -> pa.Array:
    """``values`` as text-format fields for a column of ``pg_type`` (NULL stays NULL).

    Raises :class:`NotText` where the Arrow type is not the column's kind (text into an
    integer column, say): such a value is the server's to convert, on the slower route.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_null(kind):
        return pa.nulls(len(values), pa.string())
    if pg_type in INTEGER_TYPES and pa.types.is_integer(kind):
        return pc.cast(values, pa.string())
    if pg_type == "bool" and pa.types.is_boolean(kind):
        return pc.cast(values, pa.string())  # 'true' / 'false'
    if pg_type in TEXT_TYPES and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        out = values.cast(pa.string())
        if not pc.any(pc.match_substring_regex(out, _RESERVED)).as_py():
            return out  # one pass where nothing needs escaping (the fast rows: none does)
        for char, escaped in _ESCAPES:
            out = pc.replace_substring(out, char, escaped)
        return out
    raise NotText(f"a {kind} value for a {pg_type} column")


def text_payload(fields: Sequence[pa.Array | str]) -> pa.Buffer:
    """The rows of ``fields`` (text-format columns, or one text for every row) as ``COPY``
    text data: tab between fields, a newline after each row, ``\\N`` for NULL."""
    line = pc.binary_join_element_wise(
        *fields, "\t", null_handling="replace", null_replacement=NULL
    )
    line = pc.binary_join_element_wise(line, "", "\n")
    if isinstance(line, pa.ChunkedArray):
        line = line.combine_chunks()
    offsets = pa.Array.from_buffers(
        pa.int32(), len(line) + 1, [None, line.buffers()[1]], offset=line.offset
    )
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    data = line.buffers()[2]
    if data is None:
        return pa.py_buffer(b"")
    return data.slice(start, end - start)
