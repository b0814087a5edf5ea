"""Known-answer vectors for authmigrate.credentials.django, made by Django's own hashers.

Run in a throwaway venv (Django 4.2 LTS is the last with every hasher, including the
removed sha1/unsalted ones)::

    python3 -m venv /tmp/gen42 && /tmp/gen42/bin/pip install "django>=4.2,<4.3" argon2-cffi "bcrypt<5"
    /tmp/gen42/bin/python tests/vectors/gen_django.py > tests/vectors/django.json

Work factors are lowered through the hashers' own class attributes so the suite stays fast;
the algorithms are Django's code, untouched. bcrypt < 5 truncates at 72 bytes silently,
as Django sites in the wild ran it (bcrypt 5 refuses longer passwords).
"""

from __future__ import annotations

import json
import sys

import django
from django.conf import settings

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.UnsaltedMD5PasswordHasher",
    ],
    USE_TZ=True,
)
django.setup()

from django.contrib.auth import hashers as h  # noqa: E402


class Pbkdf2(h.PBKDF2PasswordHasher):
    iterations = 1000


class Pbkdf2Sha1(h.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class Argon2(h.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 64
    parallelism = 1


class BcryptSha256(h.BCryptSHA256PasswordHasher):
    rounds = 4


class Bcrypt(h.BCryptPasswordHasher):
    rounds = 4


class Scrypt(h.ScryptPasswordHasher):
    work_factor = 2**10


PASSWORDS = ["password", "correct horse battery staple", "pässwörd-ünicode-€", "", "x" * 100]
WRONG = ["Password", "password ", "wrong"]

HASHERS = [
    ("django_pbkdf2_sha256", Pbkdf2()),
    ("django_pbkdf2_sha1", Pbkdf2Sha1()),
    ("django_argon2", Argon2()),
    ("django_bcrypt_sha256", BcryptSha256()),
    ("django_bcrypt", Bcrypt()),
    ("django_scrypt", Scrypt()),
    ("django_sha1", h.SHA1PasswordHasher()),
    ("django_md5", h.MD5PasswordHasher()),
    ("django_unsalted_sha1", h.UnsaltedSHA1PasswordHasher()),
    ("django_unsalted_md5", h.UnsaltedMD5PasswordHasher()),
]


def checks(hasher: h.BasePasswordHasher, encoded: str, password: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{"password": password, "ok": hasher.verify(password, encoded)}]
    for wrong in WRONG:
        if wrong != password:
            out.append({"password": wrong, "ok": hasher.verify(wrong, encoded)})
    return out


def main() -> None:
    vectors = []
    for scheme, hasher in HASHERS:
        for password in PASSWORDS:
            salt = "" if "unsalted" in scheme else hasher.salt()
            encoded = hasher.encode(password, salt)
            vectors.append(
                {
                    "scheme": scheme,
                    "stored": encoded,
                    "import": {},
                    "checks": checks(hasher, encoded, password),
                    "source": f"django {django.__version__} {type(hasher).__mro__[1].__name__}",
                }
            )
    # Ancient Django stored unsalted MD5 as bare 32-hex; Django still accepts it.
    bare = h.UnsaltedMD5PasswordHasher().encode("password", "")
    vectors.append(
        {
            "scheme": "django_unsalted_md5",
            "stored": bare.upper(),
            "import": {},
            "checks": [
                {"password": "password", "ok": h.check_password("password", bare)},
                {"password": "wrong", "ok": h.check_password("wrong", bare)},
            ],
            "source": "bare 32-hex unsalted md5 (accepted by django.contrib.auth.hashers)",
            "canonical": bare if bare.startswith("md5$$") else "md5$$" + bare,
        }
    )
    json.dump(
        {
            "generator": "tests/vectors/gen_django.py",
            "django": django.__version__,
            "vectors": vectors,
        },
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
