"""What ``verify`` found: :class:`VerifyResult`, with the rows that differ and the credentials
or tokens that do not follow from their source row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Difference:
    """A key present on both sides whose mapped values differ (column names only)."""

    key: Any
    columns: list[str]


@dataclass
class CredentialProblem:
    """A migrated account whose credential or token does not follow from its source row."""

    key: Any
    column: str
    reason: str
    """Stable code: ``credential.differs``, ``credential.not_wrapped``, ``wrap.digest``..."""


@dataclass
class VerifyResult:
    """Everything ``verify`` found; ``ok`` when every check holds."""

    migration: str
    source_rows: int = 0
    migrated: int = 0
    rejected: int = 0
    merged: int = 0
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    different: list[Difference] = field(default_factory=list)
    doubled: list[Any] = field(default_factory=list)
    """Keys the bookkeeping counts twice: written by a batch and also in the rejects, or
    rejected (or merged) twice. Each one makes the reconciliation off by one."""
    credential_problems: list[CredentialProblem] = field(default_factory=list)
    unnotified: list[Any] = field(default_factory=list)
    """Keys of accounts in a notification segment (``[notify]``) without their outbox row:
    their message (and its token) would never go out."""
    outbox_checked: int = 0
    credentials_checked: int = 0
    wrapped_checked: int = 0
    wrapped_total: int = 0
    tokens_checked: int = 0
    owned_by_new_system: int = 0
    """Credentials the new system changed after the migration wrote them (an upgrade on
    login, a reset): the new system's business, not a mismatch."""
    deleted_in_source: int = 0
    """Keys the migration wrote that ``sync`` found deleted in the source."""
    held: int = 0
    """Accounts whose latest legacy change ``sync`` rejected: they keep their last good
    values and are counted with the rejects."""
    chunks: int = 0
    chunks_bisected: int = 0
    checksums: str = "streamed"
    """``in-database`` or ``streamed``: where the target side's checksums were computed."""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reconciled(self) -> bool:
        """``source rows = migrated + rejected + merged``."""
        return self.source_rows == self.migrated + self.rejected + self.merged

    @property
    def ok(self) -> bool:
        """True when the counts reconcile and no row or credential is wrong."""
        return (
            self.reconciled
            and not self.missing
            and not self.extra
            and not self.different
            and not self.doubled
            and not self.credential_problems
            and not self.unnotified
            and not self.notes
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (keys, column names and reason codes only)."""
        return {
            "migration": self.migration,
            "ok": self.ok,
            "source_rows": self.source_rows,
            "migrated": self.migrated,
            "rejected": self.rejected,
            "merged": self.merged,
            "reconciled": self.reconciled,
            "missing": self.missing,
            "extra": self.extra,
            "different": [{"key": d.key, "columns": d.columns} for d in self.different],
            "doubled": self.doubled,
            "credential_problems": [
                {"key": p.key, "column": p.column, "reason": p.reason}
                for p in self.credential_problems
            ],
            "unnotified": self.unnotified,
            "outbox_checked": self.outbox_checked,
            "credentials_checked": self.credentials_checked,
            "wrapped_checked": self.wrapped_checked,
            "tokens_checked": self.tokens_checked,
            "owned_by_new_system": self.owned_by_new_system,
            "deleted_in_source": self.deleted_in_source,
            "held": self.held,
            "chunks": self.chunks,
            "chunks_bisected": self.chunks_bisected,
            "checksums": self.checksums,
            "notes": self.notes,
        }
