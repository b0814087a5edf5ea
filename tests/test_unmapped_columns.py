"""Unmapped source columns are never read, a reject's raw row is capped, and verify's chunk is
a spec setting (issue 9, item 15)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.helpers_verify import cli, scalar

ROWS = 1000
BLOB = 300 * 1024
BLOBS_MB = ROWS * BLOB / 2**20
"""The BLOBs alone are 300 MB. Reading only the mapped columns, run and verify peak where the
same command peaks on the same rows without the BLOB column (the baseline, measured in the
test: about 80 MB on the Python path, about 200 MB on the fast path, which loads pyarrow);
reading the BLOBs would add their 300 MB to it. Half of that is the margin allowed."""

PEAK_RSS = """
import re, runpy, sys
sys.argv = ["authmigrate", *sys.argv[1:]]
try:
    runpy.run_module("authmigrate", run_name="__main__")
    code = 0
except SystemExit as exc:
    code = exc.code
with open("/proc/self/status") as fh:
    peak = re.search(r"VmHWM:\\s+(\\d+) kB", fh.read()).group(1)
print("peak-rss-kb", peak, file=sys.stderr)
sys.exit(code)
"""
"""Runs the CLI and prints its peak RSS: ``VmHWM``, which starts afresh at ``exec`` (the
``ru_maxrss`` of ``getrusage`` would count the pytest process the child was forked from)."""


def peak_rss_mb(*args: str, cwd: Path) -> tuple[int, float, str]:
    """Run the CLI in a child process; its exit code, peak RSS in MB and output."""
    res = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *args], capture_output=True, text=True, cwd=cwd
    )
    found = re.search(r"peak-rss-kb (\d+)", res.stderr)
    assert found is not None, res.stdout + res.stderr
    return res.returncode, int(found.group(1)) / 1024, res.stdout + res.stderr


def blob_source(path: Path, blob: int = BLOB) -> None:
    """``ROWS`` users with a ``blob``-byte unmapped avatar each (300 KB; 0: NULL, the
    baseline); every 4th email is invalid."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE legacy_users (id INTEGER PRIMARY KEY, email TEXT, note TEXT, avatar BLOB)"
    )
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO legacy_users SELECT i,"
        " CASE WHEN i % 4 = 0 THEN 'broken-' || i ELSE 'u' || i || '@example.com' END,"
        " printf('%.*c', 5000, 'n'), CASE WHEN ? > 0 THEN randomblob(?) END FROM n",
        (ROWS, blob, blob),
    )
    conn.commit()
    conn.close()


def _blob_spec(folder: Path, blob: int) -> tuple[Path, str]:
    folder.mkdir()
    src = folder / "legacy.db"
    blob_source(src, blob)
    dst = f"sqlite:///{folder}/t.db"
    spec = folder / "m.toml"
    spec.write_text(
        f'[source]\nurl = "sqlite:///{src}"\ntable = "legacy_users"\nkey = "id"\n'
        f'[target]\nurl = "{dst}"\ntable = "accounts"\n'
        '[fields]\nid = "id"\nemail = { from = "email", normalize = "email" }\nnote = "note"\n'
    )
    return spec, dst


def test_unmapped_blob_is_never_read_and_rejects_stay_small(tmp_path: Path) -> None:
    base_spec, _ = _blob_spec(tmp_path / "baseline", 0)
    _, base_run_mb, _ = peak_rss_mb("run", str(base_spec), cwd=tmp_path)
    _, base_verify_mb, _ = peak_rss_mb("verify", str(base_spec), cwd=tmp_path)
    spec, dst = _blob_spec(tmp_path / "blobs", BLOB)
    code, run_mb, out = peak_rss_mb("run", str(spec), cwd=tmp_path)
    assert code == 1, out  # ran, with rejects
    assert scalar(dst, "SELECT count(*) FROM accounts") == ROWS * 3 // 4
    assert run_mb < base_run_mb + BLOBS_MB / 2, f"run {run_mb:.0f} MB, {base_run_mb:.0f} without"
    code, verify_mb, out = peak_rss_mb("verify", str(spec), cwd=tmp_path)
    assert code == 0, out
    assert verify_mb < base_verify_mb + BLOBS_MB / 2, (
        f"verify {verify_mb:.0f} MB, {base_verify_mb:.0f} without"
    )
    raw = json.loads(scalar(dst, "SELECT raw FROM authmigrate_rejects WHERE source_key = '4'"))
    assert "avatar" not in raw  # never read
    assert raw["note"].startswith("n" * 1024 + "… [truncated: 5,000 characters]")
    print(f"peak RSS: run {run_mb:.0f} MB ({base_run_mb:.0f} without the BLOBs), ", end="")
    print(f"verify {verify_mb:.0f} MB ({base_verify_mb:.0f} without)")


def test_raw_row_is_capped_per_value_and_in_total() -> None:
    from authmigrate.sinks.sql import RAW_ROW_CAP, raw_row

    row = {"id": 1, "photo": b"\x01" * BLOB, **{f"c{i}": "x" * 3000 for i in range(40)}}
    text = raw_row(row, frozenset())
    assert len(text) < RAW_ROW_CAP + 4096
    shown = json.loads(text)
    assert shown["photo"].endswith(f"… [truncated: {BLOB:,} bytes]")
    assert shown["c0"].endswith("… [truncated: 3,000 characters]")
    assert shown["c39"].startswith("[truncated: the raw row is kept up to")
    assert shown["id"] == 1


def test_verify_chunk_size_is_a_spec_setting(tmp_path: Path) -> None:
    src = tmp_path / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE legacy_users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany(
        "INSERT INTO legacy_users VALUES (?, ?)", [(i, f"u{i}@example.com") for i in range(1, 1001)]
    )
    conn.commit()
    conn.close()
    spec = tmp_path / "m.toml"
    body = (
        f'[source]\nurl = "sqlite:///{src}"\ntable = "legacy_users"\nkey = "id"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/t.db"\ntable = "accounts"\n'
        '[fields]\nid = "id"\nemail = "email"\n'
    )
    spec.write_text(body)
    assert cli("run", str(spec), cwd=tmp_path).returncode == 0
    default = cli("verify", str(spec), cwd=tmp_path)
    assert default.returncode == 0 and "1 (in-database)" in default.stdout, default.stdout
    spec.write_text(body + "[verify]\nchunk_size = 300\n")
    chunked = cli("verify", str(spec), cwd=tmp_path)
    assert chunked.returncode == 0 and "4 (in-database)" in chunked.stdout, chunked.stdout
    spec.write_text(body + "[verify]\nchunk_size = 0\n")
    bad = cli("verify", str(spec), cwd=tmp_path)
    assert bad.returncode == 2 and "verify.chunk_size" in bad.stderr, bad.stderr
