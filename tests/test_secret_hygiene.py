"""Known passwords, keys and an SMTP password are planted; plan, run, verify and failing runs
are searched everywhere they could leak (output, logs, reports, rejects, runs): zero hits."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from tests.helpers_verify import cli

COOKIE_KEY = "ps-cookie-key-Zq8RvT3kLm9Xw2Yp4Hj6Nc1Bd5Fg7Kq0Sa"
PEPPER = "token-pepper-Ue7Wr2Ty9Io4Pa1Sd6Fg3Hj8Kl5Zx0Cv"
SMTP_PASSWORD = "smtp-Pw-Mn5Bv8Cx2Zl7Kj4Hg1Fd9Sa6Qw3Er0Ty"
DB_PASSWORD = "db-Pw-Rt6Yu1Io8Pa3Sd7Fg2Hj5Kl9Zx4Cv0Bn"
OUTBOX_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
PASSWORDS = [f"Correct-Horse-{i:03d}-Battery" for i in range(40)]

SPEC = """
name = "hygiene"
[source]
url = "sqlite:///legacy.db"
table = "ps_customer"
key = "id_customer"
[target]
url = "{target}"
table = "accounts"
[fields]
id_customer = "id_customer"
email = {{ from = "email", normalize = "email", required = true }}
[credentials]
column = "passwd"
scheme = "prestashop"
params = {{ key_id = "shop1" }}
keys = {{ shop1 = "env:PS_COOKIE_KEY" }}
policy = "wrap"
profile = "TEST"
[tokens]
column = "auth_token"
server_key = "env:TOKEN_PEPPER"
[notify]
outbox_key = "env:OUTBOX_KEY"
[notify.smtp]
host = "127.0.0.1"
port = 2525
username = "mailer"
password = "env:SMTP_PASSWORD"
[run]
batch_size = 7
"""


def plant_source(path: Path) -> list[str]:
    """PrestaShop 1.6 customers: md5(cookie key . password); a few broken rows to reject.

    Returns the legacy hashes, which must not leak either.
    """
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE ps_customer (id_customer INTEGER PRIMARY KEY, email TEXT, passwd TEXT)"
    )
    hashes = []
    for i, pw in enumerate(PASSWORDS, start=1):
        digest = hashlib.md5((COOKIE_KEY + pw).encode()).hexdigest()
        hashes.append(digest)
        email = f"user{i}@example.com" if i % 9 else "broken-email"
        passwd = digest if i % 11 else pw  # a plaintext password where a hash belongs
        conn.execute("INSERT INTO ps_customer VALUES (?, ?, ?)", (i, email, passwd))
    conn.commit()
    conn.close()
    return hashes


def test_no_secret_reaches_output_logs_reports_rejects_or_errors(tmp_path: Path) -> None:
    hashes = plant_source(tmp_path / "legacy.db")
    target = f"sqlite:///{tmp_path}/target.db"
    (tmp_path / "m.toml").write_text(SPEC.format(target=target))
    unreachable = f"postgresql+psycopg://mig:{DB_PASSWORD}@127.0.0.1:1/shop"
    (tmp_path / "down.toml").write_text(SPEC.format(target=unreachable))
    env = {
        "PS_COOKIE_KEY": COOKIE_KEY,
        "TOKEN_PEPPER": PEPPER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "OUTBOX_KEY": OUTBOX_KEY,
    }
    texts: list[str] = []
    codes = []
    for args in (
        ("-v", "plan", "m.toml"),
        ("-v", "plan", "m.toml", "--json"),
        ("-v", "run", "m.toml"),
        ("-v", "verify", "m.toml"),
        ("-v", "run", "down.toml"),  # fails: target unreachable, its URL holds a password
        ("-v", "verify", "down.toml"),
        ("-v", "notify", "m.toml", "--status"),
    ):
        proc = cli(*args, cwd=tmp_path, env=env)
        codes.append(proc.returncode)
        texts += [proc.stdout, proc.stderr]
    # a run whose cookie key is missing fails with the variable's name, not a value
    proc = cli("-v", "run", "m.toml", cwd=tmp_path, env={**env, "PS_COOKIE_KEY": ""})
    texts += [proc.stdout, proc.stderr]
    assert proc.returncode == 2 and "PS_COOKIE_KEY" in proc.stderr
    assert codes[:4] == [1, 1, 1, 0], texts  # plan and run: 1 for the rejects; verify holds
    assert codes[4] == 2 and "cannot reach target" in texts[9]

    for report in tmp_path.glob("*.json"):
        texts.append(report.read_text())
    engine = sa.create_engine(target)
    with engine.connect() as conn:
        for table in ("authmigrate_rejects", "authmigrate_runs", "authmigrate_batches"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                texts.append(" ".join(str(v) for v in row))
        rejects = conn.execute(sa.text("SELECT reason FROM authmigrate_rejects")).scalars().all()
        accounts = conn.execute(sa.text("SELECT * FROM accounts")).all()
        outbox = conn.execute(sa.text("SELECT * FROM authmigrate_outbox")).all()
    engine.dispose()
    assert "credential.malformed" in rejects or "credential.unrecognized" in rejects
    assert len(accounts) > 30 and outbox
    # the target itself keeps no secret and no weak hash either
    texts += [" ".join(str(v) for v in row) for row in [*accounts, *outbox]]

    everything = "\n".join(texts)
    assert "hygiene" in everything and "migrated" in everything  # the search has material
    planted = [COOKIE_KEY, PEPPER, SMTP_PASSWORD, DB_PASSWORD, OUTBOX_KEY, *PASSWORDS, *hashes]
    leaked = [s for s in planted if s in everything]
    assert leaked == []
