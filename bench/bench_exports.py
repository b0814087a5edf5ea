"""Export speed: N accounts exported to each provider's files against the same N into a SQL
table (SQLite), same source, same credentials stage, same batches.

    .venv/bin/python bench/bench_exports.py [--users 100000] [--providers auth0,kratos,...]

(``--providers ""`` times the SQL run alone.)

The source mixes eight real credential forms (PHP bcrypt, Django PBKDF2, md5-crypt, phpass,
argon2id, {SSHA}, sha512-crypt, passlib pbkdf2; tests/vectors), so every route is exercised.
Prints, per provider, seconds, rows/s and the ratio to the SQL run (target <= 2).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from authmigrate import credentials
from authmigrate.credentials._base import get
from authmigrate.credentials._examples import KNOWN_ANSWERS
from authmigrate.pipeline import run_migration
from authmigrate.sinks.exports import PROVIDERS
from authmigrate.spec import load_spec_text

FORMS = ["bcrypt", "django_pbkdf2_sha256", "md5_crypt", "phpass", "sha512_crypt", "pbkdf2_sha256"]

SPEC = """
[source]
url = "sqlite:///{src}"
table = "users"
key = "id"
[target]
{target}
[fields]
id = "id"
email = "email"
email_verified = {{ from = "verified", type = "boolean" }}
given_name = "first"
[credentials]
column = "pw"
scheme = "auto"
[run]
batch_size = 5000
"""


def samples() -> list[str]:
    out = []
    for scheme in FORMS:
        v = KNOWN_ANSWERS[scheme]
        out.append(
            credentials.import_hash(scheme, v["stored"], **(v["import"].get("params") or {}))
        )
    out.append(get("argon2id").examples[0].credential)
    out.append(get("ldap_salted_sha1").examples[0].credential)
    return out


def build_source(path: Path, users: int) -> None:
    forms = samples()
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, pw TEXT, verified INT, first TEXT)"
    )
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
        (
            (i, f"user{i}@example.com", forms[i % len(forms)], i % 2, f"First{i}")
            for i in range(1, users + 1)
        ),
    )
    db.commit()
    db.close()


def timed(text: str) -> float:
    started = time.perf_counter()
    result = run_migration(load_spec_text(text))
    assert result.status == "done", result.status
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    try:
        src = work / "legacy.db"
        build_source(src, args.users)
        sql = timed(
            SPEC.format(src=src, target=f'url = "sqlite:///{work}/sql.db"\ntable = "new_users"')
        )
        print(f"| SQL table (SQLite) | {sql:.2f} s | {args.users / sql:,.0f} | 1.00 |")
        for provider in filter(None, args.providers.split(",")):
            out = work / provider
            t = timed(SPEC.format(src=src, target=f'export = "{provider}"\ndir = "{out}"'))
            print(f"| {provider} files | {t:.2f} s | {args.users / t:,.0f} | {t / sql:.2f} |")
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
