"""Known-answer vectors for authmigrate.credentials.modern, made by libpass and argon2-cffi.

Run in a throwaway venv::

    python3 -m venv /tmp/gen && /tmp/gen/bin/pip install libpass argon2-cffi
    /tmp/gen/bin/python tests/vectors/gen_libpass.py > tests/vectors/libpass.json

Work factors are lowered through each handler's own ``using()`` so the suite stays fast.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any

import argon2
from passlib import hash as ph

PASSWORDS = ["password", "correct horse battery staple", "pässwörd-ünicode-€", ""]
WRONG = ["Password", "password ", "wrong"]

HANDLERS: list[tuple[str, Any]] = [
    ("scrypt", ph.scrypt.using(rounds=10)),
    ("pbkdf2_sha1", ph.pbkdf2_sha1.using(rounds=1000)),
    ("pbkdf2_sha256", ph.pbkdf2_sha256.using(rounds=1000)),
    ("pbkdf2_sha512", ph.pbkdf2_sha512.using(rounds=1000)),
    ("sha256_crypt", ph.sha256_crypt.using(rounds=1000)),
    ("sha512_crypt", ph.sha512_crypt.using(rounds=1000)),
    ("md5_crypt", ph.md5_crypt),
    ("apr_md5_crypt", ph.apr_md5_crypt),
]


class Argon2Handler:
    """argon2-cffi's PasswordHasher behind the same hash/verify names."""

    def __init__(self, type_: argon2.Type) -> None:
        self.hasher = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=type_)

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password: str, encoded: str) -> bool:
        try:
            return self.hasher.verify(encoded, password)
        except argon2.exceptions.VerificationError:
            return False


def main() -> None:
    handlers: list[tuple[str, Any, str]] = [
        (scheme, handler, f"libpass {version('libpass')} {handler.name}")
        for scheme, handler in HANDLERS
    ]
    handlers += [
        ("argon2id", Argon2Handler(argon2.Type.ID), f"argon2-cffi {version('argon2-cffi')}"),
        ("argon2i", Argon2Handler(argon2.Type.I), f"argon2-cffi {version('argon2-cffi')}"),
    ]
    vectors = []
    for scheme, handler, source in handlers:
        for password in PASSWORDS:
            encoded = handler.hash(password)
            checks = [{"password": password, "ok": handler.verify(password, encoded)}]
            checks += [
                {"password": w, "ok": handler.verify(w, encoded)} for w in WRONG if w != password
            ]
            vectors.append(
                {
                    "scheme": scheme,
                    "stored": encoded,
                    "import": {},
                    "checks": checks,
                    "source": source,
                }
            )
    json.dump(
        {"generator": "tests/vectors/gen_libpass.py", "vectors": vectors},
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
