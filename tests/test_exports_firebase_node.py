"""Firebase-scrypt exports checked by Firebase's algorithm as the npm package ``firebase-scrypt``
runs it in Node (not by our Python): the source hashes are made by the package at test time,
exported to Firebase, Kratos (``$firescrypt$``), Supabase (``$fbscrypt$``) and Clerk
(``scrypt_firebase``), and every exported credential is verified by the package again, with the
right password and with wrong ones.

Node and the package are installed by ``scripts/ensure-servers`` (which ``make test`` runs) under
``.cache/node`` (or ``$AUTHMIGRATE_NODE_DIR``)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from authmigrate.pipeline import run_migration
from authmigrate.spec import load_spec_text

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(os.environ.get("AUTHMIGRATE_NODE_DIR", ROOT / ".cache" / "node"))
SCRIPT = Path(__file__).parent / "node" / "firebase_scrypt.js"

# a project's password hash parameters as Firebase's console shows them (its defaults), with a
# test-only signer key
SIGNER_KEY = base64.b64encode(hashlib.sha512(b"authmigrate node test signer").digest()).decode()
PROJECT = {"memCost": 14, "rounds": 8, "saltSeparator": "Bw==", "signerKey": SIGNER_KEY}
PASSWORDS = ["password", "pässwörd €", "a&b\"<c>'d\\", "x" * 100, "пароль 🙂", " spaces "]
WRONG = ["Password", "password "]


def _node(op: str, items: list[dict[str, Any]]) -> list[Any]:
    node = shutil.which("node")
    package = NODE_DIR / "node_modules" / "firebase-scrypt" / "package.json"
    if node is None or not package.exists():
        pytest.skip(
            "Node or the npm package firebase-scrypt is missing: run scripts/ensure-servers "
            "(make test does) to install them"
        )
    proc = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps({"op": op, "items": items}),
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: list[Any] = json.loads(proc.stdout)
    return result


def _source(tmp: Path) -> list[tuple[int, str, str]]:
    salts = [
        base64.b64encode(hashlib.sha256(f"salt {i}".encode()).digest()[:16]).decode()
        for i in range(len(PASSWORDS))
    ]
    hashes = _node(
        "hash",
        [
            {"params": PROJECT, "password": p, "salt": s}
            for p, s in zip(PASSWORDS, salts, strict=True)
        ],
    )
    rows = [(i + 1, hashes[i], salts[i]) for i in range(len(PASSWORDS))]
    db = sqlite3.connect(tmp / "legacy.db")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, pw TEXT, salt TEXT)")
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        [(i, f"u{i}@example.com", h, s) for i, h, s in rows],
    )
    db.commit()
    db.close()
    return rows


def _export(tmp: Path, provider: str) -> Path:
    out = tmp / provider
    spec = load_spec_text(f"""
[source]
url = "sqlite:///{tmp}/legacy.db"
table = "users"
key = "id"
[target]
export = "{provider}"
dir = "{out}"
[fields]
id = "id"
email = "email"
[credentials]
column = "pw"
salt_column = "salt"
scheme = "firebase_scrypt"
keys = {{ fb_project = "env:AUTHMIGRATE_TEST_FB_SIGNER" }}
params = {{ key_id = "fb_project", rounds = {PROJECT["rounds"]}, mem_cost = {PROJECT["memCost"]}, salt_separator = "{PROJECT["saltSeparator"]}" }}
""")
    assert run_migration(spec).migrated == len(PASSWORDS)
    return out


def _users(out: Path, provider: str) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    for f in sorted(out.glob(f"{provider}-b*.json")):
        doc = json.loads(f.read_text(encoding="utf-8"))
        if provider == "kratos":
            users += [i["create"] for i in doc["identities"]]
        elif provider == "firebase":
            users += doc["users"]
        else:
            users += doc
    return users


def _firebase_items(out: Path) -> dict[str, dict[str, Any]]:
    """Each user with the parameters ``import.sh`` gives ``firebase auth:import`` for its file
    (the signer key from the environment variable the script reads, as the operator sets it)."""
    items: dict[str, dict[str, Any]] = {}
    for line in (out / "import.sh").read_text().splitlines():
        if not line.startswith("firebase auth:import "):
            continue
        name, *flags = line.split()[2:]
        config = dict(f[2:].split("=", 1) for f in flags)
        assert config["hash-algo"] == "SCRYPT"
        assert config["hash-key"] == '"${FIREBASE_HASH_KEY_FB_PROJECT}"'  # never the key itself
        params = {
            "memCost": int(config["mem-cost"]),
            "rounds": int(config["rounds"]),
            "saltSeparator": config["salt-separator"],
            "signerKey": os.environ["AUTHMIGRATE_TEST_FB_SIGNER"],
        }
        for u in json.loads((out / name).read_text())["users"]:
            items[u["localId"]] = {"params": params, "salt": u["salt"], "hash": u["passwordHash"]}
    return items


def _kratos_items(out: Path) -> dict[str, dict[str, Any]]:
    items = {}
    for u in _users(out, "kratos"):
        value = u["credentials"]["password"]["config"]["hashed_password"]
        m = re.fullmatch(
            r"\$firescrypt\$ln=(\d+),r=(\d+),p=1\$([^$]+)\$([^$]+)\$([^$]+)\$([^$]+)", value
        )
        assert m, "not Kratos's $firescrypt$ form"
        params = {
            "memCost": int(m[1]),
            "rounds": int(m[2]),
            "saltSeparator": m[5],
            "signerKey": m[6],
        }
        items[u["external_id"]] = {"params": params, "salt": m[3], "hash": m[4]}
    return items


def _supabase_items(out: Path) -> dict[str, dict[str, Any]]:
    items = {}
    for u in _users(out, "supabase"):
        m = re.fullmatch(
            r"\$fbscrypt\$v=1,n=(\d+),r=(\d+),p=1,ss=([^,$]+),sk=([^,$]+)\$([^$]+)\$([^$]+)",
            u["password_hash"],
        )
        assert m, "not GoTrue's $fbscrypt$ form"
        params = {
            "memCost": int(m[1]),
            "rounds": int(m[2]),
            "saltSeparator": m[3],
            "signerKey": m[4],
        }
        items[u["app_metadata"]["legacy_key"]] = {"params": params, "salt": m[5], "hash": m[6]}
    return items


def _clerk_items(out: Path) -> dict[str, dict[str, Any]]:
    items = {}
    for u in _users(out, "clerk"):
        assert u["password_hasher"] == "scrypt_firebase"
        # Clerk: <hash>$<salt>$<signer key>$<salt separator>$<rounds>$<memory cost>
        hash_, salt, key, sep, rounds, mem = u["password_digest"].split("$")
        params = {
            "memCost": int(mem),
            "rounds": int(rounds),
            "saltSeparator": sep,
            "signerKey": key,
        }
        items[u["external_id"]] = {"params": params, "salt": salt, "hash": hash_}
    return items


READERS = {
    "firebase": _firebase_items,
    "kratos": _kratos_items,
    "supabase": _supabase_items,
    "clerk": _clerk_items,
}


@pytest.mark.slow
def test_firebase_scrypt_exports_verify_with_the_npm_firebase_scrypt_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHMIGRATE_TEST_FB_SIGNER", SIGNER_KEY)
    monkeypatch.setenv("FIREBASE_HASH_KEY_FB_PROJECT", SIGNER_KEY)
    rows = _source(tmp_path)
    password_of = {str(i): PASSWORDS[i - 1] for i, _, _ in rows}
    checks: list[dict[str, Any]] = []
    expected: list[tuple[str, str, bool]] = []
    for provider, read in READERS.items():
        items = read(_export(tmp_path, provider))
        assert sorted(items) == sorted(password_of), provider  # every account, none bridged
        for key, item in items.items():
            for password, ok in [(password_of[key], True)] + [(w, False) for w in WRONG]:
                checks.append({**item, "password": password})
                expected.append((provider, key, ok))
    answers = _node("verify", checks)
    wrong = [(p, k, ok) for (p, k, ok), got in zip(expected, answers, strict=True) if got is not ok]
    assert not wrong
    assert sum(ok for _, _, ok in expected) == len(READERS) * len(PASSWORDS)
