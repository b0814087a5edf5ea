"""Hash schemes of shops and CMSs: WordPress, Drupal 7, Magento 1/2, PrestaShop, OpenCart,
Joomla and Shopware 5.

Each scheme reproduces the platform's own check function (named in its docstring), and is
tested against vectors made by that code (``tests/vectors/gen_php.php``).

Where the platform's stored string is self-describing it is the canonical form, byte for byte
(``$P$...``, ``$wp$2y$...``, ``$S$...``, Magento 2's ``hash:salt:version``, Shopware 5's
``iterations:salt:hash``). Where it is ambiguous (a bare md5 with a salt column could be
Magento 1, Joomla or OpenCart) the canonical form is ours, PHC-style (see ``_phc``)::

    $magento1$a=md5$<salt b64>$<hex>       $joomla$<salt b64>$<hex>
    $prestashop$k=<key id>$<hex>            $opencart$a=sha1$<salt b64>$<hex>
    $shopware5-md5$v=customer$<salt b64>$<hex>

Passwords are hashed as their UTF-8 bytes, which is what PHP sees from a UTF-8 form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import ClassVar

import bcrypt
from argon2.low_level import Type, hash_secret_raw
from passlib.hash import phpass as _libpass_phpass

from authmigrate.errors import CredentialError

from . import _phc
from ._base import Example, Keyring, register
from ._common import (
    DigestScheme,
    b64encode,
    bad_params,
    is_hex,
    malformed,
    reject_params,
    same,
    secret_for,
    stored_hex,
)
from ._limits import (
    MAX_MAGENTO2_CHAIN,
    MAX_PHPASS_LOG2,
    MAX_SHOPWARE_ITERATIONS,
    MAX_SLOW_LOOP_PASSWORD_BYTES,
    MEMORY_GATE,
    MIN_PHPASS_LOG2,
    argon2_memory,
    argon2_seconds,
    check_argon2,
    check_bcrypt_cost,
    check_work,
    loop_seconds,
    password_bytes,
)

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""The phpass / Drupal base64 alphabet (also gives the log2 of the round count)."""

MAX_PASSWORD_BYTES_WORDPRESS = 4096
"""wp_check_password and PasswordHash::CheckPassword refuse longer passwords."""

MAX_PASSWORD_BYTES_DRUPAL = 512
"""DRUPAL_MAX_PASSWORD_LENGTH: _password_crypt refuses longer passwords."""

SHOPWARE_BACKEND_SALT = b"A9ASD:_AD!_=%a8nx0asssblPlasS$"
"""The fixed salt of Shopware's LegacyBackendMd5 encoder (public: it is in Shopware's code)."""


# -- helpers ---------------------------------------------------------------------------------


def _pw(password: str) -> bytes:
    return password.encode("utf-8")


def _md5_hex(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


def _sha1_hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode("ascii")


def _hex_digest(scheme_id: str, fields: list[str], nfields: int, length: int) -> str:
    """The digest field of a PHC credential split into ``fields`` (the last of ``nfields``),
    checked as ``length`` hex digits; ``""`` for the stripped form, one field short."""
    digest = fields[nfields - 1] if len(fields) == nfields else ""
    if digest and not is_hex(digest, length):
        raise malformed(scheme_id, "digest is not hex of the expected length")
    return digest


def _str_param(scheme_id: str, params: dict[str, object], name: str) -> str | None:
    value = params.pop(name, None)
    if value is not None and not isinstance(value, str):
        raise bad_params(scheme_id, f"import parameter {name} must be a string")
    return value


def _hex_and_salt(scheme_id: str, value: str, salt: str | None) -> tuple[str, str]:
    """(digest, salt text) of a stored ``hex:salt``, or of a bare hex whose salt column came
    as ``salt``; MalformedHashError when the salt comes both ways."""
    digest, sep, inline_salt = value.partition(":")
    if sep and salt is not None:
        raise malformed(scheme_id, "salt given twice")
    return digest, inline_salt if sep else (salt or "")


def _encode64(data: bytes, count: int) -> str:
    """phpass ``encode64`` / Drupal ``_password_base64_encode``, byte for byte."""
    out = []
    i = 0
    while True:
        value = data[i]
        i += 1
        out.append(ITOA64[value & 0x3F])
        if i < count:
            value |= data[i] << 8
        out.append(ITOA64[(value >> 6) & 0x3F])
        if i >= count:
            break
        i += 1
        if i < count:
            value |= data[i] << 16
        out.append(ITOA64[(value >> 12) & 0x3F])
        if i >= count:
            break
        i += 1
        out.append(ITOA64[(value >> 18) & 0x3F])
        if i >= count:
            break
    return "".join(out)


def check_phpass_log2(
    scheme_id: str, setting: str, algo: str = "md5", length: int | None = None
) -> int:
    """The log2 round count of a phpass / Drupal setting, within bounds (MalformedHashError).

    The rounds hash the whole password each time: the work model prices them with ``length``
    bytes of password (default: the length of the moment, see ``_limits.password_bytes``).
    """
    log2 = ITOA64.find(setting[3]) if len(setting) >= 12 else -1
    if not MIN_PHPASS_LOG2 <= log2 <= MAX_PHPASS_LOG2:
        raise malformed(scheme_id, "round count out of range")
    priced = password_bytes() if length is None else length
    check_work(scheme_id, loop_seconds(algo, 1 << log2, priced))
    return log2


_REFUSED = b"!"
"""What ``digest`` gives for a password the platform refuses: never a stored digest."""


def _crypt_private(scheme_id: str, algo: str, password: bytes, setting: str) -> str:
    """The encoded checksum of phpass ``crypt_private`` / Drupal ``_password_crypt``.

    ``setting`` is ``$X$`` + one round-count character + an 8-character salt. Returns the part
    after those 12 characters (22 characters for md5, 43 for sha512 as Drupal truncates to 55).
    """
    log2 = check_phpass_log2(scheme_id, setting, algo, len(password))
    salt = setting[4:12].encode("ascii")
    digest = hashlib.new(algo, salt + password).digest()
    for _ in range(1 << log2):
        digest = hashlib.new(algo, digest + password).digest()
    encoded = _encode64(digest, len(digest))
    return encoded[:43] if algo == "sha512" else encoded


# -- WordPress -------------------------------------------------------------------------------

_PHPASS = re.compile(r"\$[PH]\$[./0-9A-Za-z]{9}(?:[./0-9A-Za-z]{22})?")


@register(priority=50)
class Phpass(DigestScheme):
    """phpass portable hashes ``$P$`` (WordPress, WooCommerce, Joomla 3.0-3.2) and ``$H$``
    (phpBB 3).

    Canonical form: the phpass string itself, e.g. ``$P$BabcdefghcvvuCNOqZ8Au62tXn1zBB.``.
    Verification is libpass's ``phpass``; :meth:`digest` reproduces ``crypt_private`` of
    WordPress's ``class-phpass.php`` (it must agree with libpass: the tests check both).
    """

    id: ClassVar[str] = "phpass"
    description: ClassVar[str] = "phpass portable $P$/$H$ (WordPress < 6.8, WooCommerce, phpBB)"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = ("$P$", "$H$")

    def identify(self, credential: str) -> bool:
        """True for the ``$P$``/``$H$`` prefix (a broken one is then reported malformed)."""
        return credential.startswith(("$P$", "$H$"))

    def _complete(self, credential: str) -> bool:
        return len(credential) == 34 and bool(_PHPASS.fullmatch(credential))

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The phpass string as stored (``user_pass``); it needs no salt or params."""
        reject_params(self.id, params)
        if salt is not None or not self._complete(value):
            raise malformed(self.id)
        check_phpass_log2(self.id, value)
        return value

    def _setting(self, credential: str) -> str:
        if not _PHPASS.fullmatch(credential):
            raise malformed(self.id)
        check_phpass_log2(self.id, credential)
        return credential[:12]

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The 22-character encoded checksum ``crypt_private`` computes (a password over 4096
        bytes, which WordPress refuses, gives a value no stored checksum equals)."""
        setting = self._setting(credential)
        if len(_pw(password)) > MAX_PASSWORD_BYTES_WORDPRESS:
            return _REFUSED
        return _crypt_private(self.id, "md5", _pw(password), setting).encode("ascii")

    def stored_digest(self, credential: str) -> bytes:
        """The 22-character encoded checksum after the 12-character setting."""
        if not self._complete(credential):
            raise malformed(self.id)
        check_phpass_log2(self.id, credential)
        return credential[12:].encode("ascii")

    def strip_digest(self, credential: str) -> str:
        """``$P$`` + round count + salt (12 characters)."""
        return self._setting(credential)

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """``PasswordHash::CheckPassword``: libpass's phpass, after WordPress's length cap."""
        if not self._complete(credential):
            raise malformed(self.id)
        check_phpass_log2(self.id, credential)
        if len(_pw(password)) > MAX_PASSWORD_BYTES_WORDPRESS:
            return False
        return bool(_libpass_phpass.verify(password, credential))


_WP_BCRYPT = re.compile(
    r"\$wp(\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{22})([./A-Za-z0-9]{31})?"
)


@register(priority=50)
class WordPressBcrypt(DigestScheme):
    """WordPress 6.8+ ``$wp$2y$...``: bcrypt over base64(HMAC-SHA384(key='wp-sha384', password)).

    Reproduces ``wp_check_password`` of WordPress 6.8: the password is used as given (it is
    ``wp_hash_password`` that trims it before hashing, so a password set with surrounding
    spaces verifies without them, exactly as in WordPress), and passwords over 4096 bytes
    never verify. Canonical form: the stored string, e.g. ``$wp$2y$10$<22 salt><31 hash>``.
    """

    id: ClassVar[str] = "wordpress_bcrypt"
    description: ClassVar[str] = "WordPress 6.8+ $wp$2y$: bcrypt over base64 HMAC-SHA384"
    weak: ClassVar[bool] = False
    prefixes: ClassVar[tuple[str, ...]] = ("$wp$",)

    def identify(self, credential: str) -> bool:
        """True for the ``$wp$`` prefix (a broken one is then reported malformed)."""
        return credential.startswith("$wp$")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The ``user_pass`` value as stored; no salt or params."""
        reject_params(self.id, params)
        m = _WP_BCRYPT.fullmatch(value)
        if salt is not None or not m or not m.group(2):
            raise malformed(self.id)
        check_bcrypt_cost(self.id, int(m.group(1)[4:6]))
        return value

    @staticmethod
    def prehash(password: str) -> bytes:
        """``base64_encode(hash_hmac('sha384', $password, 'wp-sha384', true))``."""
        mac = hmac.new(b"wp-sha384", _pw(password), hashlib.sha384).digest()
        return base64.b64encode(mac)

    def _parts(self, credential: str) -> tuple[str, str]:
        m = _WP_BCRYPT.fullmatch(credential)
        if not m:
            raise malformed(self.id)
        check_bcrypt_cost(self.id, int(m.group(1)[4:6]))
        return m.group(1), m.group(2) or ""

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The 31-character bcrypt checksum of the pre-hashed password."""
        setting, _ = self._parts(credential)
        if len(_pw(password)) > MAX_PASSWORD_BYTES_WORDPRESS:
            return _REFUSED
        full = bcrypt.hashpw(self.prehash(password), setting.encode("ascii"))
        return full[-31:]

    def stored_digest(self, credential: str) -> bytes:
        """The 31-character bcrypt checksum."""
        _, checksum = self._parts(credential)
        if not checksum:
            raise malformed(self.id, "no digest")
        return checksum.encode("ascii")

    def strip_digest(self, credential: str) -> str:
        """``$wp$2y$NN$`` + the 22-character bcrypt salt."""
        setting, _ = self._parts(credential)
        return "$wp" + setting

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """``wp_check_password`` for a ``$wp`` hash."""
        setting, checksum = self._parts(credential)
        if not checksum:
            raise malformed(self.id, "no digest")
        if len(_pw(password)) > MAX_PASSWORD_BYTES_WORDPRESS:
            return False
        return bcrypt.checkpw(self.prehash(password), (setting + checksum).encode("ascii"))


# -- Drupal 7 --------------------------------------------------------------------------------

_DRUPAL = re.compile(
    r"(U?)(\$S\$[./0-9A-Za-z]{9})([./0-9A-Za-z]{43})?"  # $S$ and U$S$: sha512
    r"|U(\$[PH]\$[./0-9A-Za-z]{9})([./0-9A-Za-z]{22})?"  # U$P$ / U$H$: md5 phpass
)


@register(priority=50)
class Drupal7(DigestScheme):
    """Drupal 7 ``$S$`` (sha512, ``user_hash_password``) and ``U$S$`` / ``U$P$`` (the password
    was md5'ed first, by ``user_update_7000`` when upgrading a Drupal 6 site).

    Reproduces ``user_check_password`` and ``_password_crypt`` of Drupal 7's password.inc.
    Canonical form: the stored ``pass`` value, e.g. ``$S$D<salt 8><43 chars>``. Plain
    ``$P$``/``$H$`` (Drupal 6 phpass) belong to the ``phpass`` scheme.
    """

    id: ClassVar[str] = "drupal7"
    description: ClassVar[str] = "Drupal 7 $S$ (sha512 phpass-style) and md5-upgraded U$S$"
    weak: ClassVar[bool] = False
    prefixes: ClassVar[tuple[str, ...]] = ("$S$", "U$S$", "U$P$", "U$H$")

    def _parts(self, credential: str) -> tuple[bool, str, str, str]:
        """(md5 first?, algorithm, 12-character setting, encoded checksum or '')."""
        m = _DRUPAL.fullmatch(credential)
        if not m:
            raise malformed(self.id)
        if m.group(2):
            parts = bool(m.group(1)), "sha512", m.group(2), m.group(3) or ""
        else:
            parts = True, "md5", m.group(4), m.group(5) or ""
        # a U$ hash runs its rounds over md5(password): 32 hex characters whatever was typed
        check_phpass_log2(self.id, parts[2], parts[1], 32 if parts[0] else None)
        return parts

    def identify(self, credential: str) -> bool:
        """True for the ``$S$``, ``U$S$``, ``U$P$`` and ``U$H$`` prefixes (a broken one is
        then reported malformed)."""
        return credential.startswith(("$S$", "U$S$", "U$P$", "U$H$"))

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The ``users.pass`` value as stored; no salt or params."""
        reject_params(self.id, params)
        m = _DRUPAL.fullmatch(value)
        if salt is not None or not m or not (m.group(3) or m.group(5)):
            raise malformed(self.id)
        self._parts(value)
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The encoded checksum ``_password_crypt`` computes (after md5 for ``U$``); a password
        over 512 bytes, which Drupal refuses, gives a value no stored checksum equals.

        ``_password_crypt`` applies the 512-byte cap to what it is given: for ``U$`` that is the
        32-character md5, so a ``U$`` account's longer password verifies, as in Drupal.
        """
        md5_first, algo, setting, _ = self._parts(credential)
        secret = _md5_hex(_pw(password)) if md5_first else _pw(password)
        if len(secret) > MAX_PASSWORD_BYTES_DRUPAL:
            return _REFUSED
        return _crypt_private(self.id, algo, secret, setting).encode("ascii")

    def stored_digest(self, credential: str) -> bytes:
        """The encoded checksum after the setting."""
        _, _, _, checksum = self._parts(credential)
        if not checksum:
            raise malformed(self.id, "no digest")
        return checksum.encode("ascii")

    def strip_digest(self, credential: str) -> str:
        """The optional ``U`` and the 12-character setting."""
        md5_first, algo, setting, _ = self._parts(credential)
        return ("U" if md5_first else "") + setting

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """``user_check_password``: False for passwords Drupal refuses (over 512 bytes, except
        under ``U$``, where the cap applies to the md5 of the password)."""
        stored = self.stored_digest(credential)
        return same(self.digest(password, credential), stored)


# -- Magento ---------------------------------------------------------------------------------

_M1_ALGOS = {"md5": 32, "sha256": 64, "sha512": 128}


@register(priority=60)
class Magento1(DigestScheme):
    """Magento 1 ``md5(salt + password):salt`` (CE), its sha256 variant (EE, CE 1.9 PCI) and the
    sha512 one of 1.9.3+ / OpenMage (``HASH_VERSION_SHA512``, written where PHP lacks
    ``password_hash``; the bcrypt it writes otherwise is plain ``$2y$``, scheme ``bcrypt``).

    Reproduces ``Mage_Core_Model_Encryption::validateHash``: ``hash(salt . password)``, or
    ``hash(password)`` when the stored value has no salt. The stored ``hash:salt`` cannot be
    told from Joomla's, so the canonical form is ours: ``$magento1$a=md5$<salt b64>$<hex>``.

    Import: ``import_hash("magento1", "<hex>:<salt>")`` (or the hex with ``salt=``); the
    algorithm follows from the digest length unless ``algorithm=`` names it. A version suffix
    (``<hex>:<salt>:0`` md5, ``:1`` sha256, as Magento's data migration tool writes) is read.
    """

    id: ClassVar[str] = "magento1"
    description: ClassVar[str] = "Magento 1 md5(salt+password):salt, or sha256 (EE), sha512"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix("magento1"),)

    def identify(self, credential: str) -> bool:
        """True for ``$magento1$...``."""
        return _phc.claims(self.id, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of a stored ``hex[:salt]`` (salt may come as ``salt=`` instead)."""
        algorithm = _str_param(self.id, params, "algorithm")
        reject_params(self.id, params)
        digest, sep, inline_salt = value.partition(":")
        if sep and salt is not None:
            raise malformed(self.id, "salt given twice")
        inline_salt, sep2, version = inline_salt.partition(":")
        if sep2:
            # hash:salt:0 / hash:salt:1, as Magento's data migration tool writes them
            if algorithm is not None or version not in ("0", "1") or ":" in version:
                raise malformed(self.id, "expected hash:salt or hash:salt:0|1")
            algorithm = "md5" if version == "0" else "sha256"
        salt_text = inline_salt if sep else (salt or "")
        if algorithm is None:
            algorithm = {32: "md5", 64: "sha256", 128: "sha512"}.get(len(digest), "")
        if algorithm not in _M1_ALGOS or not is_hex(digest, _M1_ALGOS[algorithm]):
            raise malformed(self.id, "digest is not md5, sha256 or sha512 hex")
        return _phc.format_phc(
            self.id, f"a={algorithm}", b64encode(salt_text.encode("utf-8")), digest.lower()
        )

    def _parse(self, credential: str) -> tuple[str, bytes, str]:
        fields = _phc.split_phc(self.id, credential, 3)
        algorithm = _phc.single_param(self.id, fields[0], "a", _M1_ALGOS)
        digest = _hex_digest(self.id, fields, 3, _M1_ALGOS[algorithm])
        return algorithm, _phc.b64_field(self.id, fields[1], "salt"), digest

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """``hash(salt . password)`` (raw bytes)."""
        algorithm, salt, _ = self._parse(credential)
        return hashlib.new(algorithm, salt + _pw(password)).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The stored digest (raw bytes)."""
        _, _, digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``$magento1$a=...$<salt>``."""
        self._parse(credential)
        return _phc.without_digest(credential, 3)


MAGENTO2_ARGON2ID13 = (32, 2, 67_108_864)
"""Magento 2's argon2id parameters: SODIUM_CRYPTO_SIGN_SEEDBYTES, OPSLIMIT/MEMLIMIT_INTERACTIVE."""

_M2_VERSION = r"(?:0|1|2|3|3_\d{1,3}_\d{1,3}_\d{1,12})"
_M2 = re.compile(rf"([0-9a-fA-F]*):([^:]*):({_M2_VERSION}(?::{_M2_VERSION})*)")
_M2_SIMPLE = {"0": "md5", "1": "sha256"}
_M2_MAX_MEMLIMIT = 1 << 30


def _magento2_argon(data: bytes, salt: bytes, seed: int, ops: int, mem: int) -> bytes:
    """``Encryptor::getArgonHash``: sodium_crypto_pwhash argon2id13, salt cut/padded to 16."""
    salt = salt[:16]
    if len(salt) < 16:
        salt = (salt * 16)[:16]
    with MEMORY_GATE.hold(argon2_memory(mem // 1024)):
        return _argon_raw(data, salt, seed, ops, mem)


def _argon_raw(data: bytes, salt: bytes, seed: int, ops: int, mem: int) -> bytes:
    return hash_secret_raw(
        secret=data,
        salt=salt,
        time_cost=ops,
        memory_cost=mem // 1024,
        parallelism=1,
        hash_len=seed,
        type=Type.ID,
        version=19,
    )


@register(priority=60)
class Magento2(DigestScheme):
    """Magento 2 ``hash:salt:version[:version...]``: 0 md5, 1 sha256, 2, ``3_<seed>_<ops>_<mem>``
    and a bare ``3`` argon2id13 (sodium ``crypto_pwhash``; 2 and 3 with Magento's defaults).

    Reproduces ``Magento\\Framework\\Encryption\\Encryptor::isValidHash``: the versions list the
    algorithms from the oldest; each one hashes the previous (hex) result with the same salt,
    ``hash(salt . previous)`` for md5/sha256 and argon2id(previous, salt[:16]) for Argon, so
    ``a853...:8qnyO4H1OYIfGCUb:1:2`` is argon2id over sha256 (an upgraded hash, as written by
    ``bin/magento customer:hash:upgrade``). Canonical form: the stored string itself.
    Weak: the md5/sha256 versions are fast digests (an Argon one is wrapped too, harmlessly).
    """

    id: ClassVar[str] = "magento2"
    description: ClassVar[str] = "Magento 2 hash:salt:version (md5, sha256, argon2id13, chains)"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = tuple("0123456789abcdefABCDEF:")  # _M2

    def _parse(self, credential: str) -> tuple[str, bytes, list[str]]:
        m = _M2.fullmatch(credential)
        if not m:
            raise malformed(self.id)
        digest, salt_text, versions_text = m.groups()
        versions = versions_text.split(":")
        if len(versions) > MAX_MAGENTO2_CHAIN:
            raise malformed(self.id, "too many versions in the chain")
        salt = salt_text.encode("utf-8")
        work = 0.0
        for version in versions:
            if version not in _M2_SIMPLE:
                _, ops, mem = self._argon_params(version)
                work += argon2_seconds(mem // 1024, ops)
                if not salt:
                    raise malformed(self.id, "argon2 needs a salt")
        check_work(self.id, work)
        if digest and len(digest) != self._digest_len(versions[-1]):
            raise malformed(self.id, "digest length does not match the last version")
        return digest, salt, versions

    def _argon_params(self, version: str) -> tuple[int, int, int]:
        if version in ("2", "3"):
            # a bare 3 (customer:hash:upgrade appends getLatestHashVersion() to the version
            # list) is the argon2id getHash computed with its default parameters
            return MAGENTO2_ARGON2ID13
        seed, ops, mem = (int(x) for x in version.split("_")[1:])
        if not (16 <= seed <= 64 and 8192 <= mem <= _M2_MAX_MEMLIMIT):
            raise malformed(self.id, "argon2 parameters out of range")
        check_argon2(self.id, mem // 1024, ops, 1)
        return seed, ops, mem

    def _digest_len(self, version: str) -> int:
        if version == "0":
            return 32
        if version == "1":
            return 64
        return 2 * self._argon_params(version)[0]

    def identify(self, credential: str) -> bool:
        """True for a complete ``hash:salt:version...`` whose digest fits its last version."""
        m = _M2.fullmatch(credential)
        if not m or not m.group(1):
            return False
        try:
            self._parse(credential)
        except CredentialError:
            return False
        return True

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The ``password_hash`` column as stored; no salt or params."""
        reject_params(self.id, params)
        if salt is not None or not self.identify(value):
            raise malformed(self.id)
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The chain of ``isValidHash`` from the password (raw bytes of the final hex)."""
        _, salt, versions = self._parse(credential)
        recreated = _pw(password)
        for version in versions:
            if version in _M2_SIMPLE:
                recreated = hashlib.new(_M2_SIMPLE[version], salt + recreated).hexdigest().encode()
            else:
                raw = _magento2_argon(recreated, salt, *self._argon_params(version))
                recreated = raw.hex().encode()
        return bytes.fromhex(recreated.decode())

    def stored_digest(self, credential: str) -> bytes:
        """The stored digest (raw bytes)."""
        digest, _, _ = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``:salt:versions`` (the stored string with an empty hash)."""
        self._parse(credential)
        return ":" + credential.split(":", 1)[1]


# -- PrestaShop, OpenCart, Joomla ------------------------------------------------------------


@register(priority=60)
class PrestaShop(DigestScheme):
    """PrestaShop 1.5/1.6 ``md5(_COOKIE_KEY_ . password)`` (``Tools::encrypt``).

    The cookie key comes from the keyring by id; canonical form ``$prestashop$k=<key id>$<hex>``.
    Import: ``import_hash("prestashop", "<hex>", key_id="shop1")``. PrestaShop 1.7+ stores
    ``password_hash`` bcrypt, which is plain bcrypt.
    """

    id: ClassVar[str] = "prestashop"
    description: ClassVar[str] = "PrestaShop 1.6 md5(_COOKIE_KEY_ + password), key by id"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix("prestashop"),)

    def identify(self, credential: str) -> bool:
        """True for ``$prestashop$...``."""
        return _phc.claims(self.id, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of the stored ``passwd`` (32 hex); ``key_id`` names the cookie key."""
        key_id = _str_param(self.id, params, "key_id")
        reject_params(self.id, params)
        if key_id is None:
            raise bad_params(self.id, "import needs key_id (the keyring id of _COOKIE_KEY_)")
        if salt is not None or not is_hex(value, 32):
            raise malformed(self.id, "expected 32 hex digits and no salt")
        return _phc.format_phc(self.id, _phc.format_params(self.id, {"k": key_id}), value.lower())

    def _parse(self, credential: str) -> tuple[str, str]:
        fields = _phc.split_phc(self.id, credential, 2)
        key_id = _phc.single_param(self.id, fields[0], "k")
        digest = _hex_digest(self.id, fields, 2, 32)
        return key_id, digest

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """``md5(key . password)`` (raw bytes)."""
        key_id, _ = self._parse(credential)
        return hashlib.md5(secret_for(keyring, key_id) + _pw(password)).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The stored md5 (raw bytes)."""
        _, digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``$prestashop$k=<key id>``."""
        self._parse(credential)
        return _phc.without_digest(credential, 2)


def php_htmlspecialchars(text: str) -> str:
    """PHP ``htmlspecialchars($text, ENT_COMPAT)``, as OpenCart's request filter applies it."""
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


@register(priority=60)
class OpenCart(DigestScheme):
    """OpenCart 1.5-3 ``sha1(salt . sha1(salt . sha1(password)))``, salt in its own column,
    and the ``md5(password)`` fallback its login query also accepts.

    Canonical forms: ``$opencart$a=sha1$<salt b64>$<hex>`` and ``$opencart$a=md5$$<hex>``;
    ``h=1`` is added when the password was HTML-escaped before hashing (OpenCart's request filter
    escapes ``& " < >`` in every POST field, so a password with those characters set through
    the storefront was hashed escaped: import with ``html_escaped=True`` for such shops).
    Import: ``import_hash("opencart", "<hex>", salt="<salt column>")``. OpenCart 4 uses
    ``password_hash`` (plain bcrypt).
    """

    id: ClassVar[str] = "opencart"
    description: ClassVar[str] = "OpenCart 1.5-3 sha1(salt+sha1(salt+sha1(pw))) or md5 fallback"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix("opencart"),)

    def identify(self, credential: str) -> bool:
        """True for ``$opencart$...``."""
        return _phc.claims(self.id, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of ``password`` (40 hex with ``salt=``, or 32 hex md5)."""
        escaped = params.pop("html_escaped", False)
        reject_params(self.id, params)
        extra = {"h": "1"} if escaped else {}
        if is_hex(value, 32):
            head = _phc.format_params(self.id, {"a": "md5", **extra})
            return _phc.format_phc(self.id, head, "", value.lower())
        if not is_hex(value, 40):
            raise malformed(self.id, "expected 40 hex digits (sha1) or 32 (md5)")
        if not salt:
            raise malformed(self.id, "the sha1 form needs its salt column")
        head = _phc.format_params(self.id, {"a": "sha1", **extra})
        return _phc.format_phc(self.id, head, b64encode(salt.encode("utf-8")), value.lower())

    def _parse(self, credential: str) -> tuple[str, bool, bytes, str]:
        fields = _phc.split_phc(self.id, credential, 3)
        params = _phc.parse_params(self.id, fields[0])
        algorithm = params.get("a", "")
        if algorithm not in ("sha1", "md5") or not set(params) <= {"a", "h"}:
            raise malformed(self.id, "bad parameters")
        if params.get("h", "1") != "1":
            raise malformed(self.id, "bad parameters")
        salt = _phc.b64_field(self.id, fields[1], "salt")
        if (algorithm == "md5") == bool(salt):
            raise malformed(self.id, "sha1 needs a salt, md5 has none")
        digest = _hex_digest(self.id, fields, 3, 40 if algorithm == "sha1" else 32)
        return algorithm, "h" in params, salt, digest

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The sha1 chain (or md5) of the password (raw bytes)."""
        algorithm, escaped, salt, _ = self._parse(credential)
        pw = _pw(php_htmlspecialchars(password) if escaped else password)
        if algorithm == "md5":
            return hashlib.md5(pw).digest()
        return hashlib.sha1(salt + _sha1_hex(salt + _sha1_hex(pw))).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The stored digest (raw bytes)."""
        _, _, _, digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``$opencart$a=...$<salt>``."""
        self._parse(credential)
        return _phc.without_digest(credential, 3)


@register(priority=60)
class Joomla(DigestScheme):
    """Joomla 1.5-2.5 ``md5(password . salt):salt`` (``JUserHelper::getCryptedPassword`` md5-hex).

    Canonical form ``$joomla$<salt b64>$<hex>`` (the stored ``hash:salt`` looks like
    Magento 1's). Import: ``import_hash("joomla", "<hex>:<salt>")``. Joomla 3.0-3.2 phpass is
    the ``phpass`` scheme; Joomla 3.2+ bcrypt is plain bcrypt.
    """

    id: ClassVar[str] = "joomla"
    description: ClassVar[str] = "Joomla 1.5-2.5 md5(password+salt):salt"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix("joomla"),)

    def identify(self, credential: str) -> bool:
        """True for ``$joomla$...``."""
        return _phc.claims(self.id, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of the stored ``hex:salt`` (or hex with ``salt=``)."""
        reject_params(self.id, params)
        digest, salt_text = _hex_and_salt(self.id, value, salt)
        if not is_hex(digest, 32):
            raise malformed(self.id, "digest is not 32 hex digits")
        return _phc.format_phc(self.id, b64encode(salt_text.encode("utf-8")), digest.lower())

    def _parse(self, credential: str) -> tuple[bytes, str]:
        fields = _phc.split_phc(self.id, credential, 2)
        digest = _hex_digest(self.id, fields, 2, 32)
        return _phc.b64_field(self.id, fields[0], "salt"), digest

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """``md5(password . salt)`` (raw bytes)."""
        salt, _ = self._parse(credential)
        return hashlib.md5(_pw(password) + salt).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The stored md5 (raw bytes)."""
        _, digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``$joomla$<salt>``."""
        self._parse(credential)
        return _phc.without_digest(credential, 2)


_JOOMLA_SHA256 = re.compile(r"\{SHA256\}([0-9a-f]{64})?(?::([^:]+))?")


@register(priority=56)
class JoomlaSha256(DigestScheme):
    """Joomla 3.2 ``{SHA256}<sha256(password . salt)>:<salt>`` (``JUserHelper::verifyPassword``:
    ``getCryptedPassword($password, $salt, 'sha256', true)``; no salt: ``sha256(password)``).

    Canonical form: the stored string, e.g. ``{SHA256}<64 hex>:<salt>``; the whole string is
    what Joomla compares, so the hex is lower case as PHP's ``hash()`` writes it.
    """

    id: ClassVar[str] = "joomla_sha256"
    description: ClassVar[str] = "Joomla 3.2 {SHA256}sha256(password+salt):salt"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = ("{SHA256}",)
    examples: ClassVar[tuple[Example, ...]] = (
        # PHP: '{SHA256}' . hash('sha256', $password . $salt) . ':' . $salt
        Example(
            "password",
            "{SHA256}267988b4812c61ab4fd0cb0bd19d019ac63ad8100f988f1849d120c5d0de9d98"
            ":iVQ3RJ5BNGCiAT9yWeyTBvnKu7Im1kWZ",
        ),
    )

    def identify(self, credential: str) -> bool:
        """True for ``{SHA256}`` followed by 64 lower-case hex digits (and ``:salt``)."""
        m = _JOOMLA_SHA256.fullmatch(credential)
        return bool(m and m.group(1))

    def _parse(self, credential: str) -> tuple[str, bytes]:
        m = _JOOMLA_SHA256.fullmatch(credential)
        if not m:
            raise malformed(self.id)
        return m.group(1) or "", (m.group(2) or "").encode("utf-8")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The stored ``password`` column as it is; no salt column or params."""
        reject_params(self.id, params)
        if salt is not None or not self.identify(value):
            raise malformed(self.id, "expected {SHA256}<64 lower-case hex>[:salt]")
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """``sha256(password . salt)`` (raw bytes)."""
        _, salt = self._parse(credential)
        return hashlib.sha256(_pw(password) + salt).digest()

    def stored_digest(self, credential: str) -> bytes:
        """The stored sha256 (raw bytes)."""
        digest, _ = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``{SHA256}:<salt>`` (``{SHA256}`` alone without a salt)."""
        _, salt = self._parse(credential)
        return "{SHA256}" + (":" + salt.decode("utf-8") if salt else "")


# -- Shopware 5 ------------------------------------------------------------------------------

_SW_SHA256 = re.compile(r"(\d{1,7}):([^:$]{1,255}):([0-9a-f]{64})?")
SHOPWARE_MAX_ITERATIONS = MAX_SHOPWARE_ITERATIONS


@register(priority=60)
class Shopware5Sha256(DigestScheme):
    """Shopware 5 ``Sha256`` encoder: ``iterations:salt:hash``, where the hash is
    ``sha256(previous . password . salt)`` repeated ``iterations + 1`` times (hex chained).

    Reproduces ``Shopware\\Components\\Password\\Encoder\\Sha256``. Canonical form: the stored
    string, e.g. ``1000:Dp4gDhvJmz1sVxkN2RjKhQ:<64 hex>``.
    """

    id: ClassVar[str] = "shopware5_sha256"
    description: ClassVar[str] = "Shopware 5 Sha256 encoder iterations:salt:hash"
    weak: ClassVar[bool] = True
    # no ``prefixes``: the ``\d`` of _SW_SHA256 is any Unicode decimal digit

    def _parse(self, credential: str) -> tuple[str, bytes, str]:
        m = _SW_SHA256.fullmatch(credential)
        if not m:
            raise malformed(self.id)
        iterations, salt, digest = m.groups()
        if int(iterations) > SHOPWARE_MAX_ITERATIONS:
            raise malformed(self.id, "iteration count out of range")
        # each round hashes the previous hex digest, the password and the salt
        priced = password_bytes() + 64 + len(salt)
        check_work(self.id, loop_seconds("sha256", int(iterations) + 1, priced))
        return iterations, salt.encode("utf-8"), digest or ""

    def identify(self, credential: str) -> bool:
        """True for a complete ``iterations:salt:hash``."""
        m = _SW_SHA256.fullmatch(credential)
        if not m or not m.group(3):
            return False
        return int(m.group(1)) <= SHOPWARE_MAX_ITERATIONS

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """The stored ``password`` (encoder ``Sha256``); no salt or params."""
        reject_params(self.id, params)
        if salt is not None or not self.identify(value):
            raise malformed(self.id)
        return value

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """``generateInternal`` (raw bytes of the final hex). A password over 4096 bytes gives a
        value no stored digest equals: each round hashes the whole password."""
        iterations, salt, _ = self._parse(credential)
        pw = _pw(password)
        if len(pw) > MAX_SLOW_LOOP_PASSWORD_BYTES:
            return _REFUSED
        digest = b""
        for _ in range(int(iterations) + 1):
            digest = hashlib.sha256(digest + pw + salt).hexdigest().encode("ascii")
        return bytes.fromhex(digest.decode())

    def stored_digest(self, credential: str) -> bytes:
        """The stored sha256 (raw bytes)."""
        _, _, digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``iterations:salt:`` (empty hash)."""
        iterations, salt, _ = self._parse(credential)
        return f"{iterations}:{salt.decode('utf-8')}:"


_SW_MD5_VARIANTS: dict[str, Callable[[bytes, bytes], bytes]] = {
    "customer": lambda pw, salt: hashlib.md5(pw + salt).digest(),
    "backend": lambda pw, salt: hashlib.md5(SHOPWARE_BACKEND_SALT + _md5_hex(pw)).digest(),
}


@register(priority=60)
class Shopware5Md5(DigestScheme):
    """Shopware 5 md5: the ``Md5`` encoder of customers (``md5(password . salt)`` for a stored
    ``md5:salt``, ``md5(password)`` otherwise) and ``LegacyBackendMd5`` of backend users
    (``md5(fixed salt . md5(password))``, the fixed salt being in Shopware's code).

    Canonical forms: ``$shopware5-md5$v=customer$<salt b64>$<hex>`` and
    ``$shopware5-md5$v=backend$$<hex>``. Import: ``import_hash("shopware5_md5", "<hex>[:salt]")``
    with ``variant="backend"`` for ``s_core_auth`` rows.
    """

    id: ClassVar[str] = "shopware5_md5"
    description: ClassVar[str] = "Shopware 5 Md5 encoder (customers) and LegacyBackendMd5"
    weak: ClassVar[bool] = True
    prefixes: ClassVar[tuple[str, ...]] = (_phc.prefix("shopware5_md5"),)

    def identify(self, credential: str) -> bool:
        """True for ``$shopware5-md5$...``."""
        return _phc.claims(self.id, credential)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Canonical form of a stored ``md5[:salt]``; ``variant`` is customer (default) or
        backend."""
        variant = _str_param(self.id, params, "variant") or "customer"
        reject_params(self.id, params)
        if variant not in _SW_MD5_VARIANTS:
            raise bad_params(self.id, "variant must be customer or backend")
        digest, salt_text = _hex_and_salt(self.id, value, salt)
        if not is_hex(digest, 32) or (variant == "backend" and salt_text):
            raise malformed(self.id, "expected 32 hex digits (and no salt for backend)")
        return _phc.format_phc(
            self.id, f"v={variant}", b64encode(salt_text.encode("utf-8")), digest.lower()
        )

    def _parse(self, credential: str) -> tuple[str, bytes, str]:
        fields = _phc.split_phc(self.id, credential, 3)
        variant = _phc.single_param(self.id, fields[0], "v", _SW_MD5_VARIANTS)
        salt = _phc.b64_field(self.id, fields[1], "salt")
        if variant == "backend" and salt:
            raise malformed(self.id, "backend variant has no salt")
        digest = _hex_digest(self.id, fields, 3, 32)
        return variant, salt, digest

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The md5 the encoder computes (raw bytes)."""
        variant, salt, _ = self._parse(credential)
        return _SW_MD5_VARIANTS[variant](_pw(password), salt)

    def stored_digest(self, credential: str) -> bytes:
        """The stored md5 (raw bytes)."""
        _, _, digest = self._parse(credential)
        return stored_hex(self.id, digest)

    def strip_digest(self, credential: str) -> str:
        """``$shopware5-md5$v=...$<salt>``."""
        self._parse(credential)
        return _phc.without_digest(credential, 3)
