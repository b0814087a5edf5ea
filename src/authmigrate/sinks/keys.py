"""The one key codec: a migration's keys in the source, in the bookkeeping and in the target.

A source key arrives as a Python value of its column's type: ``int``, ``str``, ``Decimal``,
``UUID``, ``datetime`` (naive or aware), ``date``, ``bytes``. It is stored in three places, and
every one of them goes through this module:

- **The bookkeeping** (checkpoint, ``written_keys``, rejects): :func:`encode_key` keeps an
  ``int``, ``str`` or ``float`` as plain JSON (as before, so older rows read the same) and
  writes any other type with its tag, ``{"t": "uuid", "v": "..."}``; :func:`decode_key` gives
  the typed value back. Rows written by older versions (``str(key)`` for every non-JSON type)
  are read too: :func:`coerce_key` turns such a string back into the column's type.
- **The target's key column**: :class:`TargetKey` maps a key to the value the column holds, as
  the database driver sends and returns it (``stored``), for the column's type and dialect:
  SQLite keeps a timestamp as text ``YYYY-MM-DD HH:MM:SS.ffffff`` and a UUID in a ``CHAR(32)``
  column as 32 hex digits (SQLAlchemy's ``Uuid`` storage), PostgreSQL keeps native values; a
  text column holds an integer key as its digits. ``stored`` is idempotent, so a value read
  back from the column and a source key compare equal exactly when they are the same key.
  Inserts, key-exists checks, verify and rollback all bind the key column through
  :meth:`TargetKey.column` (no SQLAlchemy type processing), so they all see one form.
- **The source, on resume**: the checkpoint is decoded with its tag and bound with the source
  column's type (:func:`coerce_key`).

A key whose type cannot be held exactly by the target's key column (text keys into an integer
column, timestamps into text) is refused up front (:meth:`TargetKey.check`), never compared
loosely.
"""

from __future__ import annotations

import ast
import datetime as dt
import decimal
import json
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

TAGS = ("int", "str", "float", "bool", "decimal", "uuid", "datetime", "date", "bytes")
"""Type tags of keys, as stored in the bookkeeping."""

_TAG_NAMES = {
    "int": "integer",
    "str": "text",
    "float": "floating point",
    "bool": "boolean",
    "decimal": "numeric",
    "uuid": "UUID",
    "datetime": "timestamp",
    "date": "date",
    "bytes": "binary",
}


class KeyTypeError(ValueError):
    """A key cannot be represented in the type it must be compared in."""


def tag_of(key: Any) -> str:
    """The type tag of a key value (``"int"``, ``"uuid"``, ...).

    >>> tag_of(42), tag_of("A8"), tag_of(uuid.UUID(int=1))
    ('int', 'str', 'uuid')
    """
    if isinstance(key, bool):
        return "bool"
    if isinstance(key, int):
        return "int"
    if isinstance(key, str):
        return "str"
    if isinstance(key, float):
        return "float"
    if isinstance(key, decimal.Decimal):
        return "decimal"
    if isinstance(key, uuid.UUID):
        return "uuid"
    if isinstance(key, dt.datetime):
        return "datetime"
    if isinstance(key, dt.date):
        return "date"
    if isinstance(key, bytes | bytearray | memoryview):
        return "bytes"
    raise KeyTypeError(f"a key of type {type(key).__name__} is not supported")


def tag_name(tag: str | None) -> str:
    """A tag in words, for messages."""
    return _TAG_NAMES.get(tag or "", "unknown")


def type_tag(type_: Any) -> str | None:
    """The tag of the values a SQLAlchemy column type yields (None: unknown, e.g. a query's
    column)."""
    if type_ is None or isinstance(type_, sa.types.NullType):
        return None
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(type_, sa.Uuid):
        return "uuid"
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.Float):
        return "float"
    if isinstance(type_, sa.Numeric):
        return "decimal"
    if isinstance(type_, sa.String):
        return "str"
    if isinstance(type_, sa.LargeBinary | sa.types._Binary):
        return "bytes"
    return None


# -- the bookkeeping form ------------------------------------------------------------------


def _plain(key: Any) -> Any:
    """A key as JSON: int, str and float as themselves, anything else as ``{"t", "v"}``."""
    tag = tag_of(key)
    if tag in ("int", "str", "float"):
        return key
    if tag == "bool":
        return {"t": tag, "v": "1" if key else "0"}
    if tag == "bytes":
        return {"t": tag, "v": bytes(key).hex()}
    if tag in ("datetime", "date"):
        return {"t": tag, "v": key.isoformat()}
    return {"t": tag, "v": str(key)}


def _typed(item: Any) -> Any:
    if not isinstance(item, dict):
        return item  # int, str, float: as written (and as older versions wrote them)
    tag, text = item.get("t"), item.get("v")
    if not isinstance(text, str):
        raise KeyTypeError(f"a stored key has no text value: {item!r}")
    return from_text(tag, text)


def from_text(tag: str | None, text: str) -> Any:
    """A key of type ``tag`` from its text form (the bookkeeping's, or ``str(key)``)."""
    if tag == "bool":
        return text in ("1", "True", "true")
    if tag == "int":
        return int(text)
    if tag == "float":
        return float(text)
    if tag == "decimal":
        return decimal.Decimal(text)
    if tag == "uuid":
        return uuid.UUID(text)
    if tag == "datetime":
        return dt.datetime.fromisoformat(text)
    if tag == "date":
        return dt.date.fromisoformat(text[:10])
    if tag == "bytes":
        if text.startswith(("b'", 'b"')):  # an older version stored str(bytes)
            value = ast.literal_eval(text)
            if isinstance(value, bytes):
                return value
        return bytes.fromhex(text)
    if tag == "str":
        return text
    raise KeyTypeError(f"unknown key type tag {tag!r}")


def encode_key(key: Any) -> str:
    """A key as typed JSON text (checkpoint and rejects)."""
    return json.dumps(_plain(key), ensure_ascii=False)


def decode_key(text: str | None) -> Any:
    """The key :func:`encode_key` wrote (or an older version wrote), typed."""
    return None if text is None else _typed(json.loads(text))


def pack_keys(keys: Sequence[Any]) -> bytes:
    """The keys a batch wrote, as compressed typed JSON."""
    plain = [k if type(k) is int or type(k) is str else _plain(k) for k in keys]
    return zlib.compress(json.dumps(plain, ensure_ascii=False).encode(), 1)


def unpack_keys(blob: bytes | None) -> list[Any]:
    """The keys :func:`pack_keys` packed, typed."""
    if not blob:
        return []
    return [_typed(k) for k in json.loads(zlib.decompress(blob))]


def coerce_key(value: Any, tag: str | None) -> Any:
    """A decoded key as a value of the column type ``tag`` (None: left as it is).

    A checkpoint written by an older version holds ``str(key)`` for a UUID, timestamp,
    numeric or binary key; this turns it back into the type the source column compares with.

    Raises:
        KeyTypeError: the value is not a key of that type.
    """
    if value is None or tag is None or tag_of(value) == tag:
        return value
    try:
        if tag == "decimal" and isinstance(value, int | float):
            return decimal.Decimal(str(value))
        if tag == "float" and isinstance(value, int | decimal.Decimal):
            return float(value)
        if tag == "datetime" and type(value) is dt.date:
            return dt.datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            return from_text(tag, value.strip() if tag != "str" else value)
    except (ValueError, ArithmeticError, SyntaxError) as exc:
        raise KeyTypeError(f"{tag_name(tag_of(value))} key is not {tag_name(tag)}") from exc
    raise KeyTypeError(f"{tag_name(tag_of(value))} key is not {tag_name(tag)}")


# -- the target's key column ---------------------------------------------------------------

_TEXT_OK = frozenset({"str", "int", "uuid"})
"""Key types a text key column holds exactly (as their canonical text)."""

_COMPATIBLE: dict[str, frozenset[str]] = {
    "int": frozenset({"int"}),
    "decimal": frozenset({"decimal", "int"}),
    "float": frozenset({"float", "int"}),
    "uuid": frozenset({"uuid"}),
    "uuid_hex": frozenset({"uuid", "str"}),
    "uuid_text": frozenset({"uuid", "str"}),
    "datetime": frozenset({"datetime"}),
    "date": frozenset({"date"}),
    "bytes": frozenset({"bytes"}),
    "bool": frozenset({"bool"}),
    "str": _TEXT_OK,
}


class TargetKey:
    """The target's key column: the form a key takes there, for its type and dialect.

    ``stored(key)`` is the value the database holds for ``key`` (as the driver sends and returns
    it); it accepts a typed key, an older bookkeeping string, or a value read back from the
    column, and is idempotent, so ``stored(a) == stored(b)`` exactly when ``a`` and ``b`` are
    the same key in the target.
    """

    def __init__(self, type_: Any, dialect: str) -> None:
        self.type = type_
        self.dialect = dialect
        kind = type_tag(type_) or "str"
        if kind == "str" and dialect != "postgresql" and getattr(type_, "length", None) == 32:
            # SQLAlchemy's Uuid is CHAR(32) of hex digits where the database has no uuid type
            kind = "uuid_hex" if isinstance(type_, sa.CHAR | sa.Uuid) else kind
        if kind == "uuid" and dialect not in ("postgresql", "mssql"):
            # MariaDB's native UUID column holds (and returns) the dashed form
            native = dialect in ("mysql", "mariadb") and isinstance(type_, sa.UUID)
            kind = "uuid_text" if native else "uuid_hex"
        self.kind = kind
        self.timezone = bool(getattr(type_, "timezone", False))

    def __repr__(self) -> str:
        return f"TargetKey({self.kind}, {self.dialect})"

    @property
    def name(self) -> str:
        """The column's kind in words."""
        return {"uuid_hex": "text", "uuid_text": "UUID"}.get(self.kind) or tag_name(self.kind)

    def check(self, source_tag: str | None) -> str | None:
        """Why keys of type ``source_tag`` cannot be compared exactly in this column (None: they
        can, or the source type is unknown)."""
        if source_tag is None or source_tag in _COMPATIBLE.get(self.kind, frozenset()):
            return None
        return (
            f"the target's key column is {self.name} and the source keys are "
            f"{tag_name(source_tag)}: they cannot be compared exactly"
        )

    def column(self, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """``col`` for binding and reading keys in their stored form (no type processing)."""
        return sa.type_coerce(col, sa.types.NullType())

    def stored(self, key: Any) -> Any:  # noqa: C901 - one branch per column kind
        """The value the key column holds for ``key``.

        Raises:
            KeyTypeError: ``key`` cannot be represented exactly in this column.
        """
        if key is None:
            return None
        kind, sqlite = self.kind, self.dialect == "sqlite"
        if isinstance(key, memoryview | bytearray):
            key = bytes(key)
        if kind == "str":
            if isinstance(key, str):
                return key
            if isinstance(key, bool) or not isinstance(key, int | uuid.UUID):
                raise KeyTypeError(f"a {tag_name(tag_of(key))} key in a text column")
            return str(key)
        if kind in ("uuid_hex", "uuid_text"):
            if isinstance(key, str):
                try:
                    key = uuid.UUID(key)
                except ValueError:
                    return key  # a text key that is no UUID
            if isinstance(key, uuid.UUID):
                return key.hex if kind == "uuid_hex" else str(key)
            raise KeyTypeError(f"a {tag_name(tag_of(key))} key in a UUID column")
        if kind == "int":
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise KeyTypeError(f"a {tag_name(tag_of(key))} key in an integer column")
            return int(key)
        if kind == "decimal":
            value = coerce_key(key, "decimal") if not isinstance(key, float) else key
            if not sqlite:
                return value
            number = decimal.Decimal(str(value))
            # SQLite's NUMERIC affinity stores an integral value as INTEGER, others as REAL
            return int(number) if number == number.to_integral_value() else float(number)
        if kind == "float":
            return float(key) if not isinstance(key, str) else float(key.strip())
        if kind == "uuid":
            return coerce_key(key, "uuid")
        if kind == "datetime":
            value = coerce_key(key, "datetime")
            if self.timezone and not sqlite:
                # an instant: a naive key is taken as UTC, as the run binds it
                return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            if sqlite:
                return f"{value.year:04d}-{value:%m-%d %H:%M:%S.%f}"
            return value
        if kind == "date":
            value = coerce_key(key, "date")
            if isinstance(value, dt.datetime):
                value = value.date()
            return value.isoformat() if sqlite else value
        if kind == "bytes":
            return coerce_key(key, "bytes")
        if kind == "bool":
            return bool(coerce_key(key, "bool"))
        return key
