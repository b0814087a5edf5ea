"""A real SMTP server for the notify tests: aiosmtpd on a free port, plus a connection-dropping proxy.

With ``tls="starttls"`` the server requires STARTTLS before anything else; with
``tls="implicit"`` it speaks TLS from the first byte (port-465 style). Both use a self-signed
certificate for 127.0.0.1 made by :func:`self_signed_cert` with the ``cryptography`` package.

:func:`smtp_server` starts an aiosmtpd server whose handler records every accepted message and
can be told to answer the next DATA commands with scripted replies (``451 ...`` then the normal
``250``). :class:`DroppingProxy` sits in front of it and cuts the first connections at a chosen
point of the SMTP dialogue, as a server or network that drops mid-stream does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ACCEPT_THEN_HANG_UP = "accept-then-hang-up"
"""A scripted reply: keep the message, then drop the connection before the 250 is sent."""

DELAY = "delay:"
"""A scripted reply ``delay:SECONDS``: wait that long after the end of data, then keep the
message and answer 250, unless the client is gone by then (a slow server; the message is
in flight, claimed by its sender, for that long)."""


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``127.0.0.1``/``localhost`` and its key, as PEM files.

    The certificate is its own CA: pass its path as ``notify.smtp.ca_file``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authmigrate test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def free_port() -> int:
    """A TCP port nobody listens on right now (tests/pg_server.py's picker: workers of
    pytest-xdist never get the same one)."""
    from tests.pg_server import free_port as pick

    return pick()


@dataclass
class Received:
    """One message the server accepted."""

    rcpt: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())  # type: ignore[attr-defined]

    def html(self) -> str | None:
        body = self.message.get_body(("html",))
        return None if body is None else str(body.get_content())  # type: ignore[attr-defined]


@dataclass
class RecordingHandler:
    """Accepts and records messages; ``script`` holds replies for the next DATA commands.

    A scripted ``250 ...`` or :data:`ACCEPT_THEN_HANG_UP` keeps the message; any other reply
    refuses it.
    """

    received: list[Received] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    data_commands: int = 0
    times: list[float] = field(default_factory=list)
    """``time.monotonic()`` of every DATA end the handler saw."""
    tls: list[bool] = field(default_factory=list)
    """Whether each accepted message came over TLS."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_commands += 1
            self.times.append(time.monotonic())
            reply = self.script.pop(0) if self.script else "250 2.0.0 OK"
        if reply.startswith(DELAY):
            await asyncio.sleep(float(reply.removeprefix(DELAY)))
            if server.transport is None or server.transport.is_closing():
                return "451 4.4.2 the client left"  # nobody to answer: the message is dropped
            reply = "250 2.0.0 OK (after a delay)"
        with self.lock:
            if reply == ACCEPT_THEN_HANG_UP or reply.startswith("250"):
                self.received.append(Received(list(envelope.rcpt_tos), bytes(envelope.content)))
                self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        if reply == ACCEPT_THEN_HANG_UP:
            server.transport.abort()
            return "250 2.0.0 OK (never reaches the client)"
        return reply

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r for m in self.received for r in m.rcpt)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler


@contextmanager
def smtp_server(
    *,
    username: str | None = None,
    password: str | None = None,
    tls: Literal["starttls", "implicit"] | None = None,
    cert: tuple[Path, Path] | None = None,
    smtputf8: bool = False,
) -> Iterator[SmtpServer]:
    """Run a recording aiosmtpd server on 127.0.0.1; with credentials, AUTH is required.

    ``tls="starttls"``: STARTTLS required before MAIL and AUTH; ``tls="implicit"``: TLS from
    the first byte. Both need ``cert`` (from :func:`self_signed_cert`); AUTH then requires TLS.
    """
    handler = RecordingHandler()
    kwargs: dict[str, Any] = {}
    if username is not None:

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == username
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False)

        kwargs = {
            "authenticator": authenticator,
            "auth_required": True,
            # aiosmtpd counts only STARTTLS as TLS for AUTH; an implicit-TLS connection
            # is encrypted from the start (checked through RecordingHandler.tls)
            "auth_require_tls": tls == "starttls",
        }
    if tls is not None:
        assert cert is not None, "TLS needs a certificate"
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(*cert)
        if tls == "starttls":
            kwargs |= {"tls_context": server_ctx, "require_starttls": True}
        else:
            kwargs |= {"ssl_context": server_ctx}
    port = free_port()
    kwargs["enable_SMTPUTF8"] = smtputf8
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


class DroppingProxy:
    """A TCP proxy that cuts its first ``times`` connections at a point of the SMTP dialogue.

    ``at="data_command"``: when the client sends ``DATA`` (never forwarded), the connection is
    closed: the server cannot have received the message.
    ``at="mid_body"``: after the server's 354, the first body bytes are forwarded in part and
    the connection is closed before the message's end reaches the server.
    """

    def __init__(
        self, upstream_port: int, *, at: Literal["data_command", "mid_body"], times: int = 1
    ) -> None:
        self.upstream_port = upstream_port
        self.at = at
        self.remaining = times
        self.drops = 0
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            cut = self.remaining > 0
            self.remaining -= 1
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()
            threading.Thread(
                target=self._pump_up, args=(client, upstream, cut), daemon=True
            ).start()

    @staticmethod
    def _pump_down(upstream: socket.socket, client: socket.socket) -> None:
        with suppress(OSError):
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        with suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def _pump_up(self, client: socket.socket, upstream: socket.socket, cut: bool) -> None:
        in_data = False
        try:
            while chunk := client.recv(65536):
                if cut and not in_data and chunk.upper().startswith(b"DATA"):
                    if self.at == "data_command":
                        self._drop(client, upstream)
                        return
                    in_data = True
                elif cut and in_data:
                    upstream.sendall(chunk[: max(1, len(chunk) // 2)].rstrip(b".\r\n"))
                    self._drop(client, upstream)
                    return
                upstream.sendall(chunk)
        except OSError:
            pass
        with suppress(OSError):
            upstream.shutdown(socket.SHUT_RDWR)

    def _drop(self, client: socket.socket, upstream: socket.socket) -> None:
        self.drops += 1
        for s in (client, upstream):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                s.close()
