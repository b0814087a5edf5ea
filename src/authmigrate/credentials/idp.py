"""Hash schemes of identity providers and servers: Firebase Auth's modified scrypt, LDAP
``{SHA}``-style digests, MySQL 4.1+ ``PASSWORD()`` and PostgreSQL's ``md5`` role passwords.

Canonical forms: LDAP and MySQL keep their standard strings (``{SSHA}...``, ``*HEX``), so
other tools verify them directly. Firebase and PostgreSQL need data outside the stored hash
(the project's signer key and parameters; the role name), so they get PHC-style forms of ours::

    $firebase-scrypt$k=<key id>,m=<mem cost>,r=<rounds>,s=<salt separator b64>$<salt b64>$<hash b64>
    $postgres-md5$<username b64>$<hex>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import ClassVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _phc
from ._base import Example, Keyring, register
from ._common import (
    DigestScheme,
    b64decode,
    b64encode,
    bad_params,
    is_hex,
    malformed,
    reject_params,
    secret_for,
    stored_hex,
)
from ._limits import check_scrypt, scrypt


def _pw(password: str) -> bytes:
    return password.encode("utf-8")


def _lenient_b64(scheme_id: str, text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (Firebase exports use both)."""
    text = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return b64decode(text)
    except ValueError:
        raise malformed(scheme_id, f"{what} is not base64") from None


# -- Firebase --------------------------------------------------------------------------------

FIREBASE_MAX_MEM_COST = 16
FIREBASE_MAX_ROUNDS = 16


def firebase_scrypt(
    password: bytes, salt: bytes, separator: bytes, signer_key: bytes, rounds: int, mem_cost: int
) -> bytes:
    """Firebase's modified scrypt.

    scrypt(password, salt + separator, N=2^mem_cost, r=rounds, p=1), then AES-256-CTR with
    the first 32 bytes of the derived key and a zero IV, over the project's signer key.
    """
    derived = scrypt(password, salt + separator, 1 << mem_cost, rounds, 1, dklen=32)
    encryptor = Cipher(algorithms.AES(derived), modes.CTR(bytes(16))).encryptor()
    return encryptor.update(signer_key) + encryptor.finalize()


@register(priority=60)
class FirebaseScrypt(DigestScheme):
    """Firebase Authentication's modified scrypt (``auth:export`` ``passwordHash`` + ``salt``).

    The project's hash parameters (Firebase console, "Password hash parameters") become the
    credential's parameters; the base64 signer key is in the keyring under ``k``. Canonical
    form ``$firebase-scrypt$k=fb,m=14,r=8,s=Bw$<salt b64>$<hash b64>``.

    Import: ``import_hash("firebase_scrypt", passwordHash, salt=salt, key_id="fb", rounds=8,
    mem_cost=14, salt_separator="Bw==")``. The keyring value is the signer key as Firebase
    shows it (base64 text), or its raw bytes.
    """

    id: ClassVar[str] = "firebase_scrypt"
    description: ClassVar[str] = "Firebase Auth modified scrypt (signer key by id)"
    weak: ClassVar[bool] = False
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix("firebase_scrypt"),)
    examples: ClassVar[tuple[Example, ...]] = (
        # the example of Firebase's documentation for importing scrypt users (public key)
        Example(
            "user1password",
            "$firebase-scrypt$k=example,m=14,r=8,s=Bw$42xEC+ixf3L2lw$lSrfV15cpx95/sZS2W9c9Kp6i"
            "/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ",
            {
                "example": "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0Qs"
                "EmYUSDzZvpjeJ9WmXA=="
            },
        ),
    )

    def identify(self, credential: str) -> bool:
        """True for ``$firebase-scrypt$...``."""
        return _phc.claims(self.id, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of a Firebase export row (``passwordHash`` and ``salt``, base64)."""
        key_id = params.pop("key_id", None)
        rounds = params.pop("rounds", None)
        mem_cost = params.pop("mem_cost", None)
        separator = params.pop("salt_separator", None)
        reject_params(self.id, params)
        if not isinstance(key_id, str) or not isinstance(separator, str):
            raise bad_params(self.id, "import needs key_id and salt_separator (base64)")
        if not isinstance(rounds, int) or not isinstance(mem_cost, int):
            raise bad_params(self.id, "import needs integer rounds and mem_cost")
        if salt is None:
            raise malformed(self.id, "the user's salt is missing")
        head = self._params(key_id, rounds, mem_cost, _lenient_b64(self.id, separator, "separator"))
        digest = _lenient_b64(self.id, value, "passwordHash")
        if not digest:
            raise malformed(self.id, "empty passwordHash")
        user_salt = _lenient_b64(self.id, salt, "salt")
        return _phc.format_phc(self.id, head, b64encode(user_salt), b64encode(digest))

    def _params(self, key_id: str, rounds: int, mem_cost: int, separator: bytes) -> str:
        if not (1 <= rounds <= FIREBASE_MAX_ROUNDS and 1 <= mem_cost <= FIREBASE_MAX_MEM_COST):
            raise malformed(self.id, "rounds or mem_cost out of range")
        check_scrypt(self.id, 1 << mem_cost, rounds, 1)
        values = {"k": key_id, "m": str(mem_cost), "r": str(rounds), "s": b64encode(separator)}
        if not values["s"]:
            del values["s"]
        return _phc.format_params(self.id, values)

    def _parse(self, credential: str) -> tuple[str, int, int, bytes, bytes, bytes]:
        fields = _phc.split_phc(self.id, credential, 3)
        params = _phc.parse_params(self.id, fields[0])
        if not {"k", "m", "r"} <= set(params) <= {"k", "m", "r", "s"}:
            raise malformed(self.id, "bad parameters")
        if not (params["m"].isdigit() and params["r"].isdigit()):
            raise malformed(self.id, "bad parameters")
        rounds, mem_cost = int(params["r"]), int(params["m"])
        separator = _phc.b64_field(self.id, params.get("s", ""), "separator")
        if self._params(params["k"], rounds, mem_cost, separator) != fields[0]:
            raise malformed(self.id, "parameters not in canonical form")
        user_salt = _phc.b64_field(self.id, fields[1], "salt")
        digest = _phc.b64_field(self.id, fields[2], "hash") if len(fields) == 3 else b""
        if len(fields) == 3 and not digest:
            raise malformed(self.id, "empty hash")
        return params["k"], rounds, mem_cost, separator, user_salt, digest

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The AES-CTR encrypted signer key (raw bytes)."""
        key_id, rounds, mem_cost, separator, user_salt, _ = self._parse(credential)
        signer_key = self._signer_key(keyring, key_id)
        return firebase_scrypt(_pw(password), user_salt, separator, signer_key, rounds, mem_cost)

    def _signer_key(self, keyring: Keyring | None, key_id: str) -> bytes:
        secret = secret_for(keyring, key_id)
        try:
            return base64.b64decode(secret, validate=True)
        except binascii.Error:
            return secret  # raw key bytes

    def stored_digest(self, credential: str) -> bytes:
        """The stored hash (raw bytes)."""
        digest = self._parse(credential)[5]
        if not digest:
            raise malformed(self.id, "no digest")
        return digest

    def strip_digest(self, credential: str) -> str:
        """``$firebase-scrypt$<params>$<salt>``."""
        self._parse(credential)
        return _phc.without_digest(credential, 3)


# -- LDAP ------------------------------------------------------------------------------------


class _Ldap(DigestScheme):
    """``{SCHEME}base64(digest[ + salt])`` as OpenLDAP's slappasswd writes it (RFC 2307 style).

    Canonical form: the standard string with the scheme in upper case. The stripped form keeps
    the salt after a ``$`` (never in base64): ``{SSHA}$<salt b64>``.
    """

    prefix: ClassVar[str]
    algorithm: ClassVar[str]
    salted: ClassVar[bool]
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = ("{",)  # any case: only "{" upper-cases to "{"

    def identify(self, credential: str) -> bool:
        """True for this scheme's ``{...}`` prefix (any case)."""
        return credential[: len(self.prefix)].upper() == self.prefix

    def _size(self) -> int:
        return hashlib.new(self.algorithm).digest_size

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The ``userPassword`` value as stored (prefix normalised to upper case)."""
        reject_params(self.id, params)
        if salt is not None or not self.identify(value):
            raise malformed(self.id)
        canonical = self.prefix + value[len(self.prefix) :]
        self._parse(canonical)
        return canonical

    def _parse(self, credential: str) -> tuple[bytes, bytes | None]:
        """(salt, digest or None for the stripped form)."""
        if not credential.startswith(self.prefix):
            raise malformed(self.id)
        body = credential[len(self.prefix) :]
        if body.startswith("$") and self.salted:
            return _phc.b64_field(self.id, body[1:], "salt"), None
        if body == "" and not self.salted:
            return b"", None
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise malformed(self.id, "not base64") from None
        if base64.b64encode(raw).decode("ascii") != body:
            raise malformed(self.id, "not canonical base64")
        size = self._size()
        if (len(raw) <= size) if self.salted else (len(raw) != size):
            raise malformed(self.id, "wrong length")
        return raw[size:], raw[:size]

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """``H(password + salt)`` (raw bytes)."""
        salt, _ = self._parse(credential)
        return hashlib.new(self.algorithm, _pw(password) + salt).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The digest part of the base64 payload."""
        _, digest = self._parse(credential)
        if digest is None:
            raise malformed(self.id, "no digest")
        return digest

    def strip_digest(self, credential: str) -> str:
        """``{SSHA}$<salt b64>`` for salted schemes, the bare prefix otherwise."""
        salt, _ = self._parse(credential)
        return self.prefix + ("$" + b64encode(salt) if self.salted else "")


@register(priority=60)
class LdapMd5(_Ldap):
    """LDAP ``{MD5}``: base64 of md5(password)."""

    id: ClassVar[str] = "ldap_md5"
    description: ClassVar[str] = "LDAP {MD5} unsalted md5"
    prefix: ClassVar[str] = "{MD5}"
    algorithm: ClassVar[str] = "md5"
    salted: ClassVar[bool] = False
    examples: ClassVar[tuple[Example, ...]] = (
        Example("password", "{MD5}X03MO1qnZdYdgyfeuILPmQ=="),
    )  # slappasswd


@register(priority=60)
class LdapSha1(_Ldap):
    """LDAP ``{SHA}``: base64 of sha1(password)."""

    id: ClassVar[str] = "ldap_sha1"
    description: ClassVar[str] = "LDAP {SHA} unsalted sha1"
    prefix: ClassVar[str] = "{SHA}"
    algorithm: ClassVar[str] = "sha1"
    salted: ClassVar[bool] = False
    examples: ClassVar[tuple[Example, ...]] = (
        Example("password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
    )  # slappasswd


@register(priority=60)
class LdapSaltedMd5(_Ldap):
    """LDAP ``{SMD5}``: base64 of md5(password + salt) + salt."""

    id: ClassVar[str] = "ldap_salted_md5"
    description: ClassVar[str] = "LDAP {SMD5} salted md5"
    prefix: ClassVar[str] = "{SMD5}"
    algorithm: ClassVar[str] = "md5"
    salted: ClassVar[bool] = True
    examples: ClassVar[tuple[Example, ...]] = (
        Example("password", "{SMD5}bvdQu0bC6iVCaK9j/EoWidWWyWI="),
    )  # slappasswd


@register(priority=60)
class LdapSaltedSha1(_Ldap):
    """LDAP ``{SSHA}``: base64 of sha1(password + salt) + salt."""

    id: ClassVar[str] = "ldap_salted_sha1"
    description: ClassVar[str] = "LDAP {SSHA} salted sha1"
    prefix: ClassVar[str] = "{SSHA}"
    algorithm: ClassVar[str] = "sha1"
    salted: ClassVar[bool] = True
    examples: ClassVar[tuple[Example, ...]] = (
        Example("password", "{SSHA}zyTTpmekHiJD/ewnMtBofKEhpMKSe2Bm"),
    )  # slappasswd


@register(priority=55)
class LdapSaltedSha256(_Ldap):
    """LDAP ``{SSHA256}`` (OpenLDAP pw-sha2): base64 of sha256(password + salt) + salt."""

    id: ClassVar[str] = "ldap_salted_sha256"
    description: ClassVar[str] = "LDAP {SSHA256} salted sha256"
    prefix: ClassVar[str] = "{SSHA256}"
    algorithm: ClassVar[str] = "sha256"
    salted: ClassVar[bool] = True
    examples: ClassVar[tuple[Example, ...]] = (
        Example("password", "{SSHA256}dSi7IApaT1uONeb5JASfTsTEhsaWaum48tQlFZzcI3YVH6Drp6jbuA=="),
    )  # slappasswd


@register(priority=55)
class LdapSaltedSha512(_Ldap):
    """LDAP ``{SSHA512}`` (OpenLDAP pw-sha2): base64 of sha512(password + salt) + salt."""

    id: ClassVar[str] = "ldap_salted_sha512"
    description: ClassVar[str] = "LDAP {SSHA512} salted sha512"
    prefix: ClassVar[str] = "{SSHA512}"
    algorithm: ClassVar[str] = "sha512"
    salted: ClassVar[bool] = True
    examples: ClassVar[tuple[Example, ...]] = (
        Example(
            "password",
            "{SSHA512}NNQFm5IsQnRPatdGSmiZLuItC7iEDolRrHksz4m1XAO1/uqlCXv1TrqWzfDDTR/sSoa8FSpq"
            "BdAOL1L4yY2EnrGiLedPBuHZ",
        ),
    )  # slappasswd


# -- MySQL, PostgreSQL -----------------------------------------------------------------------

_MYSQL41 = re.compile(r"\*([0-9A-Fa-f]{40})?")


@register(priority=60)
class Mysql41(DigestScheme):
    """MySQL 4.1+ / MariaDB ``PASSWORD()`` (``mysql_native_password``): ``*`` + upper-case hex
    of sha1(sha1(password)). Canonical form: the stored string, e.g.
    ``*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19``."""

    id: ClassVar[str] = "mysql41"
    description: ClassVar[str] = "MySQL 4.1+ PASSWORD() *HEX (sha1 of sha1)"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = ("*",)
    examples: ClassVar[tuple[Example, ...]] = (
        Example("password", "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"),  # MariaDB PASSWORD()
    )

    def identify(self, credential: str) -> bool:
        """True for ``*`` followed by 40 hex digits."""
        return len(credential) == 41 and bool(_MYSQL41.fullmatch(credential))

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The ``authentication_string`` as stored (hex normalised to upper case)."""
        reject_params(self.id, params)
        if salt is not None or not self.identify(value):
            raise malformed(self.id)
        return value.upper()

    def _parse(self, credential: str) -> str:
        m = _MYSQL41.fullmatch(credential)
        if not m or credential != credential.upper():
            raise malformed(self.id)
        return m.group(1) or ""

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """sha1(sha1(password)) (raw bytes)."""
        self._parse(credential)
        return hashlib.sha1(hashlib.sha1(_pw(password)).digest()).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The stored digest (raw bytes)."""
        digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``*``."""
        self._parse(credential)
        return "*"


@register(priority=60)
class PostgresMd5(DigestScheme):
    """PostgreSQL ``md5`` role passwords: ``'md5' || md5(password || rolname)``.

    The role name is the salt, so the canonical form carries it (base64, since a role name may
    hold any character): ``$postgres-md5$<username b64>$<hex>``.
    Import: ``import_hash("postgres_md5", rolpassword, username=rolname)``.
    """

    id: ClassVar[str] = "postgres_md5"
    description: ClassVar[str] = "PostgreSQL md5 role password (md5 of password + username)"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix("postgres_md5"),)
    examples: ClassVar[tuple[Example, ...]] = (
        # role "alice", from PostgreSQL 15's pg_authid
        Example("password", "$postgres-md5$YWxpY2U$dc9478eb4e94a7dcf2bda02360188a52"),
    )

    def identify(self, credential: str) -> bool:
        """True for ``$postgres-md5$...``; a bare ``md5...`` lacks its username."""
        return _phc.claims(self.id, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of ``pg_authid.rolpassword`` plus the role name (``username=``)."""
        username = params.pop("username", salt)
        reject_params(self.id, params)
        if not isinstance(username, str) or not username:
            raise bad_params(self.id, "import needs username (the role name)")
        if not value.startswith("md5") or not is_hex(value[3:], 32):
            raise malformed(self.id, "expected md5 followed by 32 hex digits")
        return _phc.format_phc(self.id, b64encode(username.encode("utf-8")), value[3:].lower())

    def _parse(self, credential: str) -> tuple[bytes, str]:
        fields = _phc.split_phc(self.id, credential, 2)
        username = _phc.b64_field(self.id, fields[0], "username")
        digest = fields[1] if len(fields) == 2 else ""
        if not username or (digest and not (is_hex(digest, 32) and digest == digest.lower())):
            raise malformed(self.id)
        return username, digest

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """md5(password + username) (raw bytes)."""
        username, _ = self._parse(credential)
        return hashlib.md5(_pw(password) + username).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The stored md5 (raw bytes)."""
        _, digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``$postgres-md5$<username b64>``."""
        self._parse(credential)
        return _phc.without_digest(credential, 2)
