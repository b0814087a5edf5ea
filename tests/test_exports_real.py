"""Exports proven against real parts.

- Supabase: a real PostgreSQL with Supabase's ``auth.users`` columns (supabase/auth
  ``migrations/00_init_auth_schema.up.sql``, with ``confirmed_at`` renamed ``email_confirmed_at``
  by ``migrations/20210710035447_alter_users.up.sql``), the exported users inserted as GoTrue's
  admin API stores them, and every bcrypt password checked by PostgreSQL itself with pgcrypto's
  ``crypt()`` (pgcrypto ships in Debian's postgresql-15 package; it knows bcrypt only under its
  ``$2a$`` name, so the check renames ``$2b$``/``$2y$``, the same computation); argon2 read
  back and checked with argon2-cffi.
- Firebase scrypt: the vectors tests/vectors/firebase.json were made by the npm package
  ``firebase-scrypt`` (tests/vectors/gen_firebase.js); each is exported and must come out as the
  very ``passwordHash``/``salt``/flags Firebase's own export holds, and verify in Kratos's and
  Clerk's encodings. The package itself also runs at test time
  (tests/test_exports_firebase_node.py).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import argon2
import pytest
import sqlalchemy as sa

from authmigrate import credentials
from authmigrate.credentials._base import get
from authmigrate.pipeline import run_migration
from authmigrate.sinks.exports import provider_named, route
from authmigrate.sinks.exports._check import check
from authmigrate.sinks.exports._selftest import resolved_config
from authmigrate.spec import load_spec_text

VECTORS = Path(__file__).parent / "vectors"

SUPABASE_USERS_DDL = """
CREATE SCHEMA auth;
CREATE TABLE auth.users (
    instance_id uuid NULL,
    id uuid NOT NULL UNIQUE,
    aud varchar(255) NULL,
    "role" varchar(255) NULL,
    email varchar(255) NULL UNIQUE,
    encrypted_password varchar(255) NULL,
    email_confirmed_at timestamptz NULL,
    invited_at timestamptz NULL,
    confirmation_token varchar(255) NULL,
    confirmation_sent_at timestamptz NULL,
    recovery_token varchar(255) NULL,
    recovery_sent_at timestamptz NULL,
    email_change_token varchar(255) NULL,
    email_change varchar(255) NULL,
    email_change_sent_at timestamptz NULL,
    last_sign_in_at timestamptz NULL,
    raw_app_meta_data jsonb NULL,
    raw_user_meta_data jsonb NULL,
    is_super_admin bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
"""

BCRYPTS = {
    # PHP password_hash ($2y$), Python bcrypt ($2b$), Devise/Ruby ($2a$): "password" each
    "2y": "$2y$04$48DYCDIDanL12KisPAJhp.n.ZuhqnNiDvRVgxl/WYExAI9z7G1HBS",
    "2b": "$2b$04$3vN7wvv4dh6ssnCyjHe5a.tn4rnIVa3BQ0II7oVGWMtytbT86eAhC",
}


@pytest.mark.postgres
def test_supabase_rows_log_in_with_pgcrypto_crypt_on_real_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    argon = get("argon2id").examples[0]
    rows = [
        (1, "a@example.com", BCRYPTS["2y"], 1),
        (2, "b@example.com", BCRYPTS["2b"], 0),
        (3, "c@example.com", argon.credential, 1),
        (4, "d@example.com", "$P$BTHOgysfMZ1XGtM6XumaI6po6dW2BO/", 1),
    ]
    db = sqlite3.connect(tmp_path / "legacy.db")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, pw TEXT, verified INT)")
    db.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    spec = load_spec_text(f"""
[source]
url = "sqlite:///{tmp_path}/legacy.db"
table = "users"
key = "id"
[target]
export = "supabase"
dir = "{tmp_path}/out"
[fields]
id = "id"
email = "email"
email_verified = {{ from = "verified", type = "boolean" }}
[credentials]
column = "pw"
""")
    assert run_migration(spec).migrated == 4
    users: list[dict[str, Any]] = []
    for f in sorted((tmp_path / "out").glob("supabase-*.json")):
        users += json.loads(f.read_text())
    assert {u["app_metadata"]["legacy_key"] for u in users} == {"1", "2", "3"}  # 4: bridge
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
        for stmt in SUPABASE_USERS_DDL.split(";"):
            if stmt.strip():
                conn.execute(sa.text(stmt))
        for u in users:  # what GoTrue's admin createUser stores for these fields
            conn.execute(
                sa.text(
                    "INSERT INTO auth.users (id, aud, role, email, encrypted_password,"
                    " email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at)"
                    " VALUES (:id, 'authenticated', 'authenticated', :email, :pw,"
                    " CASE WHEN :confirm THEN now() END, CAST(:app AS jsonb),"
                    " CAST(:meta AS jsonb), now())"
                ),
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, u["app_metadata"]["legacy_key"]),
                    "email": u["email"],
                    "pw": u["password_hash"],
                    "confirm": u["email_confirm"],
                    "app": json.dumps(u["app_metadata"]),
                    "meta": json.dumps(u.get("user_metadata", {})),
                },
            )
    with engine.connect() as conn:
        # pgcrypto knows bcrypt only by its $2a$ name (it falls back to DES for $2b$/$2y$, seen
        # on PostgreSQL 15); GoTrue's Go bcrypt takes all three; the computation is the same
        as_2a = "'$2a$' || substr(encrypted_password, 5)"
        bcrypt_ok = (
            conn.execute(
                sa.text(
                    f"SELECT email FROM auth.users WHERE encrypted_password LIKE '$2%'"
                    f" AND {as_2a} = crypt('password', {as_2a}) ORDER BY email"
                )
            )
            .scalars()
            .all()
        )
        bcrypt_wrong = conn.execute(
            sa.text(
                f"SELECT count(*) FROM auth.users WHERE encrypted_password LIKE '$2%'"
                f" AND {as_2a} = crypt('Password', {as_2a})"
            )
        ).scalar()
        stored_forms = (
            conn.execute(
                sa.text("SELECT substr(encrypted_password, 1, 4) FROM auth.users ORDER BY email")
            )
            .scalars()
            .all()
        )
        argon_stored = conn.execute(
            sa.text("SELECT encrypted_password FROM auth.users WHERE email = 'c@example.com'")
        ).scalar()
        confirmed = (
            conn.execute(
                sa.text(
                    "SELECT email FROM auth.users WHERE email_confirmed_at IS NOT NULL ORDER BY email"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert stored_forms == ["$2y$", "$2b$", "$arg"]  # as GoTrue takes them
    assert bcrypt_ok == ["a@example.com", "b@example.com"]
    assert bcrypt_wrong == 0
    assert argon2.PasswordHasher().verify(argon_stored, argon.password)
    assert confirmed == ["a@example.com", "c@example.com"]


def _firebase_vectors() -> list[dict[str, Any]]:
    return json.loads((VECTORS / "firebase.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", _firebase_vectors(), ids=lambda v: v["stored"][:8])
def test_firebase_scrypt_exports_as_firebase_exported_it(vector: dict[str, Any]) -> None:
    imp = vector["import"]
    cred = credentials.import_hash(
        "firebase_scrypt", vector["stored"], salt=imp["salt"], **imp["params"]
    )
    keyring = vector["keyring"]
    r = route(provider_named("firebase"), cred, keyring)
    assert r.route == "native"
    # byte for byte what `firebase auth:export` gave, and the project's own parameters
    assert base64.b64decode(r.fields["passwordHash"]) == base64.b64decode(vector["stored"])
    assert base64.b64decode(r.fields["salt"]) == base64.b64decode(imp["salt"])
    config = dict(r.config)
    assert config["hash-algo"] == "SCRYPT"
    assert config["rounds"] == str(imp["params"]["rounds"])
    assert config["mem-cost"] == str(imp["params"]["mem_cost"])
    assert base64.b64decode(config["salt-separator"]) == base64.b64decode(
        imp["params"]["salt_separator"]
    )
    assert config["hash-key"].startswith("env:")  # the signer key never lands in a file
    for provider in ("firebase", "kratos", "clerk"):
        exported = route(provider_named(provider), cred, keyring)
        resolved = resolved_config(exported, keyring)
        for c in vector["checks"]:  # firebase-scrypt's own verify() answers
            assert check(provider, exported.fields, resolved, c["password"]) is c["ok"], provider


# Kratos's own test vectors (ory/kratos hash/hasher_test.go, TestCompare: each asserted to
# verify by Kratos's hash.Compare), so the Kratos verifier follows Kratos, not us.
KRATOS_VECTORS = [
    ("test", "$argon2id$v=19$m=32,t=2,p=4$cm94YnRVOW5jZzFzcVE4bQ$MNzk5BtR2vUhrp6qQEjRNw"),
    (
        "test",
        "$argon2i$v=19$m=65536,t=3,p=4$kk51rW/vxIVCYn+EG4kTSg$NyT88uraJ6im6dyha/M5jhXvpqlEdlS/9fEm7ScMb8c",
    ),
    (
        "test",
        "$pbkdf2-sha256$i=100000,l=32$1jP+5Zxpxgtee/iPxGgOz0RfE9/KJuDElP1ley4VxXc$QJxzfvdbHYBpydCbHoFg3GJEqMFULwskiuqiJctoYpI",
    ),
    (
        "test",
        "$pbkdf2-sha512$i=100000,l=32$bdHBpn7OWOivJMVJypy2UqR0UnaD5prQXRZevj/05YU$+wArTfv1a+bNGO1iZrmEdVjhA+lL11wF4/IxpgYfPwc",
    ),
    (
        "test",
        "$scrypt$ln=16384,r=8,p=1$2npRo7P03Mt8keSoMbyD/tKFWyUzjiQf2svUaNDSrhA=$MiCzNcIplSMqSBrm4HckjYqYhaVPPjTARTzwB1cVNYE=",
    ),
    (
        "8x4WjoDbSxJZdR",
        "$firescrypt$ln=14,r=8,p=1$sPtDhWcd1MfdAw==$xbSou7FOl6mChCyzpCPIQ7tku7nsQMTFtyOZSXXd7tjBa4NtimOx7v42Gv2SfzPQu1oxM2/k4SsbOu73wlKe1A==$Bw==$YE0dO4bwD4JnJafh6lZZfkp1MtKzuKAXQcDCJNJNyeCHairWHKENOkbh3dzwaCdizzOspwr/FITUVlnOAwPKyw==",
    ),
    ("test123", "{SSHA}JFZFs0oHzxbMwkSJmYVeI8MnTDy/276a"),
    ("test123", "{SSHA256}czO44OTV17PcF1cRxWrLZLy9xHd7CWyVYplr1rOhuMlx/7IK"),
    (
        "test123",
        "{SSHA512}xPUl/px+1cG55rUH4rzcwxdOIPSB2TingLpiJJumN2xyDWN4Ix1WQG3ihnvHaWUE8MYNkvMi5rf0C9NYixHsE6Yh59M=",
    ),
    ("test", "$sha1$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$2qU2SGWP8viTM1md3FiI3+rjWXQ="),
    (
        "test",
        "$sha256$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$0gfRVLCvtBCk20udLDEY5vNhujWx7RGjwRIS1ebMsLY=",
    ),
    (
        "test",
        "$sha512$pf=e1NBTFR9e1BBU1NXT1JEfQ==$NW9wbWtnejAzcg==$6ctpVuApMNp0CgBXcdHw/GC562eFEFGr4gpgANX8ZYsX+j5B19IkdmOY2Fytsz3QUwSWdGcUjbqwgJGTH0UYvw==",
    ),
    ("test", "$md5$CY9rzUYh03PK3k6DJie09g=="),
    ("test", "$md5$pf=e1NBTFR9e1BBU1NXT1JEfQ==$MTIz$q+RdKCgc+ipCAcm5ChQwlQ=="),
    ("ory", "$md5$pf=e1BBU1NXT1JEfXtTQUxUfSQ/$MTIzNDU2Nzg5$8PhwWanVRnpJAFK4NUjR0w=="),
    ("test", "$md5-crypt$TVEiiKNb$SN6/pUaRQS/E8Jh46As2C/"),
    (
        "test",
        "$sha256-crypt$rounds=535000$05R.9KB6UC2kLI3w$Q/zslzx./JjkAVPTwp6th7nW5l7JU91Gte/UmIh.U78",
    ),
    (
        "test",
        "$sha512-crypt$rounds=656000$3LVbIAVxR//cRajw$uuNasMW.RYxlGzIRFU1Was70BPSa933AjxhZIGJdJBOlqJAHlgqa0yuiuq5JHF/ryNGryJkj87G9i3G2HPSXg1",
    ),
]


@pytest.mark.parametrize(("password", "hashed"), KRATOS_VECTORS, ids=lambda x: x[:14])
def test_the_kratos_verifier_agrees_with_kratos_own_vectors(password: str, hashed: str) -> None:
    fields = {"password": {"config": {"hashed_password": hashed}}}
    assert check("kratos", fields, {}, password)
    assert not check("kratos", fields, {}, password + "x")


# GoTrue's own vectors (supabase/auth internal/crypto/password_test.go: TestArgon2, TestScrypt,
# TestBcrypt), each asserted there to pass CompareHashAndPassword.
GOTRUE_VECTORS = [
    ("test", "$argon2i$v=19$m=16,t=2,p=1$bGJRWThNOHJJTVBSdHl2dQ$NfEnUOuUpb7F2fQkgFUG4g"),
    (
        "test",
        "$argon2id$v=19$m=32,t=3,p=2$SFVpOWJ0eXhjRzVkdGN1RQ$RXnb8rh7LaDcn07xsssqqulZYXOM/EUCEFMVcAcyYVk",
    ),
    (
        "mytestpassword",
        "$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=ou9tdYTGyYm8kuR6Dt0Bp0kDuAYoXrK16mbZO4yGwAn3oLspjnN0/c41v8xZnO1n14J3MjKj1b2g6AUCAlFwMw==$C0sHCg9ek77hsg==$zKVTMvnWVw5BBOZNUdnsalx4c4c7y/w7IS5p6Ut2+CfEFFlz37J9huyQfov4iizN8dbjvEJlM5tQaJP84+hfTw==",
    ),
    ("test", "$2a$10$vVz26aE3xkpSS9HFgafcH.M0Ina2tRm.Kp08WcVfjipXccGakj6i."),
]


@pytest.mark.parametrize(("password", "hashed"), GOTRUE_VECTORS, ids=lambda x: x[:10])
def test_the_supabase_verifier_agrees_with_gotrue_own_vectors(password: str, hashed: str) -> None:
    fields = {"password_hash": hashed}
    assert check("supabase", fields, {}, password)
    assert not check("supabase", fields, {}, password + "x")


def test_firebase_scrypt_goes_to_supabase_as_fbscrypt() -> None:
    vector = _firebase_vectors()[0]
    imp = vector["import"]
    cred = credentials.import_hash(
        "firebase_scrypt", vector["stored"], salt=imp["salt"], **imp["params"]
    )
    r = route(provider_named("supabase"), cred, vector["keyring"])
    assert r.route == "re-encoded"
    assert r.fields["password_hash"].startswith("$fbscrypt$v=1,n=14,r=8,p=1,ss=Bw==,sk=")
    for c in vector["checks"]:
        assert check("supabase", r.fields, {}, c["password"]) is c["ok"]
    # without the signer key nothing could verify it: the bridge
    assert route(provider_named("supabase"), cred, None).route == "bridge"


def test_firebase_signer_key_stays_out_of_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = [v for v in _firebase_vectors() if v["import"]["params"]["mem_cost"] == 14][:2]
    key = vectors[0]["keyring"]["fb_project"]
    assert all(v["keyring"]["fb_project"] == key for v in vectors)
    db = sqlite3.connect(tmp_path / "legacy.db")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, pw TEXT, salt TEXT)")
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        [
            (i, f"u{i}@example.com", v["stored"], v["import"]["salt"])
            for i, v in enumerate(vectors, start=1)
        ],
    )
    db.commit()
    db.close()
    monkeypatch.setenv("FB_SIGNER", key)
    p = vectors[0]["import"]["params"]
    spec = load_spec_text(f"""
[source]
url = "sqlite:///{tmp_path}/legacy.db"
table = "users"
key = "id"
[target]
export = "firebase"
dir = "{tmp_path}/out"
[fields]
id = "id"
email = "email"
[credentials]
column = "pw"
salt_column = "salt"
scheme = "firebase_scrypt"
keys = {{ fb_project = "env:FB_SIGNER" }}
params = {{ key_id = "fb_project", rounds = {p["rounds"]}, mem_cost = {p["mem_cost"]}, salt_separator = "{p["salt_separator"]}" }}
""")
    assert run_migration(spec).migrated == 2
    out = tmp_path / "out"
    script = (out / "import.sh").read_text()
    assert '--hash-algo=SCRYPT --hash-key="${FIREBASE_HASH_KEY_FB_PROJECT}"' in script
    for f in out.iterdir():
        if f.is_file() and f.suffix in (".json", ".sh", ".jsonl"):
            assert key not in f.read_text(), f.name
            assert f.stat().st_mode & 0o077 == 0 or f.name == "import.sh", f.name
