"""What a preset is: one platform's customer table, field mapping, hash format and detection.

A preset is declarative data (:class:`Preset`); each platform module builds one or two. The only
code a platform may add is a ``refine`` check that tells two versions apart from the schema
(PrestaShop 1.6's ``passwd varchar(32)`` against 1.7's ``varchar(60)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

PREFIX_RULE = re.compile(r"[A-Za-z0-9_$]{0,32}")
"""What a table prefix may be (``source.table_prefix`` and a prefix ``init`` detects)."""


class SchemaView(Protocol):
    """The little of a database schema detection needs (a SQLAlchemy ``Inspector`` fits)."""

    def get_table_names(self) -> list[str]:
        """Names of the tables of the default schema."""
        ...

    def get_columns(self, table_name: str) -> list[dict[str, Any]]:
        """Columns of ``table_name``: dicts with at least ``name`` and ``type``."""
        ...


Refine = Callable[[SchemaView, str], bool]
"""Extra schema check of a preset: ``(inspector, prefix) -> matches``."""


@dataclass(frozen=True)
class Preset:
    """One platform's customers, as a spec fragment plus how to recognise the platform.

    Attributes:
        name: the id used in ``source.preset`` and ``--preset``.
        title: platform name and versions, for ``authmigrate presets``.
        summary: one line on what is read.
        default_prefix: the platform's default table prefix (``wp_``, ``ps_``, ``oc_``...).
        required: unprefixed table -> columns that must exist for the platform to be detected.
        bonus_tables: unprefixed tables that make the platform more likely when present.
        refine: optional schema check telling this version from a sibling preset.
        query: SELECT with ``{p}`` for the table prefix; exposes the key as ``legacy_id``.
        fields: the ``[fields]`` section (target column -> source column or field table).
        credentials: the ``[credentials]`` section (column, scheme, params, keys...).
        target_unique: target fields that identify an account on this platform.
        notes: comment lines written at the top of an ``init`` spec.
        aliases: other names accepted for this preset.
        changed_column: the platform's "updated at" column in the query, if it has one.
    """

    name: str
    title: str
    summary: str
    default_prefix: str
    required: Mapping[str, tuple[str, ...]]
    query: str
    fields: Mapping[str, Any]
    credentials: Mapping[str, Any]
    bonus_tables: tuple[str, ...] = ()
    refine: Refine | None = None
    target_unique: tuple[str | tuple[str, ...], ...] = ("email",)
    notes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    key: str = "legacy_id"
    key_type: str = "bigint"
    """Type of the key field: the platform's id, kept to link the new account back."""
    changed_column: str | None = None
    """A column of the query the platform sets on every change of the account, for
    ``[sync] changed_column`` (Magento ``updated_at``, PrestaShop ``date_upd``)."""
    sources: tuple[str, ...] = field(default=())
    """Where the table definitions come from (published install SQL), for the docs."""

    @property
    def all_fields(self) -> dict[str, Any]:
        """The ``[fields]`` section: the key field first, then the platform's mapping."""
        return {self.key: {"from": self.key, "type": self.key_type}, **self.fields}

    def render_query(
        self, prefix: str | None = None, quote: Callable[[str], str] | None = None
    ) -> str:
        """The source query with the table prefix filled in (default: the platform's).

        ``quote`` quotes each table name (``init`` passes the source dialect's quoting).

        Raises:
            ValueError: ``prefix`` breaks :data:`PREFIX_RULE`.
        """
        p = self.default_prefix if prefix is None else prefix
        if not PREFIX_RULE.fullmatch(p):
            raise ValueError("a table prefix is letters, digits, _ or $ (at most 32)")
        if quote is None:
            return self.query.replace("{p}", p).strip()
        return re.sub(r"\{p\}(\w+)", lambda m: quote(p + m.group(1)), self.query).strip()

    def score(self, schema: SchemaView, tables: set[str], prefix: str) -> int:
        """How well the schema under ``prefix`` matches this platform; 0 when it does not.

        Every required table and column must exist; each one found adds to the score, each
        bonus table adds 5, and a passing ``refine`` adds 3 (a failing one rules the preset out).
        """
        lowered = {t.lower(): t for t in tables}
        score = 0
        for table, columns in self.required.items():
            real = lowered.get(f"{prefix}{table}".lower())
            if real is None:
                return 0
            names = {c["name"].lower() for c in schema.get_columns(real)}
            if not all(c.lower() in names for c in columns):
                return 0
            score += 10 + len(columns)
        score += 5 * sum(1 for t in self.bonus_tables if f"{prefix}{t}".lower() in lowered)
        if self.refine is not None:
            if not self.refine(schema, prefix):
                return 0
            score += 3
        return score

    def detect(self, schema: SchemaView) -> tuple[int, str]:
        """Best ``(score, table prefix)`` of this platform in ``schema``; score 0: not found."""
        tables = set(schema.get_table_names())
        best = (0, self.default_prefix)
        for prefix in sorted(self.candidate_prefixes(tables)):
            score = self.score(schema, tables, prefix)
            if score > best[0] or (score == best[0] and score and prefix == self.default_prefix):
                best = (score, prefix)
        return best

    def candidate_prefixes(self, tables: set[str]) -> set[str]:
        """Prefixes under which the first required table exists (``wp_``, ``shop1_``, ``""``).

        Only prefixes that :data:`PREFIX_RULE` allows: a table name holding anything else
        (spaces, quotes, SQL) is never a candidate, as it would end up in the query.
        """
        anchor = next(iter(self.required)).lower()
        found = set()
        for t in tables:
            low = t.lower()
            if low.endswith(anchor):
                prefix = t[: len(t) - len(anchor)]
                if PREFIX_RULE.fullmatch(prefix):
                    found.add(prefix)
        return found


def column_length(schema: SchemaView, table: str, column: str) -> int | None:
    """Declared length of a character column (``varchar(32)`` -> 32), or None."""
    for col in schema.get_columns(table):
        if col["name"].lower() == column.lower():
            length = getattr(col["type"], "length", None)
            return int(length) if length is not None else None
    return None


def has_column(schema: SchemaView, table: str, column: str) -> bool:
    """True when ``table`` has ``column`` (case-insensitive)."""
    return any(c["name"].lower() == column.lower() for c in schema.get_columns(table))


def email_field(column: str = "email") -> dict[str, Any]:
    """The usual email mapping: normalized, required."""
    return {"from": column, "normalize": ["strip", "email"], "required": True}


def name_field(column: str) -> dict[str, Any]:
    """A person's name: trimmed, empty becomes NULL."""
    return {"from": column, "normalize": ["strip", "collapse_spaces", "none_if_empty"]}


def datetime_field(column: str) -> dict[str, Any]:
    """A date-time column (zero dates are turned into NULL by the preset's query)."""
    return {"from": column, "type": "datetime"}


def flag_field(column: str) -> dict[str, Any]:
    """A boolean state (active, blocked)."""
    return {"from": column, "type": "boolean"}


def zero_date(expr: str) -> str:
    """SQL turning MySQL's zero/invalid dates into NULL: ``NULLIF(x, '0000-00-00 00:00:00')``.

    MySQL stores ``0000-00-00 00:00:00`` for "no date" in legacy schemas (WordPress'
    ``user_registered`` defaults to it); no driver can turn it into a date, so it never leaves
    the server. Dates before year 1000 are outside the supported DATETIME range and go too.
    """
    return (
        f"CASE WHEN {expr} IS NULL OR CAST({expr} AS CHAR) < '1000-01-01' THEN NULL ELSE {expr} END"
    )
