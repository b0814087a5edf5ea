"""docs/exports.md's route table is the code's: regenerate it with scripts/exports-table."""

from __future__ import annotations

from pathlib import Path

from authmigrate.credentials._base import all_schemes
from authmigrate.sinks.exports._doc import BEGIN, END, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "exports.md"


def test_the_route_table_in_the_docs_matches_the_code() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert BEGIN in doc and END in doc
    assert render(doc) == doc, "docs/exports.md is stale: run scripts/exports-table"


def test_the_route_table_lists_every_scheme() -> None:
    table = DOC.read_text(encoding="utf-8").split(BEGIN)[1].split(END)[0]
    for scheme in all_schemes():
        assert f"| `{scheme.id}` |" in table
