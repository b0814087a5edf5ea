"""CSV and JSONL sources are parsed strictly: a malformed file stops with exit 2 naming the
line (nothing written), an unreadable value rejects its row only (issue 9, items 11, 12)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.helpers_verify import cli

HEADER = "id,email,password_hash\n"


def spec_for(tmp_path: Path, source: Path, *, extra_fields: str = "") -> Path:
    kind = source.suffix.lstrip(".")
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "{kind}:///{source}"\nkey = "id"\n'
        f'[target]\nurl = "sqlite:///{tmp_path}/target.db"\ntable = "accounts"\n'
        f'[fields]\nid = "id"\nemail = "email"\npassword = "password_hash"\n{extra_fields}'
    )
    return spec


def run(tmp_path: Path, name: str, content: str | bytes, **kw: str) -> tuple[int, str]:
    source = tmp_path / name
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content, encoding="utf-8")
    res = cli("run", str(spec_for(tmp_path, source, **kw)), cwd=tmp_path)
    return res.returncode, res.stdout + res.stderr


def target_rows(tmp_path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(tmp_path / "target.db")
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def rows(n: int, start: int = 1) -> str:
    return "".join(f"{i},u{i}@example.com,pw-{i}\n" for i in range(start, start + n))


MALFORMED = {
    "unterminated quote": (
        "users.csv",
        HEADER + rows(3) + '4,"u4@example.com,pw-4\n' + rows(20, 5),
        ["line 5", "never closed"],
    ),
    "short row": (
        "users.csv",
        HEADER + rows(3) + "4,u4@example.com\n" + rows(3, 5),
        ["line 5", "2 values, the header has 3"],
    ),
    "long row": ("users.csv", HEADER + rows(2) + "3,a@example.com,x,y\n", ["line 4", "4 values"]),
    "repeated header": (
        "users.csv",
        "id,email,email,password_hash\n1,a@example.com,evil@example.com,x\n",
        ["line 1 column 3", "'email' repeats column 2"],
    ),
    "empty header": ("users.csv", "\n" + rows(2), ["line 1", "header is empty"]),
    "empty file": ("users.csv", "", ["line 1", "header is empty"]),
    "column without a name": (
        "users.csv",
        "id,,email,password_hash\n",
        ["line 1 column 2", "no name"],
    ),
    "wrong delimiter": (
        "users.csv",
        "id;email;password_hash\n1;a@example.com;x\n",
        ["source.key", "is source.delimiter right?"],
    ),
    "key missing from header": (
        "users.csv",
        "user,email,password_hash\n1,a@x.org,p\n",
        ["source.key", "'id'"],
    ),
    "128 KB field": (
        "users.csv",
        HEADER + rows(2) + "3,a@example.com," + "x" * (128 * 1024 + 1) + "\n",
        ["line 4", "longer than 131,072 characters"],
    ),
    "stray quote in a value": (
        "users.csv",
        HEADER + '1,a"b"@x.org,p\n2,"x"y,p\n',
        ["line 3", "expected after"],
    ),
    "repeated JSON key": (
        "users.jsonl",
        '{"id": 1, "email": "a@example.com", "password_hash": "x"}\n'
        '{"id": 2, "email": "b@example.com", "email": "evil@example.com"}\n',
        ["line 2", "'email' appears twice"],
    ),
    "deep JSON nesting": (
        "users.jsonl",
        '{"id": 1, "email": "a@example.com", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
        ["line 1", "nested too deeply"],
    ),
    "a number of 5000 digits": (
        "users.jsonl",
        '{"id": 1, "email": "a@example.com", "n": ' + "9" * 5000 + "}\n",
        ["line 1", "not JSON"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_exit_2_naming_line_and_write_nothing(tmp_path: Path, case: str) -> None:
    name, content, expected = MALFORMED[case]
    code, out = run(tmp_path, name, content)
    assert code == 2, out
    assert "internal error" not in out
    for words in expected:
        assert words in out, out
    assert not (tmp_path / "target.db").exists()
    assert "evil@" not in out and "pw-" not in out


def test_csv_with_a_utf8_bom_reads_its_first_column(tmp_path: Path) -> None:
    code, out = run(tmp_path, "users.csv", ("\ufeff" + HEADER + rows(3)).encode("utf-8"))
    assert code == 0, out
    assert target_rows(tmp_path, "SELECT id, email FROM accounts ORDER BY id") == [
        (1, "u1@example.com"),
        (2, "u2@example.com"),
        (3, "u3@example.com"),
    ]


def test_jsonl_with_a_utf8_bom_reads(tmp_path: Path) -> None:
    line = json.dumps({"id": 1, "email": "a@example.com", "password_hash": "x"})
    code, out = run(tmp_path, "users.jsonl", ("\ufeff" + line + "\n").encode("utf-8"))
    assert code == 0, out
    assert target_rows(tmp_path, "SELECT id, email FROM accounts") == [(1, "a@example.com")]


def test_quoted_values_spanning_lines_still_read(tmp_path: Path) -> None:
    content = HEADER + '1,"a@example.com","multi\nline"\n2,b@example.com,y\n'
    code, out = run(tmp_path, "users.csv", content)
    assert code == 0, out
    assert target_rows(tmp_path, "SELECT id FROM accounts ORDER BY id") == [(1,), (2,)]


def test_jsonl_nan_infinity_and_huge_integers_are_rejected_as_invalid_type(tmp_path: Path) -> None:
    lines = [
        '{"id": 1, "email": "a@example.com", "password_hash": "x", "score": 1.5}',
        '{"id": 2, "email": "b@example.com", "password_hash": "x", "score": NaN}',
        '{"id": 3, "email": "c@example.com", "password_hash": "x", "score": Infinity}',
        '{"id": 4, "email": "d@example.com", "password_hash": "x", "score": -Infinity}',
        f'{{"id": 5, "email": "e@example.com", "password_hash": "x", "score": {2**80}}}',
        '{"id": 6, "email": "f@example.com", "password_hash": "x", "score": 7}',
    ]
    code, out = run(
        tmp_path,
        "users.jsonl",
        "\n".join(lines) + "\n",
        extra_fields='score = { from = "score", type = "float" }\n',
    )
    assert code == 1, out  # ran, with rejects
    assert target_rows(tmp_path, "SELECT id, score FROM accounts ORDER BY id") == [(1, 1.5), (6, 7)]
    assert target_rows(
        tmp_path, "SELECT source_key, reason, column_name FROM authmigrate_rejects ORDER BY 1"
    ) == [(str(k), "field.invalid_type", "score") for k in (2, 3, 4, 5)]


def test_jsonl_lone_surrogate_rejects_only_its_row(tmp_path: Path) -> None:
    lines = [
        '{"id": 1, "email": "a@example.com", "password_hash": "x"}',
        '{"id": 2, "email": "b\\ud800@example.com", "password_hash": "x"}',
        '{"id": 3, "email": "c@example.com", "password_hash": "x", "tags": ["\\udfff"]}',
        '{"id": 4, "email": "d@example.com", "password_hash": "x"}',
    ]
    code, out = run(
        tmp_path, "users.jsonl", "\n".join(lines) + "\n", extra_fields='tags = "tags"\n'
    )
    assert code == 1, out
    assert target_rows(tmp_path, "SELECT id FROM accounts ORDER BY id") == [(1,), (4,)]
    assert target_rows(
        tmp_path, "SELECT source_key, reason, column_name FROM authmigrate_rejects ORDER BY 1"
    ) == [("2", "field.invalid_text", "email"), ("3", "field.invalid_text", "tags")]
