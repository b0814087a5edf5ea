"""The outbox check of ``verify``: every migrated account whose segment gets a message (and
every merged duplicate when ``merged`` does) has its row in ``authmigrate_outbox``.

An account's segment follows from its target row as the run chose it (:func:`segment_of`):
``reset`` when it must reset its password, ``wrapped`` for a wrapped credential, ``kept``
otherwise, then the spec's own segments by their ``when`` rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from authmigrate.reconcile.bookkeeping import Bookkeeping
from authmigrate.reconcile.ledger import order_key
from authmigrate.reconcile.result import VerifyResult
from authmigrate.reconcile.target import IN_LIST, _slices, _Target
from authmigrate.spec import Spec


def _loose(value: Any) -> Any:
    """A value as a ``when`` rule compares it: booleans and numbers read back from a database
    (``1`` for true, ``3.0`` for 3) compare equal to the spec's."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def segment_columns(spec: Spec, target: _Target) -> list[str]:
    """The target columns :func:`segment_of` reads (those the target table has)."""
    cred, notify = spec.credentials, spec.notify
    names: list[str] = []
    if cred is not None:
        names += [cred.target_column, cred.reset_column]
    for seg in notify.segments.values() if notify else ():
        names += list(seg.when or {})
    return [n for n in dict.fromkeys(names) if n in target.table.c]


def segment_of(spec: Spec, row: dict[str, Any]) -> str:
    """The notification segment of a migrated account, from its target row."""
    from authmigrate.reconcile.credentials import is_wrapped

    cred, notify = spec.credentials, spec.notify
    assert notify is not None
    segment = "kept"
    if cred is not None:
        if row.get(cred.reset_column):
            return "reset"
        if is_wrapped(row.get(cred.target_column)):
            segment = "wrapped"
    for name, seg in notify.segments.items():
        if (
            seg.enabled
            and seg.when
            and all(
                _loose(row.get(f)) in {_loose(v) for v in allowed}
                for f, allowed in seg.when.items()
            )
        ):
            return name
    return segment


def check_outbox(
    spec: Spec, target: _Target, book: Bookkeeping, res: VerifyResult, conn: sa.Connection
) -> None:
    """Count in ``res`` the accounts checked (``outbox_checked``) and those without their
    outbox row, queued, sending, sent or failed (``unnotified``). Nothing without
    ``[notify]``."""
    notify = spec.notify
    if notify is None:
        return
    from authmigrate.notify.outbox import OUTBOX_TABLE, outbox_table
    from authmigrate.notify.templates import BUILTIN_SEGMENTS
    from authmigrate.spec import SegmentSpec

    enabled = {
        name
        for name in dict.fromkeys([*BUILTIN_SEGMENTS, *notify.segments])
        if notify.segments.get(name, SegmentSpec(enabled=name != "kept")).enabled
    }
    if not enabled:
        return
    has_box = sa.inspect(conn).has_table(OUTBOX_TABLE)
    box = outbox_table(sa.MetaData())

    def queued(keys: Sequence[Any]) -> set[tuple[Any, str]]:
        # the outbox holds a source key as str(key): compared in the target's key form
        if not has_box or not keys:
            return set()
        stored = list(dict.fromkeys(str(k) for k in keys))
        return {
            (target.key_value(k), str(s))
            for k, s in conn.execute(
                sa.select(box.c.source_key, box.c.segment).where(
                    box.c.migration == spec.migration_name, box.c.source_key.in_(stored)
                )
            )
        }

    if "merged" in enabled:
        for page in book.ledger.merged_pages(IN_LIST):
            kids = [target.key_value(k) for k in page]
            have = queued([*page, *kids])
            for kid in kids:
                res.outbox_checked += 1
                if (kid, "merged") not in have:
                    res.unnotified.append(kid)
    columns = segment_columns(spec, target)
    for keys in book.ledger.written_batches():
        for part in _slices(keys, IN_LIST):
            states = book.key_states(part)  # deleted or held: no longer migrated
            kids = [kid for k in part if (kid := target.key_value(k)) not in states]
            rows = target.select(kids, columns)
            have = queued([*part, *kids])
            for kid in sorted(rows, key=order_key):
                row = rows[kid]
                segment = segment_of(spec, row)
                if segment not in enabled:
                    continue
                res.outbox_checked += 1
                if (kid, segment) not in have:
                    res.unnotified.append(row[""])
