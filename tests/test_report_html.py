"""``authmigrate report``: one self-contained HTML page, nothing secret in it, checked in a
real headless Chromium (Debian's package) through the DevTools protocol."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from passlib import hash as legacy_hash

from authmigrate import verify_and_update
from authmigrate.continuity.status import migration_status
from authmigrate.pipeline import run_migration
from authmigrate.report.html import write_html_report
from authmigrate.spec import load_spec
from tests.chromium_cdp import Browser, find_chromium, png_pixels
from tests.helpers_verify import OUTBOX_KEY, cli, make_source, write_spec

PLANTED_PASSWORD = "Planted-Passw0rd-9431!"
PLANTED_EMAIL = "planted.secret.person@hidden-shop.example"
SECTIONS = ("summary", "rejects", "credentials", "progress", "notifications", "throughput")


def _migrated(
    tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch, *, upgrade: bool = True
) -> Path:
    """A migration with rejects, merges, tokens, an outbox, a login upgrade and snapshots;
    source rows 5-8 carry a planted password and email."""
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    src = tmp_path / "legacy.db"
    make_source(src, 400, hashes=True)
    conn = sqlite3.connect(src)
    planted = legacy_hash.md5_crypt.hash(PLANTED_PASSWORD)
    conn.execute(
        "UPDATE legacy_users SET password_hash = ?, email = ? WHERE user_id = 5",
        (planted, PLANTED_EMAIL),
    )
    conn.execute(
        "UPDATE legacy_users SET password_hash = ?, email = ? WHERE user_id IN (6, 7)",
        (planted[:-4], f"x{PLANTED_EMAIL}"),  # truncated hash: rejected, email in rejects' raw
    )
    conn.commit()
    conn.close()
    spec_path = write_spec(
        tmp_path / "m.toml",
        src,
        target_url,
        credentials="keep",
        tokens=True,
        notify=True,
        batch=40,
    )
    spec = load_spec(spec_path)
    run_migration(spec)
    engine = sa.create_engine(target_url)
    with engine.begin() as c:
        uid, cred = c.execute(
            sa.text("SELECT user_id, password FROM accounts WHERE user_id = 5")
        ).one()
        ok, new = verify_and_update(PLANTED_PASSWORD, cred)
        assert ok and new is not None
        if upgrade:
            c.execute(sa.text("UPDATE accounts SET password = :p WHERE user_id = 5"), {"p": new})
        # outbox rows as notify leaves them: one sent, one failed, one in doubt per segment
        ids = c.execute(sa.text("SELECT min(id), max(id) FROM authmigrate_outbox")).one()
        c.execute(
            sa.text("UPDATE authmigrate_outbox SET status = 'sent' WHERE id = :i"), {"i": ids[0]}
        )
        c.execute(
            sa.text("UPDATE authmigrate_outbox SET status = 'sending' WHERE id = :i"), {"i": ids[1]}
        )
    engine.dispose()
    migration_status(spec)
    return spec_path


def _numbers_on_page(html: str) -> dict[str, int]:
    """Every ``data-k`` element's number, as the page shows it (thousands separators)."""
    found = re.findall(r'data-k="([^"]+)">([^<]*)<', html)
    return {k: int(v.replace(",", "")) for k, v in found}


def _expected_numbers(data: dict[str, Any]) -> dict[str, int]:
    out = {
        f"summary.{k}": data["summary"][k]
        for k in ("source_rows", "migrated", "rejected", "merged", "pending")
    }
    for k in ("legacy", "wrapped", "upgraded", "reset_required"):
        out[f"credentials.{k}"] = data["credentials"][k]
    out["dormant"] = data["dormant"]
    for what in ("rejected", "merged"):
        for e in data[what]:
            out[f"{what}.{e['reason']}"] = e["count"]
    for s in data["notifications"]:
        for k in ("queued", "sent", "failed", "in_doubt"):
            out[f"notifications.{s['segment']}.{k}"] = s[k]
    return out


def test_report_numbers_equal_the_json_and_the_bookkeeping(
    tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(_migrated(tmp_path, target_url, monkeypatch))
    out = tmp_path / "report.html"

    data = write_html_report(spec, out, json_path=tmp_path / "report.json")

    html = out.read_text(encoding="utf-8")
    assert json.loads((tmp_path / "report.json").read_text()) == data
    assert _numbers_on_page(html) == _expected_numbers(data)
    s = data["summary"]
    assert s["source_rows"] == 400 == s["migrated"] + s["rejected"] + s["merged"]
    engine = sa.create_engine(target_url)
    with engine.connect() as c:
        accounts = c.execute(sa.text("SELECT count(*) FROM accounts")).scalar_one()
        malformed = (
            c.execute(
                sa.text(
                    "SELECT source_key FROM authmigrate_rejects WHERE reason = 'credential.malformed' ORDER BY id"
                )
            )
            .scalars()
            .all()
        )
        outbox = dict(
            c.execute(
                sa.text("SELECT status, count(*) FROM authmigrate_outbox GROUP BY status")
            ).all()
        )
    engine.dispose()
    assert s["migrated"] == accounts
    entry = next(e for e in data["rejected"] if e["reason"] == "credential.malformed")
    assert entry["examples"] == malformed[:5] and entry["columns"] == ["password_hash"]
    assert entry["advice"]
    assert data["credentials"]["upgraded"] == 1
    assert sum(n["sent"] for n in data["notifications"]) == outbox["sent"] == 1
    assert sum(n["in_doubt"] for n in data["notifications"]) == outbox["sending"] == 1
    assert [p["upgraded"] for p in data["progress"]] == [0, 1]  # the run's snapshot, then status
    assert len(data["throughput"]) == 10  # 400 rows in batches of 40
    assert [r["command"] for r in data["runs"]] == ["run"]
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    # self-contained: nothing to fetch
    assert not re.search(r"<script|<link|<img|@import|url\(|src=|href=", html, re.I)


def test_report_holds_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    spec_path = _migrated(tmp_path, target_url, monkeypatch)
    out = tmp_path / "report.html"

    result = cli(
        "report",
        str(spec_path),
        "-o",
        str(out),
        "--json",
        str(tmp_path / "r.json"),
        cwd=tmp_path,
        env={"AUTHMIGRATE_OUTBOX_KEY": OUTBOX_KEY},
    )

    assert result.returncode == 0, result.stderr
    page = (
        out.read_text(encoding="utf-8")
        + (tmp_path / "r.json").read_text()
        + result.stdout
        + result.stderr
    )
    secrets = {PLANTED_PASSWORD, PLANTED_EMAIL, OUTBOX_KEY, os.environ["AUTHMIGRATE_OUTBOX_KEY"]}
    src = sqlite3.connect(tmp_path / "legacy.db")
    for email, cred in src.execute("SELECT email, password_hash FROM legacy_users"):
        secrets.add(email)
        if cred:
            secrets.add(cred)
            secrets.add(cred[-22:])  # the digest part alone
    src.close()
    engine = sa.create_engine(target_url)
    with engine.connect() as c:
        for cred, token in c.execute(sa.text("SELECT password, auth_token FROM accounts")):
            secrets.update(v for v in (cred, token) if v)
        secrets.update(
            v for (v,) in c.execute(sa.text("SELECT token_ciphertext FROM authmigrate_outbox")) if v
        )
    engine.dispose()
    assert len(secrets) > 800
    leaked = sorted(s for s in secrets if s in page)
    assert leaked == []


def test_report_on_a_bad_target_url_is_a_spec_error(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 5)
    spec = write_spec(tmp_path / "m.toml", src, "nosuchdb://x")

    result = cli("report", str(spec), "-o", str(tmp_path / "r.html"), cwd=tmp_path)

    assert result.returncode == 2
    assert "target.url" in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def _browser() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "no chromium binary: `scripts/ensure-servers` installs Debian's chromium package "
            "(apt-get install --no-install-recommends chromium); it could not be installed here"
        )
    return binary


def test_report_in_a_real_browser_loads_offline_with_charts_and_the_json_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = _browser()
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    spec = load_spec(_migrated(tmp_path, target_url, monkeypatch))
    out = tmp_path / "report.html"
    data = write_html_report(spec, out)
    url = out.resolve().as_uri()

    browser = Browser(binary)
    try:
        browser.open_page()
        browser.load(url)
        shown = json.loads(
            browser.evaluate(
                "JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-k]')]"
                ".map(e => [e.dataset.k, e.textContent.trim()])))"
            )
        )
        sections = browser.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
        charts = json.loads(
            browser.evaluate(
                "JSON.stringify([...document.querySelectorAll('svg')].map(s => ("
                "{id: s.id, r: s.getBoundingClientRect().toJSON(), "
                "marks: s.querySelectorAll('rect, polyline, circle').length})))"
            )
        )
        page_png = browser.screenshot(tmp_path / "report.png")
        chart_pngs = {}
        for chart in charts:
            r = chart["r"]
            clip = {
                "x": r["x"],
                "y": r["y"],
                "width": r["width"],
                "height": r["height"],
                "scale": 1,
            }
            shot = browser.send(
                "Page.captureScreenshot",
                {"format": "png", "clip": clip, "captureBeyondViewport": True},
            )
            chart_pngs[chart["id"]] = base64.b64decode(shot["data"])
        events = list(browser.events)
    finally:
        browser.close()

    requests = [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests == [url]  # the page itself, nothing else
    problems = [
        e
        for e in events
        if e.get("method") == "Runtime.exceptionThrown"
        or (
            e.get("method") == "Runtime.consoleAPICalled"
            and e["params"]["type"] in ("error", "warning")
        )
        or (
            e.get("method") == "Log.entryAdded"
            and e["params"]["entry"]["level"] in ("error", "warning")
        )
    ]
    assert problems == []
    assert sections == list(SECTIONS)
    assert {k: int(v.replace(",", "")) for k, v in shown.items()} == _expected_numbers(data)
    assert [c["id"] for c in charts] == ["chart-credentials", "chart-progress", "chart-throughput"]
    for chart in charts:
        assert chart["r"]["width"] > 300 and chart["r"]["height"] > 100, chart
        assert chart["marks"] > 0, chart
        width, height, rows = png_pixels(chart_pngs[chart["id"]])
        colours = {row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
        assert len(colours) > 8, chart["id"]  # drawn, not one flat colour
    assert (tmp_path / "report.png").stat().st_size == len(page_png) > 10_000
    width, height, rows = png_pixels(page_png)
    assert width >= 1000 and height > 1500
    assert len(set(rows)) > 100  # not blank: many distinct pixel rows


@pytest.mark.slow  # the demo's fixed costs (plan, run, verify, logins) take ~20 s
def test_demo_ends_by_writing_its_report_and_printing_its_path(tmp_path: Path) -> None:
    result = cli("demo", "--users", "400", "--dir", str(tmp_path / "demo"), cwd=tmp_path)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    # the report comes last, just before the commands to run on one's own database
    report = Path(lines[lines.index("Next, on your own database:") - 1])
    assert report == tmp_path / "demo" / "report.html"
    html = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    numbers = _numbers_on_page(html)
    assert numbers["summary.source_rows"] == 400


def test_a_recorded_verify_verdict_appears_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authmigrate.continuity.status import record_verify
    from authmigrate.report.html import render_html, report_data

    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    spec_path = _migrated(tmp_path, target_url, monkeypatch, upgrade=False)
    spec = load_spec(spec_path)
    env = {"AUTHMIGRATE_OUTBOX_KEY": OUTBOX_KEY}
    none_yet = report_data(spec)

    clean = cli("verify", str(spec_path), cwd=tmp_path, env=env)
    assert record_verify(spec, ok=clean.returncode == 0, source_rows=400)
    first = report_data(spec)
    engine = sa.create_engine(target_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE accounts SET name = 'tampered' WHERE user_id = 9"))
    engine.dispose()
    tampered = cli("verify", str(spec_path), cwd=tmp_path, env=env)
    assert record_verify(spec, ok=tampered.returncode == 0, source_rows=400)
    second = report_data(spec)

    assert none_yet["summary"]["verify"] is None
    assert "not run yet" in render_html(none_yet)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert first["summary"]["verify"]["ok"] is True
    assert first["summary"]["verify"]["at"] >= first["summary"]["last_run_at"]
    assert "verify ok" in render_html(first)
    assert tampered.returncode == 1
    assert second["summary"]["verify"]["ok"] is False
    assert "verify found problems" in render_html(second)
    assert [r["command"] for r in second["runs"]] == ["run"]
    assert [p["command"] for p in second["progress"]][-2:] == ["verify", "verify"]
    # the lag is measured from the last run, not from a verify
    assert migration_status(spec, record=False).last_run.command == "run"
