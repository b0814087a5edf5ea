"""The credential and token checks of ``verify``: the columns no checksum can compare.

A token is random per run and a wrapped credential salted, so they are checked apart, per
chunk of migrated rows: a kept credential must equal the source hash imported again, a wrapped
one must have been made from it (scheme, kept part and argon2id over the legacy digest, see
:mod:`authmigrate.reconcile.credentials`), every one or a random sample of ``sample``; a token
must be a well-formed stored token, present exactly on the accounts whose message carries one
(with ``[notify]``) and NULL on the others. A credential the new system changed after the
migration (an upgrade on login, a reset) is the new system's, not a problem.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from authmigrate.reconcile.bookkeeping import Bookkeeping
from authmigrate.reconcile.chunks import Chunk
from authmigrate.reconcile.outbox import segment_columns, segment_of
from authmigrate.reconcile.result import CredentialProblem, VerifyResult
from authmigrate.reconcile.target import _Target
from authmigrate.spec import Spec

_Job = tuple[Any, str, str, str]
"""A wrapped credential's digest check: (source key, stored, legacy credential, scheme)."""


def _token_segments(spec: Spec) -> frozenset[str] | None:
    if spec.tokens is None:
        return None
    from authmigrate.pipeline.tokens import token_segments

    return token_segments(spec.notify, base_dir=spec.base_dir)


class SecretChecks:
    """Credential and token checks over the chunks of one verify run.

    Args:
        spec: the migration (its ``[credentials]``, ``[tokens]`` and ``[notify]`` sections).
        target: the target, read-only.
        res: where the counts and problems go.
        book: the bookkeeping (whether ``sync`` keeps state: what the new system changed).
        sample: check the argon2id part of this many wrapped credentials, chosen at random
            (``None``: every one).
    """

    def __init__(
        self,
        spec: Spec,
        target: _Target,
        res: VerifyResult,
        book: Bookkeeping,
        sample: int | None,
    ) -> None:
        self.spec = spec
        self.target = target
        self.result = res
        self.book = book
        self.sample = sample
        self.rng = random.Random()
        self.reservoir: list[_Job] = []
        self.token_segments = _token_segments(spec)
        """Segments whose accounts hold a token; None: every account (``tokens.token_segments``)."""

    def check(self, chunk: Chunk) -> None:
        """Check the credentials and tokens of a chunk's migrated rows."""
        cred, tok = self.spec.credentials, self.spec.tokens
        columns: list[str] = []
        if cred is not None:
            columns += [cred.target_column, cred.reset_column]
        if tok is not None:
            columns.append(tok.column)
        columns = [c for c in columns if c in self.target.table.c]
        if not columns or not chunk.expected_rows:
            return
        key = self.spec.source.key
        keys = [self.target.key_value(r[key]) for r in chunk.expected_rows]
        extra = (
            segment_columns(self.spec, self.target) if tok is not None and self.spec.notify else []
        )
        there = self.target.select(keys, list(dict.fromkeys([*columns, *extra])))
        if cred is not None and {cred.target_column, cred.reset_column} <= set(columns):
            self._check_credentials(chunk.expected_rows, there)
        if tok is not None and tok.column in columns:
            self._check_tokens(chunk.expected_rows, there)

    def finish(self) -> None:
        """Check the sample of wrapped credentials drawn over the whole pass."""
        self._run_digest_checks(self.reservoir)
        self.reservoir = []

    def _check_credentials(
        self, rows: list[dict[str, Any]], there: dict[Any, dict[str, Any]]
    ) -> None:
        from authmigrate.credentials import default_weak
        from authmigrate.pipeline.stages import prepare_credentials, row_format

        cred = self.spec.credentials
        assert cred is not None
        res = self.result
        key = self.spec.source.key
        weak = frozenset(cred.weak) if cred.weak is not None else default_weak()
        items: list[tuple[str | None, str | None]] = []
        formats: list[str | None] = []
        present: list[tuple[Any, dict[str, Any]]] = []
        for row in rows:
            got = there.get(self.target.key_value(row[key]))
            if got is None:
                continue  # reported as missing already
            raw = row.get(cred.column)
            if isinstance(raw, bytes | bytearray | memoryview):
                raw = bytes(raw).decode("utf-8", "replace")
            salt = row.get(cred.salt_column) if cred.salt_column else None
            present.append((row[key], got))
            blank = raw is None or (isinstance(raw, str) and not raw.strip())
            items.append((None if blank else str(raw).strip(), None if salt is None else str(salt)))
            formats.append(row_format(cred, row))
        prepared = (
            prepare_credentials(
                cred, [(v or "", s) for v, s in items], dry=True, workers=1, formats=formats
            )
            if items
            else []
        )
        digest_jobs: list[_Job] = []
        for (k, got), (value, _), outcome in zip(present, items, prepared, strict=True):
            stored, reset = got[cred.target_column], got[cred.reset_column]
            res.credentials_checked += 1
            problem = self._credential_problem(
                k, value, outcome, stored, bool(reset), weak, digest_jobs
            )
            if problem:
                res.credential_problems.append(CredentialProblem(k, cred.target_column, problem))
        self._run_digest_checks(digest_jobs)
        self._accept_new_system_changes(there)

    def _accept_new_system_changes(self, there: dict[Any, dict[str, Any]]) -> None:
        """A credential the new system changed after the migration wrote it is the new
        system's, not a mismatch, when it is what the new system writes: a plain argon2id hash
        (``verify_and_update`` on login, also inside a ``$login-rule$`` form) or no hash with
        the reset flag (a reset, ``sunset``). It is counted in ``owned_by_new_system``. Any
        other change (a truncated hash, another account's credential) stays a problem."""
        from authmigrate.continuity.sync import is_upgraded
        from authmigrate.sinks.state import load_states, state_key, state_tables, value_fp

        cred = self.spec.credentials
        res = self.result
        if cred is None or not self.book.has_state or not res.credential_problems:
            return
        mine = [p for p in res.credential_problems if p.column == cred.target_column]
        fresh = [p for p in mine if self.target.key_value(p.key) in there]
        if not fresh:
            return
        state, _ = state_tables(sa.MetaData())
        name = self.spec.migration_name
        known = load_states(self.target.conn, state, name, [p.key for p in fresh])
        owned: set[int] = set()
        for p in fresh:
            row = known.get(state_key(p.key))
            stored = there[self.target.key_value(p.key)].get(cred.target_column)
            if row is None or row.target_fp is None or value_fp(stored) == row.target_fp:
                continue
            reset = bool(there[self.target.key_value(p.key)].get(cred.reset_column))
            if is_upgraded(stored) or (stored is None and reset):
                owned.add(id(p))
        if owned:
            res.credential_problems = [p for p in res.credential_problems if id(p) not in owned]
            res.owned_by_new_system += len(owned)

    def _credential_problem(
        self,
        key: Any,
        value: str | None,
        outcome: Any,
        stored: str | None,
        reset: bool,
        weak: frozenset[str],
        digest_jobs: list[_Job],
    ) -> str:
        import hmac

        from authmigrate.credentials import Prepared
        from authmigrate.reconcile.credentials import check_wrapped, is_wrapped

        cred = self.spec.credentials
        assert cred is not None
        if value is None or cred.policy == "reset":
            if cred.policy != "reset" and cred.on_missing == "reject":
                return "credential.missing"
            return "" if stored is None and reset else "credential.not_reset"
        if isinstance(outcome, Prepared) and outcome.segment == "reset":
            # a platform's "no usable password" marker: migrated as a reset under any policy
            return "" if stored is None and reset else "credential.not_reset"
        if not isinstance(outcome, Prepared) or outcome.credential is None:
            return "credential.unreadable"
        canonical_cred = outcome.credential
        if cred.policy == "wrap" and outcome.scheme in weak:
            if not is_wrapped(stored):
                return "credential.not_wrapped"
            assert stored is not None
            check = check_wrapped(stored, canonical_cred, outcome.scheme, check_digest=False)
            if not check.ok:
                return check.reason
            self._queue_digest_check((key, stored, canonical_cred, outcome.scheme), digest_jobs)
            return ""
        if stored is None or not hmac.compare_digest(
            stored.encode("utf-8", "surrogatepass"), canonical_cred.encode("utf-8", "surrogatepass")
        ):
            return "credential.differs"
        return "credential.reset_flag" if reset else ""

    def _queue_digest_check(self, job: _Job, digest_jobs: list[_Job]) -> None:
        res = self.result
        res.wrapped_total += 1
        if self.sample is None:
            digest_jobs.append(job)
            return
        # reservoir sampling: every wrapped credential equally likely to be checked
        if len(self.reservoir) < self.sample:
            self.reservoir.append(job)
            return
        slot = self.rng.randrange(res.wrapped_total)
        if slot < self.sample:
            self.reservoir[slot] = job

    def _run_digest_checks(self, jobs: Sequence[_Job]) -> None:
        if not jobs:
            return
        from authmigrate.credentials._batch import default_workers
        from authmigrate.reconcile.credentials import check_wrapped

        def one(job: _Job) -> str:
            return check_wrapped(job[1], job[2], job[3]).reason

        with ThreadPoolExecutor(max_workers=default_workers()) as pool:
            reasons = list(pool.map(one, jobs))
        cred = self.spec.credentials
        assert cred is not None
        for job, reason in zip(jobs, reasons, strict=True):
            self.result.wrapped_checked += 1
            if reason:
                self.result.credential_problems.append(
                    CredentialProblem(job[0], cred.target_column, reason)
                )

    def _check_tokens(self, rows: list[dict[str, Any]], there: dict[Any, dict[str, Any]]) -> None:
        from authmigrate.errors import MalformedHashError
        from authmigrate.pipeline.tokens import parse_stored

        tok = self.spec.tokens
        assert tok is not None
        segments = self.token_segments
        key = self.spec.source.key
        for row in rows:
            got = there.get(self.target.key_value(row[key]))
            if got is None:
                continue
            self.result.tokens_checked += 1
            stored = got[tok.column]
            if segments is not None and segment_of(self.spec, got) not in segments:
                # no message carries a token to this account: it must hold none
                if stored is not None:
                    self.result.credential_problems.append(
                        CredentialProblem(row[key], tok.column, "token.undelivered")
                    )
                continue
            try:
                parsed = parse_stored(stored)
            except MalformedHashError:
                reason = "token.missing" if stored is None else "token.malformed"
                self.result.credential_problems.append(
                    CredentialProblem(row[key], tok.column, reason)
                )
                continue
            if parsed.purpose != tok.purpose:
                self.result.credential_problems.append(
                    CredentialProblem(row[key], tok.column, "token.purpose")
                )
