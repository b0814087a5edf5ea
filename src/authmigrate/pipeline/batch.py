"""What flows through the pipeline: records, rejects, batches, and the Stage seam.

A batch is read by key range from the source, turned into :class:`Record` objects by the field
transforms, then handed to each :class:`Stage` in turn (credentials, duplicates, tokens,
outbox). A stage fills target values, moves a record to the rejects, and may write rows of its
own tables; the sink then writes the records, rejects and checkpoint in one target transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import sqlalchemy as sa


@dataclass(frozen=True, slots=True)
class InvalidValue:
    """A source value that could not be read as what it claims to be (bytes that are not
    UTF-8, a lone surrogate, a JSON ``NaN``, an integer beyond 64 bits).

    A source hands it over in place of the value, so that only this row is rejected (with
    ``reason`` and the column) and the run goes on. It never holds the value as text: its
    ``str`` is the reason, and ``raw`` (bytes, for the rejects table's hex) is kept out of
    its ``repr``.
    """

    reason: str
    """Stable reject code: ``field.invalid_encoding``, ``field.invalid_text``, ..."""
    detail: str
    raw: bytes | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"<{self.reason}>"


@dataclass(slots=True)
class Record:
    """One source row on its way to the target."""

    key: Any
    source: dict[str, Any]
    values: dict[str, Any]
    segment: str = "kept"
    """Notification segment: kept, wrapped, reset, merged, or one the spec defines."""
    scheme: str | None = None
    """The credential scheme found for this account, if any."""
    token: str | None = field(default=None, repr=False)
    """The plaintext of the record's new token, in memory only: set by ``TokenStage`` for the
    outbox stage, never a target value."""


@dataclass(slots=True)
class Reject:
    """A source row that is not migrated as an account of its own, and why."""

    key: Any
    reason: str
    """Stable dotted code, e.g. ``field.invalid_email``, ``credential.malformed``."""
    column: str | None
    detail: str
    source: dict[str, Any]
    outcome: Literal["rejected", "merged"] = "rejected"
    merged_into: Any = None
    values: dict[str, Any] | None = None
    """Target values computed so far (a merged duplicate keeps its email for the outbox)."""
    segment: str = "merged"


@dataclass
class Batch:
    """One key range of the source."""

    number: int
    first_key: Any
    last_key: Any
    rows_read: int
    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    source_rows: list[dict[str, Any]] | None = field(default=None, repr=False)
    """The rows as read, so a failed batch can be done again from scratch."""
    range_id: int | None = None
    """The key range the batch belongs to (a run on Dask, ``authmigrate.cluster``); None for
    a run in one process."""

    def drop(self, doomed: list[tuple[Record, Reject]]) -> None:
        """Move records out of the accounts to write and into the rejects, in one pass."""
        if not doomed:
            return
        ids = {id(r) for r, _ in doomed}
        self.records = [r for r in self.records if id(r) not in ids]
        self.rejects.extend(rej for _, rej in doomed)

    @property
    def merged(self) -> list[Reject]:
        return [r for r in self.rejects if r.outcome == "merged"]


class Stage(Protocol):
    """A step applied to every batch after the field transforms.

    Implementations: the credential stage (``stages.CredentialStage``), the token stage
    (``tokens.TokenStage``) and the outbox stage (``notify.outbox.OutboxStage``).
    """

    secret_columns: frozenset[str]
    """Source columns this stage reads that must be redacted in rejects and reports."""

    def columns(self) -> list[sa.Column[Any]]:
        """Target-table columns this stage fills (created with the target table)."""
        ...

    def tables(self, metadata: sa.MetaData) -> None:
        """Declare side tables of this stage in the target's metadata (e.g. the outbox)."""
        ...

    def process(self, batch: Batch) -> None:
        """Fill ``record.values`` for this stage's columns; reject records it cannot handle."""
        ...

    def write(self, conn: sa.Connection, batch: Batch, run_id: str) -> None:
        """Write this stage's side rows, inside the batch's transaction."""
        ...
