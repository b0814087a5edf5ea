"""A migrated shop for the bridge tests: legacy hashes made by the platforms' own code
(tests/vectors), migrated by a real run into a real target, then opened as a bridge."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.spec import Spec, load_spec_text
from tests.pg_server import free_port

VECTORS = Path(__file__).parent / "vectors"


def vector(file: str, scheme: str, index: int = 0) -> tuple[str, str, dict[str, Any]]:
    """(stored hash, right password, keyring) of one platform vector."""
    found = [
        v for v in json.loads((VECTORS / file).read_text())["vectors"] if v["scheme"] == scheme
    ]
    v = found[index]
    right = next(c["password"] for c in v["checks"] if c["ok"])
    return v["stored"], right, v.get("keyring") or {}


@dataclass
class Shop:
    """Who is in the migrated target, with their right passwords."""

    spec: Spec
    spec_path: Path
    target_url: str
    passwords: dict[str, str]  # email -> right password
    keys: dict[str, int]  # email -> legacy key


SPEC = """
[source]
url = "sqlite:///{src}"
table = "customers"
key = "customer_id"

[target]
url = "{dst}"
table = "accounts"

[fields]
customer_id = "customer_id"
email = {{ from = "email", normalize = "email" }}
first_name = "first_name"

[credentials]
column = "password_hash"
scheme = ["auto", "prestashop"]
params = {{ key_id = "ps_cookie" }}
policy = "keep"
profile = "TEST"
keys = {{ {keys} }}

[bridge]
secret = "env:BRIDGE_SECRET"
lookup = ["email", "customer_id"]
min_seconds = {min_seconds}
per_identifier = {per_identifier}
per_address = {per_address}
"""

MALFORMED = "zz-this-is-no-hash"


def make_shop(
    tmp: Path,
    target_url: str,
    *,
    extra_users: int = 0,
    min_seconds: float = 0.05,
    per_identifier: int = 1000,
    per_address: int = 100000,
) -> Shop:
    """A legacy shop (WooCommerce phpass, Magento 2, PrestaShop with its cookie key, an account
    without password, one whose hash is malformed in the target), migrated into ``target_url``.

    ``extra_users`` adds phpass accounts ``user{i}@example.com`` (password ``planted-pw-{i}-x7Q``) made by
    the libpass phpass the migration reads like WordPress's own (for load and crash tests).
    """
    phpass, phpass_pw, _ = vector("php.json", "phpass")
    magento, magento_pw, _ = vector("php.json", "magento2")
    presta, presta_pw, presta_keys = vector("php.json", "prestashop")
    rows: list[tuple[int, str, str | None, str]] = [
        (1, "Alice@Example.com", phpass, "Alice"),
        (2, "bob@example.com", magento, "Bob"),
        (3, "carol@example.com", presta, "Carol"),
        (4, "dave@example.com", None, "Dave"),
        (5, "erin@example.com", phpass, "Erin"),  # hash made malformed in the target below
    ]
    passwords = {
        "alice@example.com": phpass_pw,
        "bob@example.com": magento_pw,
        "carol@example.com": presta_pw,
        "erin@example.com": phpass_pw,
    }
    if extra_users:
        from passlib.hash import phpass as libpass_phpass

        for i in range(extra_users):
            email = f"user{i}@example.com"
            pw = f"planted-pw-{i}-x7Q"
            rows.append((100 + i, email, libpass_phpass.using(rounds=8).hash(pw), f"U{i}"))
            passwords[email] = pw
    src = tmp / "legacy.db"
    conn = sqlite3.connect(src)
    conn.execute(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, email TEXT, "
        "password_hash TEXT, first_name TEXT)"
    )
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    import os

    key_refs = []
    for kid, secret in presta_keys.items():
        os.environ[f"TEST_BRIDGE_KEY_{kid.upper()}"] = secret
        key_refs.append(f'{kid} = "env:TEST_BRIDGE_KEY_{kid.upper()}"')
    text = SPEC.format(
        src=src,
        dst=target_url,
        keys=", ".join(key_refs),
        min_seconds=min_seconds,
        per_identifier=per_identifier,
        per_address=per_address,
    )
    spec_path = tmp / "migration.toml"
    spec_path.write_text(text)
    spec = load_spec_text(text)
    result = run_migration(spec)
    assert result.migrated == len(rows), result.as_dict()
    engine = sa.create_engine(target_url)
    with engine.begin() as c:
        c.execute(
            sa.text("UPDATE accounts SET password = :m WHERE customer_id = 5"), {"m": MALFORMED}
        )
    engine.dispose()
    return Shop(spec, spec_path, target_url, passwords, {e: k for k, e, _, _ in rows})


def stored(url: str) -> dict[int, str | None]:
    """customer_id -> the password column, as it is in the target now."""
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = dict(c.execute(sa.text("SELECT customer_id, password FROM accounts")).all())
    engine.dispose()
    return rows


SECRET = "test-bridge-secret-0123456789"


@contextmanager
def running_bridge(spec: Spec, **app_options: Any) -> Iterator[str]:
    """A real uvicorn serving the bridge on a free loopback port; yields its base URL."""
    from authmigrate.bridge import Bridge
    from authmigrate.bridge.app import create_app, make_server

    bridge = Bridge(spec)
    port = free_port()
    server = make_server(
        create_app(bridge, secret=SECRET, **app_options), host="127.0.0.1", port=port
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "bridge did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        bridge.close()


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    secret: str | None = SECRET,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One real HTTP request: (status, parsed JSON body or raw bytes, headers)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if secret is not None:
        req.add_header("Authorization", f"Bearer {secret}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, hdrs = err.code, err.read(), dict(err.headers)
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, parsed, hdrs
