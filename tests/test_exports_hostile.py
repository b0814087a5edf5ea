"""Exports under attack: values that break encodings, accounts too big for a provider's file,
ids a provider cannot take, a directory that holds someone else's export, a kill -9 in the
middle of a file, and secrets that must only land where a provider's format needs them."""

from __future__ import annotations

import base64
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.rollback import rollback
from authmigrate.sinks.exports import PROVIDERS
from authmigrate.sinks.exports._readback import user_key, users_of
from authmigrate.spec import load_spec_text
from tests.test_exports import VECTORS, make_source, mixed_rows, spec_for

BCRYPT = VECTORS["bcrypt"][0]


def _source(path: Path, rows: list[dict[str, Any]]) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, pw TEXT, name TEXT, bio TEXT)")
    db.executemany(
        "INSERT INTO users VALUES (:id, :email, :pw, :name, :bio)",
        [{"bio": None, "name": None, **r} for r in rows],
    )
    db.commit()
    db.close()


def _spec(tmp: Path, provider: str, out: str = "out", extra: str = "", batch: int = 100) -> str:
    return f"""
[source]
url = "sqlite:///{tmp}/legacy.db"
table = "users"
key = "id"
[target]
export = "{provider}"
dir = "{tmp}/{out}"
[fields]
id = "id"
email = "email"
name = "name"
bio = "bio"
[credentials]
column = "pw"
{extra}
[run]
batch_size = {batch}
"""


def _exported(out: Path, provider: str) -> dict[str, dict[str, Any]]:
    users: dict[str, dict[str, Any]] = {}
    for f in sorted(out.glob(f"{provider}-b*.json")):
        for u in users_of(provider, json.loads(f.read_text(encoding="utf-8"))):
            key = user_key(provider, u)
            assert key is not None and key not in users
            users[key] = u
    return users


NASTY = [
    'quote " backslash \\ slash / </script>',
    "control \x01\x07\x1b[31m tab\t cr\r lf\n end",
    "separators \u2028 \u2029 bom \ufeff zero-width \u200b rtl \u202e",
    "astral 🙂 𝕏 combining e\u0301",
]


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_values_that_break_encodings_round_trip_exactly(tmp_path: Path, provider: str) -> None:
    pw = VECTORS["pbkdf2_sha256"][0] if provider == "keycloak" else BCRYPT  # no bridge
    rows = [
        {"id": str(i), "email": f"u{i}@example.com", "pw": pw, "name": v, "bio": v[::-1]}
        for i, v in enumerate(NASTY, start=1)
    ]
    _source(tmp_path / "legacy.db", rows)
    spec = load_spec_text(_spec(tmp_path, provider))
    assert run_migration(spec).migrated == len(rows)
    out = tmp_path / "out"
    raw = b"".join(f.read_bytes() for f in out.glob(f"{provider}-b*.json"))
    raw.decode("utf-8")  # strict UTF-8, no lone surrogate
    assert b"\x00" not in raw and b"\n" not in raw.strip()  # one JSON text, no raw newline
    exported = _exported(out, provider)
    assert sorted(exported) == [r["id"] for r in rows]
    text = json.dumps(list(exported.values()), ensure_ascii=False)
    for v in NASTY:  # every value exactly as in the source, wherever the provider keeps it
        assert json.dumps(v, ensure_ascii=False)[1:-1] in text, (provider, v)
    assert verify_migration(spec).ok


def test_an_account_too_big_for_auth0s_file_limit_is_rejected_and_the_rest_exported(
    tmp_path: Path,
) -> None:
    rows = [
        {"id": "1", "email": "a@example.com", "pw": BCRYPT, "bio": "short"},
        {"id": "2", "email": "b@example.com", "pw": BCRYPT, "bio": "x" * 600_000},
        {"id": "3", "email": "c@example.com", "pw": BCRYPT, "bio": "é" * 200_000},  # 400 KB
    ]
    _source(tmp_path / "legacy.db", rows)
    spec = load_spec_text(_spec(tmp_path, "auth0"))
    res = run_migration(spec)
    assert (res.migrated, res.rejected) == (2, 1)
    out = tmp_path / "out"
    assert sorted(_exported(out, "auth0")) == ["1", "3"]
    assert all(f.stat().st_size <= 500_000 for f in out.glob("auth0-b*.json"))
    db = sqlite3.connect(out / "authmigrate.sqlite")
    reason, detail = db.execute(
        "SELECT reason, detail FROM authmigrate_rejects WHERE source_key LIKE '%2%'"
    ).fetchone()
    db.close()
    assert reason == "export.too_large" and "500,000 bytes" in detail
    assert "xxxx" not in detail
    res2 = verify_migration(spec)  # the reject is counted as a reject, the files as written
    assert not any("export file" in n or "export directory" in n for n in res2.notes)


def test_a_key_firebase_cannot_take_as_uid_is_rejected(tmp_path: Path) -> None:
    rows = [
        {"id": "k" * 128, "email": "a@example.com", "pw": BCRYPT},
        {"id": "k" * 129, "email": "b@example.com", "pw": BCRYPT},
    ]
    _source(tmp_path / "legacy.db", rows)
    res = run_migration(load_spec_text(_spec(tmp_path, "firebase")))
    assert (res.migrated, res.rejected) == (1, 1)
    assert sorted(_exported(tmp_path / "out", "firebase")) == ["k" * 128]


def _files(out: Path) -> dict[str, bytes]:
    """The export files (the bookkeeping database beside them is shared and changes)."""
    return {
        p.name: p.read_bytes()
        for p in out.iterdir()
        if p.is_file() and not p.name.startswith("authmigrate.sqlite")
    }


def test_a_dir_holding_another_migrations_export_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    # batch numbers start at 1 in every migration: a second migration writing into the same
    # directory would replace the first one's batch files, and its rollback remove them
    make_source(tmp_path / "legacy.db", mixed_rows(30))
    first = tmp_path / "first.toml"
    first.write_text('name = "first"\n' + spec_for(tmp_path, "kratos", batch=10))
    assert subprocess.run([sys.executable, "-m", "authmigrate", "run", str(first)]).returncode == 0
    out = tmp_path / "out"
    before = _files(out)
    for name, provider in (("second", "kratos"), ("first", "okta")):
        spec = tmp_path / f"{name}-{provider}.toml"
        spec.write_text(f'name = "{name}"\n' + spec_for(tmp_path, provider, batch=10))
        for command in ("run", "plan"):
            proc = subprocess.run(
                [sys.executable, "-m", "authmigrate", command, str(spec)],
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 2, (name, provider, command, proc.stderr)
            assert "target.dir" in proc.stderr and "'first' to kratos" in proc.stderr
        assert _files(out) == before  # nothing written, nothing replaced
        # and its rollback leaves the first migration's files alone
        rollback(load_spec_text(spec.read_text()))
        assert _files(out) == before


def test_export_files_the_marker_does_not_cover_are_refused(tmp_path: Path) -> None:
    make_source(tmp_path / "legacy.db", mixed_rows(5))
    out = tmp_path / "out"
    out.mkdir()
    (out / "kratos-b00000001-g01-001.json").write_text('{"identities": []}')
    (out / "manifest-b00000001.json").write_text("{}")
    spec = tmp_path / "m.toml"
    spec.write_text(spec_for(tmp_path, "kratos"))
    for command in ("plan", "run"):
        proc = subprocess.run(
            [sys.executable, "-m", "authmigrate", command, str(spec)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2, (command, proc.stderr)
        assert "target.dir" in proc.stderr and "kratos-b00000001" in proc.stderr
    assert (out / "kratos-b00000001-g01-001.json").read_text() == '{"identities": []}'


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_file_then_resume_leaves_no_torn_or_duplicated_record(
    tmp_path: Path,
) -> None:
    make_source(tmp_path / "legacy.db", mixed_rows(3000))
    spec_path = tmp_path / "m.toml"
    spec_path.write_text(spec_for(tmp_path, "kratos", batch=250))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "authmigrate", "run", str(spec_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # SIGKILL while a file of a later batch is half-written (its .tmp exists), else as soon as
    # a few batches are done
    deadline = time.monotonic() + 60
    caught = False
    while time.monotonic() < deadline and proc.poll() is None:
        names = [e.name for e in os.scandir(out)] if out.is_dir() else []
        if (
            any(n.endswith(".json.tmp") for n in names)
            and sum(n.startswith("manifest-b") for n in names) >= 2
        ):
            caught = True
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    # killed with a file half-written (``caught``, when the poll saw its .tmp in time) or
    # between files: every file under its final name is whole either way
    for f in out.glob("*.json"):
        json.loads(f.read_text(encoding="utf-8"))
    del caught
    spec = load_spec_text(spec_path.read_text())
    res = run_migration(spec)  # resume
    assert res.migrated + res.rejected <= 3000
    keys: list[str] = []
    for f in sorted(out.glob("kratos-b*.json")):
        doc = json.loads(f.read_text(encoding="utf-8"))  # every file whole
        keys += [i["create"]["external_id"] for i in doc["identities"]]
    assert len(keys) == len(set(keys)) == 3000  # every account once, none twice
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert verify_migration(spec).ok


def test_secrets_land_only_in_the_files_whose_provider_format_needs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_exports_real import _firebase_vectors

    fb = _firebase_vectors()[0]
    signer = fb["keyring"]["fb_project"]
    pepper = VECTORS["devise_bcrypt"][1]["devise_pepper"]
    mac_key = "hmac-key-not-for-files-but-auth0"
    monkeypatch.setenv("T_SIGNER", signer)
    monkeypatch.setenv("T_PEPPER", pepper)
    monkeypatch.setenv("T_MAC", mac_key)
    from authmigrate import credentials

    keyed = credentials.import_hash(
        "digest",
        hmac.new(mac_key.encode(), b"password", "sha256").hexdigest(),
        algorithm="sha256",
        key_id="mac",
    )
    p = fb["import"]["params"]
    fb_cred = credentials.import_hash(
        "firebase_scrypt", fb["stored"], salt=fb["import"]["salt"], **p
    )
    rows = [
        {"id": "1", "email": "a@example.com", "pw": fb_cred},
        {"id": "2", "email": "b@example.com", "pw": VECTORS["devise_bcrypt"][0]},
        {"id": "3", "email": "c@example.com", "pw": keyed},
    ]
    _source(tmp_path / "legacy.db", rows)
    keys = '{ fb_project = "env:T_SIGNER", devise_pepper = "env:T_PEPPER", mac = "env:T_MAC" }'
    needs = {  # documented: the provider's format carries the key
        "auth0": {mac_key, pepper},
        "kratos": {signer},
        "supabase": {signer},
        "clerk": {signer, pepper},
    }
    forms = {
        signer: [signer, base64.b64encode(base64.b64decode(signer)).decode()],
        pepper: [pepper, base64.b64encode(pepper.encode()).decode()],
        mac_key: [mac_key, base64.b64encode(mac_key.encode()).decode()],
    }
    for provider in PROVIDERS:
        out = f"out-{provider}"
        spec = load_spec_text(_spec(tmp_path, provider, out=out, extra=f"keys = {keys}"))
        run_migration(spec)
        for f in (tmp_path / out).iterdir():
            if f.name.startswith("authmigrate.sqlite"):
                continue
            text = f.read_text(encoding="utf-8")
            allowed = needs.get(provider, set()) if f.name.startswith(f"{provider}-b") else set()
            for secret, shapes in forms.items():
                if secret in allowed:
                    continue
                assert not any(s in text for s in shapes), (provider, f.name)


def test_a_zitadel_hash_over_200_characters_goes_to_the_bridge_not_into_the_file() -> None:
    # ZITADEL's hashedPassword.hash takes at most 200 characters; passlib's pbkdf2-sha512 with a
    # long salt is longer: it must not be written (ZITADEL would refuse the user)
    from passlib.hash import pbkdf2_sha512

    from authmigrate import credentials
    from authmigrate.sinks.exports import provider_named, route

    short = credentials.import_hash(
        "pbkdf2_sha512", pbkdf2_sha512.using(rounds=1000, salt=b"s" * 16).hash("password")
    )
    long = credentials.import_hash(
        "pbkdf2_sha512", pbkdf2_sha512.using(rounds=1000, salt=b"s" * 80).hash("password")
    )
    zitadel = provider_named("zitadel")
    assert len(route(zitadel, short).fields["hashedPassword"]["hash"]) <= 200
    assert len(long) > 200
    assert route(zitadel, long).route == "bridge"


def test_a_dir_that_is_a_file_is_refused_with_exit_2(tmp_path: Path) -> None:
    make_source(tmp_path / "legacy.db", mixed_rows(3))
    (tmp_path / "out").write_text("not a directory")
    spec = tmp_path / "m.toml"
    spec.write_text(spec_for(tmp_path, "auth0"))
    proc = subprocess.run(
        [sys.executable, "-m", "authmigrate", "run", str(spec)], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "target.dir" in proc.stderr and "internal error" not in proc.stderr
    assert (tmp_path / "out").read_text() == "not a directory"


def test_a_symlink_planted_under_a_temporary_name_is_never_followed(tmp_path: Path) -> None:
    # someone with write access to dir plants <file>.tmp -> a file of the operator's; writing
    # the export must not truncate or overwrite the link's target
    from authmigrate.sinks.exports._sink import _write_atomic

    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "auth0-b00000001-g01-001.json.tmp").symlink_to(victim)
    with pytest.raises(OSError):
        _write_atomic(out / "auth0-b00000001-g01-001.json", b"[]")
    assert victim.read_text() == "keep me"
