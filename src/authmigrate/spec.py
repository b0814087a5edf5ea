r"""The spec file: one TOML document that describes a migration, loaded into a typed model.

Every section is a pydantic model that forbids unknown keys, so a typo such as ``normalise``
is refused with the key path at fault before anything is written::

    >>> from authmigrate.load import load_spec_text
    >>> load_spec_text(
    ...     '[source]\nurl = "sqlite://"\nkey = "id"\ntable = "u"\n'
    ...     '[target]\nurl = "sqlite://"\ntable = "n"\n[fields]\nid = {frm = "id"}'
    ... )
    Traceback (most recent call last):
    ...
    authmigrate.errors.SpecError: fields.id.frm: unknown key (check the spelling)

Secrets are never written in a spec: a value ``"env:NAME"`` names an environment variable.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import string
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from authmigrate.errors import SpecError

TRANSFORMS = ("strip", "lower", "upper", "nfkc", "nfc", "email", "collapse_spaces", "none_if_empty")
"""Names accepted by ``normalize``; applied in the order given."""

FIELD_TYPES = ("text", "integer", "bigint", "float", "boolean", "datetime", "date", "json")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_QUALIFIED = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$")


EXPORT_BOOKKEEPING = "authmigrate.sqlite"
"""The bookkeeping database an export without ``url`` keeps in its ``dir``."""


def check_identifier(value: str, *, qualified: bool = False) -> str:
    """Refuse table/column names that are not plain identifiers.

    Names are always quoted by SQLAlchemy when they reach SQL, but a name with quotes,
    semicolons or comment markers is almost certainly a mistake or an attack, so it is refused.
    """
    pattern = _QUALIFIED if qualified else _IDENT
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"not a plain SQL identifier: {value!r}")
    return value


BOOKKEEPING_PREFIX = "authmigrate_"
"""Tables whose name starts with this are authmigrate's own (runs, batches, rejects, outbox)."""


def single_statement(query: str) -> str:
    """Refuse SQL text holding more than one statement (a ``;`` outside quotes and comments).

    The source query is run inside ``SELECT ... FROM (query)``; a second statement after a
    ``;`` would run as its own (``...) AS x; DELETE FROM users; ...``). Quotes and comments are
    read as PostgreSQL reads them (the one driver here that runs several statements in one
    call); other dialects' escapes can only make this refuse more, never less. One trailing
    ``;`` is dropped.
    """
    text = query.rstrip()
    if not text.endswith(";"):
        text = query  # unchanged: a trailing line comment keeps its newline
    while text.rstrip().endswith(";"):
        text = text.rstrip()[:-1]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not _word(text[i - 2]))
            i = _closing_quote(text, i, "'", escapes=escapes)
        elif c == '"':
            i = _closing_quote(text, i, '"', escapes=False)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            i = _end_of_comment(text, i)
        elif (
            c == "$"
            and (i == 0 or not _word(text[i - 1]))
            and (m := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text[i:]))
        ):
            tag = m.group(0)
            end = text.find(tag, i + len(tag))
            i = n if end < 0 else end + len(tag)
        elif c == ";":
            raise ValueError(
                "must be one SELECT statement: a ';' ends it, and what follows would run on its own"
            )
        else:
            i += 1
    return text


def _word(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _closing_quote(text: str, start: int, quote: str, *, escapes: bool) -> int:
    """The index after the quote that closes the one at ``start`` (a doubled quote stays
    inside; so does a backslash-escaped one in an ``E'...'`` string)."""
    i = start + 1
    while i < len(text):
        if escapes and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)


def _end_of_comment(text: str, start: int) -> int:
    """The index after the ``*/`` closing the ``/*`` at ``start`` (they nest, as in PostgreSQL)."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(text)


def is_env_ref(value: object) -> bool:
    """True for ``"env:NAME"``: how a spec names a secret without holding it."""
    return isinstance(value, str) and value.startswith("env:") and len(value) > 4


def env_ref(value: str) -> str:
    """Validator body: ``value`` must be an ``env:NAME`` reference (never the secret itself)."""
    if not is_env_ref(value):
        raise ValueError("must be an env:NAME reference, not a value")
    return value


def template_fields(template: str) -> list[str]:
    """Source column names a ``{first} {last}`` template uses.

    Only plain ``{column}`` fields: a format spec or conversion (``{n:d}``, ``{x!r}``) would
    fail on some rows' values, so it is refused when the spec is read.
    """
    names = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a template: {exc}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"template field {name!r} is not a column name")
        if spec or conversion:
            raise ValueError(f"template field {{{name}}} takes no format spec or conversion")
        names.append(name)
    return names


class _Model(BaseModel):
    # strict: TOML has real numbers and booleans, so batch_size = "500" is a mistake to name,
    # never a string to coerce
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True)


def _url_from_env(data: Any, section: str) -> Any:
    """Put the secrets a section names into its URL: ``url = "env:NAME"`` (the whole URL is
    in the environment) and ``password = "env:NAME"`` (the URL's password is)."""
    if not isinstance(data, dict):
        return data
    url, password = data.get("url"), data.get("password")
    if isinstance(url, str) and is_env_ref(url):
        data = {**data, "url": resolve_secret(url, path=f"{section}.url")}
    if password is not None:
        if not is_env_ref(password):
            raise SpecError(f"{section}.password", "must be an env:NAME reference, not a value")
        data = {**data, "url": _with_password(data.get("url"), password, section)}
    return data


def _with_password(url: Any, ref: str, section: str) -> str:
    import sqlalchemy as sa

    secret = resolve_secret(ref, path=f"{section}.password")
    try:
        parsed = sa.make_url(str(url))
    except Exception:
        raise SpecError(f"{section}.url", "not a database URL (e.g. sqlite:///legacy.db)") from None
    if parsed.password is not None:
        raise SpecError(f"{section}.password", "the URL has a password already: keep one")
    return parsed.set(password=secret).render_as_string(hide_password=False)


class SourceSpec(_Model):
    """Where the legacy accounts are read from."""

    url: str
    """A URL, or ``"env:NAME"``: the URL is read from the environment."""
    password: str | None = None
    """``"env:NAME"`` of the database password, put into ``url`` when connecting."""
    table: str | None = None
    query: str | None = None
    key: str
    preset: str | None = None
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_env(cls, data: Any) -> Any:
        return _url_from_env(data, "source")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        import codecs

        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @field_validator("key")
    @classmethod
    def _key_ident(cls, v: str) -> str:
        return check_identifier(v)

    @field_validator("table")
    @classmethod
    def _table_ident(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v, qualified=True)

    @field_validator("query")
    @classmethod
    def _one_statement(cls, v: str | None) -> str | None:
        return None if v is None else single_statement(v)

    @property
    def is_file(self) -> bool:
        """True for ``csv:///`` and ``jsonl:///`` sources."""
        return self.url.startswith(("csv:", "jsonl:"))

    @model_validator(mode="after")
    def _table_or_query(self) -> SourceSpec:
        if self.is_file:
            if self.table or self.query:
                raise ValueError("a csv/jsonl source takes neither table nor query")
        elif bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of table or query")
        return self


class TargetSpec(_Model):
    """Where the migrated accounts are written."""

    url: str
    """A URL, or ``"env:NAME"``: the URL is read from the environment."""
    password: str | None = None
    """``"env:NAME"`` of the database password, put into ``url`` when connecting."""
    table: str
    key: str | None = None
    """Target column that receives the source key untransformed (default: the source key name)."""
    unique: list[str | list[str]] = Field(default_factory=lambda: list[str | list[str]](["email"]))
    """Target fields that identify an account (a list: unique together, e.g. Magento's
    ``["website_id", "email"]``); duplicates follow ``run.duplicates``."""
    create: bool = True
    export: str | None = None
    """An identity provider to write import files for (docs/exports.md): auth0, kratos,
    firebase, keycloak, okta, zitadel, supabase, clerk, fusionauth."""
    dir: str | None = None
    """Where the export files go; without ``url`` the bookkeeping is a SQLite file here."""
    provider: dict[str, str] = Field(default_factory=dict)
    """The provider's own settings (Keycloak's ``bcrypt_algorithm``, Kratos's ``schema_id``)."""

    @model_validator(mode="before")
    @classmethod
    def _export_bookkeeping(cls, data: Any) -> Any:
        """Without ``url``, an export keeps its bookkeeping in ``<dir>/authmigrate.sqlite``."""
        if not isinstance(data, dict) or "export" not in data and "dir" not in data:
            return data
        if not data.get("export") or not isinstance(data.get("dir"), str):
            return data  # _check_export_keys names the key at fault
        data = dict(data)
        if "url" not in data:
            data["url"] = "sqlite:///" + str(Path(data["dir"]) / EXPORT_BOOKKEEPING)
        data.setdefault("table", "exported_accounts")
        return data

    @field_validator("export")
    @classmethod
    def _known_provider(cls, v: str | None) -> str | None:
        from authmigrate.sinks.exports import PROVIDERS

        if v is not None and v not in PROVIDERS:
            raise ValueError(f"unknown provider {v!r} (known: {', '.join(PROVIDERS)})")
        return v

    synchronous: Literal["normal", "full"] | None = None
    """SQLite targets: ``full`` makes every committed batch survive power loss; ``normal`` is
    atomic but may lose the last commits then. Default: ``full`` when the spec has a
    ``[notify]`` outbox (a lost batch whose mails went out would be sent again with new
    tokens), ``normal`` otherwise."""

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_env(cls, data: Any) -> Any:
        return _url_from_env(data, "target")

    @field_validator("table")
    @classmethod
    def _table_ident(cls, v: str) -> str:
        check_identifier(v, qualified=True)
        if v.rpartition(".")[2].lower().startswith(BOOKKEEPING_PREFIX):
            raise ValueError(
                f"names starting with {BOOKKEEPING_PREFIX!r} are authmigrate's own tables"
            )
        return v

    @field_validator("key")
    @classmethod
    def _key_ident(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v)


class FieldSpec(_Model):
    """How one target column is computed from a source row."""

    from_: str | None = Field(default=None, alias="from")
    value: Any = None
    template: str | None = None
    normalize: list[str] = Field(default_factory=list)
    lowercase_local: bool = True
    default: Any = None
    type: str = "text"
    required: bool = False
    max_length: int | None = Field(default=None, ge=1)

    @field_validator("normalize", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("normalize")
    @classmethod
    def _known_transforms(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in TRANSFORMS:
                raise ValueError(f"unknown transform {name!r} (known: {', '.join(TRANSFORMS)})")
        return v

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in FIELD_TYPES:
            raise ValueError(f"unknown type {v!r} (known: {', '.join(FIELD_TYPES)})")
        return v

    @field_validator("from_")
    @classmethod
    def _from_ident(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v)

    @field_validator("template")
    @classmethod
    def _plain_template(cls, v: str | None) -> str | None:
        if v is not None:
            template_fields(v)
        return v

    @field_validator("value")
    @classmethod
    def _scalar_value(cls, v: Any) -> Any:
        if isinstance(v, dict | list):
            raise ValueError("a constant must be a single value, not a table or a list")
        return v

    @model_validator(mode="after")
    def _one_origin(self) -> FieldSpec:
        origins = [x for x in (self.from_, self.template) if x is not None]
        if self.value is not None:
            origins.append("value")
        if len(origins) > 1:
            raise ValueError("give only one of from, value, template")
        return self


class CredentialsSpec(_Model):
    """The legacy password hash and what to do with it."""

    column: str
    salt_column: str | None = None
    scheme: str | list[str] = "auto"
    """A scheme id, ``"auto"``, or a list tried in order (``["auto", "joomla"]``) for a column
    that mixes formats."""
    policy: Literal["keep", "wrap", "reset"] = "keep"
    target_column: str = "password"
    reset_column: str = "password_reset_required"
    on_missing: Literal["reset", "reject"] = "reset"
    """A NULL or empty legacy hash: migrate the account as needing a reset, or reject it."""
    weak: list[str] | None = None
    """Scheme ids ``policy = "wrap"`` wraps; default: unsalted/fast digests, md5-crypt, phpass."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameters for ``import_hash`` (e.g. ``key_id``, ``algorithm`` of a plain digest)."""
    keys: dict[str, str] = Field(default_factory=dict)
    """The keyring: key id -> ``"env:NAME"``. Never the secret itself."""
    allow_test_profile: bool = False
    """Allow ``profile = "TEST"`` (64 KiB argon2id: for tests and demos, never real accounts)."""
    profile: str = "OWASP_2025"
    login_rules: list[str] = Field(default_factory=list)
    """The platform's login rules every credential carries (``trim``: WordPress, Drupal 7,
    PrestaShop 1.6; ``html``: OpenCart 1.5-3), so an account verifies what its platform's
    login accepted (see docs/credentials.md)."""
    scheme_column: str | None = None
    """A source column naming each row's hash format (Shopware 6 ``legacy_encoder``)."""
    scheme_map: dict[str, str] = Field(default_factory=dict)
    """``scheme_column`` value -> scheme id; rows whose value is NULL or empty use ``scheme``,
    rows with a value not in the map are rejected (``credential.unknown_format``)."""

    @field_validator("column", "salt_column", "target_column", "reset_column", "scheme_column")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v)

    @field_validator("login_rules")
    @classmethod
    def _known_rules(cls, v: list[str]) -> list[str]:
        from authmigrate.credentials.rules import RULES

        for name in v:
            if name not in RULES:
                raise ValueError(f"unknown login rule {name!r} (known: {', '.join(RULES)})")
        return v

    @field_validator("scheme_map")
    @classmethod
    def _known_mapped(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v.values():
            _check_scheme_id(name, allow_auto=True)
        return v

    @model_validator(mode="after")
    def _map_needs_column(self) -> CredentialsSpec:
        if self.scheme_map and not self.scheme_column:
            raise ValueError("scheme_map needs scheme_column (the column naming each format)")
        return self

    @field_validator("scheme")
    @classmethod
    def _known_schemes(cls, v: str | list[str]) -> str | list[str]:
        names = [v] if isinstance(v, str) else v
        if not names:
            raise ValueError("give at least one scheme id")
        for name in names:
            _check_scheme_id(name, allow_auto=True)
        return v

    @field_validator("weak")
    @classmethod
    def _known_weak(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            _check_scheme_id(name, allow_auto=False)
        return v

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str, info: ValidationInfo) -> str:
        from authmigrate.credentials import PROFILES
        from authmigrate.credentials.wrap import TEST, env_allows_test_profile

        if v not in PROFILES:
            raise ValueError(f"unknown profile {v!r} (known: {', '.join(sorted(PROFILES))})")
        allowed = info.data.get("allow_test_profile") or env_allows_test_profile()
        if v == TEST.name and not allowed:
            raise ValueError(
                "the TEST profile is for tests only; use OWASP_2025, or say "
                "allow_test_profile = true"
            )
        return v

    @property
    def schemes(self) -> list[str]:
        """The scheme ids to try, in order."""
        return [self.scheme] if isinstance(self.scheme, str) else list(self.scheme)

    @field_validator("keys")
    @classmethod
    def _env_refs(cls, v: dict[str, str]) -> dict[str, str]:
        for key_id, ref in v.items():
            if not is_env_ref(ref):
                raise ValueError(f"key {key_id!r} must be an env:NAME reference, not a value")
        return v


def _check_scheme_id(name: str, *, allow_auto: bool) -> None:
    from authmigrate.credentials import schemes

    known = {s.id for s in schemes()}
    if name in known or (allow_auto and name == "auto"):
        return
    import difflib

    near = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else " (see `authmigrate schemes`)"
    raise ValueError(f"unknown scheme {name!r}{hint}")


class TokensSpec(_Model):
    """A new token per migrated user, stored only as a hash."""

    column: str = "auth_token"
    prefix_column: str | None = None
    purpose: str = "activation"
    expires_in: str = "7d"
    server_key: str | None = None
    """Optional ``env:NAME`` of an HMAC key: the stored hash is then HMAC-SHA256."""
    delivery: Literal["notify", "none"] = "notify"
    """How the plaintext reaches the user: ``notify`` (the default; needs a ``[notify]``
    section) or ``none``, said explicitly, for tokens nobody will ever receive."""

    @field_validator("column", "prefix_column")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v)

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError("must be a positive duration")
        return v

    @field_validator("purpose")
    @classmethod
    def _purpose(cls, v: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_.-]{0,31}$", v):
            raise ValueError("lower-case letters, digits and _ . - (e.g. password_reset)")
        return v

    @field_validator("server_key")
    @classmethod
    def _env_ref(cls, v: str | None) -> str | None:
        return None if v is None else env_ref(v)


class SmtpSpec(_Model):
    """How ``authmigrate notify`` reaches the mail server."""

    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: str | None = None
    """``env:NAME`` of the SMTP password; never the password itself."""
    timeout: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    ca_file: str | None = None
    """PEM file of the CA that signed the server's certificate (default: the system's CAs)."""

    @field_validator("password")
    @classmethod
    def _env_ref(cls, v: str | None) -> str | None:
        return None if v is None else env_ref(v)


class SegmentSpec(_Model):
    """One notification segment: who gets which message."""

    enabled: bool = True
    subject: str | None = None
    """A Jinja2 line; default: the shipped subject of a built-in segment."""
    text_template: str | None = None
    """Path of a Jinja2 text template (relative paths: beside the spec file)."""
    html_template: str | None = None
    """Path of a Jinja2 HTML template (autoescaped); none means a text-only message."""
    when: dict[str, list[str | int | float | bool]] | None = None
    """For a segment of the spec's own: migrated accounts whose target fields hold one of the
    values, e.g. ``when = { group_id = [3, 4] }`` (all fields must match). Such accounts get
    this segment's message instead of ``kept``/``wrapped`` (an account that must reset keeps
    its reset message); the first matching segment wins."""


class NotifySpec(_Model):
    """Telling the users: an outbox written with each batch, sent by ``authmigrate notify``."""

    email_field: str = "email"
    sender: str = Field(default="no-reply@example.com", alias="from")
    outbox_key: str = "env:AUTHMIGRATE_OUTBOX_KEY"
    outbox_old_keys: list[str] = Field(default_factory=list)
    """``env:NAME`` of earlier outbox keys, still read (never written) while rows sealed under
    them are queued: rotate the key without losing the queue."""
    reset_url: str = "https://shop.example/account/reset?token={token}"
    rate_per_second: float = Field(default=10.0, ge=0.001, le=1_000_000, allow_inf_nan=False)
    max_attempts: int = Field(default=5, ge=1, le=100)
    shop_name: str = "our shop"
    context_fields: list[str] = Field(default_factory=list)
    """Target fields copied into the outbox for the templates (as ``user.NAME``)."""
    segments: dict[str, SegmentSpec] = Field(default_factory=dict)
    smtp: SmtpSpec = Field(default_factory=SmtpSpec)

    @field_validator("outbox_key")
    @classmethod
    def _env_ref(cls, v: str) -> str:
        return env_ref(v)

    @field_validator("outbox_old_keys")
    @classmethod
    def _env_refs(cls, v: list[str]) -> list[str]:
        return [env_ref(ref) for ref in v]

    @field_validator("email_field")
    @classmethod
    def _email_ident(cls, v: str) -> str:
        return check_identifier(v)

    @field_validator("context_fields")
    @classmethod
    def _context_idents(cls, v: list[str]) -> list[str]:
        for name in v:
            check_identifier(name)
        return v

    @field_validator("reset_url")
    @classmethod
    def _reset_url(cls, v: str) -> str:
        if "{token}" not in v:
            raise ValueError("must contain {token} where the token goes")
        return v

    @field_validator("segments")
    @classmethod
    def _segments(cls, v: dict[str, SegmentSpec]) -> dict[str, SegmentSpec]:
        for name, seg in v.items():
            if not re.match(r"^[a-z][a-z0-9_-]{0,31}$", name):
                raise ValueError(f"segment name {name!r}: lower-case letters, digits, _ and -")
            builtin = name in ("kept", "wrapped", "reset", "merged")  # shipped templates
            if not builtin and seg.enabled and not seg.text_template:
                raise ValueError(f"segment {name!r} is not built in: give its text_template")
            if builtin and seg.when is not None:
                raise ValueError(f"segment {name!r} is built in: its accounts are chosen for it")
            if not builtin and seg.enabled and not seg.when:
                raise ValueError(f"segment {name!r}: say which accounts get it with `when`")
        return v


def check_dask_address(value: str) -> str:
    """``local`` or a Dask scheduler address (``tcp://host:port``, ``tls://host:port``)."""
    import re

    value = value.strip()
    if value == "local" or re.fullmatch(r"(tcp|tls)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", value):
        return value
    raise ValueError('must be "local" or a Dask scheduler address such as "tcp://scheduler:8786"')


class RunSpec(_Model):
    """How the run proceeds."""

    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    duplicates: Literal["reject", "merge"] = "reject"
    retries: int = Field(default=5, ge=0, le=100)
    workers: int | None = Field(default=None, ge=1)
    dask: str | None = None
    """Run the key ranges as Dask tasks: ``local`` (a LocalCluster, one worker process per
    core) or a scheduler's address (``tcp://scheduler:8786``); same as ``run --dask``."""
    ranges: int | None = Field(default=None, ge=1, le=1000)
    """Key ranges of a run on Dask (default: 4 per worker thread, at most one per batch)."""

    @field_validator("dask")
    @classmethod
    def _dask(cls, v: str | None) -> str | None:
        return None if v is None else check_dask_address(v)


class SyncSpec(_Model):
    """``[sync]``: how ``authmigrate sync`` finds what changed on the legacy side."""

    changed_column: str | None = None
    """A source column the platform sets on every change (Magento ``updated_at``); rows with
    ``changed_column >= watermark - overlap`` are read, the watermark taken from the source
    database's clock. Without it every sync compares fingerprints of all rows."""
    overlap: str = "5m"
    """How far before the watermark to read again: clock skew and late commits."""
    on_delete: Literal["disable", "delete", "keep"] = "disable"
    """A key the source no longer has: set ``disabled_column`` (default), delete the target
    row, or keep it as it is. Every case is reported by key."""
    disabled_column: str = "disabled"
    interval: str = "30s"
    """``sync --follow``: time between passes."""
    password_changed_at: str | None = None
    """A source column with the time of the legacy password's last change."""
    target_password_changed_at: str = "password_changed_at"
    """The target column where the new system records its own password changes (read only)."""

    @field_validator("changed_column", "disabled_column", "password_changed_at")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v)

    @field_validator("target_password_changed_at")
    @classmethod
    def _target_ident(cls, v: str) -> str:
        return check_identifier(v)

    @field_validator("overlap", "interval")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    @property
    def overlap_seconds(self) -> int:
        return parse_duration(self.overlap)

    @property
    def interval_seconds(self) -> int:
        return max(1, parse_duration(self.interval))


class SunsetSpec(_Model):
    """``[sunset]``: what happens to accounts still on a legacy hash after the grace period."""

    after_days: int = Field(default=90, ge=0)
    action: Literal["reset", "keep", "disable"] = "reset"
    notify: bool = False
    """Queue the notify outbox's ``reset`` message for each account reset (exactly once)."""


class BridgeSpec(_Model):
    """The login-time password bridge (``authmigrate bridge``): see docs/bridge.md."""

    secret: str
    """``env:NAME`` of the shared secret every request carries as ``Authorization: Bearer``."""
    lookup: list[str] = Field(default_factory=lambda: ["email"], min_length=1)
    """Target fields an identifier is looked up by, in order (e.g. ``["email", "user_id"]``)."""
    min_seconds: float | None = Field(default=None, ge=0, le=10)
    """Floor on the time of a failed answer; default: 1.5 x one argon2id verification."""
    max_body: int = Field(default=65536, ge=1024, le=1_048_576)
    per_identifier: int = Field(default=10, ge=1)
    """Attempts per identifier per minute."""
    per_address: int = Field(default=600, ge=1)
    """Requests per client address per minute (providers call from a few addresses)."""
    workers: int | None = Field(default=None, ge=1, le=256)
    """Verifications at once (threads); default: the cores this process may use. More
    only adds waiting inside the hash: the work is CPU-bound."""
    max_queue: int = Field(default=32, ge=0, le=100_000)
    """Logins waiting for a verification slot at most; beyond, ``503`` with ``Retry-After``
    at once instead of a latency that grows without limit."""
    auth: list[Literal["bearer", "basic", "hmac"]] = Field(
        default=["bearer", "basic", "hmac"], min_length=1
    )
    """How callers may present the secret: ``Authorization: Bearer``, ``Authorization: Basic``
    (user :attr:`basic_user`), or an HMAC-SHA256 signature of the body (docs/bridge.md)."""
    basic_user: str = Field(default="authmigrate", min_length=1, max_length=64, pattern=r"^[^:]+$")
    """The user name of ``Authorization: Basic``; the password is the secret."""
    legacy_lookup: bool = True
    """Look accounts not in the target up in the legacy source (through the spec) and carry
    them into the target on a verified login."""

    @field_validator("secret")
    @classmethod
    def _env_ref(cls, v: str) -> str:
        return env_ref(v)

    @field_validator("lookup")
    @classmethod
    def _idents(cls, v: list[str]) -> list[str]:
        for name in v:
            check_identifier(name)
        return v


class VerifySpec(_Model):
    """How ``verify`` reads."""

    chunk_size: int = Field(default=10_000, ge=1, le=1_000_000)
    """Source rows per checksummed chunk: memory holds one chunk of (mapped) rows."""


class Spec(_Model):
    """A whole migration."""

    name: str | None = Field(default=None, min_length=1, max_length=63)
    """The migration's name (at most 63 characters, PostgreSQL's identifier limit)."""
    source: SourceSpec
    target: TargetSpec
    fields: dict[str, FieldSpec]
    credentials: CredentialsSpec | None = None
    tokens: TokensSpec | None = None
    notify: NotifySpec | None = None
    bridge: BridgeSpec | None = None
    run: RunSpec = Field(default_factory=RunSpec)
    sync: SyncSpec = Field(default_factory=SyncSpec)
    sunset: SunsetSpec = Field(default_factory=SunsetSpec)
    verify: VerifySpec = Field(default_factory=VerifySpec)
    _base_dir: Path | None = PrivateAttr(default=None)
    _recorded_name: str | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path | None:
        """The folder of the spec file (relative template paths are read from there)."""
        return self._base_dir

    @field_validator("fields", mode="before")
    @classmethod
    def _field_shorthand(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for name, f in v.items():
            if isinstance(f, str):
                out[name] = {"from": f}
            elif isinstance(f, dict):
                out[name] = f
            else:
                raise ValueError(
                    f"{name}: expected a source column name or a table, got {type(f).__name__}"
                )
        return out

    @field_validator("fields")
    @classmethod
    def _field_names(cls, v: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        if not v:
            raise ValueError("at least one field is needed")
        for name in v:
            check_identifier(name)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        explicit = "unique" in self.target.model_fields_set  # the default names email
        for i, entry in enumerate(self.target.unique if explicit else []):
            for name in [entry] if isinstance(entry, str) else entry:
                if name not in self.fields:
                    raise ValueError(f"target.unique[{i}]: no field {name!r} in [fields]")
        taken: dict[str, str] = {}
        if self.credentials is not None:
            taken[self.credentials.target_column] = "credentials.target_column"
            taken[self.credentials.reset_column] = "credentials.reset_column"
        if self.tokens is not None:
            taken[self.tokens.column] = "tokens.column"
            if self.tokens.prefix_column:
                taken[self.tokens.prefix_column] = "tokens.prefix_column"
        for seg_name, seg in (self.notify.segments if self.notify else {}).items():
            for name in seg.when or {}:
                if name not in self.fields:
                    raise ValueError(
                        f"notify.segments.{seg_name}.when: no field {name!r} in [fields]"
                    )
        for name in self.fields:
            if name in taken:
                raise ValueError(f"fields.{name}: the column is already filled by {taken[name]}")
        if self.tokens is not None:
            self._tokens_delivered(self.tokens)
        return self

    def _tokens_delivered(self, tokens: TokensSpec) -> None:
        """A token is only of use to a user who receives it: refuse tokens nobody sends."""
        if tokens.delivery == "notify" and self.notify is None:
            raise ValueError(
                "tokens.delivery: the tokens would be stored hashed and their plaintext sent to "
                "nobody (no [notify] section); add [notify] to send them, or say "
                'tokens.delivery = "none" if no one is meant to receive them'
            )
        if tokens.delivery == "none" and self.notify is not None:
            raise ValueError(
                'tokens.delivery: "none", but [notify] is there to send the tokens; '
                'remove one of the two (the default, "notify", sends them)'
            )

    @field_validator("name")
    @classmethod
    def _printable_name(cls, v: str | None) -> str | None:
        if v is not None and (not v.isprintable() or v != v.strip()):
            raise ValueError("printable characters only, no leading or trailing spaces")
        return v

    @property
    def target_synchronous(self) -> Literal["normal", "full"]:
        """``PRAGMA synchronous`` of a SQLite target (see ``target.synchronous``)."""
        if self.target.synchronous is not None:
            return self.target.synchronous
        return "full" if self.notify is not None else "normal"

    @property
    def migration_name(self) -> str:
        """The name runs, checkpoints and rejects are recorded under.

        ``name`` when the spec gives one; else ``<source>-><target table>@<hash of where the
        rows come from>``, a file or SQLite source named by its resolved path, so that
        ``csv:///../data/users.csv`` and the same file's absolute path are one migration.
        A target holding the bookkeeping of an earlier version's name for this spec keeps
        using it (:meth:`use_recorded_name`).
        """
        if self.name:
            return self.name
        if self._recorded_name:
            return self._recorded_name
        return self._default_name(resolve=True)

    @property
    def earlier_migration_names(self) -> list[str]:
        """Default names earlier versions derived from this spec (from the source path as
        spelled, not resolved) when they differ from today's; empty with an explicit name."""
        if self.name:
            return []
        old = self._default_name(resolve=False)
        return [] if old == self._default_name(resolve=True) else [old]

    def use_recorded_name(self, name: str) -> None:
        """Record this migration under ``name`` (one of :attr:`earlier_migration_names`,
        found in the target's bookkeeping)."""
        if name not in self.earlier_migration_names:
            raise ValueError("not a name this spec had")
        self._recorded_name = name

    def _default_name(self, *, resolve: bool) -> str:
        src = self.source
        url = _resolved_path_url(src.url) if resolve else src.url
        label = Path(url.split(":///", 1)[-1]).name if src.is_file else src.table or "query"
        # two shops' "customers" tables into one target must not share a checkpoint: the
        # name carries a hash of where the rows come from (password masked, never shown)
        from authmigrate.db import safe_url

        origin = f"{safe_url(url) if not src.is_file else url}|{src.table}|{src.query}"
        digest = hashlib.sha256(origin.encode()).hexdigest()[:8]
        return f"{label}->{self.target.table}@{digest}"

    @property
    def target_key(self) -> str:
        """The target column that holds the source key."""
        return self.target.key or self.source.key

    def secret_refs(self) -> dict[str, str]:
        """Every ``env:NAME`` the spec names, by key path: what a run will need set."""
        refs: dict[str, str] = {}
        if self.credentials is not None:
            for kid, ref in self.credentials.keys.items():
                refs[f"credentials.keys.{kid}"] = ref
        if self.tokens is not None and self.tokens.server_key:
            refs["tokens.server_key"] = self.tokens.server_key
        if self.notify is not None:
            refs["notify.outbox_key"] = self.notify.outbox_key
            if self.notify.smtp.password:
                refs["notify.smtp.password"] = self.notify.smtp.password
        return refs

    def fingerprint(self) -> str:
        """A short hash of the spec's content, recorded with each run."""
        raw = self.model_dump_json(by_alias=True, exclude_none=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """``"7d"`` -> seconds. Units: s, m, h, d, w."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration like '7d' or '12h': {text!r}")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def resolve_secret(ref: str, *, path: str) -> str:
    """Read the secret an ``env:NAME`` reference names.

    Raises:
        SpecError: the reference is malformed or the variable is not set. The message names
            the variable, never its value.
    """
    if not is_env_ref(ref):
        raise SpecError(path, "must be an env:NAME reference")
    name = ref[4:]
    value = os.environ.get(name)
    if value is None or value == "":
        raise SpecError(path, f"environment variable {name} is not set")
    return value


OUTBOX_KEY_COMMAND = (
    'python -c "from authmigrate.notify import generate_outbox_key; print(generate_outbox_key())"'
)
"""How a user makes an outbox key (docs/notify.md says the same)."""


def check_secrets(spec: Spec) -> list[str]:
    """The environment variables named by the spec's ``env:`` references (all set).

    Raises:
        SpecError: one or more are not set; the message names each variable and its key path
            (never a value).
    """
    unset = [
        (path, ref[4:]) for path, ref in spec.secret_refs().items() if not os.environ.get(ref[4:])
    ]
    if unset:
        listed = ", ".join(f"{name} ({path})" for path, name in unset)
        hint = f"export {unset[0][1]}=... before running"
        if any(path.startswith("notify.outbox") for path, _ in unset):
            hint += f"; make an outbox key with: {OUTBOX_KEY_COMMAND}"
        raise SpecError(unset[0][0], f"environment variable not set: {listed} ({hint})")
    return sorted({ref[4:] for ref in spec.secret_refs().values()})


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "literal", "list["))]
    # pydantic reports the "from" alias as from_ in some paths
    return ".".join("from" if p == "from_" else p for p in parts)


def _keys_at(parts: list[str]) -> list[str]:
    """The keys the spec accepts under the section ``parts`` (e.g. ``["run"]``)."""
    model: Any = Spec
    skip = False
    for part in parts:
        if skip:  # the name of an entry of a table of sections ([fields.email], segments)
            skip = False
            continue
        info = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if info is None:
            return []
        model, skip = _section_model(info.annotation)
        if model is None:
            return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _section_model(annotation: Any) -> tuple[Any, bool]:
    """(the pydantic model a field holds, whether it is a dict of them)."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in _UNIONS else ()
    for arg in options or (annotation,):
        if typing.get_origin(arg) is dict:
            inner = typing.get_args(arg)[1]
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner, True
        elif isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, False
    return None, False


_UNIONS = (typing.Union, types.UnionType)


_EXPECTED = {
    "int_type": "an integer (e.g. 500, without quotes)",
    "float_type": "a number (e.g. 2.5, without quotes)",
    "bool_type": "true or false (without quotes)",
    "string_type": "a string (in quotes)",
    "list_type": 'a list (e.g. ["a", "b"])',
    "dict_type": "a table",
    "model_type": "a table",
}
"""What a key holds, by pydantic's error type, for "expected X, got Y" messages."""


def _toml_kind(value: Any) -> str:
    """What the spec wrote, by TOML type (never the value: it may be a secret)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _format(err: ValidationError) -> SpecError:
    first = err.errors()[0]
    raised = (first.get("ctx") or {}).get("error")
    if isinstance(raised, SpecError):  # a validator that knows the exact key path
        return raised
    path = _loc(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        known = _keys_at(path.split(".")[:-1])
        near = difflib.get_close_matches(path.rsplit(".", 1)[-1], known, n=1)
        hint = f"did you mean {near[0]!r}?" if near else "check the spelling"
        return SpecError(path, f"unknown key ({hint})")
    if kind == "missing":
        return SpecError(path, "required key is missing")
    if kind in _EXPECTED:
        got = _toml_kind(first.get("input"))
        return SpecError(path, f"expected {_EXPECTED[kind]}, got {got}")
    msg = first["msg"]
    msg = msg.removeprefix("Value error, ")
    return SpecError(path, msg)


def spec_from_data(data: dict[str, Any], *, base_dir: Path | None = None) -> Spec:
    """Validate a spec's data: a parsed TOML document whose preset, if it names one, is
    already rendered (:func:`authmigrate.load.load_spec_text` does both). Relative file URLs
    and an export's ``dir`` are taken from ``base_dir``.

    Raises:
        SpecError: an unknown key, a wrong type or an inconsistent value; the message names
            the key path.
    """
    _check_export_keys(data)
    if base_dir is not None:
        data = _resolve_export_dir(data, base_dir)
        data = _resolve_relative_urls(data, base_dir)
    fields = data.get("fields")
    if isinstance(fields, dict):
        for name in fields:
            try:
                check_identifier(name)
            except ValueError as exc:
                raise SpecError(f"fields.{name}", str(exc)) from None
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise _format(exc) from None
    spec._base_dir = base_dir
    _check_export_settings(spec.target)
    return spec


def __getattr__(name: str) -> Any:
    # ``from authmigrate.spec import load_spec`` keeps working: the loader lives above the
    # spec (it renders presets before validating), in authmigrate.load
    if name in ("load_spec", "load_spec_text"):
        import importlib

        return getattr(importlib.import_module("authmigrate.load"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_export_settings(target: TargetSpec) -> None:
    """``[target.provider]`` keys must be settings of the chosen provider."""
    from authmigrate.sinks.exports import PROVIDERS

    if target.provider and target.export is None:
        raise SpecError("target.provider", "provider settings need 'export'")
    if target.export is None:
        return
    known = PROVIDERS[target.export].settings
    for key in target.provider:
        if key not in known:
            shown = ", ".join(known) or "none"
            raise SpecError(
                f"target.provider.{key}", f"not a setting of {target.export} (known: {shown})"
            )
        allowed = getattr(PROVIDERS[target.export], "choices", {}).get(key)
        if allowed and target.provider[key] not in allowed:
            raise SpecError(f"target.provider.{key}", f"must be one of {', '.join(allowed)}")


def _check_export_keys(data: dict[str, Any]) -> None:
    """``export`` and ``dir`` go together, ``dir`` a non-empty path."""
    target = data.get("target")
    if not isinstance(target, dict) or "export" not in target and "dir" not in target:
        return
    if "export" not in target:
        raise SpecError("target.dir", "'dir' is only for an export: set target.export too")
    if not isinstance(target.get("dir"), str) or not target["dir"].strip():
        raise SpecError("target.dir", "an export needs a directory to write its files in")


def _resolve_export_dir(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """An export's relative ``dir`` is beside the spec, like a relative SQLite file."""
    target = data.get("target")
    if isinstance(target, dict) and isinstance(target.get("dir"), str):
        d = Path(target["dir"])
        if not d.is_absolute():
            data = {**data, "target": {**target, "dir": str(base / d)}}
    return data


def _resolved_path_url(url: str) -> str:
    """A ``sqlite:///``, ``csv:///`` or ``jsonl:///`` URL with its path resolved (absolute,
    ``..`` and symlinks followed); other URLs unchanged."""
    for scheme in ("sqlite:///", "csv:///", "jsonl:///"):
        if url.startswith(scheme):
            path, sep, query = url[len(scheme) :].partition("?")
            if not path or path.startswith((":memory:", "file:")):
                return url
            return f"{scheme}{Path(path).resolve()}{sep}{query}"
    return url


def _resolve_relative_urls(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``sqlite:///legacy.db`` in a spec means legacy.db beside the spec, not in the cwd."""
    for section in ("source", "target"):
        sec = data.get(section)
        if not isinstance(sec, dict) or not isinstance(sec.get("url"), str):
            continue
        url: str = sec["url"]
        for scheme in ("sqlite:///", "csv:///", "jsonl:///"):
            if url.startswith(scheme):
                rest = url[len(scheme) :]
                if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
                    sec = dict(sec)
                    sec["url"] = scheme + str(base / rest)
                    data = dict(data)
                    data[section] = sec
    return data
