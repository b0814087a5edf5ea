"""Independent verifiers: each checks a password against a provider's credential fields the
way the provider's documentation says the provider does, using hashlib, bcrypt, argon2-cffi
and libpass directly. None of them calls our encoders or our credential engine, so an encoder
bug (a base64 of hex, a log2 cost where N is read) fails the self-test instead of a user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Any

import argon2
import bcrypt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from passlib.hash import md5_crypt, sha256_crypt, sha512_crypt

Checker = Callable[[dict[str, Any], dict[str, str], str], bool]


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _ab64(text: str) -> bytes:
    return _b64(text.replace(".", "+"))


def _bcrypt(password: bytes, mcf: str) -> bool:
    return bcrypt.checkpw(password[:72], mcf.encode())


def _argon2(password: bytes, phc: str) -> bool:
    try:
        return argon2.PasswordHasher().verify(phc, password)
    except argon2.exceptions.VerificationError:
        return False


def _salted(name: str, password: bytes, salt: bytes, position: str, want: bytes) -> bool:
    data = salt + password if position in ("prefix", "SALT_FIRST", "PREFIX") else password + salt
    return hmac.compare_digest(hashlib.new(name, data).digest(), want)


def _rfc2307(password: bytes, value: str) -> bool:
    """RFC 2307 {MD5}/{SMD5}/{SHA}/{SSHA}/{SSHA256}/{SSHA512}: base64(digest + salt)."""
    m = re.fullmatch(r"\{([A-Z0-9]+)\}(.+)", value)
    if not m:
        return False
    name, salted = {
        "MD5": ("md5", False),
        "SMD5": ("md5", True),
        "SHA": ("sha1", False),
        "SSHA": ("sha1", True),
        "SSHA256": ("sha256", True),
        "SSHA512": ("sha512", True),
    }[m.group(1)]
    raw = base64.b64decode(m.group(2))
    size = hashlib.new(name).digest_size
    return _salted(name, password, raw[size:] if salted else b"", "suffix", raw[:size])


def _decode(value: str, encoding: str) -> bytes:
    if encoding == "hex":
        return bytes.fromhex(value)
    if encoding == "base64":
        return _b64(value.replace("-", "+").replace("_", "/"))
    return value.encode()


# -- Auth0: bulk import schema and "Supported hash algorithms" -------------------------------

_AUTH0_PASSWORD = {
    "utf8": "utf-8",
    "ascii": "ascii",
    "latin1": "latin-1",
    "binary": "latin-1",
    "utf16le": "utf-16-le",
    "ucs2": "utf-16-le",
}
"""Auth0's ``password.encoding`` names (Node.js Buffer encodings) as Python codecs."""


def auth0(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """Auth0's ``password_hash`` (bcrypt $2a$/$2b$) or ``custom_password_hash``."""
    pw = password.encode()
    if "password_hash" in fields:
        value = fields["password_hash"]
        return value[:4] in ("$2a$", "$2b$") and _bcrypt(pw, value)
    custom = fields["custom_password_hash"]
    algorithm, h = custom["algorithm"], custom["hash"]
    pw = password.encode(_AUTH0_PASSWORD[custom.get("password", {}).get("encoding", "utf8")])
    if algorithm == "bcrypt":
        salt = custom.get("salt")
        if (
            salt is not None
        ):  # "hash.salt is allowed in conjunction with salt encoding and position"
            raw = _decode(salt["value"], salt.get("encoding", "utf8"))
            pw = raw + pw if salt.get("position", "prefix") == "prefix" else pw + raw
        return h.get("encoding", "utf8") == "utf8" and _bcrypt(pw, h["value"])
    if algorithm == "argon2":
        return h["encoding"] == "utf8" and _argon2(pw, h["value"])
    if algorithm == "ldap":
        return _rfc2307(pw, h["value"])
    if algorithm == "pbkdf2":
        m = re.fullmatch(r"\$pbkdf2-(\w+)\$i=(\d+),l=(\d+)\$([^$]*)\$([^$]+)", h["value"])
        if not m:
            return False
        digest, rounds, length = m.group(1), int(m.group(2)), int(m.group(3))
        got = hashlib.pbkdf2_hmac(digest, pw, _b64(m.group(4)), rounds, length)
        return hmac.compare_digest(got, _b64(m.group(5)))
    if algorithm == "scrypt":
        salt = custom["salt"]
        want = _decode(h["value"], h["encoding"])
        got = hashlib.scrypt(
            pw,
            salt=_decode(salt["value"], salt.get("encoding", "utf8")),
            n=custom.get("cost", 16384),
            r=custom.get("blockSize", 8),
            p=custom.get("parallelization", 1),
            maxmem=2**31 - 1,
            dklen=custom["keylen"],
        )
        return h["encoding"] in ("hex", "base64") and hmac.compare_digest(got, want)
    if algorithm == "hmac":
        key = h["key"]
        mac = hmac.new(_decode(key["value"], key.get("encoding", "utf8")), pw, h["digest"])
        want = _decode(h["value"], h["encoding"])
        return h["encoding"] in ("hex", "base64") and hmac.compare_digest(mac.digest(), want)
    if algorithm in ("md5", "sha1", "sha256", "sha512"):
        salt = custom.get("salt")
        raw_salt = _decode(salt["value"], salt.get("encoding", "utf8")) if salt else b""
        position = salt.get("position", "prefix") if salt else "prefix"
        return _salted(algorithm, pw, raw_salt, position, _decode(h["value"], h["encoding"]))
    return False


# -- Ory Kratos: hash/hash_comparator.go -------------------------------------------------------


def kratos(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """``credentials.password.config.hashed_password`` as hash_comparator.go reads it."""
    value: str = fields["password"]["config"]["hashed_password"]
    pw = password.encode()
    if re.match(r"^\$2[abzy]?\$", value):
        return _bcrypt(pw, value)
    if value.startswith(("$argon2id$", "$argon2i$")):
        return "$v=19$" in value and _argon2(pw, value)
    for ours, crypt in (
        ("$md5-crypt$", md5_crypt),
        ("$sha256-crypt$", sha256_crypt),
        ("$sha512-crypt$", sha512_crypt),
    ):
        if value.startswith(ours):
            head = {"$md5-crypt$": "$1$", "$sha256-crypt$": "$5$", "$sha512-crypt$": "$6$"}[ours]
            return bool(crypt.verify(password, head + value[len(ours) :]))
    parts = value.split("$")
    if re.match(r"^\$pbkdf2-sha[0-9]{1,3}\$", value):
        digest = parts[1].split("-", 1)[1]
        if digest not in ("sha1", "sha256", "sha512"):
            return False  # sha224/sha384 are SHA-3 in Kratos: never ours
        rounds, length = (int(x.split("=")[1]) for x in parts[2].split(","))
        want = _b64(parts[4])
        got = hashlib.pbkdf2_hmac(digest, pw, _b64(parts[3]), rounds, len(want))
        return hmac.compare_digest(got, want)
    if value.startswith("$scrypt$"):
        n, r, p = (int(x.split("=")[1]) for x in parts[2].split(","))  # "ln" is N itself
        want = base64.b64decode(parts[4])
        got = hashlib.scrypt(
            pw, salt=base64.b64decode(parts[3]), n=n, r=r, p=p, maxmem=2**31 - 1, dklen=len(want)
        )
        return hmac.compare_digest(got, want)
    if value.startswith("{SSHA"):
        return _rfc2307(pw, value)
    if value.startswith("$firescrypt$"):
        ln, r, p = (int(x.split("=")[1]) for x in parts[2].split(","))
        salt, want, sep, key = (base64.b64decode(x) for x in parts[3:7])
        return _firebase_scrypt(pw, salt, sep, key, r, ln, p, want)
    if re.match(r"^\$(md5|sha1|sha256|sha512)\$", value):
        name = parts[1]
        if len(parts) == 3:
            return hmac.compare_digest(hashlib.new(name, pw).digest(), base64.b64decode(parts[2]))
        pf = base64.b64decode(parts[2].removeprefix("pf="))
        salt = base64.b64decode(parts[3])
        raw = pf.replace(b"{SALT}", salt).replace(b"{PASSWORD}", pw)
        return hmac.compare_digest(hashlib.new(name, raw).digest(), base64.b64decode(parts[4]))
    return False


def _firebase_scrypt(
    pw: bytes,
    salt: bytes,
    sep: bytes,
    key: bytes,
    rounds: int,
    mem_cost: int,
    p: int,
    want: bytes,
) -> bool:
    """Firebase's scrypt: AES-256-CTR (zero IV) of the signer key under scrypt(pw, salt+sep)."""
    derived = hashlib.scrypt(
        pw, salt=salt + sep, n=1 << mem_cost, r=rounds, p=p, maxmem=2**31 - 1, dklen=32
    )
    enc = Cipher(algorithms.AES(derived), modes.CTR(b"\0" * 16)).encryptor()
    return hmac.compare_digest(enc.update(key) + enc.finalize(), want)


# -- Firebase: auth:import flags -----------------------------------------------------------------


def firebase(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """A Firebase user under its file's ``--hash-algo`` flags (``hash-key`` already resolved)."""
    pw = password.encode()
    want = base64.b64decode(fields["passwordHash"], validate=True)
    salt = base64.b64decode(fields.get("salt", ""), validate=True)
    algo = config["hash-algo"]
    if algo == "BCRYPT":
        return _bcrypt(pw, want.decode())
    if algo in ("PBKDF_SHA1", "PBKDF2_SHA256"):
        name = "sha1" if algo == "PBKDF_SHA1" else "sha256"
        rounds = int(config["rounds"])
        return rounds <= 120_000 and hmac.compare_digest(
            hashlib.pbkdf2_hmac(name, pw, salt, rounds, len(want)), want
        )
    if algo in ("MD5", "SHA1", "SHA256", "SHA512"):
        rounds = int(config["rounds"])
        order = config.get("hash-input-order", "SALT_FIRST")
        digest = salt + pw if order == "SALT_FIRST" else pw + salt
        for _ in range(rounds):
            digest = hashlib.new(algo.lower(), digest).digest()
        return rounds <= 8192 and hmac.compare_digest(digest, want)
    if algo == "STANDARD_SCRYPT":
        got = hashlib.scrypt(
            pw,
            salt=salt,
            n=int(config["memory-cost"]),
            r=int(config["block-size"]),
            p=int(config["parallelization"]),
            maxmem=2**31 - 1,
            dklen=int(config["dk-len"]),
        )
        return hmac.compare_digest(got, want)
    if algo == "SCRYPT":
        return _firebase_scrypt(
            pw,
            salt,
            base64.b64decode(config["salt-separator"]),
            base64.b64decode(config["hash-key"]),
            int(config["rounds"]),
            int(config["mem-cost"]),
            1,
            want,
        )
    return False


# -- Keycloak: PasswordCredentialData / PasswordSecretData --------------------------------------


def keycloak(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """The credential as Keycloak's password hash providers read it."""
    cred = fields["credentials"][0]
    secret, data = json.loads(cred["secretData"]), json.loads(cred["credentialData"])
    pw = password.encode()
    algo, rounds = data["algorithm"], data["hashIterations"]
    names = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}
    if algo in names:
        want = base64.b64decode(secret["value"])
        got = hashlib.pbkdf2_hmac(
            names[algo], pw, base64.b64decode(secret["salt"]), rounds, len(want)
        )
        return hmac.compare_digest(got, want)
    if algo == "argon2":
        extra = data["additionalParameters"]
        kind = {"id": argon2.Type.ID, "i": argon2.Type.I}[extra["type"][0]]
        want = base64.b64decode(secret["value"])
        got = argon2.low_level.hash_secret_raw(
            pw,
            base64.b64decode(secret["salt"]),
            time_cost=rounds,
            memory_cost=int(extra["memory"][0]),
            parallelism=int(extra["parallelism"][0]),
            hash_len=int(extra["hashLength"][0]),
            type=kind,
        )
        return hmac.compare_digest(got, want)
    if secret["value"].startswith("$2"):
        return _bcrypt(pw, secret["value"])
    return False


# -- Okta: credentials.password.hash -------------------------------------------------------------


def okta(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """Okta's imported hash."""
    h = fields["credentials"]["password"]["hash"]
    pw = password.encode()
    if h["algorithm"] == "BCRYPT":
        return _bcrypt(pw, f"$2b${h['workFactor']:02d}${h['salt']}{h['value']}")
    if h["algorithm"] == "PBKDF2":
        name = {"SHA256_HMAC": "sha256", "SHA512_HMAC": "sha512"}[h["digestAlgorithm"]]
        rounds = h["iterationCount"]
        got = hashlib.pbkdf2_hmac(name, pw, base64.b64decode(h["salt"]), rounds, h["keySize"])
        return rounds >= 4096 and hmac.compare_digest(got, base64.b64decode(h["value"]))
    name = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}[h["algorithm"]]
    salt = base64.b64decode(h.get("salt", ""))
    return _salted(name, pw, salt, h.get("saltOrder", "PREFIX"), base64.b64decode(h["value"]))


# -- the others --------------------------------------------------------------------------------


def supabase(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """GoTrue's CompareHashAndPassword: bcrypt, argon2 PHC or ``$fbscrypt$``."""
    value = fields["password_hash"]
    pw = password.encode()
    if value.startswith("$fbscrypt$"):
        _, _, params, salt, digest = value.split("$")
        kv = dict(item.split("=", 1) for item in params.split(","))
        if kv.get("v") != "1":
            return False
        return _firebase_scrypt(
            pw,
            base64.b64decode(salt),
            base64.b64decode(kv["ss"]),
            base64.b64decode(kv["sk"]),
            int(kv["r"]),
            int(kv["n"]),
            int(kv["p"]),
            base64.b64decode(digest),
        )
    return _argon2(pw, value) if value.startswith("$argon2") else _bcrypt(pw, value)


def zitadel(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """passwap's passlib-compatible verifiers."""
    value: str = fields["hashedPassword"]["hash"]
    pw = password.encode()
    if len(value) > 200:
        return False
    if value.startswith("$2"):
        return _bcrypt(pw, value)
    if value.startswith("$argon2"):
        return _argon2(pw, value)
    for head, crypt in (("$1$", md5_crypt), ("$5$", sha256_crypt), ("$6$", sha512_crypt)):
        if value.startswith(head):
            return bool(crypt.verify(password, value))
    parts = value.split("$")
    if parts[1] in ("pbkdf2", "pbkdf2-sha256", "pbkdf2-sha512"):
        name = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}[parts[1]]
        want = _ab64(parts[4])
        got = hashlib.pbkdf2_hmac(name, pw, _ab64(parts[3]), int(parts[2]), len(want))
        return hmac.compare_digest(got, want)
    if parts[1] == "scrypt":
        ln, r, p = (int(x.split("=")[1]) for x in parts[2].split(","))
        want = _b64(parts[4])
        got = hashlib.scrypt(
            pw, salt=_b64(parts[3]), n=1 << ln, r=r, p=p, maxmem=2**31 - 1, dklen=len(want)
        )
        return hmac.compare_digest(got, want)
    return False


def clerk(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """Clerk's hashers, each with the digest form its docs give."""
    hasher, value = fields["password_hasher"], fields["password_digest"]
    pw = password.encode()
    if hasher == "bcrypt":
        return _bcrypt(pw, value)
    if hasher in ("argon2i", "argon2id"):
        return _argon2(pw, value)
    if hasher in ("md5", "sha256"):
        return hmac.compare_digest(hashlib.new(hasher, pw).hexdigest(), value)
    if hasher == "bcrypt_sha256_django":
        return _bcrypt(
            hashlib.sha256(pw).hexdigest().encode(), value.removeprefix("bcrypt_sha256$")
        )
    if hasher == "phpass":
        from passlib.hash import phpass

        return bool(phpass.verify(password, value))
    if hasher in ("pbkdf2_sha256", "pbkdf2_sha256_django"):
        _, rounds, salt, digest = value.split("$")
        raw_salt = base64.b64decode(salt) if hasher == "pbkdf2_sha256" else salt.encode()
        want = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha256", pw, raw_salt, int(rounds), len(want))
        return hmac.compare_digest(got, want)
    if hasher == "pbkdf2_sha1":
        # "pbkdf2_sha1$<iterations>$<salt>$<hash hex>[$<key length>]": the salt is read as hex
        # when it is valid hex, else its raw bytes; the key length defaults to 32
        fields_ = value.split("$")
        rounds, salt, digest = fields_[1:4]
        keylen = int(fields_[4]) if len(fields_) == 5 else 32
        try:
            raw_salt = bytes.fromhex(salt)
        except ValueError:
            raw_salt = salt.encode()
        got = hashlib.pbkdf2_hmac("sha1", pw, raw_salt, int(rounds), keylen)
        return hmac.compare_digest(got, bytes.fromhex(digest))
    if hasher == "pbkdf2_sha512_hex":
        _, rounds, salt, digest = value.split("$")
        want = bytes.fromhex(digest)
        got = hashlib.pbkdf2_hmac("sha512", pw, bytes.fromhex(salt), int(rounds), len(want))
        return hmac.compare_digest(got, want)
    if hasher == "bcrypt_peppered":
        # "$<version>$<cost>$<salt & hash>$<pepper>": bcrypt of the password with the pepper
        # appended
        mcf, sep, pepper = value[:60], value[60:61], value[61:]
        return sep == "$" and bool(pepper) and _bcrypt(pw + pepper.encode(), mcf)
    if hasher == "scrypt_werkzeug":
        method, salt, digest = value.split("$")
        _, n, r, p = method.split(":")
        got = hashlib.scrypt(
            pw, salt=salt.encode(), n=int(n), r=int(r), p=int(p), maxmem=2**31 - 1, dklen=64
        )
        return hmac.compare_digest(got.hex(), digest)
    if hasher == "scrypt_firebase":
        h, salt, key, sep, rounds, mem = value.split("$")
        return _firebase_scrypt(
            pw,
            base64.b64decode(salt),
            base64.b64decode(sep),
            base64.b64decode(key),
            int(rounds),
            int(mem),
            1,
            base64.b64decode(h),
        )
    return False


def fusionauth(fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """FusionAuth's encryption schemes as its "Password Hashing Algorithms" page gives them."""
    pw = password.encode()
    scheme, factor = fields["encryptionScheme"], fields["factor"]
    if scheme == "bcrypt":
        return _bcrypt(pw, f"$2a${factor:02d}${fields['salt']}{fields['password']}")
    salt, want = base64.b64decode(fields["salt"]), base64.b64decode(fields["password"])
    pbkdf2 = {
        "salted-pbkdf2-hmac-sha256": ("sha256", 32),
        "salted-pbkdf2-hmac-sha256-512": ("sha256", 64),
        "salted-pbkdf2-hmac-sha512-512": ("sha512", 64),
    }
    if scheme in pbkdf2:
        name, size = pbkdf2[scheme]
        return hmac.compare_digest(hashlib.pbkdf2_hmac(name, pw, salt, factor, size), want)
    if scheme in ("salted-md5", "salted-sha256"):
        result = pw + salt  # join(bytes(password), base64Decode(salt)), then factor rounds
        for _ in range(factor):
            result = hashlib.new(scheme.removeprefix("salted-"), result).digest()
        return factor >= 1 and hmac.compare_digest(result, want)
    if scheme == "salted-hmac-sha256":
        return hmac.compare_digest(hmac.new(salt, pw, "sha256").digest(), want)
    return False


CHECKERS: dict[str, Checker] = {
    "auth0": auth0,
    "kratos": kratos,
    "firebase": firebase,
    "keycloak": keycloak,
    "okta": okta,
    "supabase": supabase,
    "zitadel": zitadel,
    "clerk": clerk,
    "fusionauth": fusionauth,
}


def check(provider: str, fields: dict[str, Any], config: dict[str, str], password: str) -> bool:
    """True when ``password`` verifies against ``fields`` as ``provider`` documents; False on
    any mismatch or on fields the provider would not read."""
    try:
        return CHECKERS[provider](fields, config, password)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeError):
        return False
