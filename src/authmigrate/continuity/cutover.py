"""``authmigrate cutover``: the last step before the login points at the new store.

Runs full sync passes until one finds nothing to carry (or ``max_passes`` is reached), then
``verify``, then builds the checklist an operator needs at the switch: counts, rejected rows
still open (by reason), accounts by credential state (still on a legacy hash, by scheme;
wrapped; upgraded on login; reset required) and the next steps. ``ok`` only when the last pass
found nothing and verify is clean.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from authmigrate.continuity.sync import SyncResult, is_upgraded, sync_migration
from authmigrate.db import make_engine
from authmigrate.reconcile.verify import VerifyResult, verify_migration
from authmigrate.spec import Spec

_PAGE = 10_000


@dataclass
class CredentialStates:
    """Migrated accounts by the state of their credential in the target."""

    legacy: dict[str, int] = field(default_factory=dict)
    """Still on a legacy hash, by scheme id: these users have not logged in since."""
    wrapped: int = 0
    upgraded: int = 0
    """A plain argon2id hash: upgraded on login by ``verify_and_update`` (or one imported)."""
    reset_required: int = 0
    disabled: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "legacy": self.legacy,
            "wrapped": self.wrapped,
            "upgraded": self.upgraded,
            "reset_required": self.reset_required,
            "disabled": self.disabled,
        }


@dataclass
class CutoverResult:
    """What ``cutover`` did and what is left to do."""

    migration: str
    passes: list[SyncResult] = field(default_factory=list)
    settled: bool = False
    """The last sync pass found nothing to carry."""
    verify: VerifyResult | None = None
    open_rejects: dict[str, int] = field(default_factory=dict)
    credentials: CredentialStates = field(default_factory=CredentialStates)
    next_steps: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the target is in step with the source and verify is clean."""
        return self.settled and self.verify is not None and self.verify.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "ok": self.ok,
            "settled": self.settled,
            "passes": [p.as_dict() for p in self.passes],
            "verify": self.verify.as_dict() if self.verify else None,
            "open_rejects": self.open_rejects,
            "credentials": self.credentials.as_dict(),
            "next_steps": self.next_steps,
            "seconds": round(self.seconds, 3),
        }


def credential_states(spec: Spec) -> CredentialStates:
    """Count migrated accounts by credential state, reading the credential column in pages."""
    from authmigrate.credentials import identify

    states = CredentialStates()
    cred = spec.credentials
    engine = make_engine(spec.target.url, path="target.url")
    try:
        schema, _, name = spec.target.table.rpartition(".")
        with engine.connect() as conn:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema or None)
        key = table.c[spec.target_key]
        disabled = spec.sync.disabled_column
        have = set(table.c.keys())
        cols: list[Any] = [key]
        if cred is not None:
            cols.append(table.c[cred.target_column])
        if disabled in have:
            cols.append(table.c[disabled])
        legacy: Counter[str] = Counter()
        after: Any = None
        with engine.connect() as conn:
            while True:
                stmt = sa.select(*cols).select_from(table).order_by(key).limit(_PAGE)
                if after is not None:
                    stmt = stmt.where(key > after)
                rows = conn.execute(stmt).all()
                if not rows:
                    break
                after = rows[-1][0]
                for row in rows:
                    if disabled in have and row[-1]:
                        states.disabled += 1
                        continue
                    if cred is None:
                        continue
                    value = row[1]
                    if value is None:
                        states.reset_required += 1
                    elif value.startswith("$wrap$"):
                        states.wrapped += 1
                    elif is_upgraded(value):
                        states.upgraded += 1
                    else:
                        try:
                            legacy[identify(value)] += 1
                        except Exception:  # noqa: BLE001 - a value the new system wrote
                            legacy["unknown"] += 1
        states.legacy = dict(legacy.most_common())
        return states
    finally:
        engine.dispose()


def cutover(
    spec: Spec,
    *,
    max_passes: int = 5,
    on_pass: Callable[[SyncResult], None] | None = None,
) -> CutoverResult:
    """Sync until a full pass finds nothing, verify, and build the switch-over checklist.

    Raises:
        SpecError, SourceError, TargetError, LockError: as ``sync`` and ``verify``.
    """
    from authmigrate.sinks.sql import SqlTarget

    started = time.monotonic()
    result = CutoverResult(migration=spec.migration_name)
    for _ in range(max(1, max_passes)):
        res = sync_migration(spec, full=True)
        result.passes.append(res)
        if on_pass is not None:
            on_pass(res)
        if res.changes == 0:
            result.settled = True
            break
    result.verify = verify_migration(spec)
    target = SqlTarget(spec)
    try:
        result.open_rejects = target.counts().by_reason
    finally:
        target.close()
    result.credentials = credential_states(spec)
    result.next_steps = _next_steps(spec, result)
    result.seconds = time.monotonic() - started
    return result


def _next_steps(spec: Spec, result: CutoverResult) -> list[str]:
    steps: list[str] = []
    if not result.settled:
        steps.append(
            "the source kept changing during every pass: put the old shop in maintenance "
            "(read-only) and run `authmigrate cutover` again"
        )
    if result.verify is not None and not result.verify.ok:
        steps.append("verify found problems: fix them (see above) before switching")
        return steps
    target = make_engine(spec.target.url, path="target.url").url.render_as_string(
        hide_password=True
    )
    steps.append(f"point the login at the new store: table {spec.target.table!r} in {target}")
    steps.append(
        "turn on the login-time upgrade in the new system: authmigrate.verify_and_update() "
        "on each login, writing the new hash it returns"
    )
    steps.append(
        "keep `authmigrate sync SPEC --follow` running until the old shop is read-only, "
        "then run `authmigrate cutover SPEC` once more"
    )
    if result.open_rejects:
        steps.append(
            f"{sum(result.open_rejects.values()):,} rejected rows are still open: fix them on "
            "the legacy side (sync carries them) or decide they stay out"
        )
    if result.credentials.legacy:
        steps.append(
            "accounts still on a legacy hash move on their next login; after the grace period "
            "`authmigrate sunset` deals with the rest ([sunset] after_days)"
        )
    return steps
