"""Tokens issued a batch at a time: one read of the OS CSPRNG, the same tokens as one by one.

``TokenStage`` used to call ``secrets.token_urlsafe`` and hash each token on its own; it now
reads every token's bytes with one ``os.urandom`` call (the source ``secrets`` reads too) and
hashes them in one pass. Strength, format, stored hash and lookup prefix must not change.
"""

from __future__ import annotations

import os
import re

import pytest

import authmigrate.pipeline.tokens as tokens
from authmigrate.pipeline.batch import Batch, Record
from authmigrate.pipeline.tokens import (
    PREFIX_LENGTH,
    TOKEN_BYTES,
    TokenStage,
    issue_token,
    issue_tokens,
    parse_stored,
    stored_form,
    token_prefix,
    verify_token,
)
from authmigrate.spec import TokensSpec

NOW = 1_800_000_000
# URL-safe base64 of 32 bytes, unpadded: 43 characters, the last one holding 4 bits (and two
# zero bits), so one of 16 characters
TOKEN = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def _fields(stored: str) -> tuple[object, ...]:
    parsed = parse_stored(stored)
    return parsed.version, parsed.alg, parsed.purpose, parsed.expires_at, len(parsed.digest)


@pytest.mark.parametrize("server_key", [None, "k" * 32, b"\x00\xffkey"])
def test_batch_tokens_have_the_strength_format_hash_and_prefix_of_single_ones(
    server_key: str | bytes | None,
) -> None:
    issued = issue_tokens("password_reset", 3600, 5000, server_key, now=NOW)
    single, single_stored = issue_token("password_reset", 3600, server_key, now=NOW)

    assert len(issued) == 5000
    assert len({token for token, _ in issued}) == 5000
    assert len({stored for _, stored in issued}) == 5000
    assert TOKEN.fullmatch(single)
    for token, stored in issued:
        assert TOKEN.fullmatch(token)
        assert len(token) * 6 >= 8 * TOKEN_BYTES >= 128
        assert stored == stored_form(token, "password_reset", NOW + 3600, server_key)
        assert token not in stored
        assert parse_stored(stored).prefix == token_prefix(token) == token[:PREFIX_LENGTH]
        assert _fields(stored) == _fields(single_stored)
        assert verify_token(token, stored, server_key=server_key, purpose="password_reset", now=NOW)
        wrong = token[:10] + ("B" if token[10] != "B" else "C") + token[11:]
        assert not verify_token(wrong, stored, server_key=server_key, now=NOW)


def test_batch_tokens_are_not_biased() -> None:
    """Every URL-safe character turns up at every leading position (a slicing error, such as
    overlapping or zeroed bytes, would show as missing or stuck characters)."""
    issued = issue_tokens("api", 60, 4000, now=NOW)
    for position in range(42):
        seen = {token[position] for token, _ in issued}
        assert len(seen) == 64, position


def test_token_stage_reads_the_os_csprng_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real_urandom = os.urandom

    def counted_urandom(size: int) -> bytes:  # the real source, counted
        reads.append(size)
        return real_urandom(size)

    monkeypatch.setattr(tokens.os, "urandom", counted_urandom)
    stage = TokenStage(TokensSpec(column="auth_token", prefix_column="auth_token_prefix"))
    batch = Batch(1, 1, 500, 500, [Record(i, {}, {}) for i in range(500)])

    stage.process(batch)

    assert reads == [500 * TOKEN_BYTES]
    assert len({r.token for r in batch.records}) == 500
    for record in batch.records:
        assert record.token is not None
        assert record.values["auth_token_prefix"] == token_prefix(record.token)
        assert verify_token(record.token, record.values["auth_token"], purpose="activation")


def test_batch_issue_refuses_what_single_issue_refuses() -> None:
    for purpose, ttl in (("Bad Purpose", 60), ("api\n", 60), ("api", 0)):
        with pytest.raises(ValueError) as single:
            issue_token(purpose, ttl)
        with pytest.raises(ValueError) as batch:
            issue_tokens(purpose, ttl, 3)
        assert str(batch.value) == str(single.value)
    assert issue_tokens("api", 60, 0) == []


def test_token_columns_without_records_are_what_process_writes_into_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path takes the token columns of its rows from :meth:`TokenStage.issue_columns`
    (no record per account): the same stored form, prefix and expiry as :meth:`process`, from
    one read of the OS CSPRNG."""
    reads: list[int] = []
    real_urandom = os.urandom

    def counted_urandom(size: int) -> bytes:  # the real source, counted
        reads.append(size)
        return real_urandom(size)

    monkeypatch.setattr(tokens.os, "urandom", counted_urandom)
    spec = TokensSpec(column="auth_token", prefix_column="auth_token_prefix")
    stage = TokenStage(spec, now=lambda: NOW)
    columns = stage.issue_columns(500)
    batch = Batch(1, 1, 500, 500, [Record(i, {}, {}) for i in range(500)])
    stage.process(batch)

    assert reads == [500 * TOKEN_BYTES, 500 * TOKEN_BYTES]
    assert set(columns) == {"auth_token", "auth_token_prefix"}
    stored, prefixes = columns["auth_token"], columns["auth_token_prefix"]
    assert len(stored) == len(prefixes) == len(set(stored)) == 500
    expected = _fields(batch.records[0].values["auth_token"])
    for value, prefix in zip(stored, prefixes, strict=True):
        assert _fields(value) == expected
        assert parse_stored(value).prefix == prefix
    assert stage.issue_columns(0) == {"auth_token": [], "auth_token_prefix": []}
