"""Known-answer vectors for the LDAP schemes, made by OpenLDAP's own ``slappasswd``.

    apt-get install -y slapd slapd-contrib      # slappasswd, and the pw-sha2 module
    .venv/bin/python -m tests.vectors.gen_ldap > tests/vectors/ldap.json

{MD5} {SHA} {SMD5} {SSHA} are built into slappasswd (OpenLDAP 2.5, Debian bookworm);
{SSHA256} {SSHA512} come from contrib/slapd-modules/passwd/sha2 (``pw-sha2.la``, package
slapd-contrib). slappasswd only hashes, so the answers are by construction: the hashed
password is right, the others are wrong (slapd itself is not started).
"""

from __future__ import annotations

import json
import subprocess
import sys

SCHEMES = {
    "{MD5}": "ldap_md5",
    "{SHA}": "ldap_sha1",
    "{SMD5}": "ldap_salted_md5",
    "{SSHA}": "ldap_salted_sha1",
    "{SSHA256}": "ldap_salted_sha256",
    "{SSHA512}": "ldap_salted_sha512",
}
SHA2 = ["-o", "module-path=/usr/lib/ldap", "-o", "module-load=pw-sha2.la"]
PASSWORDS = ["password", "correct horse battery staple", "p\u00e4ssw\u00f6rd\u20ac"]
WRONG = ["Password", "password "]


def slappasswd(scheme: str, password: str) -> str:
    extra = SHA2 if "256" in scheme or "512" in scheme else []
    out = subprocess.run(
        ["slappasswd", *extra, "-h", scheme, "-s", password],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def main() -> None:
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "slapd"], capture_output=True, text=True
    ).stdout
    vectors = []
    for scheme, scheme_id in SCHEMES.items():
        for pw in PASSWORDS:
            checks = [{"password": pw, "ok": True}]
            checks += [{"password": w, "ok": False} for w in WRONG if w != pw]
            vectors.append(
                {
                    "scheme": scheme_id,
                    "stored": slappasswd(scheme, pw),
                    "import": {},
                    "checks": checks,
                    "source": f"OpenLDAP slappasswd -h {scheme} (slapd {version})",
                }
            )
    json.dump(
        {"generator": "tests/vectors/gen_ldap.py", "vectors": vectors},
        sys.stdout,
        indent=2,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
