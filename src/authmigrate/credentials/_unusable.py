"""Stored values that mean "this account has no usable password".

A platform writes these instead of a hash; no password ever verifies them on the platform, so a
migration turns them into accounts needing a reset (never into a credential, never a reject):

- Django ``set_unusable_password()`` / ``create_user(..., password=None)``: ``"!"`` followed by
  40 random letters and digits (``UNUSABLE_PASSWORD_PREFIX`` + ``get_random_string(40)`` in
  django/contrib/auth/hashers.py ``make_password``); Django before 1.6 wrote ``"!"`` alone.
  Saleor, on Django, writes the same.
- WordPress 6.8+ ``wp_hash_password()`` returns ``"*"`` for a password over 4096 bytes, which
  ``wp_check_password()`` never accepts.

A value such as ``!$6$...`` (a locked crypt(3) hash) is not one of these: it stays unrecognised.
"""

from __future__ import annotations

import re

UNUSABLE = "credential.unusable"
"""The code of the error that tells the batch a value is an unusable-password marker."""

UNUSABLE_SCHEME = "unusable"
"""The scheme id shown in reports for such accounts."""

_MARKER = re.compile(r"![A-Za-z0-9]{0,128}|\*")


def is_unusable(value: str) -> bool:
    """True for a platform's "no usable password" marker (see the module docstring).

    Example:
        >>> is_unusable("!" + "a" * 40), is_unusable("!$6$salt$hash")
        (True, False)
    """
    return _MARKER.fullmatch(value.strip()) is not None
