"""The verification core: find an account, verify its password, upgrade its hash once.

::

    identifier ─► lookup (bridge.lookup fields, in order) ─► verify (credential engine)
                                                                 │ ok and not argon2id yet
                                                                 ▼
                 UPDATE target SET password = :new WHERE key = :k AND password = :old

The upgrade is a compare-and-swap in one transaction: two logins racing (a provider retrying)
write it once, and both answer "ok". Nothing is ever written on a failed login.

An account not in the target yet is looked up in the legacy source through the spec
(:mod:`.legacy`); a right password carries it, upgraded, into the target with ``run``'s
bookkeeping in one transaction.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from authmigrate.credentials import identify, verify_and_update
from authmigrate.db import first_line, make_engine
from authmigrate.errors import SpecError, TargetError, UnknownSchemeError
from authmigrate.spec import BridgeSpec, Spec

from ._timing import AnswerFloor, dummy_verify, password_too_long
from .legacy import Candidate, LegacySource

log = logging.getLogger("authmigrate.bridge")

MAX_IDENTIFIER_CHARS = 320
"""Longer identifiers (an email is at most 254) are unknown users, without a query."""

UNKNOWN_USER = "bridge.unknown_user"
WRONG_PASSWORD = "bridge.wrong_password"
NO_PASSWORD = "bridge.no_password"
MALFORMED_HASH = "bridge.malformed_hash"
PASSWORD_TOO_LONG = "bridge.password_too_long"
CONFLICT = "bridge.conflict"

_INTEGER = re.compile(r"^-?[0-9]{1,18}$")


@dataclass(frozen=True, repr=False)
class Account:
    """An account found by an identifier: its key, its mapped fields, whether it has a
    password at all (a migrated account without one must reset it)."""

    key: Any
    fields: Mapping[str, Any]
    has_password: bool

    def __repr__(self) -> str:  # fields hold emails: never shown
        return f"Account(has_password={self.has_password})"


@dataclass(frozen=True, repr=False)
class Verdict:
    """The answer to one login.

    Attributes:
        ok: the password is right.
        found: an account matched the identifier.
        reason: when not ok, a stable code (``bridge.unknown_user``, ``bridge.wrong_password``,
            ``bridge.no_password``, ``bridge.malformed_hash``, ``bridge.password_too_long``).
            Adapters answer every one of them the same way.
        account: the account, when found.
        credential: when ok, the credential now stored (argon2id after an upgrade).
        upgraded: this call wrote the upgraded hash.
    """

    ok: bool
    found: bool
    reason: str | None = None
    account: Account | None = None
    credential: str | None = field(default=None)
    upgraded: bool = False

    def __repr__(self) -> str:  # never the credential, never the account's fields
        return (
            f"Verdict(ok={self.ok}, found={self.found}, reason={self.reason!r}, "
            f"upgraded={self.upgraded})"
        )


class Bridge:
    """One migration's target, opened for logins.

    Args:
        spec: the migration spec; its ``[credentials]`` section says which column holds the
            hash and which argon2id profile upgrades go to; ``[bridge] lookup`` says how an
            identifier finds an account (default: ``email``).
        engine: an engine on the target (default: one made from ``target.url``).
        floor: the floor on failed answers' time (default: ``bridge.min_seconds``, else
            measured: 1.5 x one argon2id verification).
        legacy: the legacy source for accounts not migrated yet (default: opened from the
            spec unless ``bridge.legacy_lookup = false`` or the target is an export; False:
            none).

    Raises:
        SpecError: no ``[credentials]`` section, or a lookup field the target lacks.
        TargetError: the target table cannot be read.

    Example::

        bridge = Bridge(load_spec("migration.toml"))
        verdict = bridge.check("alice@example.com", password)
        if verdict.ok: ...
    """

    def __init__(
        self,
        spec: Spec,
        *,
        engine: sa.Engine | None = None,
        floor: AnswerFloor | None = None,
        legacy: LegacySource | bool | None = None,
    ) -> None:
        if spec.credentials is None:
            raise SpecError("credentials", "the bridge verifies passwords: add [credentials]")
        from authmigrate.pipeline.stages import load_keyring

        self.spec = spec
        self.settings = spec.bridge or BridgeSpec(secret="env:BRIDGE_SECRET")
        cred = spec.credentials
        self.profile = cred.profile
        self.keyring = load_keyring(cred)
        self.engine = engine or make_engine(spec.target.url, path="target.url")
        self.table = self._reflect()
        self.key_column = self._column(spec.target_key, "target.key")
        self.password_column = self._column(cred.target_column, "credentials.target_column")
        self.field_names = _profile_fields(spec, self.table)
        self.lookups = [self._lookup(i, name) for i, name in enumerate(self.settings.lookup)]
        if legacy is None or legacy is True:
            self.legacy: LegacySource | None = self._legacy()
        else:
            self.legacy = legacy or None
        self.floor = floor or self._floor()

    # -- setup ------------------------------------------------------------------------------

    def _legacy(self) -> LegacySource | None:
        if not self.settings.legacy_lookup:
            return None
        if self.spec.target.export is not None:
            log.warning("bridge: no legacy lookup with [target] export (files are not carried)")
            return None
        return LegacySource(self.spec)

    def _floor(self) -> AnswerFloor:
        seconds = self.settings.min_seconds
        return AnswerFloor.measured(self.profile) if seconds is None else AnswerFloor(seconds)

    def _reflect(self) -> sa.Table:
        schema, _, name = self.spec.target.table.rpartition(".")
        try:
            return sa.Table(name, sa.MetaData(), autoload_with=self.engine, schema=schema or None)
        except sa.exc.NoSuchTableError:
            raise TargetError(
                f"no table {self.spec.target.table!r} in the target: run the migration first"
            ) from None
        except sa.exc.DBAPIError as exc:
            raise TargetError(f"cannot read the target: {first_line(exc)}") from None

    def _column(self, name: str, path: str) -> sa.Column[Any]:
        if name not in self.table.c:
            raise SpecError(path, f"the target table has no column {name!r}")
        return self.table.c[name]

    def _lookup(self, i: int, name: str) -> tuple[sa.Column[Any], Callable[[str], Any]]:
        path = f"bridge.lookup[{i}]"
        if name not in self.spec.fields:
            raise SpecError(path, f"no field {name!r} in [fields]")
        column = self._column(name, path)
        return column, _normalizer(self.spec, name, column)

    # -- logins -----------------------------------------------------------------------------

    def find(self, identifier: str) -> Account | None:
        """The one account ``identifier`` names (first lookup field that matches exactly one)
        in the target, else one not migrated yet in the legacy source, or None. Reads only."""
        if not isinstance(identifier, str):
            raise TypeError("identifier must be a str")
        row = self._find_row(identifier)
        if row is not None:
            return self._account(row)
        found = self._find_legacy(identifier)
        if found is not None:
            return self._candidate_account(found)
        row = self._find_row(identifier) if self.legacy is not None else None
        return None if row is None else self._account(row)

    def check(self, identifier: str, password: str, *, pad: bool = True) -> Verdict:
        """Verify a login and, on success, upgrade the stored hash (once).

        Every failure costs about the same time (one argon2id verification, then the floor)
        and writes nothing. ``pad=False`` leaves the floor to the caller (the ASGI app waits
        it out without holding a thread: ``await bridge.floor.await_(started)``).

        An account not in the target yet is looked up in the legacy source; a right password
        carries it, with its upgrade and ``run``'s bookkeeping, into the target (:mod:`.legacy`).

        Raises:
            TypeError: ``identifier`` or ``password`` is not a str.
            MissingKeyError: the stored credential needs a key the keyring lacks (setup).
            LockError: a right password for an account only in the legacy source while ``run``
                or ``sync`` held the migration's lock (nothing written; try again).
        """
        if not isinstance(identifier, str) or not isinstance(password, str):
            raise TypeError("identifier and password must be str")
        started = time.perf_counter()
        verdict = self._check(identifier, password)
        if pad and not verdict.ok:
            self.floor.wait(started)
        return verdict

    def _check(self, identifier: str, password: str) -> Verdict:
        if password_too_long(password):
            dummy_verify(self.profile)
            return Verdict(False, False, PASSWORD_TOO_LONG)
        row = self._find_row(identifier)
        if row is not None:
            return self._verify(row, password, retry=True)
        found = self._find_legacy(identifier)
        if found is not None:
            return self._verify_legacy(found, password)
        if self.legacy is not None and (row := self._find_row(identifier)) is not None:
            return self._verify(row, password, retry=True)  # carried by a login meanwhile
        dummy_verify(self.profile)
        return Verdict(False, False, UNKNOWN_USER)

    def _verify_legacy(self, found: Candidate, password: str) -> Verdict:
        """An account not migrated yet: verify against the credential ``run`` would write;
        only a right password carries it (with its upgrade) into the target."""
        account = self._candidate_account(found)
        judged = self._judge(account, found.record.values.get(self.password_column.name), password)
        if isinstance(judged, Verdict):
            return judged
        stored, new = judged
        final = stored if new is None else new
        assert self.legacy is not None
        if self.legacy.carry(found, final):
            return Verdict(True, True, None, account, credential=final, upgraded=new is not None)
        # carried meanwhile (a retry, run, sync): the target has the say now
        row = self._row_by_key(account.key)
        if row is not None:
            return self._verify(row, password, retry=True)
        return Verdict(False, True, CONFLICT, account)

    def _verify(self, row: sa.RowMapping, password: str, *, retry: bool) -> Verdict:
        account = self._account(row)
        judged = self._judge(account, row[self.password_column.name], password)
        if isinstance(judged, Verdict):
            return judged
        stored, new = judged
        if new is None:
            return Verdict(True, True, None, account, credential=stored)
        if self._swap(account.key, row[self.password_column.name], new):
            return Verdict(True, True, None, account, credential=new, upgraded=True)
        # another login (a provider's retry) changed the hash first: verify what it wrote
        fresh = self._row_by_key(account.key)
        if retry and fresh is not None:
            return self._verify(fresh, password, retry=False)
        return Verdict(False, True, CONFLICT, account)

    def _judge(
        self, account: Account, stored: Any, password: str
    ) -> Verdict | tuple[str, str | None]:
        """The failed verdict (no password, malformed hash, wrong password: each after one
        verification's work), or (the stored credential, its upgrade or None) when right."""
        if not account.has_password:
            dummy_verify(self.profile)
            return Verdict(False, True, NO_PASSWORD, account)
        stored = str(stored).strip()
        try:
            identify(stored)
        except UnknownSchemeError:
            dummy_verify(self.profile)
            return Verdict(False, True, MALFORMED_HASH, account)
        ok, new = verify_and_update(password, stored, keyring=self.keyring, profile=self.profile)
        if not ok:
            return Verdict(False, True, WRONG_PASSWORD, account)
        return stored, new

    def _swap(self, key: Any, old: Any, new: str) -> bool:
        """Compare-and-swap the hash in one transaction; True when this call wrote it."""
        stmt = (
            sa.update(self.table)
            .where(self.key_column == key, self.password_column == old)
            .values({self.password_column.name: new})
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    # -- reading ----------------------------------------------------------------------------

    def _select(self) -> sa.Select[Any]:
        cols = {self.key_column.name, self.password_column.name, *self.field_names}
        return sa.select(*(self.table.c[c] for c in sorted(cols)))

    def _find_row(self, identifier: str) -> sa.RowMapping | None:
        if not searchable(identifier):
            return None
        with self.engine.connect() as conn:
            for column, normalize in self.lookups:
                value = normalize(identifier)
                if value is None:
                    continue
                rows = conn.execute(self._select().where(column == value).limit(2)).mappings()
                found = rows.all()
                if len(found) == 1:
                    return found[0]
        return None

    def _find_legacy(self, identifier: str) -> Candidate | None:
        if self.legacy is None or not searchable(identifier):
            return None
        named = [
            (name, normalize)
            for name, (_, normalize) in zip(self.settings.lookup, self.lookups, strict=True)
        ]
        return self.legacy.find(identifier, named)

    def _candidate_account(self, found: Candidate) -> Account:
        values = found.record.values
        stored = values.get(self.password_column.name)
        return Account(
            key=values.get(self.key_column.name),
            fields={name: values.get(name) for name in self.field_names},
            has_password=stored is not None and bool(str(stored).strip()),
        )

    def _row_by_key(self, key: Any) -> sa.RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(self._select().where(self.key_column == key)).mappings().first()

    def rate_key(self, identifier: str) -> str:
        """The key an identifier's attempts are counted under: the first lookup value it
        normalizes to (``01`` and ``1`` for an integer key, spellings the email
        normalization folds), so respelling an identifier does not buy more attempts."""
        if searchable(identifier):
            for name, (_, normalize) in zip(self.settings.lookup, self.lookups, strict=True):
                value = normalize(identifier)
                if value is not None:
                    return f"{name}:{value}"
        return "?:" + identifier.strip().casefold()[:MAX_IDENTIFIER_CHARS]

    def _account(self, row: sa.RowMapping) -> Account:
        stored = row[self.password_column.name]
        return Account(
            key=row[self.key_column.name],
            fields={name: row[name] for name in self.field_names},
            has_password=stored is not None and bool(str(stored).strip()),
        )

    def close(self) -> None:
        """Release the target's (and the legacy source's) connections."""
        self.engine.dispose()
        if self.legacy is not None:
            self.legacy.close()


def searchable(identifier: str) -> bool:
    """True for an identifier worth a query: not blank, not over
    :data:`MAX_IDENTIFIER_CHARS`, no NUL (PostgreSQL refuses it in text) and valid UTF-8
    (a lone surrogate from JSON's ``\\ud800``). Any other is an unknown user, without a query
    that would fail."""
    if not identifier.strip() or len(identifier) > MAX_IDENTIFIER_CHARS or "\x00" in identifier:
        return False
    try:
        identifier.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _profile_fields(spec: Spec, table: sa.Table) -> list[str]:
    """The mapped fields an account shows (to providers, in profiles): every field of the
    target table except one copied from the legacy hash or salt column."""
    assert spec.credentials is not None
    secret = {spec.credentials.column, spec.credentials.salt_column} - {None}
    return [
        name
        for name, f in spec.fields.items()
        if name in table.c and (f.from_ or name) not in secret
    ]


def _normalizer(spec: Spec, name: str, column: sa.Column[Any]) -> Callable[[str], Any]:
    """identifier -> the value to look for in ``column``: the field's own normalization
    (an email is looked up as the migration wrote it), an integer for an integer column;
    None when the identifier cannot be such a value."""
    try:
        integer = column.type.python_type is int
    except NotImplementedError:
        integer = False
    if integer:
        return lambda text: int(text.strip()) if _INTEGER.match(text.strip()) else None
    fspec = spec.fields[name]
    if fspec.template is not None or fspec.value is not None or not fspec.normalize:
        return lambda text: text
    from authmigrate.pipeline.transform import FieldReject, compile_field

    compiled = compile_field(name, fspec)
    source = fspec.from_ or name

    def normalize(text: str) -> Any:
        try:
            return compiled({source: text})
        except (FieldReject, ValueError):
            return None

    return normalize
