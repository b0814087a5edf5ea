"""``authmigrate init``: inspect a source, detect its platform, write a commented spec.

The spec written is self-contained: the preset's query, fields and credentials are written out
in full, so that what runs is what the file says, and every line can be edited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from authmigrate.errors import SourceError, SpecError
from authmigrate.presets import (
    Preset,
    detect_schema,
    get_preset,
    with_mysql_charset,
)
from authmigrate.presets._model import SchemaView

DEFAULT_TARGET_URL = "sqlite:///accounts.db"
DEFAULT_TARGET_TABLE = "accounts"


class _Schema:
    """A snapshot of table and column names (one round trip per table, then cached)."""

    def __init__(self, inspector: sa.Inspector) -> None:
        self._inspector = inspector
        self._tables = list(inspector.get_table_names())
        self._columns: dict[str, list[dict[str, Any]]] = {}

    def get_table_names(self) -> list[str]:
        return list(self._tables)

    def get_columns(self, table_name: str) -> list[dict[str, Any]]:
        if table_name not in self._columns:
            self._columns[table_name] = [dict(c) for c in self._inspector.get_columns(table_name)]
        return self._columns[table_name]


def _safe_url(url: str) -> str:
    from authmigrate.db import safe_url

    return safe_url(url)


def secret_free(url: str, section: str) -> tuple[str, str | None, str | None]:
    """How ``init`` writes ``url`` into the spec without its secrets.

    Returns:
        ``(url to write, env variable, what it holds)``. A URL with only a password gets
        ``password = "env:AUTHMIGRATE_<SECTION>_PASSWORD"`` beside it; one with other
        secret-looking parameters (``sslpassword``, ``token``...) is written as
        ``url = "env:AUTHMIGRATE_<SECTION>_URL"``. A URL without secrets is written as it is.
    """
    from authmigrate.db import _is_secret_param

    try:
        parsed = sa.engine.make_url(url)
    except (ArgumentError, ValueError):
        return url, None, None
    secret_params = [n for n in parsed.query if _is_secret_param(n)]
    if parsed.password is None and not secret_params:
        return url, None, None
    if [n for n in secret_params if n != "password"]:
        name = f"AUTHMIGRATE_{section.upper()}_URL"
        return f"env:{name}", name, "the whole URL"
    password = parsed.password
    if password is None:
        value = parsed.query["password"]
        password = value if isinstance(value, str) else value[0]
    bare = sa.engine.URL.create(  # URL.set(password=None) would keep the password
        parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database
    ).update_query_dict(dict(parsed.difference_update_query(["password"]).query))
    name = f"AUTHMIGRATE_{section.upper()}_PASSWORD"
    if not password:
        return bare.render_as_string(hide_password=False), None, None
    return bare.render_as_string(hide_password=False), name, "the password"


def _write_secret_free(text: str, section: str, url: str) -> str:
    """Replace the ``url = ...`` line of ``[section]`` with one that holds no secret."""
    written, env, _ = secret_free(url, section)
    if env is None:
        return text
    lines = text.splitlines(keepends=True)
    inside = False
    for i, line in enumerate(lines):
        if line.startswith("["):
            inside = line.strip() == f"[{section}]"
        elif inside and line.startswith("url = "):
            new = f"url = {_toml(written)}"
            if not env.endswith("_URL"):
                new += f"\npassword = {_toml('env:' + env)}    # set {env} before running"
            else:
                new += f"    # set {env} to the URL before running"
            lines[i] = new + "\n"
            break
    return "".join(lines)


def from_spec_folder(url: str, out: Path) -> str:
    """``url`` as the spec at ``out`` must name it: a relative SQLite path given on the
    command line (taken from the current folder) re-based on the spec's folder, from which
    the spec's relative paths are read (``init -o specs/m.toml`` run beside the database).
    Any other URL is returned as it is."""
    import os

    try:
        parsed = sa.engine.make_url(url)
    except (ArgumentError, ValueError):
        return url
    db = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return url
    if db.startswith("file:") or Path(db).is_absolute():
        return url
    rebased = os.path.relpath(Path(db).resolve(), Path(out).resolve().parent)
    if rebased == db:
        return url
    return parsed.set(database=rebased).render_as_string(hide_password=False)


def _engine(url: str) -> sa.Engine:
    if url.startswith(("csv:", "jsonl:")):
        raise SpecError(
            "--from",
            "init inspects a database; for a csv/jsonl file write the spec by hand: README's "
            'example with [source] url = "csv:///users.csv" (or jsonl:///) and key = its id '
            "column, then `authmigrate plan` it (docs/spec.md, [source])",
        )
    from authmigrate.db import driver_hint, make_engine

    try:
        sa.engine.make_url(url).get_dialect()
    except NoSuchModuleError as exc:  # an ArgumentError: caught first
        hint = driver_hint(sa.engine.make_url(url))
        raise SpecError("--from", f"no SQLAlchemy driver for this URL: {exc}{hint}") from None
    except (ArgumentError, ValueError):
        raise SpecError("--from", "not a database URL (e.g. mysql+pymysql://user@host/shop)")
    # read-only at the database level, like every source connection
    engine = make_engine(with_mysql_charset(url), path="--from", readonly=True)
    missing = _missing_sqlite_file(engine)
    if missing is not None:
        # init never creates a source: say the file is not there
        engine.dispose()
        raise SpecError("--from", f"the SQLite file {missing} does not exist")
    return engine


def _missing_sqlite_file(engine: sa.Engine) -> Path | None:
    """The database file of a SQLite URL when it is not there (None otherwise)."""
    from authmigrate.db import sqlite_file

    path = sqlite_file(engine)
    return path if path is not None and not path.is_file() else None


def inspect_source(url: str) -> SchemaView:
    """Read the table and column names of the database at ``url``.

    Raises:
        SpecError: not a database URL (or no driver for it).
        SourceError: the database cannot be reached; the message hides the password.
    """
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            schema = _Schema(sa.inspect(conn))
            for table in schema.get_table_names():
                schema.get_columns(table)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        raise SourceError(f"cannot read {_safe_url(url)}: {reason}") from None
    finally:
        engine.dispose()
    return schema


def resolve(from_url: str, preset: str | None) -> tuple[Preset, str, bool]:
    """``(preset, table prefix, detected)`` for ``init``: detected, or the named one.

    With a named preset the source is still inspected to find its prefix; the platform's
    default prefix is used when its tables are not found (``detected`` is then False).
    """
    schema = inspect_source(from_url)
    if preset is not None:
        chosen = get_preset(preset)
        score, prefix = chosen.detect(schema)
        return chosen, prefix, score > 0
    matches = detect_schema(schema)
    if not matches:
        raise NoPlatform(
            "no known shop platform found in the source tables; "
            "name one with --preset (see `authmigrate presets`)"
        )
    _, name, prefix = matches[0]
    return get_preset(name), prefix, True


def write_init_spec(
    from_url: str,
    to_url: str | None = None,
    preset: str | None = None,
    out: Path = Path("migration.toml"),
) -> Path:
    """Inspect ``from_url``, detect the platform (or take ``preset``) and write a spec to ``out``.

    Returns:
        The path written.

    Raises:
        SpecError: bad URL, unknown preset, or ``out`` already exists.
        SourceError: the source cannot be read or holds no known platform.
    """
    out = Path(out)
    if out.exists():
        raise SpecError("--output", f"{out} already exists (remove it or choose another -o)")
    # the spec reads a relative file path from its own folder, the command line from this one
    written_from = from_spec_folder(from_url, out)
    written_to = from_spec_folder(to_url, out) if to_url else to_url
    try:
        chosen, prefix, detected = resolve(from_url, preset)
        text = render_spec(
            chosen,
            prefix,
            with_mysql_charset(written_from),
            written_to,
            detected=detected,
            quote=quoter(from_url),
        )
    except NoPlatform:
        text = _generic(from_url, written_to or DEFAULT_TARGET_URL, written_from)
    # a password given on the command line never lands in the spec: an env: reference does
    text = _write_secret_free(text, "source", with_mysql_charset(written_from))
    if written_to:
        text = _write_secret_free(text, "target", written_to)
    out.write_text(text, encoding="utf-8")
    return out


class NoPlatform(SourceError):
    """No preset's tables are in the source."""


def _generic(from_url: str, to_url: str, written_from: str) -> str:
    """The spec of a home-grown accounts table (see :mod:`authmigrate.presets.generic`):
    ``from_url`` is inspected, ``written_from`` (the same source, as the spec names it) is
    written."""
    from authmigrate.presets.generic import render_generic_spec

    engine = _engine(from_url)
    try:
        return render_generic_spec(with_mysql_charset(written_from), to_url, engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        raise SourceError(f"cannot read {_safe_url(from_url)}: {reason}") from None
    except SourceError as exc:
        raise SourceError(f"no known shop platform found in the source tables, and {exc}") from None
    finally:
        engine.dispose()


def _read_back(path: Path) -> tuple[Preset, str] | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# preset:"):
            name, _, prefix = line[len("# preset:") :].strip().partition(" prefix=")
            return get_preset(name), prefix.strip('"')
    return None  # a generic spec: no preset behind it


def _guessed_table(path: Path) -> str | None:
    """The table a generic spec was guessed from, as its header comment names it."""
    marker = "# guessed from the table "
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(marker):
            quoted = line[len(marker) :].partition(". Check")[0]
            return quoted[1:-1] if len(quoted) > 1 else None
    return None


def _toml(value: Any) -> str:
    """One TOML value (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def quoter(url: str) -> Callable[[str], str]:
    """The identifier quoting of the database at ``url`` (backticks for MySQL/MariaDB, double
    quotes for PostgreSQL and SQLite); nothing is connected to."""
    engine = _engine(url)
    try:
        return engine.dialect.identifier_preparer.quote_identifier
    finally:
        engine.dispose()


def render_spec(
    preset: Preset,
    prefix: str,
    from_url: str,
    to_url: str | None,
    *,
    detected: bool = True,
    quote: Callable[[str], str] | None = None,
) -> str:
    """The commented TOML spec for ``preset`` with table prefix ``prefix``; table names in the
    query are quoted with ``quote`` when given (see :func:`quoter`)."""
    query = preset.render_query(prefix, quote)
    if "'''" in query:  # pragma: no cover - no preset query contains it
        raise ValueError("query cannot be written as a TOML literal string")
    how = "detected from the schema" if detected else "named with --preset (tables not found)"
    lines = [
        f"# authmigrate spec for {preset.title}: {how}.",
        f"# preset: {preset.name} prefix={json.dumps(prefix)}",
        "#",
        f"# {preset.summary}",
        *(f"# {n}" for n in preset.notes),
        "#",
        "# Check it with `authmigrate plan` before `authmigrate run`. Secrets never go in this",
        '# file: a key is named as "env:VARIABLE" and read from the environment at run time.',
        "",
        f"name = {_toml(preset.name)}",
        "",
        "[source]",
        f"url = {_toml(from_url)}",
        "# The preset's query, written out (the same as `preset = "
        f"{_toml(preset.name)}` with table_prefix = {_toml(prefix)}).",
        "# Batches follow the key: the query must keep exposing it as legacy_id.",
        f"key = {_toml(preset.key)}",
        f"query = '''\n{query}'''",
        "",
        "[target]",
        f"url = {_toml(to_url or DEFAULT_TARGET_URL)}"
        + ("" if to_url else "    # where the new accounts go: change me"),
        f"table = {_toml(DEFAULT_TARGET_TABLE)}",
        f"key = {_toml(preset.key)}                 # keeps the platform's id to link back",
        f"unique = {_toml(list(preset.target_unique))}"
        "          # what identifies one account; duplicates follow run.duplicates",
        "",
        "[fields]",
        "# target column = source column, or a table: from, normalize, type, required...",
    ]
    for name, spec in preset.all_fields.items():
        lines.append(f"{_key(name)} = {_toml(spec)}")
    lines += ["", "[credentials]"]
    creds = dict(preset.credentials)
    lines.append(f"column = {_toml(creds.pop('column'))}")
    if "salt_column" in creds:
        lines.append(f"salt_column = {_toml(creds.pop('salt_column'))}")
    lines.append(
        f"scheme = {_toml(creds.pop('scheme'))}"
        "            # see `authmigrate schemes`; auto identifies each hash"
    )
    lines += [
        'policy = "keep"          # keep: import as is | wrap: strong hash over weak ones | reset',
        'target_column = "password"',
    ]
    params = creds.pop("params", None)
    keys = creds.pop("keys", None)
    for extra_key, extra_value in creds.items():
        lines.append(f"{_key(extra_key)} = {_toml(extra_value)}")
    if params:
        lines += ["", "[credentials.params]"]
        lines += [f"{_key(k)} = {_toml(v)}" for k, v in params.items()]
    if keys:
        lines += ["", "[credentials.keys]", '# key id = "env:VARIABLE" holding the secret']
        lines += [f"{_key(k)} = {_toml(v)}" for k, v in keys.items()]
    lines += [
        "",
        "# [tokens]                # stored only hashed; the plaintext goes out in the [notify]",
        '# column = "auth_token"   # message (docs/notify.md), or say delivery = "none"',
        "",
        "[run]",
        "batch_size = 5000",
        'duplicates = "reject"    # or "merge"',
        "",
    ]
    if preset.changed_column:
        lines += [
            "[sync]                   # authmigrate sync: what changed since the bulk copy",
            f"changed_column = {_toml(preset.changed_column)}",
            'on_delete = "disable"',
            "",
        ]
    return "\n".join(lines)
