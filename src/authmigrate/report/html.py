"""The migration report a shop owner signs off: one self-contained HTML file.

:func:`report_data` gathers every figure with aggregate queries (counts, ``GROUP BY``, a few
example keys per reason, the runs, batches and snapshots, which are one row per run, batch or
status call, never one per account); :func:`render_html` turns it into a page with a Jinja2
template and inline SVG charts. The page loads nothing: no script, no CDN, no web font, so it
opens offline in any browser and prints as it shows.

What is never in the report: credentials, tokens, keys, emails or any other row value; a
rejected or merged row is shown by its source key only.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from jinja2 import Environment, PackageLoader, select_autoescape

from authmigrate.continuity.status import (
    DORMANT_DAYS,
    MigrationStatus,
    last_verify,
    migration_status,
    read_snapshots,
)
from authmigrate.db import make_engine, sqlite_file
from authmigrate.sinks.sql import bookkeeping_tables, decode_key
from authmigrate.spec import Spec

EXAMPLE_KEYS = 5
"""Example source keys shown per reject reason."""

ADVICE: dict[str, str] = {
    "field.invalid_email": "Correct the address in the legacy shop, or accept that these "
    "customers sign up again; re-run to pick up fixed rows.",
    "field.invalid_encoding": "The column holds bytes that are not text in the source's "
    "encoding: fix the rows or declare the column's encoding in the spec.",
    "field.invalid_text": "Control or invisible characters: clean the value in the legacy shop.",
    "field.invalid_type": "The value does not fit the field's type: fix the row or change the "
    "field's type in the spec.",
    "field.missing": "A required field is empty: fill it in the legacy shop or make it optional.",
    "field.out_of_range": "The value is outside what the target column holds: fix the row or "
    "widen the column.",
    "field.too_long": "Longer than the field's max_length: shorten it or raise max_length.",
    "credential.malformed": "The hash is damaged (truncated or edited): these customers need a "
    "password reset.",
    "credential.unrecognized": "No known scheme reads this hash: name the scheme in "
    "credentials.scheme, or plan a reset for these customers.",
    "credential.missing": "No password hash (on_missing = reject): use on_missing = reset to "
    "migrate them with a reset.",
    "credential.missing_key": "The hash needs a key (pepper) the keyring does not hold: add it "
    "to credentials.keys.",
    "credential.bad_params": "The scheme's parameters do not read this hash: check "
    "credentials.params.",
    "credential.unknown_format": "The row's format column names no entry of "
    "credentials.scheme_map: add it.",
    "source.null_key": "The source key is NULL: give these rows a key in the legacy shop.",
    "target.key_exists": "The target already holds this key from elsewhere: check whether it is "
    "the same customer before removing either.",
    "target.constraint": "The target refused the row (a constraint): read the reason in the "
    "rejects table.",
}
_ADVICE_BY_FAMILY = {
    "duplicate": "Merged into the account that holds the same value; the customer keeps one "
    "login. Check the merged keys if two people shared an address.",
    "field": "Fix the value in the legacy shop and run again.",
    "credential": "These customers need a password reset.",
}

_SVG_WIDTH = 720


def advice(reason: str) -> str:
    """One line of what to do about a reject or merge ``reason``."""
    found = ADVICE.get(reason)
    if found:
        return found
    family = reason.partition(".")[0]
    return _ADVICE_BY_FAMILY.get(family, "See the rejects table's detail for these rows.")


# -- gathering --------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat(" ") + " UTC"


def _reasons(
    conn: sa.Connection, rejects: sa.Table, migration: str, outcome: str, examples: int
) -> list[dict[str, Any]]:
    r = rejects.c
    groups = conn.execute(
        sa.select(r.reason, r.column_name, sa.func.count())
        .where(r.migration == migration, r.outcome == outcome)
        .group_by(r.reason, r.column_name)
        .order_by(sa.func.count().desc(), r.reason)
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for reason, column, n in groups:
        entry = out.setdefault(
            reason, {"reason": reason, "count": 0, "columns": [], "examples": []}
        )
        entry["count"] += int(n)
        if column and column not in entry["columns"]:
            entry["columns"].append(column)
    for entry in out.values():
        if examples:
            keys = conn.execute(
                sa.select(r.source_key)
                .where(r.migration == migration, r.outcome == outcome, r.reason == entry["reason"])
                .order_by(r.id)
                .limit(examples)
            ).scalars()
            entry["examples"] = ["(no key)" if k is None else str(decode_key(k)) for k in keys]
        entry["advice"] = advice(entry["reason"])
    return sorted(out.values(), key=lambda e: (-e["count"], e["reason"]))


def _runs(conn: sa.Connection, runs: sa.Table, migration: str) -> list[dict[str, Any]]:
    r = runs.c
    rows = conn.execute(
        sa.select(
            r.command, r.status, r.started_at, r.ended_at, r.rows_read, r.migrated, r.rejected
        )
        .where(r.migration == migration)
        .order_by(r.started_at.desc())
        .limit(100)
    ).all()
    out = []
    for row in reversed(rows):
        seconds = (row.ended_at - row.started_at).total_seconds() if row.ended_at else None
        rate = int(row.rows_read / seconds) if seconds and row.rows_read else None
        out.append(
            {
                "command": row.command,
                "status": row.status,
                "started_at": _iso(row.started_at),
                "seconds": None if seconds is None else round(seconds, 2),
                "rows_read": int(row.rows_read),
                "migrated": int(row.migrated),
                "rejected": int(row.rejected),
                "rows_per_second": rate,
            }
        )
    return out


def _throughput(
    conn: sa.Connection, batches: sa.Table, runs: sa.Table, migration: str
) -> list[dict[str, Any]]:
    """Rows/s of each batch (rows read / time since the previous commit of its run, or since
    the run started for its first batch), the newest 2,000 batches."""
    b = batches.c
    previous: dict[str, dt.datetime] = {
        run_id: started
        for run_id, started in conn.execute(
            sa.select(runs.c.run_id, runs.c.started_at).where(runs.c.migration == migration)
        )
    }
    rows = conn.execute(
        sa.select(b.batch_no, b.run_id, b.rows_read, b.committed_at)
        .where(b.migration == migration)
        .order_by(b.batch_no.desc())
        .limit(2000)
    ).all()
    out = []
    for row in reversed(rows):
        before = previous.get(row.run_id)
        previous[row.run_id] = row.committed_at
        if before is None:
            continue
        seconds = (row.committed_at - before).total_seconds()
        if seconds > 0:
            out.append(
                {
                    "batch": int(row.batch_no),
                    "run": row.run_id,
                    "rate": round(row.rows_read / seconds),
                }
            )
    return out


def _verify(engine: sa.Engine, migration: str) -> dict[str, Any] | None:
    """The newest ``verify`` verdict recorded in the snapshots."""
    found = last_verify(engine, migration)
    if found is None:
        return None
    verdict, at = found
    return {"status": verdict, "ok": verdict == "ok", "at": _iso(at)}


def _notifications(engine: sa.Engine, spec: Spec) -> list[dict[str, Any]]:
    from authmigrate.notify import status as outbox_status

    out = []
    for segment, counts in outbox_status(engine, spec).items():
        out.append(
            {
                "segment": segment,
                "queued": counts.get("queued", 0),
                "sent": counts.get("sent", 0),
                "failed": counts.get("failed", 0),
                "in_doubt": counts.get("sending", 0),
            }
        )
    return out


def _credentials(status: MigrationStatus) -> dict[str, Any]:
    from authmigrate.credentials import schemes

    weak = {s.id for s in schemes() if s.weak}
    cred = status.credentials
    rows = [
        {"scheme": scheme, "state": "legacy", "count": n, "weak": scheme in weak}
        for scheme, n in cred.legacy.items()
    ]
    rows += [
        {"scheme": scheme, "state": "wrapped", "count": n, "weak": scheme in weak}
        for scheme, n in cred.wrapped.items()
    ]
    rows.append({"scheme": "argon2id", "state": "upgraded", "count": cred.upgraded, "weak": False})
    rows.append({"scheme": "(none)", "state": "reset", "count": cred.reset, "weak": False})
    return {
        **cred.as_dict(),
        "weak_legacy": sum(n for s, n in cred.legacy.items() if s in weak),
        "rows": rows,
    }


def report_data(
    spec: Spec, *, examples: int = EXAMPLE_KEYS, dormant_days: int = DORMANT_DAYS
) -> dict[str, Any]:
    """Every figure of the report, as JSON-ready data (what ``report --json`` writes).

    Raises:
        SpecError: a URL in the spec does not parse.
        SourceError: the source cannot be counted.
    """
    engine = make_engine(spec.target.url, path="target.url")
    try:
        status = migration_status(spec, record=False, dormant_days=dormant_days, engine=engine)
        name = spec.migration_name
        metadata = sa.MetaData()
        runs, batches, rejects = bookkeeping_tables(metadata)
        file = sqlite_file(engine)
        started = (file is None or file.exists()) and sa.inspect(engine).has_table(batches.name)
        rejected: list[dict[str, Any]] = []
        merged: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        throughput: list[dict[str, Any]] = []
        verify = None
        notifications: list[dict[str, Any]] = []
        snapshots = []
        if started:
            with engine.connect() as conn:
                rejected = _reasons(conn, rejects, name, "rejected", examples)
                merged = _reasons(conn, rejects, name, "merged", examples)
                history = _runs(conn, runs, name)
                throughput = _throughput(conn, batches, runs, name)
            notifications = _notifications(engine, spec)
            verify = _verify(engine, name)
            snapshots = read_snapshots(engine, name)
    finally:
        engine.dispose()
    return {
        "migration": name,
        "generated_at": _iso(status.taken_at),
        "summary": {
            "source_rows": status.source_rows,
            "migrated": status.migrated,
            "rejected": status.rejected,
            "merged": status.merged,
            "pending": status.pending,
            "deleted_in_source": status.deleted_in_source,
            "balanced": status.source_rows
            == status.migrated + status.rejected + status.merged + status.pending,
            "verify": verify,
            "last_run_at": None
            if status.last_run is None
            else _iso(status.last_run.ended_at or status.last_run.started_at),
        },
        "runs": history,
        "rejected": rejected,
        "merged": merged,
        "credentials": _credentials(status),
        "dormant": status.dormant,
        "dormant_days": status.dormant_days,
        "progress": [
            {
                "at": _iso(s.taken_at),
                "command": s.command,
                "legacy": s.legacy + s.wrapped,
                "upgraded": s.upgraded,
                "reset": s.reset,
            }
            for s in snapshots
        ],
        "notifications": notifications,
        "throughput": throughput,
    }


# -- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar of a horizontal bar chart, in SVG units."""

    label: str
    value: int
    y: float
    width: float
    css: str


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def bar_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the credentials chart: one bar per scheme and state."""
    shown = [r for r in rows if r["count"] > 0]
    top = max((r["count"] for r in shown), default=0) or 1
    label_w, bar_h, gap = 230.0, 18.0, 8.0
    span = _SVG_WIDTH - label_w - 80
    bars = [
        Bar(
            label=f"{r['scheme']} ({r['state']})",
            value=r["count"],
            y=10 + i * (bar_h + gap),
            width=max(span * r["count"] / top, 1.5),
            css=f"s-{r['state']}" + (" weak" if r.get("weak") else ""),
        )
        for i, r in enumerate(shown)
    ]
    height = 20 + len(bars) * (bar_h + gap)
    return {"bars": bars, "label_w": label_w, "bar_h": bar_h, "height": height}


def line_chart(
    series: dict[str, list[float]], labels: list[str], *, height: float = 220
) -> dict[str, Any]:
    """Geometry of a line chart: ``series`` name -> values (one per label), in SVG units."""
    left, right, top, bottom = 70.0, 20.0, 14.0, 34.0
    n = max((len(v) for v in series.values()), default=0)
    peak = 4 * _nice_max(max((max(v) for v in series.values() if v), default=0) / 4)
    plot_w, plot_h = _SVG_WIDTH - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    lines = [
        {
            "name": name,
            "css": f"l-{i}",
            "points": " ".join(f"{x(j):.1f},{y(v):.1f}" for j, v in enumerate(values)),
            "dots": [(round(x(j), 1), round(y(v), 1)) for j, v in enumerate(values)]
            if len(values) <= 60
            else [],
        }
        for i, (name, values) in enumerate(series.items())
    ]
    ticks = [{"y": round(y(peak * k / 4), 1), "label": _short(peak * k / 4)} for k in range(5)]
    xlabels = []
    if n:
        picks = sorted({0, n - 1, *(round(k * (n - 1) / 4) for k in range(1, 4))})
        xlabels = [
            {"x": round(x(i), 1), "label": labels[i], "anchor": _anchor(i, n)}
            for i in picks
            if i < len(labels)
        ]
    return {
        "lines": lines,
        "ticks": ticks,
        "xlabels": xlabels,
        "height": height,
        "left": left,
        "right": _SVG_WIDTH - right,
        "bottom": height - bottom,
    }


def _anchor(i: int, n: int) -> str:
    if n > 1 and i == 0:
        return "start"
    if n > 1 and i == n - 1:
        return "end"
    return "middle"


def _time_labels(stamps: list[str]) -> list[str]:
    """Dates, or date and time when the points fall on fewer days than there are points."""
    days = {s[:10] for s in stamps}
    if len(days) == len(stamps):
        return [s[:10] for s in stamps]
    return [s[5:16] for s in stamps]


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.0f}"


# -- rendering --------------------------------------------------------------------------------


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("authmigrate.report", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["n"] = lambda v: "–" if v is None else f"{v:,}"
    env.filters["short"] = _short
    return env


def render_html(data: dict[str, Any]) -> str:
    """The report page for ``data`` (from :func:`report_data`)."""
    progress = data["progress"]
    charts = {
        "credentials": bar_chart(data["credentials"]["rows"]),
        "progress": line_chart(
            {
                "on a legacy hash (kept or wrapped)": [p["legacy"] for p in progress],
                "upgraded to argon2id": [p["upgraded"] for p in progress],
            },
            _time_labels([p["at"] or "" for p in progress]),
        ),
        "throughput": line_chart(
            {"rows/s per batch": [t["rate"] for t in data["throughput"]]},
            [f"batch {t['batch']}" for t in data["throughput"]],
            height=180,
        ),
    }
    template = _environment().get_template("report.html.j2")
    return template.render(d=data, charts=charts, width=_SVG_WIDTH)


def write_html_report(
    spec: Spec,
    path: Path,
    *,
    examples: int = EXAMPLE_KEYS,
    json_path: Path | None = None,
) -> dict[str, Any]:
    """Gather, render and write the report to ``path`` (atomically); optionally its data as
    JSON to ``json_path``. Returns the data."""
    data = report_data(spec, examples=examples)
    page = render_html(data)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    if json_path is not None:
        json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
