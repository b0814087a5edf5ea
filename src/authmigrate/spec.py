r"""The spec file: one TOML document that describes a migration, loaded into a typed model.

Every section is a pydantic model that forbids unknown keys, so a typo such as ``normalise``
is refused with the key path at fault before anything is written::

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
import tomllib
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
    field_validator,
    model_validator,
)

from authmigrate.errors import SpecError

TRANSFORMS = ("strip", "lower", "upper", "nfkc", "nfc", "email", "collapse_spaces", "none_if_empty")
"""Names accepted by ``normalize``; applied in the order given."""

FIELD_TYPES = ("text", "integer", "bigint", "float", "boolean", "datetime", "date", "json")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_QUALIFIED = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def check_identifier(value: str, *, qualified: bool = False) -> str:
    """Refuse table/column names that are not plain identifiers.

    Names are always quoted by SQLAlchemy when they reach SQL, but a name with quotes,
    semicolons or comment markers is almost certainly a mistake or an attack, so it is refused.
    """
    pattern = _QUALIFIED if qualified else _IDENT
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"not a plain SQL identifier: {value!r}")
    return value


def is_env_ref(value: object) -> bool:
    """True for ``"env:NAME"``: how a spec names a secret without holding it."""
    return isinstance(value, str) and value.startswith("env:") and len(value) > 4


def env_ref(value: str) -> str:
    """Validator body: ``value`` must be an ``env:NAME`` reference (never the secret itself)."""
    if not is_env_ref(value):
        raise ValueError("must be an env:NAME reference, not a value")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SourceSpec(_Model):
    """Where the legacy accounts are read from."""

    url: str
    table: str | None = None
    query: str | None = None
    key: str
    preset: str | None = None
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)

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
    table: str
    key: str | None = None
    """Target column that receives the source key untransformed (default: the source key name)."""
    unique: list[str | list[str]] = Field(default_factory=lambda: list[str | list[str]](["email"]))
    """Target fields that identify an account (a list: unique together, e.g. Magento's
    ``["website_id", "email"]``); duplicates follow ``run.duplicates``."""
    create: bool = True

    @field_validator("table")
    @classmethod
    def _table_ident(cls, v: str) -> str:
        return check_identifier(v, qualified=True)

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
            from authmigrate.transform import template_fields

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
    def _known_profile(cls, v: str) -> str:
        from authmigrate.credentials import PROFILES

        if v not in PROFILES:
            raise ValueError(f"unknown profile {v!r} (known: {', '.join(sorted(PROFILES))})")
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
    timeout: float = Field(default=30.0, gt=0)
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
    rate_per_second: float = Field(default=10.0, gt=0)
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


class RunSpec(_Model):
    """How the run proceeds."""

    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    duplicates: Literal["reject", "merge"] = "reject"
    retries: int = Field(default=5, ge=0, le=100)
    workers: int | None = Field(default=None, ge=1)


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


class Spec(_Model):
    """A whole migration."""

    name: str | None = None
    source: SourceSpec
    target: TargetSpec
    fields: dict[str, FieldSpec]
    credentials: CredentialsSpec | None = None
    tokens: TokensSpec | None = None
    notify: NotifySpec | None = None
    run: RunSpec = Field(default_factory=RunSpec)
    sync: SyncSpec = Field(default_factory=SyncSpec)
    sunset: SunsetSpec = Field(default_factory=SunsetSpec)
    _base_dir: Path | None = PrivateAttr(default=None)

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

    @property
    def migration_name(self) -> str:
        """The name runs, checkpoints and rejects are recorded under."""
        if self.name:
            return self.name
        src = self.source
        label = Path(src.url.split(":///", 1)[-1]).name if src.is_file else src.table or "query"
        # two shops' "customers" tables into one target must not share a checkpoint: the
        # name carries a hash of where the rows come from (password masked, never shown)
        from authmigrate.db import safe_url

        origin = f"{safe_url(src.url) if not src.is_file else src.url}|{src.table}|{src.query}"
        digest = hashlib.sha256(origin.encode()).hexdigest()[:8]
        return f"{label}->{self.target.table}@{digest}"

    @property
    def target_key(self) -> str:
        """The target column that holds the source key."""
        return self.target.key or self.source.key

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


def _format(err: ValidationError) -> SpecError:
    first = err.errors()[0]
    path = _loc(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        known = _keys_at(path.split(".")[:-1])
        near = difflib.get_close_matches(path.rsplit(".", 1)[-1], known, n=1)
        hint = f"did you mean {near[0]!r}?" if near else "check the spelling"
        return SpecError(path, f"unknown key ({hint})")
    if kind == "missing":
        return SpecError(path, "required key is missing")
    msg = first["msg"]
    msg = msg.removeprefix("Value error, ")
    return SpecError(path, msg)


def load_spec_text(text: str, *, base_dir: Path | None = None) -> Spec:
    """Parse and validate a spec from TOML text.

    Raises:
        SpecError: invalid TOML, an unknown key, a wrong type or an inconsistent value; the
            message names the key path.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("", f"not valid TOML: {exc}") from None
    if "source" in data and isinstance(data["source"], dict) and data["source"].get("preset"):
        from authmigrate.presets import apply_preset

        data = apply_preset(data)
    if base_dir is not None:
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
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate the spec file at ``path``; relative file URLs are taken from its folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("", f"cannot read spec file {p}: {exc.strerror}") from None
    return load_spec_text(text, base_dir=p.resolve().parent)


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
