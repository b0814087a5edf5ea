"""The transactional outbox: one row per message to send, written with the batch.

:class:`OutboxStage` queues a message for every record of an enabled segment and for every
merged duplicate, in the same target transaction as the accounts themselves: a batch that
commits has its messages queued, one that rolls back has none. ``authmigrate notify`` then
sends them (:mod:`authmigrate.notify.sender`).

A message that needs the user's token (its templates use ``token`` or ``reset_link``) stores it
encrypted with AES-256-GCM under the key named by ``notify.outbox_key``, bound to its row
(migration, source key, segment) as associated data; the ciphertext is erased once the message
is sent or has failed for good (kept only while ``queued`` or in doubt). Nothing else in the
outbox is secret.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import suppress
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authmigrate.errors import AuthmigrateError, SpecError
from authmigrate.notify.templates import Templates
from authmigrate.pipeline.batch import Batch
from authmigrate.pipeline.tokens import parse_stored
from authmigrate.spec import NotifySpec, Spec, resolve_secret

OUTBOX_TABLE = "authmigrate_outbox"
STATUSES = ("queued", "sending", "sent", "failed")
"""``sending`` after a crash means *in doubt*: see docs/notify.md."""

_CIPHER_VERSION = "v2"
"""``v2:<key id>:<base64>``; ``v1:<base64>`` (no key id) is still read."""
_CHUNK = 500


class OutboxKeyError(AuthmigrateError):
    """The outbox key is missing, malformed, or does not decrypt a stored token."""

    exit_code = 2


def utcnow() -> dt.datetime:
    """Naive UTC (what every supported database stores the same way)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def source_key_type(key_type: Any | None = None) -> Any:
    """The outbox's ``source_key`` column type for a source key of ``key_type``.

    Text where a unique index takes any length (PostgreSQL, SQLite), so a long text key
    fits; on MySQL/MariaDB, whose index entries hold at most 3072 bytes, a VARCHAR as long
    as the key's own type (at least 255 characters, at most 512).
    """
    length = getattr(key_type, "length", None) or (255 if key_type is not None else 512)
    if isinstance(key_type, sa.Integer | sa.Numeric | sa.DateTime | sa.Date | sa.Uuid):
        length = 255
    from sqlalchemy.dialects import mysql

    from authmigrate.sinks.mysql import BINARY_COLLATION

    # compared exactly: MySQL's default collation takes 'Bob' and 'bob' for one key
    size = min(max(length, 255), 512)
    return sa.Text().with_variant(
        mysql.VARCHAR(size, collation=BINARY_COLLATION), "mysql", "mariadb"
    )


def outbox_table(metadata: sa.MetaData, key_type: Any | None = None) -> sa.Table:
    """Declare (or return the already declared) outbox table in ``metadata``; ``key_type``
    (the source key's type) sizes its ``source_key`` column."""
    if OUTBOX_TABLE in metadata.tables:
        return metadata.tables[OUTBOX_TABLE]
    return sa.Table(
        OUTBOX_TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("migration", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("source_key", source_key_type(key_type), nullable=False),
        sa.Column("segment", sa.String(32), nullable=False),
        sa.Column("recipient", sa.Text, nullable=True),
        sa.Column("context", sa.Text, nullable=False, default="{}"),
        sa.Column("token_ciphertext", sa.Text, nullable=True),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, default="queued"),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=True),
        sa.Column("claimed_by", sa.String(36), nullable=True),  # the sender's registration
        sa.Column("sent_at", sa.DateTime, nullable=True),
        sa.UniqueConstraint("migration", "source_key", "segment", name="uq_authmigrate_outbox"),
        sa.Index("ix_authmigrate_outbox_status", "migration", "status", "id"),
    )


def generate_outbox_key() -> str:
    """A new outbox key (URL-safe base64 of 32 random bytes) to put in the environment.

    ``python -c "from authmigrate.notify import generate_outbox_key as g; print(g())"``
    """
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


class UnknownKeyIdError(OutboxKeyError):
    """A token was sealed under an outbox key that is not configured (an old key).

    ``key_id`` names the key (a fingerprint, nothing secret): set the key in one of
    ``notify.outbox_old_keys``' variables to read it.
    """

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"the token was sealed under outbox key id {key_id}, which is not configured "
            "(set that key in a variable named by notify.outbox_old_keys)"
        )


_KEY_ALPHABET = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def decode_outbox_key(text: str) -> bytes:
    """The 32 bytes of an outbox key given as base64 (standard or URL-safe, padded or not).

    Strict: every character must belong to one base64 alphabet and the key must decode to
    exactly 32 bytes. Nothing is dropped or guessed, so a mangled key is refused instead of
    becoming another key. Messages never quote the key.

    Raises:
        OutboxKeyError: the reason the text is not a key.
    """
    text = text.strip()
    if not _KEY_ALPHABET.fullmatch(text):
        raise OutboxKeyError(
            "is not base64: it has a character outside the base64 alphabet "
            "(make a key with generate_outbox_key)"
        )
    if ("+" in text or "/" in text) and ("-" in text or "_" in text):
        raise OutboxKeyError("is not base64: it mixes the standard and URL-safe alphabets")
    body = text.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(
            (body + "=" * (-len(body) % 4)).replace("+", "-").replace("/", "_")
        )
    except (binascii.Error, ValueError):
        raise OutboxKeyError("is not valid base64 (a truncated key?)") from None
    if len(raw) != 32:
        raise OutboxKeyError(
            f"decodes to {len(raw)} bytes; an outbox key is 32 bytes (44 base64 characters)"
        )
    return raw


def key_id(raw: bytes) -> str:
    """The id written with every ciphertext: 8 hex digits of a hash of the key.

    It tells which key sealed a token (for rotation) and reveals nothing useful about the key.
    """
    return hashlib.sha256(b"authmigrate-outbox-key-id\0" + raw).hexdigest()[:8]


class OutboxCipher:
    """AES-256-GCM for tokens at rest in the outbox; the keys never show in a repr.

    Each ciphertext names the key that sealed it (``v2:<key id>:<base64>``), so the key can be
    rotated while messages are queued: new tokens are sealed under ``key``, and tokens sealed
    under any of ``old_keys`` are still read.

    Args:
        key: the current key: 32 bytes, or their (URL-safe or standard) base64 form, such as
            the output of :func:`generate_outbox_key` or ``Fernet.generate_key()``.
        old_keys: earlier keys, only for reading.

    Raises:
        OutboxKeyError: a key is not 32 bytes in base64.
    """

    def __init__(self, key: bytes | str, old_keys: Sequence[bytes | str] = ()) -> None:
        raw = _raw_key(key)
        self.key_id = key_id(raw)
        self._current = AESGCM(raw)
        self._keys: dict[str, AESGCM] = {key_id(r): AESGCM(r) for r in map(_raw_key, old_keys)}
        self._keys[self.key_id] = self._current

    def __repr__(self) -> str:
        return f"OutboxCipher(key id {self.key_id}, {len(self._keys) - 1} old key(s), <hidden>)"

    @classmethod
    def from_spec(cls, notify: NotifySpec) -> OutboxCipher:
        """Read the keys that ``notify.outbox_key`` and ``notify.outbox_old_keys`` name.

        Raises:
            SpecError: a variable is not set, or its value is not a key (the message names the
                variable, never the value).
        """
        refs = [("notify.outbox_key", notify.outbox_key)] + [
            (f"notify.outbox_old_keys[{i}]", ref) for i, ref in enumerate(notify.outbox_old_keys)
        ]
        keys: list[bytes] = []
        for path, ref in refs:
            value = resolve_secret(ref, path=path)
            try:
                keys.append(decode_outbox_key(value))
            except OutboxKeyError as exc:
                raise SpecError(path, f"environment variable {ref[4:]} {exc}") from None
        return cls(keys[0], keys[1:])

    def encrypt(self, token: str, aad: bytes) -> str:
        """Encrypt a token under the current key, bound to ``aad`` (the row's identity)."""
        nonce = secrets.token_bytes(12)
        sealed = self._current.encrypt(nonce, token.encode("utf-8"), self._aad(self.key_id, aad))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_CIPHER_VERSION}:{self.key_id}:{body}"

    def decrypt(self, ciphertext: str, aad: bytes) -> str:
        """Decrypt a token sealed by :meth:`encrypt` with the same ``aad``.

        Ciphertexts of the first format (``v1:``, no key id) are tried with every key.

        Raises:
            UnknownKeyIdError: the key that sealed it is not configured.
            OutboxKeyError: a ciphertext moved to another row or altered (or a ``v1``
                ciphertext that no configured key opens).
        """
        version, _, rest = ciphertext.partition(":")
        if version == _CIPHER_VERSION:
            kid, _, body = rest.partition(":")
            aead = self._keys.get(kid)
            if aead is None:
                if not re.fullmatch(r"[0-9a-f]{8}", kid):
                    raise OutboxKeyError("cannot decrypt a queued token: the row was altered")
                raise UnknownKeyIdError(kid)
            return self._open(aead, body, self._aad(kid, aad))
        if version == "v1":
            for aead in self._keys.values():
                with suppress(OutboxKeyError):
                    return self._open(aead, rest, aad)
        raise OutboxKeyError(
            "cannot decrypt a queued token: wrong notify.outbox_key or altered row"
        )

    @staticmethod
    def _aad(kid: str, aad: bytes) -> bytes:
        return f"{_CIPHER_VERSION}\0{kid}\0".encode() + aad

    @staticmethod
    def _open(aead: AESGCM, body: str, aad: bytes) -> str:
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            return aead.decrypt(raw[:12], raw[12:], aad).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            raise OutboxKeyError(
                "cannot decrypt a queued token: wrong notify.outbox_key or altered row"
            ) from None


def _raw_key(key: bytes | str) -> bytes:
    if isinstance(key, bytes) and len(key) == 32:
        return key
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    return decode_outbox_key(text)


def row_aad(migration: str, source_key: str, segment: str) -> bytes:
    """The associated data that binds a token ciphertext to its outbox row."""
    return f"authmigrate-outbox\0{migration}\0{source_key}\0{segment}".encode()


def message_id(migration: str, source_key: str, segment: str, sender: str) -> str:
    """The Message-ID of a message: the same for every attempt, so receivers can dedupe."""
    digest = hashlib.sha256(row_aad(migration, source_key, segment)).hexdigest()[:40]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "authmigrate.invalid"
    return f"<am.{digest}@{domain}>"


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class OutboxStage:
    """Pipeline stage: queues the messages of a batch (implements ``batch.Stage``).

    One message per record whose segment is enabled, and one per merged duplicate (segment
    ``merged``), addressed to the record's ``notify.email_field``. A record without an address
    is queued as ``failed`` ("no email address") so that ``--status`` shows it.

    A record already in the outbox (a re-run over the same key) keeps one row: a still
    ``queued`` message is refreshed with the new token and address; one that was sent, failed
    or is in doubt is left alone, so nobody is told twice.

    Args:
        notify: the ``[notify]`` section.
        migration: the migration's name (``spec.migration_name``).
        key: the outbox key itself; by default read from ``notify.outbox_key``.
        token_column: the target column holding the stored token string, for ``expires_at``
            in the templates (``spec.tokens.column``); optional.
        base_dir: folder of relative template paths (the spec's folder).
        accounts: (accounts table, key column) of the target (``target.table``,
            ``spec.target_key``), whose key type sizes the outbox's ``source_key``.

    Raises:
        SpecError: the outbox key is unset or malformed, or a template does not compile.
    """

    secret_columns: frozenset[str] = frozenset()

    def __init__(
        self,
        notify: NotifySpec,
        migration: str,
        *,
        key: bytes | str | None = None,
        token_column: str | None = None,
        base_dir: Path | None = None,
        accounts: tuple[str, str] | None = None,
    ) -> None:
        self.notify = notify
        self.migration = migration
        self.token_column = token_column
        self.templates = Templates(notify, base_dir=base_dir)
        self.templates.check()
        self._cipher = OutboxCipher(key) if key is not None else OutboxCipher.from_spec(notify)
        self._table: sa.Table | None = None
        self.accounts = accounts
        """(accounts table, key column), whose key type sizes the outbox's ``source_key``."""

    @classmethod
    def from_spec(cls, spec: Spec, *, base_dir: Path | None = None) -> OutboxStage:
        """The stage for a whole spec (which must have a ``[notify]`` section)."""
        if spec.notify is None:
            raise SpecError("notify", "the spec has no [notify] section")
        column = spec.tokens.column if spec.tokens is not None else None
        return cls(
            spec.notify,
            spec.migration_name,
            token_column=column,
            base_dir=base_dir,
            accounts=(spec.target.table, spec.target_key),
        )

    def __repr__(self) -> str:
        return f"OutboxStage(migration={self.migration!r})"

    def columns(self) -> list[sa.Column[Any]]:
        """No column in the target table."""
        return []

    def tables(self, metadata: sa.MetaData) -> None:
        """Declare ``authmigrate_outbox``, its ``source_key`` sized from the accounts
        table's key column when that is declared in ``metadata`` already."""
        key_type = None
        if self.accounts is not None and self.accounts[0] in metadata.tables:
            table, key = self.accounts
            key_type = (
                metadata.tables[table].c[key].type if key in metadata.tables[table].c else None
            )
        self._table = outbox_table(metadata, key_type)

    def process(self, batch: Batch) -> None:
        """Nothing to do before the write: the messages are built from what is committed."""

    def write(self, conn: sa.Connection, batch: Batch, run_id: str) -> None:
        """Queue the batch's messages, inside the batch's transaction."""
        table = self._table if self._table is not None else outbox_table(sa.MetaData())
        rows = self.rows(batch, run_id)
        if not rows:
            return
        existing: dict[tuple[str, str], str] = {}
        keys = sorted({r["source_key"] for r in rows})
        for chunk in _chunks(keys):
            found = conn.execute(
                sa.select(table.c.source_key, table.c.segment, table.c.status).where(
                    table.c.migration == self.migration, table.c.source_key.in_(chunk)
                )
            )
            existing.update({(k, s): st for k, s, st in found})
        fresh = [r for r in rows if (r["source_key"], r["segment"]) not in existing]
        for chunk in _chunks(fresh):
            conn.execute(table.insert(), chunk)
        for r in rows:
            if existing.get((r["source_key"], r["segment"])) != "queued":
                continue
            conn.execute(
                table.update()
                .where(
                    table.c.migration == self.migration,
                    table.c.source_key == r["source_key"],
                    table.c.segment == r["segment"],
                    table.c.status == "queued",
                )
                .values(
                    run_id=run_id,
                    recipient=r["recipient"],
                    context=r["context"],
                    token_ciphertext=r["token_ciphertext"],
                    status=r["status"],
                    last_error=r["last_error"],
                )
            )

    def rows(self, batch: Batch, run_id: str) -> list[dict[str, Any]]:
        """The outbox rows for a batch (ciphertext only; never a plaintext token)."""
        now = utcnow()
        rows: list[dict[str, Any]] = []
        enabled = self.templates.enabled
        for record in batch.records:
            if record.segment in enabled:
                rows.append(
                    self._row(
                        run_id, now, record.key, record.segment, record.values, record.token, None
                    )
                )
        if "merged" in enabled:
            for reject in batch.merged:
                rows.append(
                    self._row(
                        run_id,
                        now,
                        reject.key,
                        "merged",
                        reject.values or {},
                        None,
                        reject.merged_into,
                    )
                )
        return rows

    def _row(
        self,
        run_id: str,
        now: dt.datetime,
        key: Any,
        segment: str,
        values: dict[str, Any],
        token: str | None,
        merged_into: Any,
    ) -> dict[str, Any]:
        source_key = str(key)
        recipient = values.get(self.notify.email_field)
        recipient = str(recipient).strip() if recipient not in (None, "") else None
        context: dict[str, Any] = {f: values.get(f) for f in self.notify.context_fields}
        if merged_into is not None:
            context["merged_into"] = str(merged_into)
        ciphertext = None
        if token is not None and recipient and self.templates.needs_token(segment):
            ciphertext = self._cipher.encrypt(token, row_aad(self.migration, source_key, segment))
            exp = self._token_exp(values)
            if exp is not None:
                context["expires_at"] = format_expiry(exp)
                context["token_exp"] = exp  # notify re-issues the token when it is due
        return {
            "migration": self.migration,
            "run_id": run_id,
            "source_key": source_key,
            "segment": segment,
            "recipient": recipient,
            "context": json.dumps(context, default=str, sort_keys=True),
            "token_ciphertext": ciphertext,
            "message_id": message_id(self.migration, source_key, segment, self.notify.sender),
            "status": "queued" if recipient else "failed",
            "attempts": 0,
            "last_error": None if recipient else "no email address",
            "created_at": now,
        }

    def _token_exp(self, values: dict[str, Any]) -> int | None:
        if not self.token_column:
            return None
        stored = values.get(self.token_column)
        try:
            return parse_stored(stored).expires_at if isinstance(stored, str) else None
        except ValueError:
            return None


def format_expiry(exp: int) -> str:
    """A token's expiry as the templates show it (``2026-12-01 12:00 UTC``)."""
    return dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def rollback_outbox(conn: sa.Connection, migration: str) -> int:
    """Delete every outbox row of ``migration`` (for ``authmigrate rollback``); returns the count.

    Does nothing when the outbox table does not exist.
    """
    if not sa.inspect(conn).has_table(OUTBOX_TABLE):
        return 0
    table = outbox_table(sa.MetaData())
    result = conn.execute(table.delete().where(table.c.migration == migration))
    return int(result.rowcount or 0)
