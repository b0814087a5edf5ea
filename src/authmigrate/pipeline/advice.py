"""What the user should do next: the likely fix for each reject reason, the next command after
plan, run and verify, and how long a run will take on this machine.

The library decides; ``cli.py`` and :mod:`authmigrate.report` only print.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

FIXES: dict[str, str] = {
    "credential.unrecognized": (
        "no scheme of credentials.scheme reads these hashes: run `authmigrate init` on the "
        "source to sample them, or add their scheme (see `authmigrate schemes`; a bare digest "
        'is "digest" with params.algorithm)'
    ),
    "credential.malformed": (
        "the hashes name a scheme but do not parse (truncated, edited): repair them in the "
        "source, or let these accounts reset their password (their old one cannot be checked)"
    ),
    "credential.missing": (
        'NULL or empty hashes: set credentials.on_missing = "reset" to migrate these accounts '
        "as needing a password reset"
    ),
    "credential.missing_key": "a key the hashes need is not in credentials.keys: add it",
    "credential.bad_params": "credentials.params do not fit these hashes: check them",
    "field.missing": (
        "a required field is empty: fill it in the source, give the field a default, or drop "
        "required = true"
    ),
    "field.invalid_email": (
        'not email addresses: correct them in the source, or drop normalize = "email" if the '
        "column is a login name"
    ),
    "field.invalid_type": (
        "values that are not of the field's type: correct them in the source, or change the "
        "field's type"
    ),
    "field.out_of_range": (
        'numbers too big for the field\'s type: use type = "bigint" (or text) for that field'
    ),
    "field.invalid_text": "NUL characters or broken Unicode: clean them in the source",
    "field.invalid_encoding": (
        "bytes that are not UTF-8: set source.encoding to the source's encoding, or clean them"
    ),
    "field.too_long": (
        "longer than the field's max_length: raise it (and the target column), or shorten them"
    ),
    "target.key_exists": (
        "the target already holds these keys (written by someone else): remove them there, or "
        "migrate into another table"
    ),
    "target.constraint": (
        "the target refused these rows (a constraint the spec does not know): see each "
        "reject's detail and fit the spec or the table"
    ),
    "source.null_key": "rows whose key is NULL: give them a key in the source",
    "export.too_large": (
        "accounts whose user object alone exceeds the provider's file limit: shorten the "
        "fields that carry long values (usually custom fields going to metadata)"
    ),
    "export.invalid_key": "legacy keys longer than the provider's ids: see docs/exports.md",
}
"""The likely fix of each reject reason, in one line."""

DUPLICATE_FIX = (
    'accounts sharing a unique value: set run.duplicates = "merge" to merge each into the '
    "first account, or correct the source"
)


def fix_for(reason: str) -> str:
    """The likely fix of a reject reason, in one line."""
    if reason.startswith("duplicate."):
        return DUPLICATE_FIX
    return FIXES.get(reason, "see the reject reasons in docs/spec.md")


def fixes(reasons: Sequence[str]) -> dict[str, str]:
    """``{reason: likely fix}`` for the reject reasons given."""
    return {reason: fix_for(reason) for reason in reasons}


BOOKKEEPING = {
    "authmigrate_rejects": "every row not migrated: source_key, outcome, reason, column_name, "
    "detail, raw (credentials redacted)",
    "authmigrate_batches": "one row per committed batch: key range, counts, the keys it wrote",
    "authmigrate_runs": "every run: status, counts, error",
}
"""The tables (in the target) that hold the rest of what a report shows in part."""


def bookkeeping(migration: str) -> dict[str, Any]:
    """Where to look for everything a report shows only in part."""
    quoted = migration.replace("'", "''")
    return {
        "tables": BOOKKEEPING,
        "rejects_query": (
            "SELECT source_key, outcome, reason, column_name, detail FROM authmigrate_rejects "
            f"WHERE migration = '{quoted}' ORDER BY reason, id"
        ),
    }


def next_step(action: str, why: str, spec_path: str | None = None) -> dict[str, str]:
    """``{"action", "command", "why"}``: ``action`` is run, verify, sync, notify,
    fix-and-rerun or done."""
    spec = spec_path or "migration.toml"
    commands = {
        "run": f"authmigrate run {spec}",
        "verify": f"authmigrate verify {spec}",
        "sync": f"authmigrate sync {spec}, then authmigrate verify {spec}",
        "notify": f"authmigrate notify {spec} --dry-run --out outbox/  (then without --dry-run)",
        "fix-and-rerun": f"authmigrate plan {spec}  (after the fix), then authmigrate run {spec}",
        "done": "",
    }
    return {"action": action, "command": commands[action], "why": why}


# -- how long a run takes --------------------------------------------------------------------

SLOW_WRAP_SECONDS = 600.0
"""Above this, plan shows the keep + upgrade-on-login alternative to wrapping now."""


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def wrap_seconds_per_account(
    credentials: Sequence[str], *, profile: str, keyring: Any = None
) -> float | None:
    """One core's time to wrap one account, measured now on a few of the plan's credentials
    (the median; None when there is none to try)."""
    from authmigrate.credentials import wrap

    times = []
    for credential in list(credentials)[:5]:
        start = time.perf_counter()
        try:
            wrap(credential, keyring=keyring, profile=profile)
        except ValueError:
            continue
        times.append(time.perf_counter() - start)
    if not times:
        return None
    return sorted(times)[len(times) // 2]


def human_duration(seconds: float) -> str:
    """``"3 h 20 min"``, ``"12 min"``, ``"40 s"``."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
