"""A stored value described by its shape (length and alphabet), never by its content.

Used where a value cannot be identified and the user needs a clue without the value being
shown: ``init``'s sample of a credential column, the detail of a ``credential.unrecognized``
reject.

>>> shape("5f4dcc3b5aa765d61d8327deb882cf99")
'32 characters, hex'
>>> shape("!locked")
'7 characters, letters and punctuation'
"""

from __future__ import annotations

import string

_HEX = frozenset(string.hexdigits)
_B64 = frozenset(string.ascii_letters + string.digits + "+/=")
_B64URL = frozenset(string.ascii_letters + string.digits + "-_=")

HEX_DIGESTS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
"""Bare hex digests by length."""
BASE64_DIGESTS = {24: "md5", 28: "sha1", 44: "sha256", 88: "sha512"}
"""Bare base64 digests (with padding) by length."""


def alphabet(value: str) -> str:
    """The narrowest named alphabet ``value`` is written in."""
    chars = set(value)
    if not chars:
        return "empty"
    if chars <= set(string.digits):
        return "digits"
    if chars <= _HEX:
        return "hex"
    if chars <= _B64:
        return "base64"
    if chars <= _B64URL:
        return "base64url"
    kinds = []
    if any(c.isalpha() for c in chars):
        kinds.append("letters")
    if any(c.isdigit() for c in chars):
        kinds.append("digits")
    if any(c in string.punctuation for c in chars):
        kinds.append("punctuation")
    if any(c.isspace() for c in chars):
        kinds.append("spaces")
    if any(not c.isascii() for c in chars):
        kinds.append("non-ASCII")
    if any(ord(c) < 32 for c in chars):
        kinds.append("control characters")
    if len(kinds) == 1:
        return kinds[0]
    return ", ".join(kinds[:-1]) + " and " + kinds[-1]


def shape(value: str) -> str:
    """``"<length> characters, <alphabet>"``: what a value looks like, safe to show."""
    return f"{len(value)} characters, {alphabet(value)}"


def bare_digest(value: str) -> tuple[str, str] | None:
    """``(algorithm, encoding)`` when ``value`` has the shape of an unsalted digest."""
    kind = alphabet(value)
    if kind in ("hex", "digits") and len(value) in HEX_DIGESTS:
        return HEX_DIGESTS[len(value)], "hex"
    if kind == "base64" and len(value) in BASE64_DIGESTS and value.endswith("="):
        return BASE64_DIGESTS[len(value)], "base64"
    return None
