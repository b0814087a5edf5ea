"""A token only for an account whose message carries it: the others get NULL, verify agrees."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from authmigrate import verify_token
from authmigrate.notify import OutboxCipher
from authmigrate.notify.outbox import row_aad
from authmigrate.pipeline import plan_migration, run_migration
from authmigrate.reconcile import verify_migration
from authmigrate.spec import load_spec
from tests.helpers_verify import OUTBOX_KEY, execute, make_source, write_spec

KEPT_WITH_TOKEN = """
[notify.segments.kept]
enabled = true
text_template = "kept.txt"
"""


def _migrate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "") -> Path:
    """40 legacy users, every fourth without a password (reset), the rest kept as they are."""
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    src = tmp_path / "legacy.db"
    make_source(src, 40, hashes=True)
    execute(
        f"sqlite:///{src}", "UPDATE legacy_users SET password_hash = NULL WHERE user_id % 4 = 0"
    )
    (tmp_path / "kept.txt").write_text("Your account moved. Log in: {{ reset_link }}\n")
    spec_path = write_spec(
        tmp_path / "m.toml",
        src,
        f"sqlite:///{tmp_path / 't.db'}",
        batch=8,
        credentials="keep",
        tokens=True,
        notify=True,
    )
    spec_path.write_text(spec_path.read_text() + extra)
    return spec_path


def _accounts(url: str) -> dict[str, tuple[str | None, bool]]:
    """user_id -> (auth_token, must reset)."""
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT user_id, auth_token, password_reset_required FROM accounts")
        )
        return {str(k): (t, bool(r)) for k, t, r in rows}


def _delivered(url: str, migration: str) -> dict[str, str]:
    """source key -> the plaintext token its queued message carries."""
    cipher = OutboxCipher(OUTBOX_KEY)
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT source_key, segment, token_ciphertext FROM authmigrate_outbox")
        ).all()
    return {
        k: cipher.decrypt(ct, row_aad(migration, k, seg)) for k, seg, ct in rows if ct is not None
    }


@pytest.mark.parametrize(
    ("extra", "kept_get_tokens"),
    [("", False), (KEPT_WITH_TOKEN, True), ("[notify.segments.kept]\nenabled = true\n", False)],
    ids=["default-segments", "kept-enabled-with-token-template", "kept-enabled-no-token-in-it"],
)
def test_only_accounts_whose_message_carries_the_token_hold_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, kept_get_tokens: bool
) -> None:
    spec = load_spec(_migrate(tmp_path, monkeypatch, extra))
    planned = plan_migration(spec)
    run_migration(spec)
    url = spec.target.url
    accounts = _accounts(url)
    reset = {k for k, (_, r) in accounts.items() if r}
    kept = set(accounts) - reset
    assert reset and kept

    with_token = {k for k, (t, _) in accounts.items() if t is not None}
    assert with_token == (reset | kept if kept_get_tokens else reset)
    # every stored hash is matched by the plaintext its user's message carries
    delivered = _delivered(url, spec.migration_name)
    assert set(delivered) == with_token
    for k in with_token:
        stored = accounts[k][0]
        assert verify_token(delivered[k], stored, purpose=spec.tokens.purpose)  # type: ignore[union-attr]
    assert planned.tokens == len(with_token)
    assert verify_migration(spec).credential_problems == []


def test_verify_reports_a_token_planted_on_an_account_whose_message_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(_migrate(tmp_path, monkeypatch))
    run_migration(spec)
    url = spec.target.url
    accounts = _accounts(url)
    reset = next(k for k, (_, r) in accounts.items() if r)
    kept = next(k for k, (_, r) in accounts.items() if not r)
    execute(
        url,
        f"UPDATE accounts SET auth_token = (SELECT auth_token FROM accounts WHERE user_id = {reset}) WHERE user_id = {kept}",
    )

    problems = verify_migration(spec).credential_problems

    assert [(str(p.key), p.column, p.reason) for p in problems] == [
        (kept, "auth_token", "token.undelivered")
    ]
