"""Plain digests of home-grown shops, described declaratively: scheme id ``digest``.

One descriptor covers ``md5($password)``, ``sha1($salt . $password)``,
``base64(sha256($password . $salt))``, ``hash_hmac('sha256', $password, PEPPER)``,
``md5(md5($password))``, ``sha512("{$salt}--{$password}--{$pepper}")`` in latin-1 or UTF-16LE,
and so on. It does what Auth0's ``custom_password_hash`` does (algorithm, hash encoding, salt
position, password encoding, HMAC key) and more: a free template, a pepper, the salt as the
HMAC key, iterations, and keys only by id.

Canonical form (ours, PHC-style)::

    $digest$a=<algorithm>,e=<encoding>[,s=before|after|f=<template>][,k=<key id>,m=<mode>]
           [,p=<password encoding>][,i=<iterations>][,c=raw]$<salt b64>$<digest>

``a``   md5, sha1, sha256 or sha512.
``e``   how the stored digest is written: ``hex``, ``hexu`` (uppercase hex) or ``b64``
        (standard base64; the canonical digest drops the ``=`` padding).
``s``   the salt before (``salt.password``) or after (``password.salt``) the password; absent
        means the password alone (or the salt is only an HMAC key, ``m=hmac-salt``).
``f``   any other message template: tokens ``salt``, ``password``, ``pepper`` and ``x<hex>``
        literals joined by ``.`` (``{password}--{salt}`` is ``f=password.x2d2d.salt``).
``k``   the keyring id of the key; ``m`` says how it is used: ``hmac`` (HMAC keyed with it,
        the default), ``pepper`` (its bytes stand at ``{pepper}`` in the template). ``m=hmac-salt``
        is an HMAC keyed with the salt (no ``k``).
``p``   password encoding: ``utf8`` (default), ``latin1`` or ``utf16le``.
``i``   total rounds (default 1); each round after the first hashes the previous digest as
        written in ``e`` (PHP's ``md5(md5($p))``), or its raw bytes with ``c=raw``.

Examples: ``$digest$a=md5,e=hex$$5f4dcc3b5aa765d61d8327deb882cf99`` (``md5("password")``);
``$digest$a=sha256,e=hex,f=salt.password.pepper,k=pepper1,m=pepper$c2FsdA$<64 hex>``.

Import from a bare digest, its salt column and the descriptor::

    import_hash("digest", "5f4dcc3b5aa765d61d8327deb882cf99", algorithm="md5")
    import_hash("digest", value, salt=row["salt"], algorithm="sha256", encoding="hex",
                salt_position="after", key_id="pepper1", key_mode="pepper")

A bare hex string is never identified as ``digest``: it could be anything, so the spec names
the scheme and its descriptor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from authmigrate.errors import CredentialError

from . import _phc
from ._base import Keyring, register
from ._common import (
    DigestScheme,
    b64decode,
    b64encode,
    malformed,
    reject_params,
    same,
    secret_for,
)

SCHEME_ID = "digest"

ALGORITHMS = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}
"""Supported algorithms and their digest sizes in bytes."""

ENCODINGS = ("hex", "hexu", "b64")
PASSWORD_ENCODINGS = {"utf8": "utf-8", "latin1": "latin-1", "utf16le": "utf-16-le"}
KEY_MODES = ("hmac", "pepper", "hmac-salt")
MAX_ITERATIONS = 100_000

_ENCODING_ALIASES = {
    "utf8": "utf8", "utf-8": "utf8",
    "latin1": "latin1", "latin-1": "latin1", "iso-8859-1": "latin1",
    "utf16le": "utf16le", "utf-16le": "utf16le", "utf-16-le": "utf16le",
}  # fmt: skip
_PLACEHOLDER = re.compile(r"\{(salt|password|pepper)\}")
_HEX = re.compile(r"[0-9a-fA-F]*")
_PRESETS: dict[tuple[str | bytes, ...], str] = {
    ("salt", "password"): "before",
    ("password", "salt"): "after",
}


def _bad_params(message: str) -> CredentialError:
    return CredentialError(f"digest: {message}", code="credential.bad_params")


@dataclass(frozen=True)
class Descriptor:
    """How a plain digest was computed (everything but the salt and the digest).

    ``template`` is a tuple of tokens: ``"salt"``, ``"password"``, ``"pepper"`` or literal bytes.
    """

    algorithm: str
    encoding: str = "hex"
    template: tuple[str | bytes, ...] = ("password",)
    key_id: str | None = None
    key_mode: str | None = None
    password_encoding: str = "utf8"
    iterations: int = 1
    raw_chain: bool = False

    def check(self) -> Descriptor:
        """Raise CredentialError when the combination is inconsistent; return self."""
        if self.algorithm not in ALGORITHMS:
            raise _bad_params("algorithm must be md5, sha1, sha256 or sha512")
        if self.encoding not in ENCODINGS:
            raise _bad_params("encoding must be hex, hexu or b64")
        if self.password_encoding not in PASSWORD_ENCODINGS:
            raise _bad_params("password encoding must be utf8, latin1 or utf16le")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise _bad_params(f"iterations must be 1..{MAX_ITERATIONS}")
        if self.template.count("password") != 1:
            raise _bad_params("the template must hold {password} exactly once")
        if self.key_mode not in (None, *KEY_MODES):
            raise _bad_params("key mode must be hmac, pepper or hmac-salt")
        has_pepper = "pepper" in self.template
        if self.key_mode == "pepper" and not has_pepper:
            raise _bad_params("a pepper needs {pepper} in the template")
        if has_pepper and self.key_mode != "pepper":
            raise _bad_params("{pepper} in the template needs key_mode pepper")
        if (self.key_id is None) != (self.key_mode in (None, "hmac-salt")):
            raise _bad_params("key_id goes with key_mode hmac or pepper")
        if self.key_id is not None:
            _phc.check_value(SCHEME_ID, "k", self.key_id)
        return self

    def uses_salt(self) -> bool:
        """True when the salt enters the message or keys the HMAC."""
        return "salt" in self.template or self.key_mode == "hmac-salt"


# -- templates ---------------------------------------------------------------------------------


def parse_template(text: str) -> tuple[str | bytes, ...]:
    """``"{salt}--{password}"`` -> ``("salt", b"--", "password")``."""
    tokens: list[str | bytes] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        if m.start() > pos:
            tokens.append(text[pos : m.start()].encode("utf-8"))
        tokens.append(m.group(1))
        pos = m.end()
    if pos < len(text):
        tokens.append(text[pos:].encode("utf-8"))
    if any(isinstance(t, bytes) and (b"{" in t or b"}" in t) for t in tokens):
        raise _bad_params("template placeholders are {salt}, {password} and {pepper}")
    return tuple(tokens)


def _template_param(template: tuple[str | bytes, ...]) -> str:
    return ".".join(t if isinstance(t, str) else "x" + t.hex() for t in template)


def _template_from_param(value: str) -> tuple[str | bytes, ...]:
    tokens: list[str | bytes] = []
    for item in value.split("."):
        if item in ("salt", "password", "pepper"):
            tokens.append(item)
        elif item.startswith("x") and len(item) > 1:
            try:
                tokens.append(bytes.fromhex(item[1:]))
            except ValueError:
                raise malformed(SCHEME_ID, "bad template literal") from None
        else:
            raise malformed(SCHEME_ID, "bad template token")
    return tuple(tokens)


# -- canonical form ---------------------------------------------------------------------------


def format_params(d: Descriptor) -> str:
    """The parameter field of the canonical form, in its one canonical order."""
    params = {"a": d.algorithm, "e": d.encoding}
    if d.template != ("password",):
        preset = _PRESETS.get(d.template)
        if preset:
            params["s"] = preset
        else:
            params["f"] = _template_param(d.template)
    if d.key_id is not None:
        params["k"] = d.key_id
    if d.key_mode is not None:
        params["m"] = d.key_mode
    if d.password_encoding != "utf8":
        params["p"] = d.password_encoding
    if d.iterations != 1:
        params["i"] = str(d.iterations)
    if d.raw_chain:
        params["c"] = "raw"
    return _phc.format_params(SCHEME_ID, params)


_params_field = lru_cache(maxsize=256)(format_params)
"""``format_params`` once per descriptor: a run writes every credential with the same one."""


def parse_params(text: str) -> Descriptor:
    """Inverse of :func:`format_params`; MalformedHashError on anything it would not write."""
    params = _phc.parse_params(SCHEME_ID, text)
    allowed = {"a", "e", "s", "f", "k", "m", "p", "i", "c"}
    if not set(params) <= allowed or "a" not in params or "e" not in params:
        raise malformed(SCHEME_ID, "bad parameters")
    if "s" in params and "f" in params:
        raise malformed(SCHEME_ID, "s and f are exclusive")
    template: tuple[str | bytes, ...] = ("password",)
    if "s" in params:
        by_name = {v: k for k, v in _PRESETS.items()}
        if params["s"] not in by_name:
            raise malformed(SCHEME_ID, "s must be before or after")
        template = by_name[params["s"]]
    elif "f" in params:
        template = _template_from_param(params["f"])
    iterations = params.get("i", "1")
    if not iterations.isdigit() or iterations.startswith("0"):
        raise malformed(SCHEME_ID, "bad iteration count")
    if params.get("c", "raw") != "raw":
        raise malformed(SCHEME_ID, "c must be raw")
    d = Descriptor(
        algorithm=params["a"],
        encoding=params["e"],
        template=template,
        key_id=params.get("k"),
        key_mode=params.get("m"),
        password_encoding=params.get("p", "utf8"),
        iterations=int(iterations),
        raw_chain="c" in params,
    )
    try:
        d.check()
    except CredentialError as exc:
        raise malformed(SCHEME_ID, str(exc).removeprefix("digest: ")) from None
    if format_params(d) != text:
        raise malformed(SCHEME_ID, "parameters not in canonical form")
    return d


def encode_digest(raw: bytes, encoding: str) -> str:
    """The digest as the platform wrote it (b64 with its padding)."""
    if encoding == "hex":
        return raw.hex()
    if encoding == "hexu":
        return raw.hex().upper()
    return base64.b64encode(raw).decode("ascii")


def decode_digest(text: str, encoding: str, algorithm: str) -> bytes:
    """Bytes of a stored digest; MalformedHashError when it is not ``algorithm``-sized."""
    try:
        if encoding in ("hex", "hexu"):
            if not _HEX.fullmatch(text):
                raise ValueError
            raw = bytes.fromhex(text)
        else:
            raw = b64decode(text.rstrip("=")) if len(text) % 4 == 0 else b64decode(text)
    except (ValueError, binascii.Error):
        raise malformed(SCHEME_ID, f"digest is not {encoding}") from None
    if len(raw) != ALGORITHMS[algorithm]:
        raise malformed(SCHEME_ID, f"digest is not the size of {algorithm}")
    return raw


def _canonical_digest(raw: bytes, encoding: str) -> str:
    if encoding == "b64":
        return b64encode(raw)
    return encode_digest(raw, encoding)


def format_credential(d: Descriptor, salt: bytes, raw_digest: bytes | None) -> str:
    """The canonical credential (without the digest field when ``raw_digest`` is None)."""
    fields = [_params_field(d), b64encode(salt)]
    if raw_digest is not None:
        fields.append(_canonical_digest(raw_digest, d.encoding))
    return _phc.format_phc(SCHEME_ID, *fields)


def parse_credential(credential: str) -> tuple[Descriptor, bytes, bytes | None]:
    """(descriptor, salt, raw digest or None for the stripped form)."""
    fields = _phc.split_phc(SCHEME_ID, credential, 3)
    d = parse_params(fields[0])
    salt = _phc.b64_field(SCHEME_ID, fields[1], "salt")
    if salt and not d.uses_salt():
        raise malformed(SCHEME_ID, "salt given but the descriptor does not use it")
    if len(fields) == 2:
        return d, salt, None
    if d.encoding == "b64" and fields[2].endswith("="):
        raise malformed(SCHEME_ID, "canonical base64 has no padding")
    raw = decode_digest(fields[2], d.encoding, d.algorithm)
    if _canonical_digest(raw, d.encoding) != fields[2]:
        raise malformed(SCHEME_ID, "digest not in canonical form")
    return d, salt, raw


# -- computing ---------------------------------------------------------------------------------


def compute(d: Descriptor, password: str, salt: bytes, keyring: Keyring | None) -> bytes:
    """The raw digest of ``password`` under descriptor ``d`` and ``salt``.

    Raises:
        MissingKeyError: the key named by ``d.key_id`` is not in the keyring.
        CredentialError: the password cannot be written in ``d.password_encoding``
            (code ``credential.password_encoding``).
    """
    try:
        pw = password.encode(PASSWORD_ENCODINGS[d.password_encoding])
    except UnicodeEncodeError:
        raise CredentialError(
            f"digest: password not representable in {d.password_encoding}",
            code="credential.password_encoding",
        ) from None
    key = secret_for(keyring, d.key_id) if d.key_id is not None else b""
    parts = {"salt": salt, "password": pw, "pepper": key}
    message = b"".join(parts[t] if isinstance(t, str) else t for t in d.template)
    if d.key_mode == "hmac":
        raw = hmac.new(key, message, d.algorithm).digest()
    elif d.key_mode == "hmac-salt":
        raw = hmac.new(salt, message, d.algorithm).digest()
    else:
        raw = hashlib.new(d.algorithm, message).digest()
    for _ in range(d.iterations - 1):
        chained = raw if d.raw_chain else encode_digest(raw, d.encoding).encode("ascii")
        raw = hashlib.new(d.algorithm, chained).digest()
    return raw


def _salt_bytes(salt: str | bytes | None, salt_encoding: str) -> bytes:
    if salt is None:
        return b""
    if isinstance(salt, bytes):
        return salt
    if salt_encoding in ("utf8", "utf-8"):
        return salt.encode("utf-8")
    if salt_encoding in ("latin1", "latin-1"):
        return salt.encode("latin-1")
    try:
        if salt_encoding == "hex":
            return bytes.fromhex(salt)
        if salt_encoding in ("base64", "b64"):
            return base64.b64decode(salt + "=" * (-len(salt) % 4), validate=True)
    except (ValueError, binascii.Error):
        raise malformed(SCHEME_ID, f"salt is not {salt_encoding}") from None
    raise _bad_params("salt_encoding must be utf8, latin1, hex or base64")


def descriptor_from_params(params: dict[str, object], *, has_salt: bool) -> Descriptor:
    """Build a :class:`Descriptor` from ``import_hash`` keyword parameters (consumes them)."""

    def take(name: str, default: object = None) -> object:
        return params.pop(name, default)

    algorithm = str(take("algorithm", "")).lower().replace("-", "")
    encoding = str(take("encoding", "hex")).lower()
    encoding = {"base64": "b64", "hex_upper": "hexu"}.get(encoding, encoding)
    position = take("salt_position")
    template_text = take("template")
    key_id = take("key_id")
    key_mode = take("key_mode")
    pw_enc = str(take("password_encoding", "utf8")).lower()
    iterations = take("iterations", 1)
    chain = str(take("chain", "encoded"))
    reject_params(SCHEME_ID, params)

    template: tuple[str | bytes, ...]
    if template_text is not None:
        if position is not None:
            raise _bad_params("give salt_position or template, not both")
        template = parse_template(str(template_text))
    elif position in ("before", "prefix"):
        template = ("salt", "password")
    elif position in ("after", "suffix"):
        template = ("password", "salt")
    elif position is None:
        template = ("password",)
        if has_salt and key_mode != "hmac-salt":
            raise _bad_params("a salt needs salt_position (before/after) or a template")
    else:
        raise _bad_params("salt_position must be before or after")
    if key_id is not None and key_mode is None:
        key_mode = "hmac"
    if key_mode == "pepper" and "pepper" not in template:
        template = (*template, "pepper")
    if not isinstance(iterations, int) or isinstance(iterations, bool):
        raise _bad_params("iterations must be an integer")
    if chain not in ("encoded", "raw"):
        raise _bad_params("chain must be encoded or raw")
    return Descriptor(
        algorithm=algorithm,
        encoding=encoding,
        template=template,
        key_id=None if key_id is None else str(key_id),
        key_mode=None if key_mode is None else str(key_mode),
        password_encoding=_ENCODING_ALIASES.get(pw_enc, pw_enc),
        iterations=iterations,
        raw_chain=chain == "raw",
    ).check()


_PLAIN_PARAMS = frozenset({str, int, float, bool, type(None)})
_DESCRIPTORS: dict[tuple[object, ...], Descriptor] = {}
_DESCRIPTORS_KEPT = 256


def _run_descriptor(params: dict[str, object], *, has_salt: bool) -> Descriptor:
    """:func:`descriptor_from_params`, built once for each distinct set of parameters.

    A run imports every row with the spec's same ``params``: parsing them again per row cost
    about 2.5 us of the ``keep`` path's 12 us a row. The key holds each value's type, since
    ``1 == True`` but ``iterations = true`` is an error; parameters of other types than plain
    scalars are not cached, nor are errors (each row raises its own).
    """
    types = tuple(map(type, params.values()))
    if not _PLAIN_PARAMS.issuperset(types):
        return descriptor_from_params(dict(params), has_salt=has_salt)
    key = (has_salt, tuple(params.items()), types)
    found = _DESCRIPTORS.get(key)
    if found is None:
        found = descriptor_from_params(dict(params), has_salt=has_salt)
        if len(_DESCRIPTORS) >= _DESCRIPTORS_KEPT:
            _DESCRIPTORS.clear()
        _DESCRIPTORS[key] = found
    return found


@register(priority=90)
class Digest(DigestScheme):
    """A plain digest described by its parameters (see the module docstring).

    Canonical form: ``$digest$a=sha256,e=hex,s=before$<salt b64>$<digest>``.
    """

    id: ClassVar[str] = SCHEME_ID
    description: ClassVar[str] = (
        "plain md5/sha1/sha256/sha512 digest with salt/pepper/HMAC descriptor"
    )
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix(SCHEME_ID),)

    def identify(self, credential: str) -> bool:
        """True for ``$digest$...``; a bare digest is never claimed (it is ambiguous)."""
        return _phc.claims(SCHEME_ID, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of a bare stored digest, its salt column and the descriptor.

        Params: ``algorithm`` (required), ``encoding`` (hex, hexu, base64), ``salt_position``
        (before, after) or ``template`` (``"{salt}{password}{pepper}"``), ``key_id`` and
        ``key_mode`` (hmac, pepper, hmac-salt), ``password_encoding`` (utf-8, latin-1,
        utf-16le), ``iterations``, ``chain`` (encoded, raw), ``salt_encoding`` (utf8, hex,
        base64) for the salt column.

        Raises:
            MalformedHashError: the value is not a digest of that algorithm and encoding.
            CredentialError: the descriptor is inconsistent (code ``credential.bad_params``).
        """
        salt_encoding = str(params.pop("salt_encoding", "utf8")).lower()
        salt_bytes = _salt_bytes(salt, salt_encoding)
        d = _run_descriptor(params, has_salt=bool(salt_bytes))
        if salt_bytes and not d.uses_salt():
            raise _bad_params("a salt was given but the descriptor does not use it")
        raw = decode_digest(value.strip(), d.encoding, d.algorithm)
        return format_credential(d, salt_bytes, raw)

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The raw digest recomputed from ``password`` (full or stripped credential)."""
        d, salt, _ = parse_credential(credential)
        return compute(d, password, salt, keyring)

    def stored_digest(self, credential: str) -> bytes:
        """The stored raw digest."""
        _, _, raw = parse_credential(credential)
        if raw is None:
            raise malformed(SCHEME_ID, "no digest")
        return raw

    def strip_digest(self, credential: str) -> str:
        """``$digest$<params>$<salt>``."""
        d, salt, _ = parse_credential(credential)
        return format_credential(d, salt, None)

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """Recompute and compare in constant time; False for an unencodable password."""
        d, salt, raw = parse_credential(credential)
        if raw is None:
            raise malformed(SCHEME_ID, "no digest")
        try:
            computed = compute(d, password, salt, keyring)
        except CredentialError as exc:
            if exc.code == "credential.password_encoding":
                return False
            raise
        return same(computed, raw)
