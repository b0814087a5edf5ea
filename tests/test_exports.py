"""Export to identity providers: routes, encoders checked by independent verifiers, the
self-test that refuses a broken group, the files (limits, grouping, atomic batches), plan and
verify. Every credential here is a vector made by the original platform's own code
(tests/vectors/, via the schemes' known answers) or a scheme's documented example."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from authmigrate import credentials
from authmigrate.credentials._base import get
from authmigrate.credentials._examples import KNOWN_ANSWERS
from authmigrate.errors import SpecError
from authmigrate.pipeline import plan_migration, run_migration
from authmigrate.sinks.exports import PROVIDERS, provider_named, route
from authmigrate.sinks.exports import firebase as firebase_module
from authmigrate.sinks.exports._check import check
from authmigrate.sinks.exports._model import Encoded
from authmigrate.sinks.exports._selftest import resolved_config
from authmigrate.sinks.exports._sink import ExportRefused
from authmigrate.spec import load_spec_text

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_SCHEMES = (
    "argon2id",
    "argon2i",
    "ldap_md5",
    "ldap_sha1",
    "ldap_salted_md5",
    "ldap_salted_sha1",
    "ldap_salted_sha256",
    "ldap_salted_sha512",
    "firebase_scrypt",
)


def vectors() -> dict[str, tuple[str, Any, str]]:
    """scheme -> (canonical credential, keyring, password), each made by the platform's code."""
    out: dict[str, tuple[str, Any, str]] = {}
    for scheme, v in KNOWN_ANSWERS.items():
        imp = v["import"]
        cred = credentials.import_hash(
            scheme, v["stored"], salt=imp.get("salt"), **(imp.get("params") or {})
        )
        out[scheme] = (cred, v["keyring"], v["password"])
    for scheme in EXAMPLE_SCHEMES:
        ex = get(scheme).examples[0]
        out[scheme] = (ex.credential, ex.keyring, ex.password)
    return out


VECTORS = vectors()
CASES = [
    (p, s)
    for p in PROVIDERS
    for s in sorted(VECTORS)
    if route(provider_named(p), VECTORS[s][0], VECTORS[s][1]).route in ("native", "re-encoded")
]


@pytest.mark.parametrize(("provider", "scheme"), CASES)
def test_every_exported_credential_verifies_as_the_provider_documents(
    provider: str, scheme: str
) -> None:
    cred, keyring, password = VECTORS[scheme]
    r = route(provider_named(provider), cred, keyring)
    config = resolved_config(r, keyring)
    assert check(provider, r.fields, config, password)
    assert not check(provider, r.fields, config, password + "!")


def test_the_main_schemes_are_carried_not_bridged() -> None:
    # what a user of each provider can count on (each checked above by the verifier)
    expect = {
        "auth0": {"bcrypt", "argon2id", "django_pbkdf2_sha256", "ldap_salted_sha1", "django_md5"},
        "kratos": {
            "bcrypt",
            "argon2id",
            "md5_crypt",
            "sha512_crypt",
            "scrypt",
            "firebase_scrypt",
            "ldap_salted_sha256",
            "joomla",
            "werkzeug_pbkdf2",
        },
        "firebase": {"bcrypt", "firebase_scrypt", "django_pbkdf2_sha256", "scrypt", "magento1"},
        "keycloak": {"pbkdf2_sha512", "django_pbkdf2_sha256", "argon2id"},
        "okta": {"bcrypt", "ldap_salted_sha512", "django_sha1"},
        "zitadel": {"bcrypt", "md5_crypt", "pbkdf2_sha256", "argon2id"},
        "supabase": {"bcrypt", "argon2id"},
        "clerk": {"phpass", "django_bcrypt_sha256", "werkzeug_scrypt", "firebase_scrypt"},
        "fusionauth": {"bcrypt", "pbkdf2_sha256"},
    }
    for provider, schemes in expect.items():
        p = provider_named(provider)
        for scheme in schemes:
            cred, keyring, _ = VECTORS[scheme]
            assert route(p, cred, keyring).route in ("native", "re-encoded"), (provider, scheme)


def test_auth0_takes_bcrypt_2b_as_is_and_renames_php_2y() -> None:
    auth0 = provider_named("auth0")
    php = VECTORS["bcrypt"][0]
    assert php.startswith("$2y$")
    r = route(auth0, php)
    assert r.route == "re-encoded"
    assert r.fields["password_hash"] == "$2b$" + php[4:]
    b = credentials.import_hash(
        "bcrypt", "$2b$04$3vN7wvv4dh6ssnCyjHe5a.tn4rnIVa3BQ0II7oVGWMtytbT86eAhC"
    )
    assert route(auth0, b) == route(auth0, b) and route(auth0, b).route == "native"
    assert route(auth0, b).fields == {"password_hash": b}


def test_kratos_never_gets_pbkdf2_sha224_or_sha384() -> None:
    # Kratos maps those names to SHA-3; ours are SHA-2, so such a string would never verify
    kratos = provider_named("kratos")
    for scheme, (cred, keyring, _) in VECTORS.items():
        r = route(kratos, cred, keyring)
        value = r.fields.get("password", {}).get("config", {}).get("hashed_password", "")
        assert not value.startswith(("$pbkdf2-sha224$", "$pbkdf2-sha384$")), scheme


def test_kratos_scrypt_carries_n_itself_where_passlib_writes_its_log() -> None:
    cred, _, password = VECTORS["scrypt"]
    assert "$ln=10," in cred  # passlib: log2(N)
    value = route(provider_named("kratos"), cred).fields["password"]["config"]["hashed_password"]
    assert value.startswith("$scrypt$ln=1024,r=8,p=1$")  # hash_comparator.go passes ln as N
    salt, digest = (base64.b64decode(x) for x in value.split("$")[3:5])
    assert (
        hashlib.scrypt(password.encode(), salt=salt, n=1024, r=8, p=1, dklen=len(digest)) == digest
    )


def test_firebase_hashes_are_base64_of_raw_bytes_never_of_hex() -> None:
    # firebase-tools#1617: base64 of the hex string gives a user who can never log in
    cred, _, password = VECTORS["django_md5"]
    r = route(provider_named("firebase"), cred)
    raw = base64.b64decode(r.fields["passwordHash"])
    salt = base64.b64decode(r.fields["salt"])
    assert len(raw) == 16
    assert hashlib.md5(salt + password.encode()).digest() == raw
    assert dict(r.config) == {"hash-algo": "MD5", "rounds": "1", "hash-input-order": "SALT_FIRST"}


def test_login_rule_goes_to_bridge_wrap_to_bridge_unusable_and_empty_to_reset() -> None:
    phpass = VECTORS["phpass"][0]
    bcrypt_ = VECTORS["bcrypt"][0]
    for provider in PROVIDERS:
        p = provider_named(provider)
        ruled = route(p, f"$login-rule$trim=1${bcrypt_}")
        assert ruled.route == "bridge" and "login rule" in ruled.reason
        assert route(p, credentials.wrap(phpass, profile="TEST")).route == "bridge"
        assert route(p, "!" + "a" * 40).route == "reset"
        assert route(p, "$login-rule$trim=1$!").route == "reset"
        assert route(p, None).route == "reset"
    # Kratos and Okta carry the migration hook flag; the others list the account apart
    assert route(provider_named("kratos"), phpass).fields == {
        "password": {"config": {"use_password_migration_hook": True}}
    }
    assert route(provider_named("okta"), phpass).fields == {
        "credentials": {"password": {"hook": {"type": "default"}}}
    }
    assert route(provider_named("auth0"), phpass).fields == {}
    # Keycloak asks a reset account for a new password at its first login
    assert route(provider_named("keycloak"), None).fields == {
        "requiredActions": ["UPDATE_PASSWORD"]
    }


def test_keycloak_bcrypt_only_with_a_named_extension() -> None:
    cred, _, password = VECTORS["bcrypt"]
    assert route(provider_named("keycloak"), cred).route == "bridge"
    r = route(provider_named("keycloak", {"bcrypt_algorithm": "bcrypt"}), cred)
    assert r.route == "re-encoded"
    data = json.loads(r.fields["credentials"][0]["credentialData"])
    assert data == {"hashIterations": 4, "algorithm": "bcrypt", "additionalParameters": {}}
    assert check("keycloak", r.fields, {}, password)


# -- files --------------------------------------------------------------------------------------


def make_source(path: Path, rows: list[tuple[int, str, str | None, int]]) -> None:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, pw TEXT, verified INT,"
        " first TEXT, bio TEXT)"
    )
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
        [(*r, f"Name{r[0]}", "x" * 300) for r in rows],
    )
    db.commit()
    db.close()


def spec_for(tmp: Path, provider: str, *, batch: int = 10, extra: str = "") -> str:
    return f"""
[source]
url = "sqlite:///{tmp}/legacy.db"
table = "users"
key = "id"
[target]
export = "{provider}"
dir = "{tmp}/out"
{extra}
[fields]
id = "id"
email = "email"
email_verified = {{ from = "verified", type = "boolean" }}
given_name = "first"
bio = "bio"
[credentials]
column = "pw"
scheme = "auto"
[run]
batch_size = {batch}
"""


MIXED = [
    "bcrypt",
    "django_pbkdf2_sha256",
    "phpass",
    "md5_crypt",
    "argon2id",
    "ldap_salted_sha1",
    "sha512_crypt",
    "pbkdf2_sha256",
]


def mixed_rows(n: int) -> list[tuple[int, str, str | None, int]]:
    rows: list[tuple[int, str, str | None, int]] = []
    for i in range(1, n + 1):
        scheme = MIXED[i % len(MIXED)]
        rows.append((i, f"user{i}@example.com", None if i % 17 == 0 else VECTORS[scheme][0], i % 2))
    return rows


def test_auth0_files_follow_the_published_schema_and_stay_under_500_kb(tmp_path: Path) -> None:
    make_source(tmp_path / "legacy.db", mixed_rows(3000))
    spec = load_spec_text(spec_for(tmp_path, "auth0", batch=3000))
    result = run_migration(spec)
    assert result.migrated == 3000
    schema = json.loads((FIXTURES / "auth0_bulk_import_schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    files = sorted((tmp_path / "out").glob("auth0-*.json"))
    assert len(files) > 1  # 3000 users with a 300-byte profile field do not fit one file
    seen = 0
    recomputed: set[str] = set()  # each distinct hash once (the vectors repeat)
    for f in files:
        assert f.stat().st_size <= 500 * 1000
        users = json.loads(f.read_text())
        for user in users:
            validator.validate(user)
            custom = user.get("custom_password_hash")
            if custom is not None and json.dumps(custom) not in recomputed:
                assert _auth0_custom_recomputes(custom, "password")
                recomputed.add(json.dumps(custom))
            assert user["app_metadata"]["legacy_key"] == user["user_id"]
            assert user["email"] == f"user{user['user_id']}@example.com"
            assert user["email_verified"] is (int(user["user_id"]) % 2 == 1)
        seen += len(users)
    bridged = sum(1 for f in (tmp_path / "out").glob("bridge-*.jsonl") for _ in f.open())
    assert seen + bridged == 3000


def _auth0_custom_recomputes(custom: dict[str, Any], password: str) -> bool:
    """Recompute a custom_password_hash from its own fields (written here from Auth0's docs,
    apart from the library's checker)."""
    import argon2
    import bcrypt

    h = custom["hash"]
    pw = password.encode("utf-8")
    if custom["algorithm"] == "argon2":
        return argon2.PasswordHasher().verify(h["value"], pw)
    if custom["algorithm"] == "bcrypt":
        return bcrypt.checkpw(pw, h["value"].encode())
    if custom["algorithm"] == "pbkdf2":
        _, ident, params, salt, digest = h["value"].split("$")
        i, length = (int(x[2:]) for x in params.split(","))
        pad = lambda t: base64.b64decode(t + "=" * (-len(t) % 4))  # noqa: E731
        return hashlib.pbkdf2_hmac(ident.split("-")[1], pw, pad(salt), i, length) == pad(digest)
    if custom["algorithm"] == "ldap":
        tag, body = h["value"][1:].split("}")
        raw = base64.b64decode(body)
        name = {"SSHA": "sha1", "SHA": "sha1", "MD5": "md5", "SMD5": "md5"}[tag]
        size = hashlib.new(name).digest_size
        return hashlib.new(name, pw + raw[size:]).digest() == raw[:size]
    salt = custom.get("salt")
    raw_salt = base64.b64decode(salt["value"]) if salt else b""
    data = raw_salt + pw if salt and salt["position"] == "prefix" else pw + raw_salt
    want = base64.b64decode(h["value"]) if h["encoding"] == "base64" else bytes.fromhex(h["value"])
    return hashlib.new(custom["algorithm"], data).digest() == want


def test_kratos_files_hold_at_most_1000_identities(tmp_path: Path) -> None:
    make_source(
        tmp_path / "legacy.db",
        [(i, f"u{i}@example.com", VECTORS["bcrypt"][0], 1) for i in range(1, 2501)],
    )
    run_migration(load_spec_text(spec_for(tmp_path, "kratos", batch=5000)))
    sizes = [
        len(json.loads(f.read_text())["identities"])
        for f in sorted((tmp_path / "out").glob("kratos-*.json"))
    ]
    assert sizes == [1000, 1000, 500]


def test_firebase_writes_one_hash_configuration_per_file_and_the_script(tmp_path: Path) -> None:
    schemes = ["bcrypt", "django_pbkdf2_sha256", "pbkdf2_sha1", "django_md5", "scrypt"]
    rows = [
        (i, f"u{i}@example.com", VECTORS[schemes[i % len(schemes)]][0], 1) for i in range(1, 2600)
    ]
    make_source(tmp_path / "legacy.db", rows)
    run_migration(load_spec_text(spec_for(tmp_path, "firebase", batch=5000)))
    out = tmp_path / "out"
    script = (out / "import.sh").read_text().splitlines()
    commands = [line for line in script if line.startswith("firebase auth:import ")]
    files = sorted(out.glob("firebase-*.json"))
    assert len(commands) == len(files)
    total = 0
    for line in commands:
        name, *flags = line.split()[2:]
        config = dict(f[2:].split("=", 1) for f in flags)
        users = json.loads((out / name).read_text())["users"]
        assert 0 < len(users) <= 1000
        total += len(users)
        for user in users:  # each user checks out with THIS file's flags
            assert check("firebase", user, config, "password"), (name, user["localId"])
    assert total == len(rows)


def test_a_group_failing_the_self_test_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault no real part shows: Firebase's encoder made to write base64 of the HEX digest
    # (firebase-tools#1617). The self-test must refuse the group before any file exists.
    make_source(
        tmp_path / "legacy.db",
        [
            (1, "a@example.com", VECTORS["bcrypt"][0], 1),
            (2, "b@example.com", VECTORS["django_md5"][0], 1),
        ],
    )
    real = firebase_module.Firebase.encode

    def hex_bug(self: Any, parts: Any, keyring: Any) -> Encoded | None:
        enc = real(self, parts, keyring)
        if enc is not None and parts.kind == "salted":
            wrong = base64.b64encode(parts.hash.hex().encode()).decode()
            return Encoded(enc.route, {**enc.fields, "passwordHash": wrong}, enc.config)
        return enc

    monkeypatch.setattr(firebase_module.Firebase, "encode", hex_bug)
    with pytest.raises(ExportRefused, match="self-test failed for firebase: scheme django_md5"):
        run_migration(load_spec_text(spec_for(tmp_path, "firebase")))
    assert not list((tmp_path / "out").glob("firebase-*.json"))
    assert not list((tmp_path / "out").glob("manifest-*.json"))


def test_a_crash_after_the_files_before_the_bookkeeping_resumes_without_duplicate_or_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault a real part cannot show on demand: the process dies between the durable files of
    # batch 3 and its bookkeeping commit. The resumed run must write batch 3 once.
    from authmigrate.sinks.sql import SqlTarget

    make_source(tmp_path / "legacy.db", mixed_rows(95))
    spec = load_spec_text(spec_for(tmp_path, "kratos", batch=10))
    real_commit = SqlTarget.commit_batch

    def die_on_batch_3(self: Any, batch: Any, *args: Any) -> Any:
        if batch.number == 3:
            raise KeyboardInterrupt
        return real_commit(self, batch, *args)

    monkeypatch.setattr(SqlTarget, "commit_batch", die_on_batch_3)
    with pytest.raises(KeyboardInterrupt):
        run_migration(spec)
    assert list((tmp_path / "out").glob("kratos-b00000003-*"))  # files of the uncommitted batch
    monkeypatch.setattr(SqlTarget, "commit_batch", real_commit)
    run_migration(spec)
    keys: list[str] = []
    for f in sorted((tmp_path / "out").glob("kratos-*.json")):
        doc = json.loads(f.read_text())
        assert len(doc["identities"]) <= 1000
        keys += [i["create"]["external_id"] for i in doc["identities"]]
    assert sorted(keys, key=int) == [str(i) for i in range(1, 96)]  # every account, once
    from authmigrate.reconcile import verify_migration

    assert verify_migration(spec).ok


def test_verify_reads_the_files_back_and_finds_a_lost_file(tmp_path: Path) -> None:
    from authmigrate.reconcile import verify_migration

    make_source(tmp_path / "legacy.db", mixed_rows(40))
    spec = load_spec_text(spec_for(tmp_path, "okta", batch=10))
    run_migration(spec)
    assert verify_migration(spec).ok
    victim = sorted((tmp_path / "out").glob("okta-b00000002-*.json"))[0]
    victim.unlink()
    res = verify_migration(spec)
    assert not res.ok
    assert any("missing or unreadable" in n for n in res.notes)
    assert any("migrated key(s) are in no export file" in n for n in res.notes)


def test_plan_counts_accounts_per_route_for_every_provider_and_writes_nothing(
    tmp_path: Path,
) -> None:
    rows = [
        (1, "a@example.com", VECTORS["bcrypt"][0], 1),
        (2, "b@example.com", VECTORS["phpass"][0], 1),
        (3, "c@example.com", None, 0),
        (4, "d@example.com", "$login-rule$trim=1$" + VECTORS["phpass"][0], 0),
        (5, "e@example.com", VECTORS["django_bcrypt_sha256"][0], 0),
    ]
    make_source(tmp_path / "legacy.db", rows)
    res = plan_migration(load_spec_text(spec_for(tmp_path, "auth0")))
    assert list(res.routes)[0] == "auth0" and set(res.routes) == set(PROVIDERS)
    assert res.routes["auth0"] == {"native": 0, "re-encoded": 1, "bridge": 3, "reset": 1}
    assert res.routes["clerk"] == {"native": 3, "re-encoded": 0, "bridge": 1, "reset": 1}
    assert res.export_self_tests == {"bcrypt re-encoded": True}
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ('dir = "out"', "target.dir"),
        ('export = "auth0"', "target.dir"),
        ('export = "gitlab"\ndir = "out"', "target.export"),
        (
            'export = "keycloak"\ndir = "out"\n[target.provider]\nrealm = "x"',
            "target.provider.realm",
        ),
        (
            'dir = "out"\nexport = "auth0"\n[target.provider]\nschema_id = "x"',
            "target.provider.schema_id",
        ),
        (
            'export = "keycloak"\ndir = "o"\n[target.provider]\nif_resource_exists = "MERGE"',
            "target.provider.if_resource_exists",
        ),
    ],
)
def test_export_spec_errors_name_the_key(tmp_path: Path, target: str, path: str) -> None:
    text = (
        f'[source]\nurl = "sqlite:///{tmp_path}/l.db"\ntable = "u"\nkey = "id"\n'
        f'[fields]\nid = "id"\n[target]\n{target}\n'
    )
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    assert err.value.path == path


def test_run_cli_refuses_a_bad_provider_with_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "m.toml"
    spec.write_text(
        f'[source]\nurl = "sqlite:///{tmp_path}/l.db"\ntable = "u"\nkey = "id"\n'
        '[target]\nexport = "gitlab"\ndir = "out"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "authmigrate", "run", str(spec)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "target.export" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_run_says_where_an_exports_rejects_are(tmp_path: Path) -> None:
    """An export writes files, not tables: its reject table is in the export's own
    bookkeeping file, and the run's summary names that file (it said "in the target")."""
    rows = mixed_rows(20)
    rows[3] = (rows[3][0], rows[3][1], "not a hash of any scheme", rows[3][3])
    make_source(tmp_path / "legacy.db", rows)
    spec = tmp_path / "m.toml"
    spec.write_text(spec_for(tmp_path, "auth0"))
    proc = subprocess.run(
        [sys.executable, "-m", "authmigrate", "run", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert proc.returncode == 1  # a run with rejects exits 1
    where = tmp_path / "out" / "authmigrate.sqlite"
    assert f"table authmigrate_rejects in {where}\n" in proc.stdout
    with sqlite3.connect(where) as db:
        assert db.execute("SELECT source_key FROM authmigrate_rejects").fetchall() == [("4",)]
