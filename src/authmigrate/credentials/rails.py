"""Ruby on Rails authentication gems: Devise (bcrypt with a pepper) and Authlogic SHA-512.

Devise's ``Devise::Encryptor`` hashes ``password + pepper`` with bcrypt. The pepper is an app
secret, so the canonical form names it by key id and never holds it::

    $devise-bcrypt$k=<key id>$<bcrypt string>

Authlogic's ``CryptoProviders::Sha512`` (the default of Spree and Solidus) is
``digest = password + salt`` then ``digest = hexdigest(sha512(digest))`` 20 times (its
``stretches``), keeping the salt in its own column. Ours::

    $authlogic-sha512$r=<stretches>$<salt, PHC base64>$<digest, lower-case hex as stored>
"""

from __future__ import annotations

import hashlib
import re

from ._base import Example, Keyring, register
from ._common import DigestScheme, b64decode, b64encode, is_hex, malformed, secret_for, unhex
from ._limits import MAX_AUTHLOGIC_STRETCHES
from .modern import bcrypt_check, bcrypt_checksum, check_bcrypt

_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@register(priority=70)
class DeviseBcrypt:
    """Devise bcrypt over ``password + pepper`` (pepper from the keyring)."""

    id = "devise_bcrypt"
    description = "Devise $devise-bcrypt$k=<key id>$<bcrypt of password+pepper>"
    weak = False
    prefix = "$devise-bcrypt$k="
    prefixes = (prefix,)
    examples = (
        # PHP's crypt() over "correct horse" + pepper, as Devise::Encryptor hashes.
        Example(
            "correct horse",
            "$devise-bcrypt$k=devise_pepper"
            "$2a$04$abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG",
            {"devise_pepper": "pepper-for-self-test"},
        ),
    )

    def _split(self, credential: str) -> tuple[str, str]:
        if not credential.startswith(self.prefix):
            raise malformed(self.id)
        key_id, sep, inner = credential[len(self.prefix) :].partition("$")
        if not sep or not _KEY_ID_RE.match(key_id):
            raise malformed(self.id)
        return key_id, "$" + inner

    def identify(self, credential: str) -> bool:
        """True for the ``$devise-bcrypt$k=`` prefix."""
        return credential.startswith(self.prefix)

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Devise's stored bcrypt string plus ``key_id`` (the keyring entry of the pepper).

        Without a ``key_id`` Devise ran without a pepper: the value is plain bcrypt and is
        returned as such (scheme ``bcrypt``).
        """
        value = value.strip()
        if self.identify(value):
            check_bcrypt(self.id, self._split(value)[1])
            return value
        check_bcrypt(self.id, value)
        key_id = params.get("key_id")
        if key_id is None:
            return value
        if not isinstance(key_id, str) or not _KEY_ID_RE.match(key_id):
            raise malformed(self.id, "key_id must be letters, digits, '_', '.' or '-'")
        return f"{self.prefix}{key_id}{value}"

    def _secret(self, password: str, key_id: str, keyring: Keyring | None) -> bytes:
        return password.encode("utf-8") + secret_for(keyring, key_id)

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """bcrypt over ``password + pepper``, first 72 bytes."""
        key_id, inner = self._split(credential)
        check_bcrypt(self.id, inner)
        return bcrypt_check(self._secret(password, key_id, keyring), inner)

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """The bcrypt checksum of ``password + pepper``."""
        key_id, inner = self._split(credential)
        check_bcrypt(self.id, inner[:29])
        return bcrypt_checksum(self._secret(password, key_id, keyring), inner)

    def stored_digest(self, credential: str) -> bytes:
        """The bcrypt checksum."""
        _, inner = self._split(credential)
        check_bcrypt(self.id, inner)
        return inner[29:].encode("ascii")

    def strip_digest(self, credential: str) -> str:
        """``$devise-bcrypt$k=<key id>$2a$11$<salt>``."""
        key_id, inner = self._split(credential)
        return f"{self.prefix}{key_id}{inner[:29]}"

    def __repr__(self) -> str:
        return f"<scheme {self.id}>"


_AUTHLOGIC_RE = re.compile(
    r"^\$authlogic-sha512\$r=(?P<r>[0-9]{1,6})\$(?P<salt>[A-Za-z0-9+/]*)\$(?P<digest>[0-9a-f]*)$"
)


@register(priority=71)
class AuthlogicSha512(DigestScheme):
    """Authlogic's SHA-512 crypto provider (Spree, Solidus): 20 hex-chained SHA-512s."""

    id = "authlogic_sha512"
    description = (
        "Authlogic SHA-512 $authlogic-sha512$r=20$salt$digest: 20 x sha512 hex chain (weak)"
    )
    weak = True
    prefixes = ("$authlogic-sha512$",)
    examples = (
        # Authlogic's own test vector (test/crypto_provider_test/sha512_test.rb).
        Example(
            "test",
            "$authlogic-sha512$r=20$N2UzMDQxZWJjMmZjMDVhNDBjNjAwMjhlMmM0OTAxYTgxMDM1ZDNjZA$"
            "9508ba2964d65501aa1d7798e8f250b35f50fadb870871f2bc1f390872e8456e"
            "785633d06e17ffa4984a04cfa1a0e1ec29f15c31187b991e591393c6c0bffb61",
        ),
    )

    def _split(self, credential: str) -> tuple[int, bytes, str]:
        match = _AUTHLOGIC_RE.match(credential)
        if match is None or not 1 <= int(match["r"]) <= MAX_AUTHLOGIC_STRETCHES:
            raise malformed(self.id)
        try:
            salt = b64decode(match["salt"])
        except ValueError:
            raise malformed(self.id) from None
        return int(match["r"]), salt, match["digest"]

    def identify(self, credential: str) -> bool:
        """True for the ``$authlogic-sha512$`` prefix."""
        return credential.startswith("$authlogic-sha512$")

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Authlogic's ``crypted_password`` (128 hex) plus its ``password_salt`` column.

        ``params`` may set ``stretches`` (Authlogic's default is 20).
        """
        value = value.strip()
        if self.identify(value):
            self.stored_digest(value)
            return value
        if not is_hex(value, 128):
            raise malformed(self.id, "expected 128 hex digits")
        stretches = params.get("stretches", 20)
        if (
            not isinstance(stretches, int)
            or isinstance(stretches, bool)
            or not 1 <= stretches <= MAX_AUTHLOGIC_STRETCHES
        ):
            raise malformed(self.id, f"stretches must be 1..{MAX_AUTHLOGIC_STRETCHES}")
        encoded_salt = b64encode((salt or "").encode("utf-8"))
        return f"$authlogic-sha512$r={stretches}${encoded_salt}${value.lower()}"

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """``password + salt`` then ``hexdigest(sha512(.))`` ``r`` times; raw final digest."""
        stretches, salt, _ = self._split(credential)
        data = password.encode("utf-8") + salt
        for _ in range(stretches):
            data = hashlib.sha512(data).hexdigest().encode("ascii")
        return unhex(data.decode("ascii"))

    def stored_digest(self, credential: str) -> bytes:
        """The raw 64-byte digest."""
        _, _, hexdigest = self._split(credential)
        if not is_hex(hexdigest, 128):
            raise malformed(self.id, "digest length")
        return unhex(hexdigest)

    def strip_digest(self, credential: str) -> str:
        """``$authlogic-sha512$r=20$<salt>$``."""
        return credential.rpartition("$")[0] + "$"
