"""Hostile input: names that try to break out of SQL are refused, values never become SQL text,
and any mix of NULLs, wrong types, overlong values and odd Unicode is migrated or rejected with
a reason, with the reconciliation holding (property tests)."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec, load_spec_text
from tests.helpers_verify import cli, make_source, table_rows, write_spec

SQLISH = [
    "x'); DROP TABLE accounts;--",
    "'; DELETE FROM authmigrate_batches; --",
    "a@example.com' OR '1'='1",
    'Robert"); DROP TABLE legacy_users; /*',
    "1; UPDATE accounts SET email = NULL",
    "$1$abc$",
]

# -- hostile names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        ('table = "legacy_users"', 'table = "legacy_users\\"; DROP TABLE x; --"'),
        ('table = "accounts"', 'table = "accounts; DROP TABLE legacy_users"'),
        ('table = "accounts"', 'table = "acc/*x*/ounts"'),
        ('key = "user_id"', 'key = "user_id --"'),
        ('origin = { value = "legacy" }', '"or\'igin" = { value = "legacy" }'),
        ('name = { from = "name"', 'name = { from = "name\\"); --"'),
        ('url = "sqlite:///', 'query = "SELECT 1"\nurl = "sqlite:///'),
    ],
)
def test_hostile_table_and_column_names_are_refused_with_exit_2(
    tmp_path: Path, edit: tuple[str, str]
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 5)
    spec = write_spec(tmp_path / "m.toml", src, f"sqlite:///{tmp_path}/t.db")
    spec.write_text(spec.read_text().replace(*edit, 1))
    proc = cli("run", str(spec), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "t.db").exists()
    with sqlite3.connect(src) as conn:  # the source is untouched
        assert conn.execute("SELECT count(*) FROM legacy_users").fetchone() == (5,)


def test_hostile_csv_header_names_are_quoted_when_staged(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    hostile = 'x"); DROP TABLE src; --'
    csv.write_text(f'id,email,"{hostile.replace(chr(34), chr(34) * 2)}"\n1,a@example.com,z\n')
    spec = load_spec_text(
        f'[source]\nurl = "csv:///{csv}"\nkey = "id"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/t.db"\ntable = "accounts"\n'
        '[fields]\nid = "id"\nemail = "email"\n'
    )
    result = run_migration(spec)
    assert (result.migrated, result.rejected) == (1, 0)
    assert verify_migration(spec).ok


@contextmanager
def captured_sql() -> Iterator[list[str]]:
    """Every SQL statement text any engine sends while the block runs."""
    statements: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", listen)


def test_sql_looking_values_round_trip_and_never_become_sql_text(
    tmp_path: Path, target_url: str
) -> None:
    src = tmp_path / "legacy.db"
    make_source(src, 40)
    with sqlite3.connect(src) as conn:
        for i, value in enumerate(SQLISH, start=1):
            conn.execute("UPDATE legacy_users SET name = ? WHERE user_id = ?", (value, i))
        conn.execute("UPDATE legacy_users SET email = ? WHERE user_id = 30", (SQLISH[0],))
    spec = load_spec(write_spec(tmp_path / "m.toml", src, target_url, batch=7))
    with captured_sql() as statements:
        result = run_migration(spec)
        checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
    rows = {r[0]: r for r in table_rows(target_url, "accounts", "user_id", exclude=())}
    names = table_rows(target_url, "accounts", "user_id")
    assert names  # the tables are all still there
    engine = sa.create_engine(target_url)
    with engine.connect() as conn:
        got = dict(
            conn.execute(sa.text("SELECT user_id, name FROM accounts WHERE user_id <= 6")).all()
        )
        reason = conn.execute(
            sa.text("SELECT reason FROM authmigrate_rejects WHERE source_key = '30'")
        ).scalar()
    engine.dispose()
    assert got == {i: v for i, v in enumerate(SQLISH, start=1) if i in got}
    assert len(got) >= 5 and reason == "field.invalid_email"
    assert result.read == 40 and rows
    for value in SQLISH:
        assert not any(value in s for s in statements), value


# -- property tests over hostile rows --------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "e\u0301le\u0300ve",  # combining marks
        "\u202eevil\u202c@example.com",  # right-to-left override
        "zero\u200bwidth@example.com",
        "\ufeffbom@example.com",
        "ﬁ@ｅｘａｍｐｌｅ.com",  # compatibility forms
        "a\x00b",
        "😀@example.com",
        "x" * 5000,
        "",
        "   ",
        *SQLISH,
    ]
)
ANY_VALUE = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    ODD_TEXT,
    st.text(max_size=40),
    st.emails(),
)
ROW = st.fixed_dictionaries(
    {
        "email": st.one_of(st.emails(), ANY_VALUE),
        "name": ANY_VALUE,
        "created": st.one_of(st.datetimes().map(str), ANY_VALUE),
        "active": ANY_VALUE,
        "visits": ANY_VALUE,
    }
)

PROPERTY_SPEC = """
[source]
url = "{url}"
{table}key = "user_id"
[target]
url = "sqlite:///{dst}"
table = "accounts"
[fields]
user_id = "user_id"
email = {{ from = "email", normalize = "email", required = true }}
name = {{ from = "name", normalize = ["strip", "nfc"], max_length = 200 }}
created_at = {{ from = "created", type = "datetime" }}
active = {{ from = "active", type = "boolean" }}
visits = {{ from = "visits", type = "bigint" }}
[run]
batch_size = 4
duplicates = "{dupes}"
"""


def sqlite_value(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63:
        return str(v)  # SQLite integers are 64-bit: a legacy table would hold the text
    return v


def check_every_row_accounted(spec_text: str, rows: int) -> None:
    spec = load_spec_text(spec_text)
    result = run_migration(spec)  # no exception may escape a batch
    assert result.status == "done"
    assert result.read == rows
    assert result.migrated + result.rejected + result.merged == rows
    dst = spec.target.url
    engine = sa.create_engine(dst)
    with engine.connect() as conn:
        bad = conn.execute(
            sa.text(
                "SELECT count(*) FROM authmigrate_rejects"
                " WHERE reason IS NULL OR reason = '' OR reason NOT LIKE '%.%'"
            )
        ).scalar()
    engine.dispose()
    assert bad == 0
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=12), dupes=st.sampled_from(["reject", "merge"]))
def test_any_sqlite_rows_are_migrated_or_rejected_with_a_reason(
    rows: list[dict[str, Any]], dupes: str
) -> None:
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "legacy.db", Path(d) / "t.db"
        conn = sqlite3.connect(src)
        conn.execute(
            "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email, name, created,"
            " active, visits)"
        )
        conn.executemany(
            "INSERT INTO legacy_users VALUES (?,?,?,?,?,?)",
            [
                (i, *(sqlite_value(r[c]) for c in ("email", "name", "created", "active", "visits")))
                for i, r in enumerate(rows, start=1)
            ],
        )
        conn.commit()
        conn.close()
        text = PROPERTY_SPEC.format(
            url=f"sqlite:///{src}", table='table = "legacy_users"\n', dst=dst, dupes=dupes
        )
        check_every_row_accounted(text, len(rows))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(ROW, min_size=1, max_size=12),
    kind=st.sampled_from(["csv", "jsonl"]),
    raw_bytes=st.lists(
        st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc3", b"\x80abc"]), max_size=3
    ),
)
def test_any_file_rows_with_invalid_bytes_are_migrated_or_rejected(
    rows: list[dict[str, Any]], kind: str, raw_bytes: list[bytes]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        path, dst = Path(d) / f"users.{kind}", Path(d) / "t.db"
        rows = [dict(r) for r in rows]
        for i in range(min(len(raw_bytes), len(rows))):
            rows[i]["name"] = "PLANT"  # invalid UTF-8 (or an encoded surrogate) goes here
        lines: list[bytes] = []
        if kind == "csv":
            import csv
            import io

            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(["user_id", "email", "name", "created", "active", "visits"])
            for i, r in enumerate(rows, start=1):
                writer.writerow(
                    [i, *(r[c] for c in ("email", "name", "created", "active", "visits"))]
                )
            lines = [
                line.encode("utf-8", "surrogatepass") for line in buf.getvalue().splitlines(True)
            ]
        else:
            for i, r in enumerate(rows, start=1):
                obj = {"user_id": i, **r}
                lines.append((json.dumps(obj, default=str) + "\n").encode("utf-8"))
        for n, blob in enumerate(raw_bytes):
            if n < len(rows):
                line = n + 1 if kind == "csv" else n
                lines[line] = lines[line].replace(b"PLANT", b"PL" + blob + b"ANT", 1)
        path.write_bytes(b"".join(lines))
        text = PROPERTY_SPEC.format(url=f"{kind}:///{path}", table="", dst=dst, dupes="reject")
        check_every_row_accounted(text, len(rows))


# -- regressions the property tests found ----------------------------------------------------


def test_out_of_range_numbers_and_timestamps_are_rejected_not_raised() -> None:
    from authmigrate.pipeline.transform import FieldReject, compile_field
    from authmigrate.spec import FieldSpec

    as_int = compile_field("n", FieldSpec(**{"from": "n", "type": "integer"}))
    as_big = compile_field("n", FieldSpec(**{"from": "n", "type": "bigint"}))
    as_dt = compile_field("d", FieldSpec(**{"from": "d", "type": "datetime"}))
    assert as_int({"n": "2147483647"}) == 2**31 - 1
    assert as_big({"n": 2**40}) == 2**40
    for fn, row in ((as_int, {"n": 2**31}), (as_big, {"n": str(2**63)})):
        with pytest.raises(FieldReject) as caught:
            fn(row)
        assert caught.value.reason == "field.out_of_range"
    for bad in (1e300, float("inf"), -(2**62)):
        with pytest.raises(FieldReject) as caught:
            as_dt({"d": bad})
        assert caught.value.reason == "field.invalid_type"


def test_aware_datetimes_are_stored_as_utc_on_every_target() -> None:
    import datetime as dt

    from authmigrate.pipeline.transform import compile_field
    from authmigrate.spec import FieldSpec

    as_dt = compile_field("d", FieldSpec(**{"from": "d", "type": "datetime"}))
    assert as_dt({"d": "2020-01-01T02:00:00+02:00"}) == dt.datetime(2020, 1, 1, 0, 0)


def test_file_numbers_beyond_64_bits_are_rejected_as_invalid_type(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text(
        json.dumps({"id": 1, "email": "a@example.com", "n": 2**64})
        + "\n"
        + json.dumps({"id": str(2**70), "email": "b@example.com", "n": 1})
        + "\n"
    )
    spec = load_spec_text(
        f'[source]\nurl = "jsonl:///{path}"\nkey = "id"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/t.db"\ntable = "accounts"\n'
        '[fields]\nid = "id"\nemail = "email"\nn = { from = "n", type = "bigint" }\n'
    )
    result = run_migration(spec)
    assert result.read == 2 and result.migrated + result.rejected == 2
    assert result.by_reason.get("field.invalid_type") == 1  # beyond 64 bits: not a bigint
