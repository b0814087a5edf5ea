"""The pipeline's own stages: credentials (keep, wrap or reset) and duplicate accounts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from authmigrate.pipeline.batch import Batch, InvalidValue, Record, Reject
from authmigrate.spec import CredentialsSpec, Spec, resolve_secret


def load_keyring(spec: CredentialsSpec) -> dict[str, bytes | str]:
    """Resolve the spec's ``credentials.keys`` (key id -> env:NAME) into the keyring.

    Raises:
        SpecError: a named environment variable is not set (the message names it, not a value).
    """
    return {
        kid: resolve_secret(ref, path=f"credentials.keys.{kid}") for kid, ref in spec.keys.items()
    }


class CredentialStage:
    """Imports each legacy hash into its canonical form, then keeps, wraps or drops it.

    ``dry=True`` (for ``plan``) identifies and imports only: no wrapping, whatever the policy.
    """

    def __init__(
        self, spec: CredentialsSpec, *, dry: bool = False, workers: int | None = None
    ) -> None:

        self.spec = spec
        self.keyring = load_keyring(spec) if spec.keys else {}
        self.dry = dry
        self.workers = workers
        self.secret_columns = frozenset(c for c in (spec.column, spec.salt_column) if c)

    def columns(self) -> list[sa.Column[Any]]:
        return [
            sa.Column(self.spec.target_column, sa.Text),
            sa.Column(self.spec.reset_column, sa.Boolean, nullable=False, default=False),
        ]

    def tables(self, metadata: sa.MetaData) -> None:
        return None

    def process(self, batch: Batch) -> None:
        target, reset = self.spec.target_column, self.spec.reset_column
        present: list[Record] = []
        items: list[tuple[str | None, str | None]] = []
        doomed: list[tuple[Record, Reject]] = []
        formats: list[str | None] = []
        for rec in batch.records:
            raw = rec.source.get(self.spec.column)
            salt = rec.source.get(self.spec.salt_column) if self.spec.salt_column else None
            bad = raw if type(raw) is InvalidValue else salt if type(salt) is InvalidValue else None
            if bad is not None:
                column = self.spec.column if bad is raw else self.spec.salt_column
                doomed.append((rec, Reject(rec.key, bad.reason, column, bad.detail, rec.source)))
                continue
            if isinstance(raw, bytes | bytearray | memoryview):
                raw = bytes(raw).decode("utf-8", "replace")
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if self.spec.on_missing == "reject":
                    doomed.append(
                        (
                            rec,
                            Reject(
                                rec.key,
                                "credential.missing",
                                self.spec.column,
                                'NULL or empty password hash (credentials.on_missing = "reject")',
                                rec.source,
                            ),
                        )
                    )
                    continue
                rec.values[target], rec.values[reset] = None, True
                rec.segment, rec.scheme = "reset", None
                continue
            present.append(rec)
            items.append((str(raw).strip(), None if salt is None else str(salt)))
            formats.append(row_format(self.spec, rec.source))
        if items:
            results = self._prepare(items, formats)
            for rec, res in zip(present, results, strict=True):
                if isinstance(res, Exception):
                    code = getattr(res, "code", "credential.malformed")
                    detail = self._detail(code, res, rec.source.get(self.spec.column))
                    doomed.append(
                        (rec, Reject(rec.key, code, self.spec.column, detail, rec.source))
                    )
                    continue
                rec.values[target] = res.credential
                rec.values[reset] = res.credential is None
                rec.segment, rec.scheme = res.segment, res.scheme
        batch.drop(doomed)

    def _detail(self, code: str, error: Exception, raw: Any) -> str:
        """What is wrong, for the reject row: an unrecognised value gets the schemes tried and
        its shape (length and alphabet: a clue to the scheme, never the value)."""
        if code != "credential.unrecognized":
            return str(error)
        from authmigrate.credentials._shape import bare_digest, shape

        text = str(raw).strip()
        tried = ", ".join(self.spec.schemes)
        detail = f"no scheme of credentials.scheme ({tried}) recognises it: {shape(text)}"
        digest = bare_digest(text)
        if digest is not None:
            detail += f'; a bare {digest[0]} digest? add "digest" with params.algorithm'
        return detail

    def _prepare(
        self, items: list[tuple[str | None, str | None]], formats: list[str | None]
    ) -> list[Any]:
        return prepare_credentials(
            self.spec,
            items,
            keyring=self.keyring,
            dry=self.dry,
            workers=self.workers,
            formats=formats,
        )

    def write(self, conn: sa.Connection, batch: Batch, run_id: str) -> None:
        return None


_TRY_NEXT = frozenset({"credential.unrecognized", "credential.malformed", "credential.bad_params"})


def row_format(spec: CredentialsSpec, row: dict[str, Any]) -> str | None:
    """The row's ``credentials.scheme_column`` value (its hash format), or None."""
    if not spec.scheme_column:
        return None
    value = row.get(spec.scheme_column)
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    return None if value is None or not str(value).strip() else str(value).strip()


def prepare_credentials(
    spec: CredentialsSpec,
    items: list[tuple[str | None, str | None]],
    *,
    keyring: dict[str, bytes | str] | None = None,
    dry: bool = False,
    workers: int | None = None,
    formats: list[str | None] | None = None,
) -> list[Any]:
    """Import (and keep, wrap or drop) legacy hashes as the spec says; one result per item,
    a ``Prepared`` or a ``CredentialError``.

    The spec's schemes are tried in order, each on the items the earlier ones could not read.
    ``formats`` holds each item's ``credentials.scheme_column`` value (see :func:`row_format`):
    an item whose format is in ``scheme_map`` is read with that scheme only, one whose format is
    not is rejected (``credential.unknown_format``). ``dry`` imports only (no wrapping), for
    ``plan`` and ``verify``.
    """
    from authmigrate.errors import CredentialError

    results: list[Any] = [None] * len(items)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(items)):
        fmt = formats[i] if formats is not None else None
        if fmt is None:
            groups.setdefault(tuple(spec.schemes), []).append(i)
        elif fmt in spec.scheme_map:
            groups.setdefault((spec.scheme_map[fmt],), []).append(i)
        else:
            results[i] = CredentialError(
                f"{spec.scheme_column} names a hash format that credentials.scheme_map lacks",
                code="credential.unknown_format",
            )
    for chain, indexes in groups.items():
        got = _prepare_chain(
            spec, chain, [items[i] for i in indexes], keyring=keyring, dry=dry, workers=workers
        )
        for i, res in zip(indexes, got, strict=True):
            results[i] = res
    return results


def _prepare_chain(
    spec: CredentialsSpec,
    chain: tuple[str, ...],
    items: list[tuple[str | None, str | None]],
    *,
    keyring: dict[str, bytes | str] | None,
    dry: bool,
    workers: int | None,
) -> list[Any]:
    """:func:`prepare_credentials` for items read with one list of schemes."""
    from authmigrate.credentials import CredentialPolicy, prepare_batch

    policy = "keep" if dry and spec.policy == "wrap" else spec.policy
    results: list[Any] = [None] * len(items)
    todo = list(range(len(items)))
    for scheme in chain:
        chosen = CredentialPolicy(
            scheme=scheme,
            policy=policy,
            weak=frozenset(spec.weak) if spec.weak is not None else None,
            params=dict(spec.params) if scheme != "auto" else {},
            profile=spec.profile,
            rules=tuple(spec.login_rules),
            allow_test_profile=spec.allow_test_profile,
        )
        got = prepare_batch([items[i] for i in todo], chosen, keyring, workers=workers)
        retry = []
        for i, res in zip(todo, got, strict=True):
            results[i] = res
            if isinstance(res, Exception) and getattr(res, "code", "") in _TRY_NEXT:
                retry.append(i)
        todo = retry
        if not todo:
            break
    return results


class DuplicateStage:
    """Finds accounts whose unique fields (normalized email by default) are already taken.

    The first account in key order wins, whether it was migrated in this batch, an earlier batch,
    or was in the target before. A later one is rejected (``duplicate.<field>``) or, with
    ``run.duplicates = "merge"``, recorded as merged into the first. A group of fields
    (``unique = [["website_id", "email"]]``) is unique together (``duplicate.website_id+email``).

    Args:
        groups: the unique groups, in order (``target.unique``, see :func:`unique_groups`).
        lookup: ``(group, values) -> {value: key}`` of the values already taken (in the target,
            or seen earlier in the run).
        key_form: a key as the target holds it.
        merge: ``run.duplicates = "merge"``: a later account is merged, not rejected.
    """

    secret_columns: frozenset[str] = frozenset()

    def __init__(
        self,
        groups: Sequence[tuple[str, ...]] | Spec,
        lookup: Callable[[tuple[str, ...], list[Any]], dict[Any, Any]],
        key_form: Callable[[Any], Any] = lambda key: key,
        *,
        merge: bool = False,
    ) -> None:
        if isinstance(groups, Spec):  # how earlier versions were called: still understood
            merge = groups.run.duplicates == "merge"
            groups = unique_groups(groups)
        self.groups = list(groups)
        self.merge = merge
        self.lookup = lookup
        self.key_form = key_form
        """A key as the target holds it (``TargetKey.stored``), to compare keys of both sides."""

    @classmethod
    def from_spec(
        cls,
        spec: Spec,
        lookup: Callable[[tuple[str, ...], list[Any]], dict[Any, Any]],
        key_form: Callable[[Any], Any] = lambda key: key,
    ) -> DuplicateStage:
        """The stage of a whole spec: its ``target.unique`` groups and ``run.duplicates``."""
        return cls(unique_groups(spec), lookup, key_form, merge=spec.run.duplicates == "merge")

    def columns(self) -> list[sa.Column[Any]]:
        return []

    def tables(self, metadata: sa.MetaData) -> None:
        return None

    def process(self, batch: Batch) -> None:
        for group in self.groups:
            values = [group_value(r.values, group) for r in batch.records]
            taken = self.lookup(group, values)
            label = "+".join(group)
            doomed: list[tuple[Record, Reject]] = []
            for rec, value in zip(batch.records, values, strict=True):
                if value is None:
                    continue
                first = taken.get(value)
                if first is None:
                    taken[value] = rec.key
                    continue
                if self.key_form(first) == self.key_form(rec.key):
                    # the key check before this stage rejects a key the target holds: an
                    # account found as a duplicate of itself means keys were compared wrongly
                    raise RuntimeError(
                        f"account {rec.key!r} was found as a duplicate of itself "
                        f"({label}); stopping before anything of this batch is written"
                    )
                rej = Reject(
                    rec.key,
                    f"duplicate.{label}",
                    label,
                    f"same {label} as account {first}",
                    rec.source,
                    outcome="merged" if self.merge else "rejected",
                    merged_into=first,
                    values=rec.values,
                )
                doomed.append((rec, rej))
            batch.drop(doomed)

    def write(self, conn: sa.Connection, batch: Batch, run_id: str) -> None:
        return None


def unique_groups(spec: Spec) -> list[tuple[str, ...]]:
    """``target.unique`` as tuples of field names (groups naming no field are skipped)."""
    groups = []
    for entry in spec.target.unique:
        group = (entry,) if isinstance(entry, str) else tuple(entry)
        if group and all(f in spec.fields for f in group):
            groups.append(group)
    return groups


def group_value(values: dict[str, Any], group: tuple[str, ...]) -> Any:
    """The value a record has for a unique group: one value, a tuple, or None if any is NULL."""
    if len(group) == 1:
        return values.get(group[0])
    parts = tuple(values.get(f) for f in group)
    return None if any(p is None for p in parts) else parts
