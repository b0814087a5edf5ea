"""Sending the outbox over SMTP, exactly once as far as SMTP allows.

For each queued message, in id order:

1. render it (and decrypt its token) while it is still ``queued``;
2. **claim** it: ``status = 'sending'``, ``attempts + 1``, in its own committed transaction,
   conditional on it still being ``queued`` and unchanged since step 1 (two senders never both
   get a message; one refreshed by a concurrent run is rendered again);
3. run the SMTP transaction ``MAIL``, ``RCPT``, ``DATA``, body, then the final ``.``;
4. on ``250``: ``status = 'sent'``, the token ciphertext erased, committed. A message that
   ends ``failed`` has its token erased too.

What a failure means depends on when it happens (docs/notify.md):

- a 4xx reply, or a connection lost *before the final dot was written*: the server cannot have
  accepted the message; it goes back to ``queued`` and is retried after a bounded exponential
  backoff, until ``notify.max_attempts``;
- a 5xx reply: ``failed``, with the server's reply as the reason;
- a connection lost, or no reply, *after the final dot*: the server may have accepted it. The
  message stays ``sending`` (in doubt) and is never resent automatically; :func:`requeue`
  puts it back when the operator decides to;
- a crash (kill -9) anywhere: a claimed message stays ``sending`` (in doubt, as above); every
  other message is either ``sent`` (committed) or still ``queued`` and is sent by the next run.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import heapq
import ipaddress
import json
import logging
import random
import re
import select
import smtplib
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from authmigrate.errors import AuthmigrateError, SpecError
from authmigrate.notify.outbox import (
    OUTBOX_TABLE,
    STATUSES,
    OutboxCipher,
    OutboxKeyError,
    UnknownKeyIdError,
    format_expiry,
    outbox_table,
    row_aad,
    utcnow,
)
from authmigrate.notify.senders import (
    HEARTBEAT,
    LEASE,
    SENDERS_TABLE,
    Registration,
    ensure_tables,
    in_doubt_filter,
)
from authmigrate.notify.templates import Rendered, Templates
from authmigrate.pipeline.tokens import issue_token, parse_stored, stored_form, token_prefix
from authmigrate.spec import (
    NotifySpec,
    SmtpSpec,
    Spec,
    parse_duration,
    resolve_secret,
)

log = logging.getLogger("authmigrate.notify")

DRY_RUN_TOKEN = "DRY-RUN-NOT-A-REAL-TOKEN"
"""What a dry run puts where the token goes: .eml files never carry a real token."""

SendProgress = Callable[["SendReport", int], None]
"""Called by :func:`send_outbox` with (the counts so far, the messages queued at the start)."""

_MAX_ERROR = 500
_PAGE = 200


class NotifyError(AuthmigrateError):
    """Sending cannot go on: the SMTP server is unreachable, refuses the login or the sender.

    The message names the server and the reply, never a password or a token.
    """


class _Transient(Exception):
    """The server did not accept the message; trying again is safe."""


class _Permanent(Exception):
    """The server refused the message for good (5xx)."""


class _InDoubt(Exception):
    """The server may have accepted the message; resending could duplicate it."""


class _Fatal(Exception):
    """No message can be sent with this configuration (login, sender refused, TLS)."""


@dataclass
class SendReport:
    """What one :func:`send_outbox` call did."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    in_doubt: int = 0
    skipped: int = 0
    """Messages another sender claimed first."""
    undecryptable: int = 0
    """Messages whose token no configured outbox key opens (also counted in ``failed``)."""
    reissued: int = 0
    """Messages whose token was expired or nearly so, and went out with a new one."""
    in_doubt_total: int = 0
    """Every message in doubt when the call ended, including those earlier runs left."""

    @property
    def ok(self) -> bool:
        """True when nothing failed and no message is in doubt (from this run or before)."""
        return self.failed == 0 and self.in_doubt == 0 and self.in_doubt_total == 0


# --------------------------------------------------------------------------- SMTP


def _reply(code: int, resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return f"{code} {' '.join(text.split())}"


def _dot_stuff(data: bytes) -> bytes:
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


class _Mailer:
    """One SMTP connection, opened on demand and reopened after a drop."""

    def __init__(self, spec: SmtpSpec, password: str | None) -> None:
        self.spec = spec
        self._password = password
        self._conn: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"_Mailer({self.spec.host}:{self.spec.port}, {self.spec.security})"

    def scrub(self, text: str) -> str:
        """Remove the password from a text that may quote the server."""
        if self._password:
            text = text.replace(self._password, "[redacted]")
        return text

    def connect(self) -> None:
        """Open the connection if needed.

        Raises:
            _Transient: the server cannot be reached (yet).
            _Fatal: TLS or the login fails.
        """
        if self._conn is not None:
            return
        spec = self.spec
        where = f"{spec.host}:{spec.port}"
        conn: smtplib.SMTP | None = None
        if spec.username and spec.security == "none" and not _is_loopback(spec.host):
            raise _Fatal(
                f"refusing to send the SMTP password unencrypted to {where}: "
                'set notify.smtp.security to "starttls" or "tls"'
            )
        try:
            ctx = ssl.create_default_context(cafile=spec.ca_file)
        except (OSError, ValueError) as exc:  # an unreadable or broken ca_file: not transient
            raise _Fatal(f"notify.smtp.ca_file {spec.ca_file!r}: {type(exc).__name__}") from None
        try:
            if spec.security == "tls":
                conn = smtplib.SMTP_SSL(spec.host, spec.port, timeout=spec.timeout, context=ctx)
            else:
                conn = smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout)
            conn.ehlo_or_helo_if_needed()
            if spec.security == "starttls":
                conn.starttls(context=ctx)
                conn.ehlo()
            if spec.username:
                conn.login(spec.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            self._abandon(conn)
            reply = self.scrub(_reply(exc.smtp_code, exc.smtp_error))
            raise _Fatal(f"SMTP login as {spec.username!r} at {where} refused: {reply}") from None
        except (smtplib.SMTPNotSupportedError, ssl.SSLError) as exc:
            self._abandon(conn)
            raise _Fatal(f"SMTP at {where}: {type(exc).__name__}: {self.scrub(str(exc))}") from None
        except (smtplib.SMTPException, OSError) as exc:
            self._abandon(conn)
            reason = self.scrub(str(exc)) or type(exc).__name__
            raise _Transient(f"cannot connect to {where}: {reason}") from None
        self._conn = conn

    def deliver(self, sender: str, recipient: str, data: bytes) -> None:
        """Run one SMTP transaction; raise what its outcome means (see the module docstring)."""
        address, utf8 = smtp_recipient(recipient)
        self.connect()
        conn = self._conn
        assert conn is not None
        if utf8 and not conn.has_extn("smtputf8"):
            raise _Permanent("the server does not offer SMTPUTF8, which this address needs")
        try:
            code, resp = conn.mail(sender, ["SMTPUTF8"] if utf8 else [])
            if code != 250:
                self._reset()
                if code >= 500:
                    reply = self.scrub(_reply(code, resp))
                    raise _Fatal(f"the server refused the sender {sender}: {reply}")
                self._raise_for(code, resp)
            code, resp = conn.rcpt(address)
            if code not in (250, 251):
                self._reset()
                self._raise_for(code, resp)
            code, resp = conn.docmd("DATA")
            if code != 354:
                self._reset()
                self._raise_for(code, resp)
            conn.send(_dot_stuff(data))
            self._check_alive(conn)
            conn.send(b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise _Transient(f"connection lost before the end of the message: {exc}") from None
        try:
            code, resp = conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise _InDoubt(f"no reply after the end of the message ({exc}): delivery unknown")
        if code == 250:
            return
        if 400 <= code < 600:  # an explicit refusal: the server did not take the message
            self._raise_for(code, resp)
        # anything else after the final dot (garbage, 1xx, 3xx, another 2xx) says nothing
        # about whether the server kept the message
        self.close()
        raise _InDoubt(f"unexpected reply after the end of the message: {_reply(code, resp)}")

    def close(self) -> None:
        """Close the connection (QUIT when possible)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def _raise_for(self, code: int, resp: bytes | str) -> None:
        reply = _reply(code, resp)
        if code == 421:
            self.close()
        if 400 <= code < 500 or code < 200:
            raise _Transient(reply)
        raise _Permanent(reply)

    def _reset(self) -> None:
        try:
            assert self._conn is not None
            self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    @staticmethod
    def _check_alive(conn: smtplib.SMTP) -> None:
        """Before the final dot: a server that already hung up never saw the message end."""
        sock = conn.sock
        if sock is None or isinstance(sock, ssl.SSLSocket):
            return
        readable, _, _ = select.select([sock], [], [], 0)
        if readable and not sock.recv(1, socket.MSG_PEEK):
            raise smtplib.SMTPServerDisconnected("the server closed the connection")

    @staticmethod
    def _abandon(conn: smtplib.SMTP | None) -> None:
        if conn is not None:
            with suppress(OSError):
                conn.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}")


def smtp_recipient(recipient: str) -> tuple[str, bool]:
    """The address to put in ``RCPT TO`` and ``To:``, and whether it needs SMTPUTF8.

    One addr-spec only: no display name, no list, no CR/LF, spaces or brackets (header or SMTP
    command injection). An internationalized domain is sent as IDNA (``xn--``); a non-ASCII
    local part needs a server that offers SMTPUTF8.

    Raises:
        ValueError: the reason the address cannot be used.
    """
    local, at, domain = recipient.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("invalid email address")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("invalid email address: the domain has no IDNA form") from None
    utf8 = not local.isascii()
    plain = "a" * len(local) if utf8 else local  # the shape check below, without the letters
    if utf8 and _UNSAFE.search(local):
        raise ValueError("invalid email address")
    address = f"{local}@{domain}"
    if not _ADDRESS.fullmatch(f"{plain}@{domain}") or ".." in address or address.endswith("."):
        raise ValueError("invalid email address")
    return address, utf8


_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f<>()\[\],;:\\\"@]")


def _address_problem(recipient: str) -> str | None:
    """Why ``recipient`` cannot be sent to (None: it can)."""
    try:
        smtp_recipient(recipient)
    except ValueError as exc:
        return str(exc)
    return None


def backoff_delay(attempt: int, backoff: float, max_backoff: float) -> float:
    """Seconds before retry number ``attempt`` (1-based): doubling from ``backoff``, ±20 %
    jitter, never more than ``max_backoff`` (whatever ``attempt`` is)."""
    base = backoff * 2.0 ** min(max(attempt - 1, 0), 62)
    return min(max_backoff, base * random.uniform(0.8, 1.2))


class _RateLimiter:
    """At most ``per_second`` SMTP transactions per second from this process."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.next = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
            now = self.next
        self.next = now + self.interval


# --------------------------------------------------------------------------- the outbox


def _notify_of(spec: Spec) -> NotifySpec:
    if spec.notify is None:
        raise SpecError("notify", "the spec has no [notify] section")
    return spec.notify


def _table(engine: sa.Engine) -> sa.Table | None:
    if not sa.inspect(engine).has_table(OUTBOX_TABLE):
        return None
    return outbox_table(sa.MetaData())


def build_message(
    notify: NotifySpec, row: Any, rendered: Rendered, *, date: str | None = None
) -> EmailMessage:
    """The MIME message for an outbox row (text, plus HTML as an alternative when present)."""
    address, utf8 = smtp_recipient(row.recipient)
    msg = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    msg["From"] = notify.sender
    msg["To"] = address
    msg["Subject"] = rendered.subject
    msg["Date"] = date or formatdate(usegmt=True)
    msg["Message-ID"] = row.message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Authmigrate-Segment"] = row.segment
    msg.set_content(rendered.text)
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html")
    return msg


def _render(
    templates: Templates, row: Any, token: str | None, *, context_json: str | None = None
) -> Rendered:
    context = json.loads((context_json if context_json is not None else row.context) or "{}")
    merged_into = context.pop("merged_into", None)
    expires_at = context.pop("expires_at", None)
    context.pop("token_exp", None)
    user = {"email": row.recipient, **context}
    ctx = templates.context(
        segment=row.segment,
        user=user,
        token=token,
        expires_at=expires_at,
        merged_into=merged_into,
    )
    return templates.render(row.segment, ctx)


def _bounded(text: str, *secrets_: str | None) -> str:
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:_MAX_ERROR]


class _TokenGone(Exception):
    """The target no longer holds the token a message was to carry."""


@dataclass
class _Reissue:
    """A fresh token for a message whose token is expired or about to be."""

    token: str
    ciphertext: str
    context: str
    stored: str
    prefix: str
    old_stored: list[str]
    target: sa.TableClause
    column: str
    prefix_column: str | None

    def replace_in_target(self, conn: sa.Connection) -> bool:
        """Put the new hash where the old token's hash is; False if it is not there any more."""
        col = self.target.c[self.column]
        values: dict[str, Any] = {self.column: self.stored}
        if self.prefix_column:
            values[self.prefix_column] = self.prefix
        update = self.target.update().where(col.in_(self.old_stored)).values(**values)
        return conn.execute(update).rowcount == 1


class _Reissuer:
    """Decides whether a queued token is still worth sending, and makes a new one if not.

    A token whose remaining lifetime is under half of ``tokens.expires_in`` at send time
    (expired, or about to be) is replaced: a new token, valid for the full ``expires_in``
    from now, its hash written to the target in place of the old one.
    """

    def __init__(self, spec: Spec, cipher: OutboxCipher, clock: Callable[[], float]) -> None:
        tokens = spec.tokens
        assert tokens is not None
        self.tokens = tokens
        self.cipher = cipher
        self.clock = clock
        self.ttl = parse_duration(tokens.expires_in)
        self.server_key: str | None = None
        if tokens.server_key is not None:
            self.server_key = resolve_secret(tokens.server_key, path="tokens.server_key")
        schema, _, name = spec.target.table.rpartition(".")
        cols: list[sa.ColumnClause[Any]] = [sa.column(tokens.column)]
        if tokens.prefix_column:
            cols.append(sa.column(tokens.prefix_column))
        self.target = sa.table(name, *cols, schema=schema or None)

    def plan(self, row: Any, token: str) -> _Reissue | None:
        """The re-issue ``row`` needs before it is sent, or None when its token is fresh."""
        context = json.loads(row.context or "{}")
        candidates = _expiry_candidates(context)
        if not candidates:
            return None  # queued without its expiry (no token column known): sent as it is
        now = self.clock()
        if candidates[0] - now >= self.ttl / 2:
            return None
        purpose = self.tokens.purpose
        old = [stored_form(token, purpose, exp, self.server_key) for exp in candidates]
        new_token, stored = issue_token(purpose, self.ttl, self.server_key, now=now)
        exp = parse_stored(stored).expires_at
        context.update(expires_at=format_expiry(exp), token_exp=exp)
        aad = row_aad(row.migration, row.source_key, row.segment)
        return _Reissue(
            token=new_token,
            ciphertext=self.cipher.encrypt(new_token, aad),
            context=json.dumps(context, default=str, sort_keys=True),
            stored=stored,
            prefix=token_prefix(new_token),
            old_stored=old,
            target=self.target,
            column=self.tokens.column,
            prefix_column=self.tokens.prefix_column,
        )


def _expiry_candidates(context: dict[str, Any]) -> list[int]:
    """The token's possible expiry times: exact, or the 60 seconds of the minute shown."""
    exp = context.get("token_exp")
    if isinstance(exp, int):
        return [exp]
    shown = context.get("expires_at")  # queued by an earlier version: minute precision
    if not isinstance(shown, str):
        return []
    try:
        minute = dt.datetime.strptime(shown, "%Y-%m-%d %H:%M UTC").replace(tzinfo=dt.UTC)
    except ValueError:
        return []
    start = int(minute.timestamp())
    return list(range(start, start + 60))


class _Outbox:
    """The row-level state changes of one sender, each its own committed transaction."""

    def __init__(
        self, engine: sa.Engine, table: sa.Table, migration: str, owner: str | None = None
    ) -> None:
        self.engine = engine
        self.t = table
        self.migration = migration
        self.owner = owner
        """The sender id written with each claim (``claimed_by``)."""

    def page(self, after: int) -> list[int]:
        t = self.t
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.id)
                .where(t.c.migration == self.migration, t.c.status == "queued", t.c.id > after)
                .order_by(t.c.id)
                .limit(_PAGE)
            )
            return [r[0] for r in rows]

    def has_queued_tokens(self) -> bool:
        t = self.t
        with self.engine.connect() as conn:
            q = (
                sa.select(t.c.id)
                .where(
                    t.c.migration == self.migration,
                    t.c.status == "queued",
                    t.c.token_ciphertext.is_not(None),
                )
                .limit(1)
            )
            return conn.execute(q).first() is not None

    def count_queued(self) -> int:
        t = self.t
        with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).where(
                t.c.migration == self.migration, t.c.status == "queued"
            )
            return int(conn.execute(q).scalar_one())

    def get(self, msg_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.t).where(self.t.c.id == msg_id)).one_or_none()

    def claim(self, row: Any, reissue: _Reissue | None = None) -> bool:
        """Atomically take ``row`` for sending: only if it is still ``queued`` *and unchanged*
        since it was read and rendered (same attempts, address, context and token ciphertext).

        A concurrent ``authmigrate run`` that refreshed the row (new token) or another sender
        that tried it in between makes the claim fail, so what goes out is always what the
        row holds when it is claimed.

        With ``reissue``, the same transaction stores the new token's ciphertext and expiry in
        the row and replaces the old token's hash in the target by the new one.

        Raises:
            _TokenGone: the target no longer holds the old token (nothing was changed).
        """
        t = self.t
        extra: dict[str, Any] = {}
        if reissue is not None:
            extra = {"token_ciphertext": reissue.ciphertext, "context": reissue.context}
        with self.engine.begin() as conn:
            result = conn.execute(
                t.update()
                .where(
                    t.c.id == row.id,
                    t.c.status == "queued",
                    t.c.attempts == row.attempts,
                    t.c.recipient.is_not_distinct_from(row.recipient),
                    t.c.context == row.context,
                    t.c.token_ciphertext.is_not_distinct_from(row.token_ciphertext),
                )
                .values(
                    status="sending",
                    attempts=t.c.attempts + 1,
                    claimed_at=utcnow(),
                    claimed_by=self.owner,
                    **extra,
                )
            )
            if result.rowcount != 1:
                return False
            if reissue is not None and not reissue.replace_in_target(conn):
                raise _TokenGone(  # leaving the block rolls the claim back
                    "its token is no longer in the target (used, cleared or replaced by the "
                    "application), so it was not re-issued; --requeue failed sends the "
                    "message without a token"
                )
            return True

    def finish(self, msg_id: int, *, was: str, **values: Any) -> None:
        """Move a row on from ``was``; a ``sending`` row only while this sender holds it."""
        t = self.t
        where = [t.c.id == msg_id, t.c.status == was]
        if was == "sending" and self.owner is not None:
            where.append(t.c.claimed_by == self.owner)
        with self.engine.begin() as conn:
            conn.execute(t.update().where(*where).values(**values))

    def fail(self, msg_id: int, *, was: str, reason: str) -> None:
        """``failed`` for good: the token is erased too (docs/notify.md, "When the token is
        erased")."""
        self.finish(msg_id, was=was, status="failed", last_error=reason, token_ciphertext=None)

    def sent(self, msg_id: int) -> None:
        self.finish(
            msg_id,
            was="sending",
            status="sent",
            sent_at=utcnow(),
            token_ciphertext=None,
            last_error=None,
        )


def send_outbox(
    engine: sa.Engine,
    spec: Spec,
    *,
    base_dir: Path | None = None,
    progress: SendProgress | bool | None = None,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    limit: int | None = None,
    heartbeat: float = HEARTBEAT,
    lease: float = LEASE,
    clock: Callable[[], float] = time.time,
    console: Any = None,
) -> SendReport:
    """Send every queued message of the spec's migration.

    Args:
        engine: the target database.
        spec: the migration spec (its ``[notify]`` section says how and what to send).
        base_dir: folder of relative template paths (the spec's folder).
        progress: called with (the counts so far, the messages queued when the send
            started) once before the first message and after each one sent, failed or in
            doubt (``authmigrate.report.notify.NotifyProgress`` draws it on a console);
            default: nothing but the ``authmigrate.notify`` logger.
        backoff: seconds before the first retry of a temporary failure; doubled per attempt
            (with jitter) up to ``max_backoff``.
        limit: stop after this many attempts (for trickling a large outbox).
        heartbeat: seconds between two renewals of this sender's registration.
        lease: seconds one renewal vouches for; a sender silent for longer is taken for
            gone, and ``--requeue in_doubt`` may put its claimed messages back.
        clock: the current time as a Unix timestamp (tests move it): a token with less than
            half of ``tokens.expires_in`` left at send time is re-issued (docs/notify.md).
        console: earlier versions' way to show progress, still understood: a rich console
            to draw it on (``progress`` then says bar or lines, default: a bar on a terminal),
            as ``progress=NotifyProgress(console)`` does.

    Returns:
        The counts of this call (``in_doubt_total``: every message in doubt in the outbox
        when it ended, from this run or earlier ones); :func:`status` gives the whole outbox.

    Raises:
        SpecError: the ``[notify]`` section is missing, a template is broken, or a secret's
            environment variable is unset.
        NotifyError: the SMTP server stays unreachable, or refuses the login or the sender.
            Every message not yet sent stays queued.
        LockError: a rollback of this migration is running.
    """
    if console is not None or isinstance(progress, bool):
        if console is None:
            progress = None  # a bar on no console: nowhere, as before
        else:
            from authmigrate.report.notify import NotifyProgress

            bar = progress if isinstance(progress, bool) else None
            with NotifyProgress(console, bar=bar) as drawn:
                return send_outbox(
                    engine,
                    spec,
                    base_dir=base_dir,
                    progress=drawn,
                    backoff=backoff,
                    max_backoff=max_backoff,
                    limit=limit,
                    heartbeat=heartbeat,
                    lease=lease,
                    clock=clock,
                )
    notify = _notify_of(spec)
    templates = Templates(notify, base_dir=base_dir)
    templates.check()
    report = SendReport()
    table = _table(engine)
    if table is None:
        return report
    outbox = _Outbox(engine, table, spec.migration_name)
    cipher: OutboxCipher | None = None
    reissuer: _Reissuer | None = None
    if outbox.has_queued_tokens():  # a bad key is a bad spec: refused before anything is sent
        cipher = OutboxCipher.from_spec(notify)
        if spec.tokens is not None:
            reissuer = _Reissuer(spec, cipher, clock)
    password = None
    if notify.smtp.password:
        password = resolve_secret(notify.smtp.password, path="notify.smtp.password")
    mailer = _Mailer(notify.smtp, password)
    limiter = _RateLimiter(notify.rate_per_second)
    envelope_from = parseaddr(notify.sender)[1] or notify.sender
    retry: list[tuple[float, int]] = []
    pending: deque[int] = deque()
    rerendered: dict[int, int] = {}
    after = 0
    attempts = 0
    total = outbox.count_queued()

    def next_id() -> int | None:
        nonlocal after
        if retry and retry[0][0] <= time.monotonic():
            return heapq.heappop(retry)[1]
        if not pending:
            pending.extend(outbox.page(after))
            if pending:
                after = pending[-1]
        if pending:
            return pending.popleft()
        if retry:
            time.sleep(max(0.0, retry[0][0] - time.monotonic()))
            return heapq.heappop(retry)[1]
        return None

    registration = Registration(
        engine, spec.migration_name, "notify", heartbeat=heartbeat, lease=lease
    )
    registration.start(exclude="rollback")  # LockError while a rollback runs
    outbox.owner = registration.id

    def tick(report: SendReport) -> None:
        if progress is not None:
            progress(report, total)

    try:
        tick(report)
        try:
            while limit is None or attempts < limit:
                msg_id = next_id()
                if msg_id is None:
                    break
                row = outbox.get(msg_id)
                if row is None or row.status != "queued":
                    continue
                problem = _address_problem(row.recipient) if row.recipient else "no email address"
                if problem is not None:
                    outbox.fail(msg_id, was="queued", reason=problem)
                    report.failed += 1
                    tick(report)
                    continue
                token = None
                if row.token_ciphertext is not None:
                    if cipher is None:  # queued by a run that started after this sender
                        cipher = OutboxCipher.from_spec(notify)
                        if spec.tokens is not None:
                            reissuer = _Reissuer(spec, cipher, clock)
                    try:
                        token = _open_token(cipher, row)
                    except OutboxKeyError as exc:
                        _undecryptable(outbox, row, exc)
                        report.failed += 1
                        report.undecryptable += 1
                        tick(report)
                        continue
                reissue = None
                if token is not None and reissuer is not None:
                    reissue = reissuer.plan(row, token)
                    if reissue is not None:
                        token = reissue.token
                try:
                    rendered = _render(
                        templates, row, token, context_json=reissue.context if reissue else None
                    )
                    data = build_message(notify, row, rendered).as_bytes()
                except Exception as exc:  # a template or header problem of this one message
                    reason = _bounded(
                        f"cannot build the message: {type(exc).__name__}: {exc}", token
                    )
                    outbox.fail(msg_id, was="queued", reason=reason)
                    report.failed += 1
                    tick(report)
                    continue
                _connect_with_retries(mailer, notify.max_attempts, backoff, max_backoff)
                limiter.wait()
                registration.check()  # never claim without a live registration
                try:
                    claimed = outbox.claim(row, reissue) if reissue else outbox.claim(row)
                except _TokenGone as exc:
                    outbox.fail(msg_id, was="queued", reason=str(exc))
                    report.failed += 1
                    tick(report)
                    continue
                if reissue is not None and claimed:
                    report.reissued += 1
                if not claimed:
                    # Changed under us. Refreshed by a re-run (same attempts): render it again
                    # from what it holds now. Tried by another sender (more attempts): that
                    # sender has scheduled its retry, with its backoff.
                    again = outbox.get(msg_id)
                    if (
                        again is not None
                        and again.status == "queued"
                        and again.attempts == row.attempts
                        and rerendered.get(msg_id, 0) < 3  # never loop on a changing row
                    ):
                        rerendered[msg_id] = rerendered.get(msg_id, 0) + 1
                        pending.appendleft(msg_id)
                        continue
                    report.skipped += 1
                    continue
                attempts += 1
                _deliver_one(
                    mailer,
                    outbox,
                    row,
                    envelope_from,
                    data,
                    token,
                    report,
                    retry,
                    notify.max_attempts,
                    backoff,
                    max_backoff,
                )
                tick(report)
        finally:
            mailer.close()
    finally:
        registration.stop()  # what this run left ``sending`` is now in doubt
    report.in_doubt_total = sending_counts(engine, spec)["in_doubt"]
    return report


def _open_token(cipher: OutboxCipher, row: Any) -> str:
    return cipher.decrypt(row.token_ciphertext, row_aad(row.migration, row.source_key, row.segment))


def _undecryptable(outbox: _Outbox, row: Any, exc: OutboxKeyError) -> None:
    """One row whose token cannot be read fails alone, with the reason; the rest go out.

    A token sealed under a key that is not configured keeps its ciphertext: configure the old
    key and ``--requeue failed`` sends it with its token. One that no key opens (an altered
    row) is erased, like every failed message's token.
    """
    if isinstance(exc, UnknownKeyIdError):
        outbox.finish(row.id, was="queued", status="failed", last_error=str(exc))
    else:
        outbox.fail(row.id, was="queued", reason=str(exc))
    log.warning("message %s: %s", row.message_id, exc)


def _deliver_one(
    mailer: _Mailer,
    outbox: _Outbox,
    row: Any,
    envelope_from: str,
    data: bytes,
    token: str | None,
    report: SendReport,
    retry: list[tuple[float, int]],
    max_attempts: int,
    backoff: float,
    max_backoff: float,
) -> None:
    attempt = row.attempts + 1
    try:
        mailer.deliver(envelope_from, row.recipient, data)
    except _Transient as exc:
        reason = _bounded(mailer.scrub(str(exc)), token)
        if attempt >= max_attempts:
            outbox.fail(row.id, was="sending", reason=f"gave up after {attempt} attempts: {reason}")
            report.failed += 1
            log.warning("message %s failed after %d attempts", row.message_id, attempt)
            return
        outbox.finish(row.id, was="sending", status="queued", last_error=reason)
        report.retried += 1
        delay = backoff_delay(attempt, backoff, max_backoff)
        heapq.heappush(retry, (time.monotonic() + delay, row.id))
        log.info("message %s: temporary failure, retry in %.1fs: %s", row.message_id, delay, reason)
    except _Permanent as exc:
        reason = _bounded(mailer.scrub(str(exc)), token)
        outbox.fail(row.id, was="sending", reason=reason)
        report.failed += 1
        log.warning("message %s refused: %s", row.message_id, reason)
    except _InDoubt as exc:
        reason = _bounded(mailer.scrub(str(exc)), token)
        outbox.finish(row.id, was="sending", last_error=f"in doubt: {reason}")
        report.in_doubt += 1
        log.warning("message %s in doubt (not resent): %s", row.message_id, reason)
    except _Fatal as exc:
        outbox.finish(
            row.id,
            was="sending",
            status="queued",
            attempts=row.attempts,
            last_error=_bounded(mailer.scrub(str(exc)), token),
        )
        raise NotifyError(mailer.scrub(str(exc))) from None
    else:
        outbox.sent(row.id)
        report.sent += 1
        log.debug("message %s sent", row.message_id)


def _connect_with_retries(mailer: _Mailer, tries: int, backoff: float, max_backoff: float) -> None:
    for attempt in range(1, tries + 1):
        try:
            mailer.connect()
            return
        except _Fatal as exc:
            raise NotifyError(str(exc)) from None
        except _Transient as exc:
            if attempt == tries:
                raise NotifyError(f"{exc} (after {tries} tries)") from None
            time.sleep(backoff_delay(attempt, backoff, max_backoff))


def status(engine: sa.Engine, spec: Spec) -> dict[str, dict[str, int]]:
    """Counts of the migration's messages: ``{segment: {status: count}}``.

    Every status of :data:`~authmigrate.notify.outbox.STATUSES` is present for each segment.
    ``sending`` outside a running ``notify`` means *in doubt* (see docs/notify.md).
    """
    table = _table(engine)
    if table is None:
        return {}
    counts: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.segment, table.c.status, sa.func.count())
            .where(table.c.migration == spec.migration_name)
            .group_by(table.c.segment, table.c.status)
        )
        for segment, state, n in rows:
            counts.setdefault(segment, dict.fromkeys(STATUSES, 0))[state] = int(n)
    return dict(sorted(counts.items()))


def dry_run(engine: sa.Engine, spec: Spec, out_dir: Path, *, base_dir: Path | None = None) -> int:
    """Render every queued message to ``out_dir/<id>-<segment>.eml`` instead of sending it.

    Nothing in the outbox changes and no secret is needed: a token's place holds
    :data:`DRY_RUN_TOKEN`, so the files never carry a real token. Returns the file count.

    Raises:
        SpecError: no ``[notify]`` section, or a broken template.
    """
    notify = _notify_of(spec)
    templates = Templates(notify, base_dir=base_dir)
    templates.check()
    table = _table(engine)
    out_dir.mkdir(parents=True, exist_ok=True)
    if table is None:
        return 0
    written = 0
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*(c for c in table.c if c.name != "claimed_by"))  # may predate it
            .where(table.c.migration == spec.migration_name, table.c.status == "queued")
            .order_by(table.c.id)
        )
        for row in rows:
            if not row.recipient or _address_problem(row.recipient):
                continue  # ``notify`` marks it failed with the reason
            token = DRY_RUN_TOKEN if row.token_ciphertext is not None else None
            try:
                msg = build_message(notify, row, _render(templates, row, token))
            except Exception as exc:  # this message only; ``notify`` marks it failed
                log.warning("dry run: message %s cannot be built: %s", row.id, type(exc).__name__)
                continue
            (out_dir / f"{row.id:08d}-{row.segment}.eml").write_bytes(msg.as_bytes())
            written += 1
    return written


def requeue(
    engine: sa.Engine,
    spec: Spec,
    *,
    which: Literal["in_doubt", "failed"],
    older_than: float = 0.0,
) -> int:
    """Put messages back in the queue: an operator's decision, never automatic.

    ``in_doubt``: messages left ``sending`` (claimed at least ``older_than`` seconds ago) by a
    sender that is gone, after checking the mail server's log for their Message-ID; resending
    one that did arrive sends it twice (with the same Message-ID). A message a running
    ``notify`` has claimed is never put back: its sender is alive (see
    :mod:`authmigrate.notify.senders`). ``failed``: after fixing what the reason says; their
    attempt count starts again. Returns the number of messages requeued.
    """
    table = _table(engine)
    if table is None:
        return 0
    if which == "in_doubt":
        ensure_tables(engine)
        cutoff = utcnow() - dt.timedelta(seconds=older_than)
        with engine.begin() as conn:
            gone = in_doubt_filter(conn, table, spec.migration_name)
            update = (
                table.update()
                .where(gone, table.c.claimed_at <= cutoff)
                .values(status="queued", claimed_by=None)
            )
            return int(conn.execute(update).rowcount or 0)
    where = [
        table.c.migration == spec.migration_name,
        table.c.status == "failed",
        table.c.recipient.is_not(None),
    ]
    with engine.begin() as conn:
        update = table.update().where(*where).values(status="queued", attempts=0)
        return int(conn.execute(update).rowcount or 0)


def sending_counts(engine: sa.Engine, spec: Spec) -> dict[str, int]:
    """The migration's ``sending`` messages: ``{"in_doubt": n, "held": m}``.

    ``in_doubt``: their sender is gone (stopped, killed, or silent past its lease), whichever
    run it was; only the operator can decide their fate. ``held``: a running ``notify`` is
    sending them right now.
    """
    table = _table(engine)
    if table is None:
        return {"in_doubt": 0, "held": 0}
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        columns = {c["name"] for c in insp.get_columns(OUTBOX_TABLE)}
        if "claimed_by" in columns and insp.has_table(SENDERS_TABLE):
            gone: Any = in_doubt_filter(conn, table, spec.migration_name)
        else:  # written by an earlier version, whose senders are all gone
            gone = sa.and_(table.c.migration == spec.migration_name, table.c.status == "sending")
        in_doubt = int(conn.execute(sa.select(sa.func.count()).where(gone)).scalar_one())
        sending = int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    table.c.migration == spec.migration_name, table.c.status == "sending"
                )
            ).scalar_one()
        )
    return {"in_doubt": in_doubt, "held": sending - in_doubt}
