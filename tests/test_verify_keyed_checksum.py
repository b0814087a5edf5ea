"""verify's chunk checksums are keyed per verify run (MD5 over a random key and the row, 128
bits summed as four 32-bit parts), so a tamperer cannot prepare rows whose hashes cancel out.

The forgery below is what an attacker computes against an unkeyed checksum (the first 40 bits
of MD5 of the row's canonical text, summed over a chunk): two accounts' emails changed to
attacker addresses whose hashes sum to the same total. The indices were found by a birthday
search (2 x 2^21 hashes, a few seconds); the test checks the collision itself with hashlib.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa

from authmigrate.pipeline import run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.reconcile.target import _Target
from authmigrate.spec import load_spec
from tests.helpers_verify import cli, execute

FORGED = (1314915, 2288540)


def _md5_40(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest()[:10], 16)


def _spec(tmp_path: Path, target_url: str) -> Path:
    src = tmp_path / "legacy.db"
    execute(
        f"sqlite:///{src}",
        "CREATE TABLE legacy_users (user_id INTEGER PRIMARY KEY, email TEXT)",
        "INSERT INTO legacy_users VALUES (1, 'ann@example.com'), (2, 'bob@example.com'),"
        " (3, 'cyd@example.com')",
    )
    spec = tmp_path / "m.toml"
    spec.write_text(
        f"""
name = "forged"
[source]
url = "sqlite:///{src}"
table = "legacy_users"
key = "user_id"
[target]
url = "{target_url}"
table = "accounts"
[fields]
user_id = "user_id"
email = "email"
""",
        encoding="utf-8",
    )
    return spec


def test_emails_forged_to_cancel_an_unkeyed_checksum_are_found(
    tmp_path: Path, target_url: str
) -> None:
    i, j = FORGED
    evil_a, evil_b = f"x{i}@evil.example", f"y{j}@evil.example"
    # the attacker's collision, checked here: the unkeyed 40-bit sums are equal
    assert _md5_40("v1|vann@example.com") + _md5_40("v2|vbob@example.com") == _md5_40(
        f"v1|v{evil_a}"
    ) + _md5_40(f"v2|v{evil_b}")
    spec = _spec(tmp_path, target_url)
    run_migration(load_spec(spec))
    assert cli("verify", str(spec), cwd=tmp_path).returncode == 0
    execute(
        target_url,
        f"UPDATE accounts SET email = '{evil_a}' WHERE user_id = 1",
        f"UPDATE accounts SET email = '{evil_b}' WHERE user_id = 2",
    )
    result = verify_migration(load_spec(spec))
    assert not result.ok
    assert sorted(d.key for d in result.different) == [1, 2]
    assert [d.columns for d in result.different] == [["email"], ["email"]]


def test_each_verify_run_hashes_with_a_key_of_its_own(tmp_path: Path, target_url: str) -> None:
    spec_path = _spec(tmp_path, target_url)
    spec = load_spec(spec_path)
    run_migration(spec)
    engine = sa.create_engine(target_url)
    with engine.connect() as one, engine.connect() as other:  # two verify runs
        first, second = _Target(spec, engine, one), _Target(spec, engine, other)
        assert len(first.checksum_key) == 32 and first.checksum_key != second.checksum_key
        a, b = first.digest([1, 2, 3]), second.digest([1, 2, 3])
    engine.dispose()
    assert a[0] == b[0] == 3
    assert a[1:] != b[1:]  # the same rows, other sums: nothing to precompute
    assert len(a) == 5  # the count, then four 32-bit part sums: 128 bits compared


def test_digest_of_keys_the_target_lacks_is_empty(tmp_path: Path, target_url: str) -> None:
    spec_path = _spec(tmp_path, target_url)
    spec = load_spec(spec_path)
    run_migration(spec)
    engine = sa.create_engine(target_url)
    with engine.connect() as conn:
        target = _Target(spec, engine, conn)
        assert target.digest([404, 405]) == (0, 0, 0, 0, 0)
    engine.dispose()
