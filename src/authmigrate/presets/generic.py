"""``init`` for a home-grown user table: no platform preset fits, so guess one from names.

The table chosen is the one that looks most like an accounts table (an email column, a
password column, a single-column primary key); every column is copied, the email normalized,
the password hash kept with ``scheme = "auto"``. The spec says, in comments, what was guessed
so the user can check it before ``plan``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
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


def _sample(engine: sa.Engine, table: str, column: str) -> list[Any]:
    t = sa.table(table, sa.column(column))
    stmt = sa.select(t.c[column]).where(t.c[column].is_not(None)).limit(200)
    with engine.connect() as conn:
        return [v for (v,) in conn.execute(stmt) if v not in ("", None)]


SAMPLE_SIZE = 3000
"""Credential values ``init`` looks at: every row of a small table, else this many."""
_PROBES = 30


def sample_spread(
    engine: sa.Engine, table: str, key: str, column: str, *, size: int = SAMPLE_SIZE
) -> tuple[list[Any], int]:
    """``(values, rows in the table)``: ``column`` of about ``size`` rows spread over the key
    range (NULLs included), so that a format used only by old or only by new accounts is seen.

    An integer key is probed at evenly spaced key values; another key at evenly spaced
    positions of its order.
    """
    t = sa.table(table, sa.column(key), sa.column(column))
    k, c = t.c[key], t.c[column]
    with engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
        if total <= size:
            return [v for (v,) in conn.execute(sa.select(c))], total
        per = max(size // _PROBES, 1)
        lo, hi = conn.execute(sa.select(sa.func.min(k), sa.func.max(k))).one()
        values: list[Any] = []
        if isinstance(lo, int) and isinstance(hi, int):
            for i in range(_PROBES):
                start = lo + (hi - lo) * i // _PROBES
                stmt = sa.select(c).where(k >= start).order_by(k).limit(per)
                values += [v for (v,) in conn.execute(stmt)]
        else:
            for i in range(_PROBES):
                stmt = sa.select(c).order_by(k).offset(total * i // _PROBES).limit(per)
                values += [v for (v,) in conn.execute(stmt)]
    return values, total


@dataclass
class SchemeGuess:
    """What ``init`` found in a sample of the credential column, and the spec lines for it."""

    scheme: str | list[str] = "auto"
    params: dict[str, str] = field(default_factory=dict)
    comment: list[str] = field(default_factory=list)


def guess_scheme(values: list[Any], *, total: int | None = None) -> SchemeGuess:
    """The scheme list that covers a sample of stored hashes, the digest parameters that every
    sampled bare digest parses with, and a comment with the counts per scheme. Values that
    nothing recognises are listed by shape (length, alphabet), never by value."""
    from authmigrate.credentials import identify, import_hash
    from authmigrate.credentials._shape import bare_digest, shape

    known: Counter[str] = Counter()
    digests: Counter[tuple[str, str]] = Counter()
    unknown: Counter[str] = Counter()
    empty = 0
    texts_by_digest: dict[tuple[str, str], list[str]] = {}
    for value in values:
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).decode("utf-8", "replace")
        text = "" if value is None else str(value).strip()
        if not text:
            empty += 1
            continue
        try:
            known[identify(text)] += 1
            continue
        except ValueError:
            pass
        digest = bare_digest(text)
        if digest is not None:
            digests[digest] += 1
            texts_by_digest.setdefault(digest, []).append(text)
        else:
            unknown[shape(text)] += 1
    guess = SchemeGuess()
    rows = f"{len(values):,} of {total:,}" if total is not None else f"{len(values):,}"
    guess.comment.append(f"init sampled {rows} rows of this column (spread over the key range):")
    for scheme_id, n in known.most_common():
        guess.comment.append(f"  {scheme_id}: {n:,}")
    chosen: tuple[str, str] | None = None
    if digests:
        chosen = digests.most_common(1)[0][0]
        algorithm, encoding = chosen
        confirmed = 0
        for text in texts_by_digest[chosen]:
            try:
                import_hash("digest", text, algorithm=algorithm, encoding=encoding)
                confirmed += 1
            except ValueError:
                pass
        guess.params = {"algorithm": algorithm, "encoding": encoding}
        guess.comment += [
            f"  bare {algorithm} {encoding} (scheme digest): {digests[chosen]:,}; "
            f"{confirmed:,} parse as {algorithm} {encoding}",
            f"    (unsalted {algorithm} assumed: check one account whose password you know "
            "with authmigrate.verify before the run)",
        ]
        for other, n in digests.most_common()[1:]:
            guess.comment.append(
                f"  bare {other[0]} {other[1]}: {n:,} NOT covered (one digest algorithm per spec)"
            )
    if empty:
        guess.comment.append(
            f"  NULL or empty: {empty:,} (migrated as needing a password reset: on_missing)"
        )
    for what, n in unknown.most_common(10):
        guess.comment.append(f"  unknown, {what}: {n:,} (no scheme reads it: rejected)")
    if len(unknown) > 10:
        more = sum(n for _, n in unknown.most_common()[10:])
        guess.comment.append(f"  unknown, {len(unknown) - 10} more shapes: {more:,}")
    if chosen is None:
        guess.scheme = "auto"
    elif known:
        guess.scheme = ["auto", "digest"]
    else:
        guess.scheme = "digest"
    return guess


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
        values, total = sample_spread(engine, table, key, password)
        guess = guess_scheme(values, total=total)
        lines += [f"# {line}" for line in guess.comment]
        lines.append(f"scheme = {_toml(guess.scheme)}  # see `authmigrate schemes`")
        if guess.params:
            lines.append(f"params = {_toml(guess.params)}")
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
