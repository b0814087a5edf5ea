"""Our own PHC-style strings, for legacy schemes that have no standard form.

Layout: ``$<ident>$<param>=<value>,...$<field>$...$<digest>``. The ident is the scheme id with
``_`` written as ``-`` (PHC allows ``[a-z0-9-]``); parameter values use the PHC value
alphabet ``[A-Za-z0-9/+.-]`` plus ``_`` (key ids such as ``ps_cookie``); salts are PHC base64
(standard alphabet, no padding) of the salt bytes; the digest is written as the platform
stored it (usually lowercase hex).

A key is never a parameter: only its id (``k=<key id>``) is.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import cache

from ._common import b64decode, malformed

_VALUE = re.compile(r"[A-Za-z0-9/+._\-]+")
_NAME = re.compile(r"[a-z][a-z0-9\-]*")


def ident(scheme_id: str) -> str:
    """The PHC ident of a scheme id: ``shopware5_md5`` -> ``shopware5-md5``."""
    return scheme_id.replace("_", "-")


def check_value(scheme_id: str, name: str, value: str) -> str:
    """``value`` when it fits a PHC parameter value, else MalformedHashError naming ``name``."""
    if not _VALUE.fullmatch(value):
        raise malformed(scheme_id, f"parameter {name} has characters a PHC value cannot hold")
    return value


def format_params(scheme_id: str, params: dict[str, str]) -> str:
    """``a=1,b=2`` from an ordered mapping (values checked against the PHC alphabet)."""
    return ",".join(f"{k}={check_value(scheme_id, k, v)}" for k, v in params.items())


def parse_params(scheme_id: str, text: str) -> dict[str, str]:
    """The mapping of ``a=1,b=2``; MalformedHashError on a bad or repeated name."""
    params: dict[str, str] = {}
    if not text:
        return params
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not _NAME.fullmatch(name) or name in params:
            raise malformed(scheme_id, "bad parameter list")
        params[name] = check_value(scheme_id, name, value)
    return params


def single_param(
    scheme_id: str, text: str, name: str, allowed: Collection[str] | None = None
) -> str:
    """The value of ``name`` when ``text`` holds that one parameter (``a=md5``), its value in
    ``allowed`` when given; MalformedHashError ("bad parameters") for anything else."""
    params = parse_params(scheme_id, text)
    value = params.get(name, "")
    if set(params) != {name} or (allowed is not None and value not in allowed):
        raise malformed(scheme_id, "bad parameters")
    return value


def b64_field(scheme_id: str, text: str, what: str) -> bytes:
    """The bytes of a PHC base64 field (a salt...); MalformedHashError naming ``what``."""
    try:
        return b64decode(text)
    except ValueError:
        raise malformed(scheme_id, f"{what} is not PHC base64") from None


def format_phc(scheme_id: str, *fields: str) -> str:
    """``$<ident>$field$field...`` (fields already encoded; empty ones allowed)."""
    return "$" + "$".join((ident(scheme_id), *fields))


def split_phc(scheme_id: str, credential: str, nfields: int) -> list[str]:
    """The fields after the ident.

    Returns exactly ``nfields`` fields (the full form) or ``nfields - 1`` (the form
    :meth:`Scheme.strip_digest` returns, without the digest); anything else, and a credential
    that is not this scheme's string, is MalformedHashError.
    """
    prefix = "$" + ident(scheme_id) + "$"
    if not credential.startswith(prefix):
        raise malformed(scheme_id)
    fields = credential[len(prefix) :].split("$")
    if len(fields) not in (nfields, nfields - 1):
        raise malformed(scheme_id, f"expected {nfields} fields")
    return fields


def without_digest(credential: str, nfields: int) -> str:
    """``credential`` (of ``nfields`` fields, as :func:`split_phc` checked) without its last
    field, the digest; unchanged when it is already the stripped form."""
    return credential.rsplit("$", 1)[0] if credential.count("$") == nfields + 1 else credential


@cache  # one per scheme id; claims() asks for it on every value identified
def prefix(scheme_id: str) -> str:
    """``$<ident>$``: what every string of this scheme starts with."""
    return "$" + ident(scheme_id) + "$"


def claims(scheme_id: str, credential: str) -> bool:
    """True when ``credential`` starts with this scheme's PHC ident."""
    return credential.startswith(prefix(scheme_id))
