"""The pipeline's own stages: credentials (keep, wrap or reset) and duplicate accounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from authmigrate.batch import Batch, Record, Reject
from authmigrate.spec import CredentialsSpec, Spec, resolve_secret


def load_keyring(spec: CredentialsSpec) -> dict[str, bytes | str]:
    """Resolve the spec's ``credentials.keys`` (key id -> env:NAME) into the keyring.

    Raises:
        SpecError: a named environment variable is not set (the message names it, not a value).
    """
    return {
        kid: resolve_secret(ref, path=f"credentials.keys.{kid}") for kid, ref in spec.keys.items()
    }


class CredentialStage:
    """Imports each legacy hash into its canonical form, then keeps, wraps or drops it.

    ``dry=True`` (for ``plan``) identifies and imports only: no wrapping, whatever the policy.
    """

    def __init__(
        self, spec: CredentialsSpec, *, dry: bool = False, workers: int | None = None
    ) -> None:
        from authmigrate.credentials import CredentialPolicy

        self.spec = spec
        self.keyring = load_keyring(spec) if spec.keys else {}
        policy = "keep" if dry and spec.policy == "wrap" else spec.policy
        self.policy = CredentialPolicy(
            scheme=spec.scheme,
            policy=policy,
            weak=frozenset(spec.weak) if spec.weak is not None else None,
            params=dict(spec.params),
            profile=spec.profile,
        )
        self.workers = workers
        self.secret_columns = frozenset(c for c in (spec.column, spec.salt_column) if c)

    def columns(self) -> list[sa.Column[Any]]:
        return [
            sa.Column(self.spec.target_column, sa.Text),
            sa.Column(self.spec.reset_column, sa.Boolean, nullable=False, default=False),
        ]

    def tables(self, metadata: sa.MetaData) -> None:
        return None

    def process(self, batch: Batch) -> None:
        from authmigrate.credentials import prepare_batch

        target, reset = self.spec.target_column, self.spec.reset_column
        present: list[Record] = []
        items: list[tuple[str | None, str | None]] = []
        doomed: list[tuple[Record, Reject]] = []
        for rec in batch.records:
            raw = rec.source.get(self.spec.column)
            if isinstance(raw, bytes | bytearray | memoryview):
                raw = bytes(raw).decode("utf-8", "replace")
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if self.spec.on_missing == "reject":
                    doomed.append(
                        (
                            rec,
                            Reject(
                                rec.key,
                                "credential.missing",
                                self.spec.column,
                                "no password hash",
                                rec.source,
                            ),
                        )
                    )
                    continue
                rec.values[target], rec.values[reset] = None, True
                rec.segment, rec.scheme = "reset", None
                continue
            salt = rec.source.get(self.spec.salt_column) if self.spec.salt_column else None
            present.append(rec)
            items.append((str(raw).strip(), None if salt is None else str(salt)))
        if items:
            results = prepare_batch(items, self.policy, self.keyring, workers=self.workers)
            for rec, res in zip(present, results, strict=True):
                if isinstance(res, Exception):
                    code = getattr(res, "code", "credential.malformed")
                    doomed.append(
                        (rec, Reject(rec.key, code, self.spec.column, str(res), rec.source))
                    )
                    continue
                rec.values[target] = res.credential
                rec.values[reset] = res.credential is None
                rec.segment, rec.scheme = res.segment, res.scheme
        batch.drop(doomed)

    def write(self, conn: sa.Connection, batch: Batch, run_id: str) -> None:
        return None


class DuplicateStage:
    """Finds accounts whose unique fields (normalized email by default) are already taken.

    The first account in key order wins, whether it was migrated in this batch, an earlier batch,
    or was in the target before. A later one is rejected (``duplicate.<field>``) or, with
    ``run.duplicates = "merge"``, recorded as merged into the first.
    """

    secret_columns: frozenset[str] = frozenset()

    def __init__(
        self, spec: Spec, lookup: Callable[[str, list[Any]], dict[Any, Any]] | None
    ) -> None:
        self.fields = [f for f in spec.target.unique if f in spec.fields]
        self.merge = spec.run.duplicates == "merge"
        self.lookup = lookup
        self.seen: dict[str, dict[Any, Any]] | None = None
        if lookup is None:  # plan without a target: remember every value seen (memory grows)
            self.seen = {f: {} for f in self.fields}

    def columns(self) -> list[sa.Column[Any]]:
        return []

    def tables(self, metadata: sa.MetaData) -> None:
        return None

    def process(self, batch: Batch) -> None:
        for field in self.fields:
            values = [r.values.get(field) for r in batch.records]
            if self.lookup is not None:
                taken = self.lookup(field, values)
            else:
                assert self.seen is not None
                taken = self.seen[field]
            doomed: list[tuple[Record, Reject]] = []
            for rec, value in zip(batch.records, values, strict=True):
                if value is None:
                    continue
                first = taken.get(value)
                if first is None:
                    taken[value] = rec.key
                    continue
                rej = Reject(
                    rec.key,
                    f"duplicate.{field}",
                    field,
                    f"same {field} as account {first}",
                    rec.source,
                    outcome="merged" if self.merge else "rejected",
                    merged_into=first,
                    values=rec.values,
                )
                doomed.append((rec, rej))
            batch.drop(doomed)

    def write(self, conn: sa.Connection, batch: Batch, run_id: str) -> None:
        return None
