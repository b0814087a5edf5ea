"""Field transforms: how each target column is computed from a source row.

A spec's ``[fields]`` table is compiled once into small functions; a value that cannot be
transformed raises :class:`FieldReject`, which the pipeline turns into a reject row with the
reason code and the column at fault (never an exception that escapes a batch).

>>> normalize_email("  Jane.Doe@Example.COM ", lowercase_local=False)
'Jane.Doe@example.com'
>>> normalize_email("Jane.Doe@Example.COM")
'jane.doe@example.com'
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from authmigrate.errors import SpecError
from authmigrate.pipeline.batch import InvalidValue
from authmigrate.spec import FieldSpec, Spec, template_fields

Row = Mapping[str, Any]
FieldFn = Callable[[Row], Any]


class FieldReject(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A value that cannot be migrated; becomes a reject with ``reason`` and ``column``."""

    def __init__(self, reason: str, column: str, detail: str = "") -> None:
        self.reason = reason
        self.column = column
        self.detail = detail
        super().__init__(reason)


_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_EDGE = " \t\r\n\f\v\u00a0" + _ZERO_WIDTH
_ATEXT = re.compile(r"^[^\s@\"(),:;<>\[\\\]\x00-\x1f\x7f" + _ZERO_WIDTH + r"]+$")
_LABEL = re.compile(r"^(?!-)[^\s@\"(),:;<>\[\\\]\x00-\x1f\x7f_." + _ZERO_WIDTH + r"]{1,63}(?<!-)$")


class InvalidEmail(ValueError):  # noqa: N818
    """The value is not an email address."""


_ASCII_EMAIL = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})@([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+)"
)


def _ascii_ok(s: str) -> bool:
    """The dot and hyphen rules the fast regex leaves out."""
    return not (
        ".." in s or s[0] == "." or ".@" in s or "@-" in s or "-." in s or ".-" in s or s[-1] == "-"
    )


def normalize_email(value: str, *, lowercase_local: bool = True) -> str:
    """Trim, NFC-normalize, lower-case the domain (and, by default, the local part).

    Raises:
        InvalidEmail: not a single ``local@domain`` with a dotted domain.
    """
    s = value.strip(_EDGE)
    if s.isascii() and len(s) <= 254:
        # the common case, one regex: dot-atom local part, dotted LDH domain
        m = _ASCII_EMAIL.fullmatch(s)
        if m is not None and _ascii_ok(s):
            return s.lower() if lowercase_local else f"{m.group(1)}@{m.group(2).lower()}"
    else:
        s = unicodedata.normalize("NFC", s)
    _check_email_shape(s)
    local, _, domain = s.rpartition("@")
    domain = domain.lower()
    if lowercase_local:
        local = local.lower()
    return f"{local}@{domain}"


_EMAIL_MAX = 254
"""RFC 5321's limit on a whole address (a path of 256 octets less the angle brackets)."""
_LOCAL_MAX = 64
_LABEL_MAX = 63
_SPECIALS = set('"(),:;<>[\\]')


def _check_email_shape(s: str) -> None:
    """Raise :class:`InvalidEmail` saying what is wrong with ``s`` (never quoting it)."""
    if not s:
        raise InvalidEmail("empty")
    if len(s) > _EMAIL_MAX:
        raise InvalidEmail(f"longer than {_EMAIL_MAX} characters (RFC 5321): {len(s):,} characters")
    local, at, domain = s.rpartition("@")
    if not at:
        raise InvalidEmail("no @ (not local@domain)")
    if not local:
        raise InvalidEmail("nothing before the @")
    if not domain:
        raise InvalidEmail("nothing after the @")
    if "@" in local:
        raise InvalidEmail("more than one @")
    if len(local) > _LOCAL_MAX:
        raise InvalidEmail(f"local part longer than {_LOCAL_MAX} characters (RFC 5321)")
    if not _ATEXT.match(local):
        raise InvalidEmail(f"local part contains {_bad_character(local)}")
    if local.startswith(".") or local.endswith("."):
        raise InvalidEmail("local part starts or ends with a dot")
    if ".." in local:
        raise InvalidEmail("two dots in a row in the local part")
    labels = domain.lower().split(".")
    if len(labels) < 2:
        raise InvalidEmail("domain has no dot (e.g. example.com)")
    for label in labels:
        if not label:
            raise InvalidEmail("empty domain label (two dots in a row, or a dot at an end)")
        if len(label) > _LABEL_MAX:
            raise InvalidEmail(f"domain label longer than {_LABEL_MAX} characters (RFC 1035)")
        if label.startswith("-") or label.endswith("-"):
            raise InvalidEmail("domain label starts or ends with a hyphen")
        if not _LABEL.match(label):
            raise InvalidEmail(f"domain contains {_bad_character(label, domain=True)}")


def _bad_character(part: str, *, domain: bool = False) -> str:
    """What kind of character is not allowed (a description, never the text itself)."""
    for ch in part:
        if ch.isspace() or ch in _ZERO_WIDTH:
            return "a space or invisible character"
        if ord(ch) < 32 or ord(ch) == 127:
            return "a control character"
        if ch in _SPECIALS:
            return 'one of " ( ) , : ; < > [ \\ ] (allowed only in quotes, which we refuse)'
        if domain and ch == "_":
            return "an underscore (not allowed in a host name)"
    return "a character not allowed there"


def _as_text(value: Any, column: str) -> str:
    if isinstance(value, str):
        return value
    if type(value) is InvalidValue:
        raise FieldReject(value.reason, column, value.detail)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise FieldReject("field.invalid_encoding", column, "bytes are not UTF-8") from None
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    raise FieldReject("field.invalid_type", column, f"expected text, got {type(value).__name__}")


def check_text(s: str, column: str) -> str:
    """Refuse text a database cannot store: NUL characters, lone surrogates."""
    if "\x00" in s:
        raise FieldReject("field.invalid_text", column, "contains a NUL character")
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldReject("field.invalid_text", column, "not valid Unicode") from None
    return s


def _passthrough(column: str) -> Callable[[Any], Any]:
    """A plain copy keeps the source's type; only text is checked, and an aware date-time
    becomes naive UTC (as a ``datetime`` field does), whatever the source session's zone."""

    def same(v: Any) -> Any:
        kind = type(v)
        if kind is str:
            return check_text(v, column)
        if kind is InvalidValue:
            raise FieldReject(v.reason, column, v.detail)
        if kind is dt.datetime and v.tzinfo is not None:
            return v.astimezone(dt.UTC).replace(tzinfo=None)
        return v

    return same


def _text_step(name: str, spec: FieldSpec, column: str) -> Callable[[Any], Any]:
    if name == "strip":
        return lambda v: v.strip(_EDGE)
    if name == "lower":
        return lambda v: v.lower()
    if name == "upper":
        return lambda v: v.upper()
    if name == "nfkc":
        return lambda v: v if v.isascii() else unicodedata.normalize("NFKC", v)
    if name == "nfc":
        return lambda v: v if v.isascii() else unicodedata.normalize("NFC", v)
    if name == "collapse_spaces":
        return lambda v: " ".join(v.split())
    if name == "none_if_empty":
        return lambda v: v if v.strip(_EDGE) else None
    if name == "email":
        lower_local = spec.lowercase_local

        def email(v: str) -> str:
            try:
                return normalize_email(v, lowercase_local=lower_local)
            except InvalidEmail as exc:
                raise FieldReject("field.invalid_email", column, str(exc)) from None

        return email
    raise SpecError(f"fields.{column}.normalize", f"unknown transform {name!r}")


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def _kind_of(value: Any) -> str:
    """A value described by its type and size, for a reject's detail (never the value)."""
    if isinstance(value, str):
        return "empty text" if not value.strip() else f"text of {len(value):,} characters"
    return f"a {type(value).__name__}"


def _coerce(kind: str, column: str) -> Callable[[Any], Any]:  # noqa: C901 - one branch a type
    bits = 31 if kind == "integer" else 63  # INTEGER / BIGINT, as every target stores them

    def integer(v: Any) -> Any:
        if isinstance(v, bool):
            return int(v)
        if not isinstance(v, int):
            try:
                v = int(str(v).strip())
            except ValueError:
                raise FieldReject(
                    "field.invalid_type", column, f"{_kind_of(v)} is not an integer"
                ) from None
        if not -(2**bits) <= v < 2**bits:
            raise FieldReject(
                "field.out_of_range",
                column,
                f'integer does not fit {bits + 1} bits (type = "{kind}")',
            )
        return v

    def floating(v: Any) -> Any:
        try:
            f = float(v)
        except (TypeError, ValueError, OverflowError):
            raise FieldReject(
                "field.invalid_type", column, f"{_kind_of(v)} is not a number"
            ) from None
        if not math.isfinite(f):
            raise FieldReject("field.out_of_range", column, "infinite or NaN: not a finite number")
        return f

    def boolean(v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return v != 0
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise FieldReject(
            "field.invalid_type",
            column,
            f"{_kind_of(v)} is not a boolean (1/0, true/false, yes/no, on/off)",
        )

    def datetime_(v: Any) -> Any:
        v = _datetime(v)
        if isinstance(v, dt.datetime) and v.tzinfo is not None:
            # SQLite would keep the wall time and PostgreSQL convert to its session's zone
            return v.astimezone(dt.UTC).replace(tzinfo=None)
        return v

    def _datetime(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v
        if isinstance(v, dt.date):
            return dt.datetime(v.year, v.month, v.day)
        if isinstance(v, int | float) and not isinstance(v, bool):
            try:
                return dt.datetime.fromtimestamp(v, tz=dt.UTC).replace(tzinfo=None)
            except (OverflowError, OSError, ValueError):
                raise FieldReject(
                    "field.invalid_type", column, "number out of the range of a Unix timestamp"
                ) from None
        s = str(v).strip()
        if s.startswith("0000-00-00"):
            return None  # MySQL's zero date means "no date"
        try:
            return dt.datetime.fromisoformat(s)
        except ValueError:
            raise FieldReject(
                "field.invalid_type",
                column,
                f"{_kind_of(v)} is not an ISO 8601 date-time (YYYY-MM-DD HH:MM:SS)",
            ) from None

    def date_(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.date()
        if isinstance(v, dt.date):
            return v
        s = str(v).strip()
        if s.startswith("0000-00-00"):
            return None
        try:
            return dt.date.fromisoformat(s[:10])
        except ValueError:
            raise FieldReject(
                "field.invalid_type",
                column,
                f"{_kind_of(v)} is not an ISO 8601 date (YYYY-MM-DD)",
            ) from None

    def json_(v: Any) -> Any:
        if isinstance(v, str):
            try:
                json.loads(v)
            except ValueError:
                raise FieldReject(
                    "field.invalid_type", column, f"{_kind_of(v)} is not valid JSON"
                ) from None
            return v
        return json.dumps(v, default=str)

    def text(v: Any) -> Any:
        s = v if type(v) is str else _as_text(v, column)
        return check_text(s, column)

    table: dict[str, Callable[[Any], Any]] = {
        "text": text,
        "integer": integer,
        "bigint": integer,
        "float": floating,
        "boolean": boolean,
        "datetime": datetime_,
        "date": date_,
        "json": json_,
    }
    return table[kind]


def compile_field(name: str, spec: FieldSpec) -> FieldFn:
    """Compile one field spec into ``row -> value`` (raising :class:`FieldReject`)."""
    if spec.value is not None:
        constant = spec.value
        if "type" in spec.model_fields_set:
            try:
                constant = _coerce(spec.type, name)(constant)
            except FieldReject as exc:
                raise SpecError(f"fields.{name}.value", f"{exc.detail} ({spec.type})") from None
        return lambda row: constant
    if spec.template is not None:
        tmpl = spec.template
        fields = template_fields(tmpl)

        def get(row: Row) -> Any:
            parts = {f: ("" if row.get(f) is None else _as_text(row[f], name)) for f in fields}
            return tmpl.format_map(parts)

    else:
        src = spec.from_ or name

        def get(row: Row) -> Any:
            return row.get(src)

    steps = [_text_step(n, spec, name) for n in spec.normalize]
    typed = "type" in spec.model_fields_set or bool(steps) or spec.template is not None
    coerce = _coerce(spec.type, name) if typed else _passthrough(name)
    default = spec.default
    required = spec.required
    max_length = spec.max_length
    is_text = spec.type == "text"

    if not steps and is_text and max_length is None and default is None and not required:
        # the hot path of a plain copy
        if spec.template is not None:

            def plain(row: Row) -> Any:
                v = get(row)
                return None if v is None else coerce(v)

            return plain
        src_col = spec.from_ or name

        def copy(row: Row) -> Any:
            v = row.get(src_col)
            return None if v is None else coerce(v)

        return copy

    blank_is_null = not is_text  # a CSV's empty cell in a number or date column: no value

    def field(row: Row) -> Any:
        v = get(row)
        if type(v) is InvalidValue:
            raise FieldReject(v.reason, name, v.detail)
        if blank_is_null and type(v) is str and not v.strip():
            v = None
        if v is not None and steps:
            if type(v) is not str:
                v = _as_text(v, name)
            for step in steps:
                v = step(v)
                if v is None:
                    break
        if v is None:
            v = default
        if v is None:
            if required:
                raise FieldReject(
                    "field.missing", name, "no value (NULL or empty) in a required field"
                )
            return None
        v = coerce(v)
        if max_length is not None and isinstance(v, str) and len(v) > max_length:
            raise FieldReject(
                "field.too_long",
                name,
                f"{len(v):,} characters, longer than max_length = {max_length}",
            )
        return v

    return field


def normalizer(name: str, spec: FieldSpec) -> Callable[[Any], Any] | None:
    """The field's ``normalize`` steps alone, for text the target already holds (an account
    the new system wrote itself), so it can be compared with normalized source values.

    None for a field without steps. A value the steps refuse (not an email) stays as it is.

    >>> normalizer("email", FieldSpec(normalize=["email"]))("  User.5@Example.com")
    'user.5@example.com'
    """
    if not spec.normalize:
        return None
    steps = [_text_step(n, spec, name) for n in spec.normalize]

    def normalize(value: Any) -> Any:
        if type(value) is not str:
            return value
        v: Any = value
        try:
            for step in steps:
                v = step(v)
                if v is None:
                    return None
        except FieldReject:
            return value
        return v

    return normalize


def source_columns_used(spec: Spec) -> dict[str, str]:
    """Every source column the spec reads, mapped to the spec key that names it."""
    used: dict[str, str] = {spec.source.key: "source.key"}
    for name, f in spec.fields.items():
        if f.value is not None:
            continue
        if f.template is not None:
            try:
                names = template_fields(f.template)
            except ValueError as exc:
                raise SpecError(f"fields.{name}.template", str(exc)) from None
            for col in names:
                used.setdefault(col, f"fields.{name}.template")
        else:
            used.setdefault(f.from_ or name, f"fields.{name}.from")
    if spec.credentials is not None:
        used.setdefault(spec.credentials.column, "credentials.column")
        if spec.credentials.salt_column:
            used.setdefault(spec.credentials.salt_column, "credentials.salt_column")
        if spec.credentials.scheme_column:
            used.setdefault(spec.credentials.scheme_column, "credentials.scheme_column")
    return used


class RowTransformer:
    """All fields of a spec (its ``[fields]`` section), compiled:
    ``row -> {target column: value}``."""

    def __init__(self, fields: Mapping[str, FieldSpec] | Spec) -> None:
        if isinstance(fields, Spec):  # how earlier versions were called: still understood
            fields = fields.fields
        self.fns = [(name, compile_field(name, f)) for name, f in fields.items()]

    def __call__(self, row: Row) -> dict[str, Any]:
        return {name: fn(row) for name, fn in self.fns}
