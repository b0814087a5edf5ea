"""Known-answer vectors for authmigrate.credentials.werkzeug, made by Werkzeug itself.

Run in a throwaway venv::

    python3 -m venv /tmp/gen && /tmp/gen/bin/pip install werkzeug
    /tmp/gen/bin/python tests/vectors/gen_werkzeug.py > tests/vectors/werkzeug.json

Work factors are lowered through the method string, as Werkzeug's API allows.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from werkzeug.security import check_password_hash, generate_password_hash

PASSWORDS = ["password", "correct horse battery staple", "pässwörd-ünicode-€", ""]
WRONG = ["Password", "password ", "wrong"]
METHODS = [
    ("werkzeug_pbkdf2", "pbkdf2:sha256:1000"),
    ("werkzeug_pbkdf2", "pbkdf2:sha512:1000"),
    ("werkzeug_pbkdf2", "pbkdf2:sha1:1000"),
    ("werkzeug_scrypt", "scrypt:1024:8:1"),
    ("werkzeug_scrypt", "scrypt:2048:4:2"),
]


def main() -> None:
    vectors = []
    for scheme, method in METHODS:
        for password in PASSWORDS:
            encoded = generate_password_hash(password, method=method)
            checks = [{"password": password, "ok": check_password_hash(encoded, password)}]
            checks += [
                {"password": w, "ok": check_password_hash(encoded, w)}
                for w in WRONG
                if w != password
            ]
            vectors.append(
                {
                    "scheme": scheme,
                    "stored": encoded,
                    "import": {},
                    "checks": checks,
                    "source": f"werkzeug {version('werkzeug')} generate_password_hash({method})",
                }
            )
    json.dump(
        {"generator": "tests/vectors/gen_werkzeug.py", "vectors": vectors},
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
