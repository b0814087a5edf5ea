"""``init`` for a home-grown user table: no platform preset fits, so guess one from names.

The table chosen is the one that looks most like an accounts table (an email column, a
password column, a single-column primary key); every column is copied, the email normalized,
the password hash kept with ``scheme = "auto"``. The spec says, in comments, what was guessed
so the user can check it before ``plan``.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from authmigrate.errors import SourceError
from authmigrate.spec import check_identifier

_EMAIL = re.compile(r"^(e_?mail|email_?address|user_?email|mail)$", re.I)
_PASSWORD = re.compile(
    r"^(pass|passwd|password|pwd|password_?hash|pass_?hash|hash|user_?pass|encrypted_password|crypted_password)$",
    re.I,
)  # noqa: E501
_SALT = re.compile(r"^(salt|password_?salt|pw_?salt)$", re.I)
_TABLE_HINT = re.compile(r"(user|customer|account|member|login|client)", re.I)


def _score(table: str, columns: list[str], pk: list[str]) -> int:
    score = 0
    if any(_EMAIL.match(c) for c in columns):
        score += 4
    if any(_PASSWORD.match(c) for c in columns):
        score += 4
    if len(pk) == 1:
        score += 2
    if _TABLE_HINT.search(table):
        score += 1
    return score


def guess_table(
    engine: sa.Engine,
) -> tuple[str, list[str], str, str | None, str | None, str | None]:
    """``(table, columns, key, email column, password column, salt column)`` of the best
    candidate in the database.

    Raises:
        SourceError: no table has an email column and a one-column primary key.
    """
    insp = sa.inspect(engine)
    best: tuple[int, str, list[str], list[str]] | None = None
    for table in insp.get_table_names():
        columns = [c["name"] for c in insp.get_columns(table)]
        pk = list(insp.get_pk_constraint(table).get("constrained_columns") or [])
        score = _score(table, columns, pk)
        if best is None or score > best[0]:
            best = (score, table, columns, pk)
    if best is None or best[0] < 6:
        raise SourceError(
            "no table with an email column and a one-column primary key was found; "
            "write the spec by hand (docs/spec.md) or name a platform with --preset"
        )
    _, table, columns, pk = best
    email = next((c for c in columns if _EMAIL.match(c)), None)
    password = next((c for c in columns if _PASSWORD.match(c)), None)
    salt = next((c for c in columns if _SALT.match(c)), None)
    return table, columns, pk[0] if pk else columns[0], email, password, salt


def render_generic_spec(from_url: str, to_url: str, engine: sa.Engine) -> str:
    """A commented spec for the best-guess accounts table of ``engine``."""
    table, columns, key, email, password, salt = guess_table(engine)
    lines = [
        "# Written by `authmigrate init`: no shop platform was recognised, so this spec was",
        f"# guessed from the table {table!r}. Check every line, then `authmigrate plan` it.",
        "",
        "[source]",
        f"url = {_q(from_url)}",
        f"table = {_q(table)}",
        f"key = {_q(key)}                 # unique and orderable: batches and resume follow it",
        "",
        "[target]",
        f"url = {_q(to_url)}",
        'table = "accounts"',
        f"key = {_q(key)}                 # the new system links back to the old account here",
    ]
    lines.append('unique = ["email"]' if email else "unique = []")
    lines += ["", "[fields]"]
    for col in columns:
        if col in (password, salt) or not _is_ident(col):
            continue
        if col == email:
            lines.append(f'email = {{ from = {_q(col)}, normalize = "email", required = true }}')
        else:
            lines.append(f"{col} = {_q(col)}")
    if password:
        lines += [
            "",
            "[credentials]",
            f"column = {_q(password)}",
        ]
        if salt:
            lines.append(f"salt_column = {_q(salt)}")
        lines += [
            'scheme = "auto"          # bare md5/sha1 hex needs a scheme id: `authmigrate schemes`',
            'policy = "keep"          # or "wrap" (argon2id over weak hashes now), or "reset"',
            'target_column = "password"',
        ]
    lines += ["", "[run]", "batch_size = 5000", 'duplicates = "reject"   # or "merge"', ""]
    return "\n".join(lines)


def _is_ident(name: str) -> bool:
    try:
        check_identifier(name)
    except ValueError:
        return False
    return name not in ("password", "password_reset_required")


def _q(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
