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
    r"^(pw|pass|passwd|password|pwd|pw_?hash|password_?hash|pass_?hash|hash|user_?pass"
    r"|encrypted_password|crypted_password|password_?digest)$",
    re.I,
)
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


_HEX_DIGESTS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


def _sample(engine: sa.Engine, table: str, column: str) -> list[Any]:
    t = sa.table(table, sa.column(column))
    stmt = sa.select(t.c[column]).where(t.c[column].is_not(None)).limit(200)
    with engine.connect() as conn:
        return [v for (v,) in conn.execute(stmt) if v not in ("", None)]


def guess_scheme(values: list[Any]) -> tuple[Any, dict[str, str], str]:
    """(scheme, params, a comment) for a sample of stored hashes."""
    from authmigrate.credentials import identify

    texts = [str(v).strip() for v in values]
    if not texts:
        return "auto", {}, "no hashes to look at: auto identifies the self-describing ones"
    known = 0
    for text in texts:
        try:
            identify(text)
            known += 1
        except ValueError:
            pass
    lengths = {len(t) for t in texts}
    hexlike = all(re.fullmatch(r"[0-9a-fA-F]+", t) for t in texts)
    if known < len(texts) and hexlike and len(lengths) == 1 and lengths <= set(_HEX_DIGESTS):
        algorithm = _HEX_DIGESTS[lengths.pop()]
        params = {"algorithm": algorithm, "encoding": "hex"}
        note = f"every sampled hash is bare {algorithm} hex: a plain digest (check salt/pepper)"
        return ("digest" if not known else ["auto", "digest"]), params, note
    return "auto", {}, f"{known} of {len(texts)} sampled hashes identified by auto"


def _looks_like(values: list[Any]) -> str | None:
    """``datetime`` or ``date`` when every sampled text value parses as one."""
    import datetime as dt

    texts = [v for v in values if isinstance(v, str)]
    if not texts or len(texts) != len(values):
        return None
    try:
        for text in texts:
            dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return "date" if all(len(t.strip()) == 10 for t in texts) else "datetime"


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
            continue
        kind = None if col == key else _looks_like(_sample(engine, table, col))
        if kind:
            lines.append(f"{col} = {{ from = {_q(col)}, type = {_q(kind)} }}  # text in the source")
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
        scheme, params, note = guess_scheme(_sample(engine, table, password))
        lines.append(f"scheme = {_toml(scheme)}  # {note}")
        if params:
            lines.append(f"params = {_toml(params)}")
        lines += [
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


def _toml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_q(v)}" for k, v in value.items()) + " }"
    return _q(value)
