"""Unix crypt(3) strings not covered by ``modern``: yescrypt ``$y$``, traditional DES crypt,
and LDAP's ``{CRYPT}`` prefix in front of any crypt(3) string.

yescrypt is the default of current Debian, Ubuntu and Fedora (``/etc/shadow``, ``mkpasswd``).
No Python library implements it; libxcrypt (``libcrypt.so.1``, present on those systems) does,
and is called through ctypes (``crypt_rn``, thread-safe, releases the GIL). Where libxcrypt is
missing or lacks yescrypt, a ``$y$`` value is ``credential.unsupported`` (a clear reject at
import, an error at verification), never a wrong password.

DES crypt (13 characters, passwords cut to 8) is libpass's ``des_crypt``. ``{CRYPT}`` (any
case) is what OpenLDAP stores for crypt(3) hashes: import strips it and the canonical form is
the crypt string itself (``{CRYPT}$6$...`` imports as ``$6$...``).
"""

from __future__ import annotations

import ctypes
import functools
import re
from collections.abc import Callable
from typing import Any, ClassVar

from passlib import hash as _ph

from authmigrate.errors import CredentialError

from ._base import Example, Keyring, get, register
from ._common import malformed, reject_params, same
from ._limits import MAX_SCRYPT_MEMORY, MEMORY_GATE, check_work
from .modern import _Passlib

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_YESCRYPT = re.compile(r"\$y\$([./0-9A-Za-z]+)\$([./0-9A-Za-z]{1,86})\$([./0-9A-Za-z]{43})?")

_YESCRYPT_NR = 0.135e-6
"""Seconds of one reference core per unit of ``N * r`` (libxcrypt, measured like ``_limits``)."""

_CRYPT_DATA_SIZE = 32768
"""``sizeof(struct crypt_data)`` in libxcrypt (crypt_rn checks the size it is given)."""

CryptRn = Callable[[bytes, bytes, Any, int], bytes | None]


def _unsupported() -> CredentialError:
    return CredentialError(
        "yescrypt needs libxcrypt (libcrypt.so.1 with $y$ support), not found on this host",
        code="credential.unsupported",
    )


@functools.cache
def _crypt_rn() -> CryptRn | None:
    """libxcrypt's ``crypt_rn``, when the library is there and knows yescrypt; else None."""
    try:
        lib = ctypes.CDLL("libcrypt.so.1")
        function = lib.crypt_rn
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_char_p
    function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    probe = _call(function, b"probe", b"$y$j75$saltsaltsaltsalt$")
    if probe is None or not probe.startswith(b"$y$"):
        return None
    return function


def _call(function: Any, password: bytes, setting: bytes) -> bytes | None:
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    result = function(password, setting, data, _CRYPT_DATA_SIZE)
    return None if result is None or result.startswith(b"*") else bytes(result)


def yescrypt_available() -> bool:
    """True when this host's libxcrypt computes yescrypt."""
    return _crypt_rn() is not None


def _decode_uint32(text: str, pos: int, minimum: int) -> tuple[int, int]:
    """libxcrypt's ``decode64_uint32``: a variable-length number at ``text[pos]``.

    Returns (value, position after it); ValueError on a character outside the alphabet.
    """
    start, end, chars, bits = 0, 47, 1, 0
    c = ITOA64.index(text[pos])
    pos += 1
    value = minimum
    while c > end:
        value += (end + 1 - start) << bits
        start = end + 1
        end = start + (62 - end) // 2
        chars += 1
        bits += 6
    value += (c - start) << bits
    for _ in range(chars - 1):
        bits -= 6
        value += ITOA64.index(text[pos]) << bits
        pos += 1
    return value, pos


def yescrypt_params(scheme_id: str, params: str) -> tuple[int, int, int, int]:
    """(N, r, p, t) of a ``$y$`` parameter field, within the bounds (MalformedHashError).

    The field is flavor, log2(N), r, then optionally a bit set "have" followed by p, t, g and
    NROM. g (hash upgrades) and NROM (a ROM) are refused: crypt(3) strings never carry them.
    """
    try:
        _, pos = _decode_uint32(params, 0, 0)
        n_log2, pos = _decode_uint32(params, pos, 1)
        r, pos = _decode_uint32(params, pos, 1)
        p, t = 1, 0
        if pos < len(params):
            have, pos = _decode_uint32(params, pos, 1)
            if have & ~0x3:
                raise malformed(scheme_id, "yescrypt g or ROM parameters")
            if have & 0x1:
                p, pos = _decode_uint32(params, pos, 2)
            if have & 0x2:
                t, pos = _decode_uint32(params, pos, 1)
        if pos != len(params):
            raise ValueError("trailing parameters")
    except (ValueError, IndexError):
        raise malformed(scheme_id, "bad yescrypt parameters") from None
    if not 1 <= n_log2 <= 32 or r > 1 << 16 or p > 1 << 10 or t > 1 << 10:
        raise malformed(scheme_id, "yescrypt parameters out of range")
    n = 1 << n_log2
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        raise malformed(scheme_id, "yescrypt parameters out of range")
    check_work(scheme_id, n * r * (t + 1) * _YESCRYPT_NR)
    return n, r, p, t


@register(priority=28)
class Yescrypt:
    """yescrypt ``$y$<params>$<salt>$<hash>`` (libxcrypt's crypt, the default crypt(3) of
    Debian 11+, Ubuntu 22.04+ and Fedora 35+).

    Canonical form: the crypt string itself. The parameters are priced like scrypt's (memory
    ``128 * N * r``, work ``N * r``) before any hashing.
    """

    id: ClassVar[str] = "yescrypt"
    description: ClassVar[str] = "yescrypt $y$ (libxcrypt crypt(3); credential.unsupported without)"
    weak: ClassVar[bool] = False
    prefixes: ClassVar[tuple[str, ...]] = ("$y$",)
    examples: ClassVar[tuple[Example, ...]] = (
        # the first $y$ hash of the yescrypt reference implementation's TESTS-OK
        Example(
            "pleaseletmein",
            "$y$jD5.7$LdJMENpBABJJ3hIHjB1Bi.$HboGM6qPrsK.StKYGt6KErmUYtioHreJd98oIugoNB6",
        ),
    )

    def _parts(self, credential: str) -> tuple[str, str, int]:
        """(setting ``$y$params$salt$``, hash or '', bytes of memory)."""
        m = _YESCRYPT.fullmatch(credential)
        if not m:
            raise malformed(self.id)
        n, r, _, _ = yescrypt_params(self.id, m.group(1))
        return f"$y${m.group(1)}${m.group(2)}$", m.group(3) or "", 128 * n * r

    def identify(self, credential: str) -> bool:
        """True for the ``$y$`` prefix (a broken one is then reported malformed)."""
        return credential.startswith("$y$")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The crypt string as stored (``/etc/shadow``, LDAP ``{CRYPT}``).

        Raises:
            MalformedHashError: not yescrypt, or parameters over the bounds.
            CredentialError: code ``credential.unsupported`` when libxcrypt is missing here.
        """
        reject_params(self.id, params)
        value = value.strip()
        _, checksum, _ = self._parts(value)
        if salt is not None or not checksum:
            raise malformed(self.id)
        if not yescrypt_available():
            raise _unsupported()
        return value

    def _compute(self, password: str, setting: str, memory: int) -> str | None:
        function = _crypt_rn()
        if function is None:
            raise _unsupported()
        secret = password.encode("utf-8")
        if b"\x00" in secret:
            return None  # crypt(3) would stop at the NUL: such a password never verifies
        with MEMORY_GATE.hold(memory):
            result = _call(function, secret, setting.encode("ascii"))
        return None if result is None else result.decode("ascii")

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """libxcrypt's crypt over the stored setting, compared in constant time."""
        setting, checksum, memory = self._parts(credential)
        if not checksum:
            raise malformed(self.id, "no digest")
        computed = self._compute(password, setting, memory)
        if computed is None:
            return False
        return same(computed.encode("ascii"), credential.encode("ascii"))

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The 43-character hash for ``password`` with the credential's parameters and salt."""
        setting, _, memory = self._parts(credential)
        computed = self._compute(password, setting, memory)
        return b"!" if computed is None else computed[len(setting) :].encode("ascii")

    def stored_digest(self, credential: str) -> bytes:
        """The 43-character hash."""
        _, checksum, _ = self._parts(credential)
        if not checksum:
            raise malformed(self.id, "no digest")
        return checksum.encode("ascii")

    def strip_digest(self, credential: str) -> str:
        """``$y$<params>$<salt>$``."""
        return self._parts(credential)[0]

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


_DES = re.compile(r"[./0-9A-Za-z]{2}(?:[./0-9A-Za-z]{11})?")


@register(priority=90)
class DesCrypt(_Passlib):
    """Traditional DES crypt(3): 2 salt characters and 11 hash characters, weak.

    Only the first 8 characters of the password count (7 bits each), as in every crypt(3).
    Identified by its shape (13 characters of the crypt alphabet), after every other scheme.
    """

    id = "des_crypt"
    description = "DES crypt(3) ssHHHHHHHHHHH (passwords cut to 8 characters; weak)"
    weak = True
    handler = _ph.des_crypt
    examples = (Example("password", "abJnggxhB/yWI"),)  # glibc / libxcrypt crypt("password", "ab")
    prefixes = tuple("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")  # _DES

    def identify(self, credential: str) -> bool:
        """True for exactly 13 characters of the crypt alphabet."""
        return len(credential) == 13 and bool(_DES.fullmatch(credential))

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The 11 hash characters for ``password`` with the salt (full or stripped form)."""
        if not _DES.fullmatch(credential):
            raise malformed(self.id)
        if "\x00" in password:
            return b"!"  # crypt(3) would stop at the NUL
        return self._as_bytes(self.handler(salt=credential[:2])._calc_checksum(password))

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """libpass's des_crypt (a NUL in the password never verifies)."""
        if "\x00" in password:
            self._parse(credential)
            return False
        return super().verify(password, credential, keyring)

    def strip_digest(self, credential: str) -> str:
        """The 2 salt characters."""
        self._parse(credential)
        return credential[:2]


_CRYPT_INNER = ("des_crypt", "md5_crypt", "sha256_crypt", "sha512_crypt", "bcrypt", "yescrypt")
"""The crypt(3) schemes a ``{CRYPT}`` value may hold."""


@register(priority=54)
class LdapCrypt:
    """LDAP ``{CRYPT}<crypt(3) string>`` (OpenLDAP, 389-ds): the prefix in front of ``$1$``,
    ``$5$``, ``$6$``, ``$2b$``, ``$y$`` or DES crypt.

    Import strips the prefix: the canonical credential is the crypt string, in its own scheme.
    A ``{CRYPT}`` value given to :func:`verify` or :func:`wrap` as it is works too.
    """

    id: ClassVar[str] = "ldap_crypt"
    description: ClassVar[str] = "LDAP {CRYPT}<crypt(3) string>; imported as the crypt string"
    weak: ClassVar[bool] = False
    prefix: ClassVar[str] = "{CRYPT}"
    prefixes: ClassVar[tuple[str, ...]] = ("{",)  # any case: only "{" upper-cases to "{"
    examples: ClassVar[tuple[Example, ...]] = (
        Example("password", "{CRYPT}$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"),  # crypt(3)
    )

    def identify(self, credential: str) -> bool:
        """True for the ``{CRYPT}`` prefix, any case."""
        return credential[: len(self.prefix)].upper() == self.prefix

    def _inner(self, credential: str, *, stripped: bool = False) -> tuple[Any, str]:
        if not self.identify(credential):
            raise malformed(self.id)
        inner = credential[len(self.prefix) :]
        for scheme_id in _CRYPT_INNER:
            scheme = get(scheme_id)
            if scheme.identify(inner) or (stripped and _stripped_form_of(scheme_id, inner)):
                return scheme, inner
        raise malformed(self.id, "not a crypt(3) string")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The crypt string without the prefix, imported by its own scheme."""
        reject_params(self.id, params)
        if salt is not None:
            raise malformed(self.id)
        scheme, inner = self._inner(value.strip())
        return str(scheme.import_hash(inner))

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """The inner scheme's verification."""
        scheme, inner = self._inner(credential)
        return bool(scheme.verify(password, inner, keyring))

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The inner scheme's digest (full or stripped form)."""
        scheme, inner = self._inner(credential, stripped=True)
        return bytes(scheme.digest(password, inner, keyring))

    def stored_digest(self, credential: str) -> bytes:
        """The inner scheme's stored digest."""
        scheme, inner = self._inner(credential)
        return bytes(scheme.stored_digest(inner))

    def strip_digest(self, credential: str) -> str:
        """``{CRYPT}`` and the inner scheme's stripped form."""
        scheme, inner = self._inner(credential)
        return self.prefix + str(scheme.strip_digest(inner))

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


def _stripped_form_of(scheme_id: str, inner: str) -> bool:
    """True when ``inner`` is the stripped form (no digest) of ``scheme_id``'s strings."""
    if scheme_id == "des_crypt":
        return len(inner) == 2 and bool(_DES.fullmatch(inner))
    if scheme_id == "bcrypt":
        return len(inner) == 29 and inner.startswith(("$2a$", "$2b$", "$2y$"))
    prefixes = {"md5_crypt": "$1$", "sha256_crypt": "$5$", "sha512_crypt": "$6$", "yescrypt": "$y$"}
    return inner.startswith(prefixes[scheme_id])
