"""Our canonical credentials taken apart into what identity providers' import formats need.

:func:`parts` reads a canonical credential (see docs/credentials.md) into :class:`Parts`: the
algorithm family, its parameters, the salt and the digest as raw bytes. Provider encoders
(:mod:`.auth0`, :mod:`.kratos`, ...) only ever work from these parts, so each scheme's textual
form is read in one place. A scheme not listed here has no standard algorithm a provider could
run (phpass, Drupal 7, OpenCart's nested sha1, peppered or keyed digests...): it returns None
and goes to the bridge.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, replace

import argon2

from authmigrate.credentials._base import get

DIGESTS = ("md5", "sha1", "sha256", "sha512")


@dataclass(frozen=True)
class Parts:
    """One credential, taken apart.

    Attributes:
        kind: ``bcrypt``, ``argon2``, ``pbkdf2``, ``scrypt``, ``crypt`` (md5/sha-crypt MCF),
            ``salted`` (one plain digest over salt and password), ``salted_encoded`` (the same
            over a latin-1 or UTF-16LE password), ``hmac`` (an HMAC of the password),
            ``peppered_bcrypt`` (bcrypt of password + pepper, Devise), ``firebase_scrypt``,
            ``named`` (a scheme only some providers know by name: phpass, Django's
            bcrypt_sha256).
        scheme: our scheme id.
        mcf: the standard string when the kind has one (bcrypt, argon2 PHC, crypt).
        credential: our canonical credential these parts came from.
        digest: the hash function (``sha256``...) for pbkdf2 and salted.
        iterations: pbkdf2 iterations.
        salt: the salt as the bytes the algorithm consumes.
        hash: the stored digest, raw bytes.
        salt_position: ``prefix`` (salt + password) or ``suffix`` (password + salt) for salted;
            empty when unsalted.
        n, r, p: scrypt cost, block size, parallelism (firebase_scrypt: n is mem_cost, r rounds).
        key_id, separator: firebase_scrypt's signer key id and salt separator; for ``hmac``
            and ``peppered_bcrypt`` the keyring id of the key or pepper.
        key_mode: ``hmac`` (keyed with the keyring's key) or ``hmac-salt`` (keyed with the
            salt) for kind ``hmac``.
        password_encoding: how the password is turned into bytes (``utf8``, or ``latin1`` /
            ``utf16le`` for kind ``salted_encoded``).
    """

    kind: str
    scheme: str
    mcf: str = ""
    credential: str = ""
    digest: str = ""
    iterations: int = 0
    salt: bytes = b""
    hash: bytes = b""
    salt_position: str = ""
    n: int = 0
    r: int = 0
    p: int = 0
    key_id: str = ""
    separator: bytes = b""
    key_mode: str = ""
    password_encoding: str = "utf8"

    def __repr__(self) -> str:
        return f"Parts(kind={self.kind!r}, scheme={self.scheme!r})"

    def with_hash(self, digest: bytes, mcf: str = "") -> Parts:
        """The same parts with another digest (the self-test's known-password twin)."""
        return replace(self, hash=digest, mcf=mcf or self.mcf)

    @property
    def group(self) -> tuple[object, ...]:
        """The self-test group: kind and every parameter (cost, rounds, lengths, separator)."""
        return (
            self.kind,
            self.digest,
            self.iterations,
            self.n,
            self.r,
            self.p,
            self.key_id,
            self.separator,
            self.key_mode,
            self.password_encoding,
            self.salt_position,
            len(self.hash),
            self._mcf_params(),
        )

    def _mcf_params(self) -> str:
        """The parameters an MCF string carries: bcrypt's variant and cost, crypt(3)'s rounds,
        argon2's version."""
        if self.kind in ("bcrypt", "peppered_bcrypt"):
            return self.mcf[:7]
        if self.kind == "crypt":
            return "$".join(self.mcf.split("$")[:-2])
        if self.kind == "argon2":
            return self.mcf.split("$")[2]
        return ""


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _ab64(text: str) -> bytes:
    """passlib's adapted base64 ('.' for '+', no padding)."""
    return _b64(text.replace(".", "+"))


def parts(scheme: str, credential: str) -> Parts | None:
    """``credential`` (canonical, of ``scheme``) taken apart, or None when no standard
    algorithm computes it. Raises ValueError when the credential does not parse."""
    reader = _READERS.get(scheme)
    if reader is None:
        return None
    try:
        found = reader(scheme, credential)
    except (ValueError, IndexError, KeyError, binascii.Error, struct.error):
        raise ValueError(f"not a valid {scheme} credential") from None
    return None if found is None else replace(found, credential=credential)


def _bcrypt(scheme: str, cred: str) -> Parts:
    mcf = cred.removeprefix("bcrypt$") if scheme == "django_bcrypt" else cred
    if not mcf.startswith(("$2a$", "$2b$", "$2y$")) or len(mcf) != 60:
        raise ValueError(scheme)
    return Parts("bcrypt", scheme, mcf=mcf)


def _argon2(scheme: str, cred: str) -> Parts:
    mcf = cred.removeprefix("argon2") if scheme == "django_argon2" else cred
    params = argon2.extract_parameters(mcf)
    fields = mcf.split("$")
    return Parts(
        "argon2",
        scheme,
        mcf=mcf,
        salt=_b64(fields[-2]),
        hash=_b64(fields[-1]),
        digest={argon2.Type.ID: "argon2id", argon2.Type.I: "argon2i"}.get(params.type, "argon2d"),
        n=params.memory_cost,
        r=params.time_cost,
        p=params.parallelism,
    )


def _pbkdf2_passlib(scheme: str, cred: str) -> Parts:
    ident, rounds, salt, digest = cred.split("$")[1:]
    name = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}[ident]
    return Parts(
        "pbkdf2", scheme, digest=name, iterations=int(rounds), salt=_ab64(salt), hash=_ab64(digest)
    )


def _pbkdf2_django(scheme: str, cred: str) -> Parts:
    algo, rounds, salt, digest = cred.split("$")
    name = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}[algo]
    return Parts(
        "pbkdf2", scheme, digest=name, iterations=int(rounds), salt=salt.encode(), hash=_b64(digest)
    )


def _pbkdf2_werkzeug(scheme: str, cred: str) -> Parts:
    method, salt, digest = cred.split("$")
    _, name, rounds = method.split(":")
    if name not in DIGESTS:
        raise ValueError(name)
    return Parts(
        "pbkdf2",
        scheme,
        digest=name,
        iterations=int(rounds),
        salt=salt.encode(),
        hash=bytes.fromhex(digest),
    )


def _aspnet_v2(scheme: str, cred: str) -> Parts:
    raw = _b64(cred)
    if len(raw) != 49 or raw[0] != 0:
        raise ValueError(scheme)
    return Parts("pbkdf2", scheme, digest="sha1", iterations=1000, salt=raw[1:17], hash=raw[17:])


def _aspnet_v3(scheme: str, cred: str) -> Parts:
    raw = _b64(cred)
    prf, rounds, salt_len = struct.unpack(">III", raw[1:13])
    if raw[0] != 1 or len(raw) <= 13 + salt_len:
        raise ValueError(scheme)
    name = {0: "sha1", 1: "sha256", 2: "sha512"}[prf]
    return Parts(
        "pbkdf2",
        scheme,
        digest=name,
        iterations=rounds,
        salt=raw[13 : 13 + salt_len],
        hash=raw[13 + salt_len :],
    )


def _scrypt_passlib(scheme: str, cred: str) -> Parts:
    _, _, params, salt, digest = cred.split("$")
    kv = dict(f.split("=") for f in params.split(","))
    return Parts(
        "scrypt",
        scheme,
        n=1 << int(kv["ln"]),
        r=int(kv["r"]),
        p=int(kv["p"]),
        salt=_b64(salt),
        hash=_b64(digest),
    )


def _scrypt_django(scheme: str, cred: str) -> Parts:
    _, n, salt, r, p, digest = cred.split("$")
    return Parts(
        "scrypt", scheme, n=int(n), r=int(r), p=int(p), salt=salt.encode(), hash=_b64(digest)
    )


def _scrypt_werkzeug(scheme: str, cred: str) -> Parts:
    method, salt, digest = cred.split("$")
    _, n, r, p = method.split(":")
    return Parts(
        "scrypt",
        scheme,
        n=int(n),
        r=int(r),
        p=int(p),
        salt=salt.encode(),
        hash=bytes.fromhex(digest),
    )


def _crypt(scheme: str, cred: str) -> Parts:
    return Parts(
        "crypt",
        scheme,
        mcf=cred,
        digest={"md5_crypt": "md5", "sha256_crypt": "sha256", "sha512_crypt": "sha512"}[scheme],
    )


_LDAP = {
    "ldap_md5": ("md5", False),
    "ldap_sha1": ("sha1", False),
    "ldap_salted_md5": ("md5", True),
    "ldap_salted_sha1": ("sha1", True),
    "ldap_salted_sha256": ("sha256", True),
    "ldap_salted_sha512": ("sha512", True),
}


def _ldap(scheme: str, cred: str) -> Parts:
    name, salted = _LDAP[scheme]
    raw = base64.b64decode(cred.split("}", 1)[1], validate=True)
    size = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}[name]
    if salted and len(raw) <= size or not salted and len(raw) != size:
        raise ValueError(scheme)
    return Parts(
        "salted",
        scheme,
        mcf=cred,
        digest=name,
        hash=raw[:size],
        salt=raw[size:],
        salt_position="suffix" if salted else "",
    )


def _django_salted(scheme: str, cred: str) -> Parts:
    name, salt, digest = cred.split("$")
    return Parts(
        "salted",
        scheme,
        digest=name,
        salt=salt.encode(),
        hash=bytes.fromhex(digest),
        salt_position="prefix" if salt else "",
    )


def _joomla(scheme: str, cred: str) -> Parts:
    salt = _b64(cred.split("$")[2])
    return Parts(
        "salted",
        scheme,
        digest="md5",
        salt=salt,
        hash=get(scheme).stored_digest(cred),
        salt_position="suffix" if salt else "",
    )


def _magento1(scheme: str, cred: str) -> Parts:
    _, _, params, salt_b64, _ = cred.split("$")
    salt = _b64(salt_b64)
    return Parts(
        "salted",
        scheme,
        digest=params.removeprefix("a="),
        salt=salt,
        hash=get(scheme).stored_digest(cred),
        salt_position="prefix" if salt else "",
    )


def _digest(scheme: str, cred: str) -> Parts | None:
    _, _, params, salt_b64, _ = cred.split("$")
    kv = dict(f.split("=", 1) for f in params.split(","))
    position = {None: "", "before": "prefix", "after": "suffix"}.get(kv.pop("s", None))
    kv.pop("e", None)
    name = kv.pop("a", "")
    encoding = kv.pop("p", "utf8")
    mode, key_id = kv.pop("m", ""), kv.pop("k", "")
    salt = _b64(salt_b64) if salt_b64 else b""
    if kv or position is None or name not in DIGESTS or encoding not in _PASSWORD_ENCODINGS:
        return None  # templated, peppered or chained: no provider runs it
    stored = get(scheme).stored_digest(cred)
    if mode in ("hmac", "hmac-salt"):
        # HMAC over the password alone, keyed with the keyring's key or with the salt
        if position or (mode == "hmac") != bool(key_id) or (mode == "hmac-salt") != bool(salt):
            return None
        return Parts(
            "hmac",
            scheme,
            digest=name,
            salt=salt,
            hash=stored,
            key_id=key_id,
            key_mode=mode,
            password_encoding=encoding,
        )
    if mode or key_id or bool(salt) != bool(position):
        return None
    return Parts(
        "salted" if encoding == "utf8" else "salted_encoded",
        scheme,
        digest=name,
        salt=salt,
        hash=stored,
        salt_position=position,
        password_encoding=encoding,
    )


_PASSWORD_ENCODINGS = ("utf8", "latin1", "utf16le")


def _devise(scheme: str, cred: str) -> Parts:
    """Devise's bcrypt over password + pepper: the bcrypt string and the pepper's key id."""
    key_id, _, inner = cred.removeprefix("$devise-bcrypt$k=").partition("$")
    mcf = "$" + inner
    if not mcf.startswith(("$2a$", "$2b$", "$2y$")) or len(mcf) != 60 or not key_id:
        raise ValueError(scheme)
    return Parts("peppered_bcrypt", scheme, mcf=mcf, key_id=key_id)


def _whole(scheme: str, cred: str) -> Parts:
    """A scheme no generic algorithm runs but a provider knows by name (Clerk's phpass)."""
    return Parts("named", scheme, mcf=cred)


def _firebase(scheme: str, cred: str) -> Parts:
    _, _, params, salt, digest = cred.split("$")
    kv = dict(f.split("=", 1) for f in params.split(","))
    return Parts(
        "firebase_scrypt",
        scheme,
        key_id=kv["k"],
        n=int(kv["m"]),
        r=int(kv["r"]),
        separator=_b64(kv["s"]),
        salt=_b64(salt),
        hash=_b64(digest),
    )


_READERS = {
    "bcrypt": _bcrypt,
    "django_bcrypt": _bcrypt,
    "argon2id": _argon2,
    "argon2i": _argon2,
    "django_argon2": _argon2,
    "pbkdf2_sha1": _pbkdf2_passlib,
    "pbkdf2_sha256": _pbkdf2_passlib,
    "pbkdf2_sha512": _pbkdf2_passlib,
    "django_pbkdf2_sha256": _pbkdf2_django,
    "django_pbkdf2_sha1": _pbkdf2_django,
    "werkzeug_pbkdf2": _pbkdf2_werkzeug,
    "aspnet_identity_v2": _aspnet_v2,
    "aspnet_identity_v3": _aspnet_v3,
    "scrypt": _scrypt_passlib,
    "django_scrypt": _scrypt_django,
    "werkzeug_scrypt": _scrypt_werkzeug,
    "md5_crypt": _crypt,
    "sha256_crypt": _crypt,
    "sha512_crypt": _crypt,
    **dict.fromkeys(_LDAP, _ldap),
    "django_md5": _django_salted,
    "django_sha1": _django_salted,
    "django_unsalted_md5": _django_salted,
    "django_unsalted_sha1": _django_salted,
    "joomla": _joomla,
    "magento1": _magento1,
    "digest": _digest,
    "firebase_scrypt": _firebase,
    "devise_bcrypt": _devise,
    "phpass": _whole,
    "django_bcrypt_sha256": _whole,
}
