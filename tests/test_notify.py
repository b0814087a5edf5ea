"""The outbox and `notify`: against a real SMTP server (aiosmtpd) on a free port."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from authmigrate.errors import SpecError
from authmigrate.notify import (
    OutboxCipher,
    OutboxKeyError,
    OutboxStage,
    dry_run,
    generate_outbox_key,
    notify_command,
    requeue,
    send_outbox,
    status,
)
from authmigrate.notify.outbox import row_aad
from authmigrate.notify.sender import DRY_RUN_TOKEN, NotifyError
from authmigrate.pipeline.batch import Batch, Record, Reject
from authmigrate.pipeline.tokens import TokenStage, verify_token
from authmigrate.spec import Spec, load_spec_text
from tests.smtp_server import ACCEPT_THEN_HANG_UP, DroppingProxy, SmtpServer, smtp_server

KEY_ENV = "AUTHMIGRATE_TEST_OUTBOX_KEY"
PASSWORD_ENV = "AUTHMIGRATE_TEST_SMTP_PASSWORD"
SMTP_PASSWORD = "s3cret-Pa55word-for-smtp"
TOKEN_RE = re.compile(r"token=([A-Za-z0-9_%-]+)")


def spec_text(db: Path | str, port: int, extra: str = "") -> str:
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    return f"""
name = "shop"
[source]
url = "sqlite:///legacy.db"
table = "old_users"
key = "user_id"
[target]
url = "{url}"
table = "new_users"
[fields]
user_id = "user_id"
email = "email"
first_name = "first_name"
[tokens]
column = "auth_token"
prefix_column = "auth_token_prefix"
purpose = "password_reset"
expires_in = "2d"
[notify]
from = "Shop <no-reply@shop.example>"
outbox_key = "env:{KEY_ENV}"
reset_url = "https://shop.example/reset?token={{token}}"
rate_per_second = 500
max_attempts = 4
shop_name = "Example Shop"
context_fields = ["first_name"]
[notify.segments.kept]
enabled = true
[notify.smtp]
host = "127.0.0.1"
port = {port}
timeout = 5
{extra}
"""


@pytest.fixture(autouse=True)
def outbox_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = generate_outbox_key()
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.setenv(PASSWORD_ENV, SMTP_PASSWORD)
    return key


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


def make_spec(tmp_path: Path, port: int, extra: str = "", *, url: str | None = None) -> Spec:
    return load_spec_text(spec_text(url or tmp_path / "target.db", port, extra))


def migrate(
    spec: Spec, segments: dict[str, int], merged: int = 0, *, now: object = None
) -> tuple[sa.Engine, Batch]:
    """What the pipeline does with one batch: token stage, outbox stage, one transaction."""
    engine = sa.create_engine(spec.target.url)
    assert spec.tokens is not None
    tokens = TokenStage(spec.tokens, now=now)
    outbox = OutboxStage.from_spec(spec)
    md = sa.MetaData()
    users = sa.Table(
        "new_users",
        md,
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("email", sa.Text),
        sa.Column("first_name", sa.Text),
        *tokens.columns(),
    )
    tokens.tables(md)
    outbox.tables(md)
    md.create_all(engine)
    records = []
    for segment, n in segments.items():
        for i in range(n):
            key = f"{segment}-{i:03d}"
            records.append(
                Record(
                    key,
                    {},
                    {"user_id": key, "email": f"{key}@example.com", "first_name": f"Ann {key}"},
                    segment=segment,
                )
            )
    rejects = [
        Reject(
            f"dup-{i:03d}",
            "duplicate.email",
            "email",
            "",
            {},
            outcome="merged",
            merged_into=f"reset-{i:03d}",
            values={"email": f"dup-{i:03d}@example.com", "first_name": "Dup"},
        )
        for i in range(merged)
    ]
    batch = Batch(1, None, None, len(records) + merged, records, rejects)
    for stage in (tokens, outbox):
        stage.process(batch)
    with engine.begin() as conn:
        if batch.records:
            conn.execute(users.insert(), [r.values for r in batch.records])
        for stage in (tokens, outbox):
            stage.write(conn, batch, "run-1")
    return engine, batch


def send(engine: sa.Engine, spec: Spec, **kw: object) -> object:
    return send_outbox(engine, spec, backoff=0.01, max_backoff=0.05, **kw)  # type: ignore[arg-type]


def outbox_rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT * FROM authmigrate_outbox ORDER BY id")))


def all_text_values(engine: sa.Engine) -> list[str]:
    values: list[str] = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                values += [str(v) for v in row if v is not None]
    return values


def test_every_user_of_a_segment_gets_exactly_one_message_with_its_template(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, batch = migrate(spec, {"kept": 3, "wrapped": 3, "reset": 4}, merged=2)

    report = send(engine, spec)

    assert report.sent == 12 and report.ok
    per_rcpt = server.handler.per_recipient()
    expected = {f"{r.key}@example.com" for r in batch.records} | {
        f"dup-{i:03d}@example.com" for i in range(2)
    }
    assert set(per_rcpt) == expected
    assert set(per_rcpt.values()) == {1}
    subjects = {
        "kept": "Your Example Shop account has moved",
        "wrapped": "Your Example Shop account has moved and is better protected",
        "reset": "Please choose a new password for Example Shop",
        "merged": "Your Example Shop accounts have been combined",
    }
    for received in server.handler.received:
        msg = received.message
        segment = msg["X-Authmigrate-Segment"]
        assert msg["Subject"] == subjects[segment]
        assert msg["From"] == "Shop <no-reply@shop.example>"
        assert received.html() is not None
        has_link = "https://shop.example/reset?token=" in received.text()
        assert has_link == (segment == "reset")
    assert status(engine, spec) == {
        seg: {"queued": 0, "sending": 0, "sent": n, "failed": 0}
        for seg, n in {"kept": 3, "merged": 2, "reset": 4, "wrapped": 3}.items()
    }


def test_outbox_send_and_retry_work_on_sqlite_and_postgresql(
    tmp_path: Path, server: SmtpServer, target_url: str
) -> None:
    spec = make_spec(tmp_path, server.port, url=target_url)
    engine, _ = migrate(spec, {"reset": 3, "kept": 2}, merged=1)
    server.handler.script = ["451 4.3.0 Try again later"]

    report = send(engine, spec)

    assert (report.sent, report.retried) == (6, 1)
    assert len(server.handler.per_recipient()) == 6
    assert set(server.handler.per_recipient().values()) == {1}
    assert status(engine, spec)["reset"] == {"queued": 0, "sending": 0, "sent": 3, "failed": 0}
    engine.dispose()


def test_token_in_received_message_verifies_against_stored_hash(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 5})

    send(engine, spec)

    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT email, auth_token FROM new_users")).all())
    assert len(server.handler.received) == 5
    for received in server.handler.received:
        (rcpt,) = received.rcpt
        text_tokens = {unquote(t) for t in TOKEN_RE.findall(received.text())}
        html_tokens = {unquote(t) for t in TOKEN_RE.findall(received.html() or "")}
        assert len(text_tokens) == 1 and text_tokens == html_tokens
        token = text_tokens.pop()
        assert verify_token(token, stored[rcpt], purpose="password_reset")
        expiry = re.search(r"expires on (\S+ \S+) UTC", received.text())
        assert expiry is not None and expiry.group(1) > time.strftime(
            "%Y-%m-%d %H:%M", time.gmtime()
        )
        assert not verify_token(token, stored[next(e for e in stored if e != rcpt)])
        assert "Ann reset-" not in received.text() or rcpt.startswith("reset")


def test_token_appears_nowhere_in_the_target_before_or_after_sending(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, batch = migrate(spec, {"reset": 4, "kept": 2}, merged=1)
    tokens = [r.token for r in batch.records]
    assert all(tokens)

    def leaked() -> list[str]:
        return [t for t in tokens if any(t in v for v in all_text_values(engine))]  # type: ignore[operator]

    assert leaked() == []
    send(engine, spec)
    assert leaked() == []
    assert all(row.token_ciphertext is None for row in outbox_rows(engine))


def test_only_segments_whose_templates_use_the_token_store_it(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 2, "kept": 2, "wrapped": 1})

    rows = outbox_rows(engine)

    assert {r.segment for r in rows if r.token_ciphertext is not None} == {"reset"}


def test_server_answering_451_once_then_250_delivers_once(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 3})
    server.handler.script = ["451 4.3.0 Try again later"]

    report = send(engine, spec)

    assert report.sent == 3 and report.retried == 1 and report.ok
    assert server.handler.data_commands == 4
    assert set(server.handler.per_recipient().values()) == {1}
    assert len(server.handler.per_recipient()) == 3
    retried = [r for r in outbox_rows(engine) if r.attempts == 2]
    assert len(retried) == 1 and retried[0].status == "sent"


def test_5xx_is_recorded_as_failed_with_the_reason_and_not_retried(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, batch = migrate(spec, {"reset": 3})
    server.handler.script = ["550 5.1.1 Mailbox does not exist"]

    report = send(engine, spec)

    assert (report.sent, report.failed) == (2, 1)
    failed = [r for r in outbox_rows(engine) if r.status == "failed"]
    assert len(failed) == 1
    assert failed[0].last_error == "550 5.1.1 Mailbox does not exist"
    assert failed[0].attempts == 1
    assert not any(t in (failed[0].last_error or "") for t in (r.token for r in batch.records))
    assert send(engine, spec).sent == 0  # a second run does not retry it
    assert server.handler.data_commands == 3


def test_4xx_until_max_attempts_ends_failed(tmp_path: Path, server: SmtpServer) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"kept": 1})
    server.handler.script = ["452 4.2.2 Mailbox full"] * 10

    report = send(engine, spec)

    (row,) = outbox_rows(engine)
    assert (report.failed, row.status, row.attempts) == (1, "failed", 4)
    assert row.last_error == "gave up after 4 attempts: 452 4.2.2 Mailbox full"


def test_connection_dropped_at_data_is_retried_and_delivered_once(
    tmp_path: Path, server: SmtpServer
) -> None:
    proxy = DroppingProxy(server.port, at="data_command", times=2)
    try:
        spec = make_spec(tmp_path, proxy.port)
        engine, _ = migrate(spec, {"reset": 4})

        report = send(engine, spec)
    finally:
        proxy.close()

    assert proxy.drops == 2
    assert report.sent == 4 and report.retried == 2 and report.ok
    assert len(server.handler.per_recipient()) == 4
    assert set(server.handler.per_recipient().values()) == {1}


def test_connection_dropped_mid_body_never_duplicates_after_resume(
    tmp_path: Path, server: SmtpServer
) -> None:
    proxy = DroppingProxy(server.port, at="mid_body", times=1)
    try:
        spec = make_spec(tmp_path, proxy.port)
        engine, _ = migrate(spec, {"reset": 4})
        first = send(engine, spec)
        second = send(engine, spec)  # the resume
    finally:
        proxy.close()

    assert proxy.drops == 1
    per_rcpt = server.handler.per_recipient()
    assert set(per_rcpt.values()) == {1}
    rows = outbox_rows(engine)
    # The drop came before the end of data reached the server: retried and delivered, or,
    # if the client had already written the final dot, left in doubt and never resent.
    for row in rows:
        assert (row.status == "sent") == (row.recipient in per_rcpt)
        assert row.status in ("sent", "sending")
    assert first.in_doubt + second.in_doubt == sum(r.status == "sending" for r in rows) <= 1
    assert second.sent == 0


def test_reply_lost_after_end_of_data_is_in_doubt_and_never_resent_automatically(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 3})
    server.handler.script = [ACCEPT_THEN_HANG_UP]

    first = send(engine, spec)
    second = send(engine, spec)

    assert (first.sent, first.in_doubt, second.sent) == (2, 1, 0)
    assert set(server.handler.per_recipient().values()) == {1}
    assert len(server.handler.per_recipient()) == 3
    (doubt,) = [r for r in outbox_rows(engine) if r.status == "sending"]
    assert doubt.last_error.startswith("in doubt: no reply after the end of the message")
    assert doubt.token_ciphertext is not None  # kept, in case the operator requeues it
    assert status(engine, spec)["reset"] == {"queued": 0, "sending": 1, "sent": 2, "failed": 0}


def test_outbox_rows_roll_back_with_the_batch(tmp_path: Path, server: SmtpServer) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {})
    outbox = OutboxStage.from_spec(spec)
    batch = Batch(2, None, None, 1, [Record("x", {}, {"email": "x@example.com"}, "kept")])

    with pytest.raises(RuntimeError), engine.begin() as conn:
        outbox.write(conn, batch, "run-2")
        raise RuntimeError("crash before the checkpoint")

    assert outbox_rows(engine) == []


def test_rerun_refreshes_a_queued_message_but_never_requeues_a_sent_one(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 2})
    outbox = OutboxStage.from_spec(spec)
    again = Batch(
        1,
        None,
        None,
        1,
        [Record("reset-000", {}, {"email": "new@example.com"}, "reset", token="t" * 43)],
    )
    with engine.begin() as conn:
        outbox.write(conn, again, "run-2")
    rows = outbox_rows(engine)
    assert len(rows) == 2 and rows[0].recipient == "new@example.com"

    send(engine, spec)
    with engine.begin() as conn:
        outbox.write(conn, again, "run-3")

    assert [r.status for r in outbox_rows(engine)] == ["sent", "sent"]
    assert send(engine, spec).sent == 0
    assert sorted(server.handler.per_recipient()) == ["new@example.com", "reset-001@example.com"]


def test_record_without_email_is_counted_failed_not_sent(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {})
    outbox = OutboxStage.from_spec(spec)
    with engine.begin() as conn:
        outbox.write(
            conn, Batch(1, None, None, 1, [Record("n", {}, {"email": None}, "reset")]), "r"
        )

    assert status(engine, spec)["reset"]["failed"] == 1
    assert send(engine, spec).sent == 0
    assert outbox_rows(engine)[0].last_error == "no email address"


def test_disabled_segment_is_not_queued_and_custom_templates_override(
    tmp_path: Path, server: SmtpServer
) -> None:
    (tmp_path / "welcome.txt").write_text(
        "Hi {{ user.first_name }}, set a password: {{ reset_link }}\n"
    )
    extra = f"""
[notify.segments.wrapped]
subject = "Hello {{{{ user.first_name }}}}"
text_template = "{tmp_path / "welcome.txt"}"
"""
    spec = load_spec_text(
        spec_text(tmp_path / "target.db", server.port, extra).replace(
            "[notify.segments.kept]\nenabled = true", "[notify.segments.kept]\nenabled = false"
        )
    )
    engine, _ = migrate(spec, {"kept": 2, "wrapped": 1})

    send(engine, spec)

    (received,) = server.handler.received
    assert received.message["Subject"] == "Hello Ann wrapped-000"
    assert received.text().startswith("Hi Ann wrapped-000, set a password: https://shop.example/")
    assert received.html() is None
    assert "kept" not in status(engine, spec)


def test_custom_segment_without_template_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(tmp_path, 25, "[notify.segments.vip]\nsubject = 'x'\n")
    assert err.value.path == "notify.segments"


def test_template_with_unknown_variable_fails_before_anything_is_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.txt").write_text("{{ no_such_thing }}")
    spec = make_spec(tmp_path, 25, f'[notify.segments.reset]\ntext_template = "{tmp_path}/bad.txt"')
    with pytest.raises(SpecError) as err:
        OutboxStage.from_spec(spec)
    assert err.value.path == "notify.segments.reset"


def test_dry_run_writes_eml_files_without_real_tokens_and_sends_nothing(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, batch = migrate(spec, {"reset": 2, "kept": 1})

    n = dry_run(engine, spec, tmp_path / "out")

    files = sorted((tmp_path / "out").glob("*.eml"))
    assert n == 3 and len(files) == 3
    contents = b"".join(f.read_bytes() for f in files)
    assert DRY_RUN_TOKEN.encode() in contents.replace(b"=\r\n", b"")
    assert not any(r.token and r.token.encode() in contents for r in batch.records)
    assert server.handler.received == []
    assert {r.status for r in outbox_rows(engine)} == {"queued"}


def test_notify_command_status_and_exit_codes(
    tmp_path: Path, server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "migration.toml"
    spec_file.write_text(spec_text(tmp_path / "target.db", server.port))
    engine, _ = migrate(make_spec(tmp_path, server.port), {"reset": 2})

    assert notify_command(spec_file, dry_run=True, out=None, status=False) == 2
    assert notify_command(spec_file, dry_run=False, out=None, status=False) == 0
    assert notify_command(spec_file, dry_run=False, out=None, status=True) == 0

    out = capsys.readouterr().out
    assert "--dry-run needs --out" in out and "2 sent" in out and "reset" in out
    assert len(server.handler.received) == 2


def test_send_outbox_reports_its_progress_to_a_callback(tmp_path: Path, server: SmtpServer) -> None:
    """``send_outbox(progress=...)`` is called once before the first message and after each
    one, with the counts so far and the messages queued at the start: the library draws
    nothing, the CLI gives it ``report.notify.NotifyProgress``."""
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 3})
    seen: list[tuple[int, int, int]] = []

    report = send_outbox(
        engine, spec, progress=lambda done, total: seen.append((done.sent, done.failed, total))
    )

    assert report.sent == 3
    assert seen == [(0, 0, 3), (1, 0, 3), (2, 0, 3), (3, 0, 3)]


def test_send_outbox_still_takes_a_console_and_a_bar_flag(
    tmp_path: Path, server: SmtpServer
) -> None:
    """The signature earlier versions documented (``console=``, ``progress=True/False``)
    still sends and draws: the new ``progress`` callback did not break its callers."""
    import io

    from rich.console import Console

    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 2})
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    assert send_outbox(engine, spec, console=terminal, progress=True).sent == 2
    assert "2/2" in terminal.file.getvalue()  # type: ignore[attr-defined]

    migrate(spec, {"kept": 2})
    assert send_outbox(engine, spec, progress=False).sent == 2  # no console: nothing drawn


def test_notify_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from authmigrate.report import notify as shown

    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 2})
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    with shown.NotifyProgress(terminal) as progress:
        send_outbox(engine, spec, progress=progress)
    assert "2/2" in terminal.file.getvalue()  # type: ignore[attr-defined]

    migrate(spec, {"kept": 2})
    monkeypatch.setattr(shown, "LINE_EVERY", 0.0)  # a line after every message
    pipe = Console(file=io.StringIO(), width=200)
    with shown.NotifyProgress(pipe) as progress:
        send_outbox(engine, spec, progress=progress)
    assert pipe.file.getvalue().splitlines() == [  # type: ignore[attr-defined]
        "notify: 1 sent, 0 failed, 0 retried of 2",
        "notify: 2 sent, 0 failed, 0 retried of 2",
    ]


def test_ciphertext_is_bound_to_its_row(outbox_key: str) -> None:
    cipher = OutboxCipher(outbox_key)
    sealed = cipher.encrypt("tok", row_aad("m", "1", "reset"))

    assert cipher.decrypt(sealed, row_aad("m", "1", "reset")) == "tok"
    with pytest.raises(OutboxKeyError):
        cipher.decrypt(sealed, row_aad("m", "2", "reset"))
    with pytest.raises(OutboxKeyError):
        OutboxCipher(generate_outbox_key()).decrypt(sealed, row_aad("m", "1", "reset"))
    assert outbox_key not in repr(cipher)


def test_unset_outbox_key_is_a_spec_error_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(SpecError) as err:
        OutboxStage.from_spec(make_spec(tmp_path, 25))
    assert err.value.path == "notify.outbox_key" and KEY_ENV in str(err.value)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_with_password_from_env_sends(tmp_path: Path) -> None:
    with smtp_server(username="shop", password=SMTP_PASSWORD) as srv:
        extra = f'username = "shop"\npassword = "env:{PASSWORD_ENV}"\n'
        spec = make_spec(tmp_path, srv.port, extra)
        engine, _ = migrate(spec, {"reset": 2})
        report = send(engine, spec)
    assert report.sent == 2 and len(srv.handler.received) == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_password_never_appears_in_logs_errors_or_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with smtp_server(username="shop", password="the-right-one") as srv:
        extra = f'username = "shop"\npassword = "env:{PASSWORD_ENV}"\n'
        spec = make_spec(tmp_path, srv.port, extra)
        engine, _ = migrate(spec, {"reset": 2})
        with pytest.raises(NotifyError) as err:
            send(engine, spec)
    text = f"{err.value!s} {err.value!r} {err.value.__cause__!r} {err.value.__context__!r}"
    assert "535" in str(err.value) and "shop" in str(err.value)
    assert SMTP_PASSWORD not in text
    assert SMTP_PASSWORD not in caplog.text
    assert not any(SMTP_PASSWORD in v for v in all_text_values(engine))
    assert {r.status for r in outbox_rows(engine)} == {"queued"}
    assert {r.attempts for r in outbox_rows(engine)} == {0}


def test_unreachable_server_leaves_everything_queued(tmp_path: Path) -> None:
    from tests.smtp_server import free_port

    spec = make_spec(tmp_path, free_port())
    engine, _ = migrate(spec, {"reset": 2})

    with pytest.raises(NotifyError, match="cannot connect"):
        send(engine, spec)

    assert [(r.status, r.attempts) for r in outbox_rows(engine)] == [("queued", 0)] * 2


RUNNER = """
import sys
from authmigrate.notify.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_notify_resumed_sends_the_rest_exactly_once(
    tmp_path: Path, server: SmtpServer, outbox_key: str
) -> None:
    n = 40
    spec_file = tmp_path / "migration.toml"
    text = spec_text(tmp_path / "target.db", server.port).replace(
        "rate_per_second = 500", "rate_per_second = 40"
    )
    spec_file.write_text(text)
    spec = load_spec_text(text)
    engine, _ = migrate(spec, {"reset": n})
    env = {**os.environ, KEY_ENV: outbox_key}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(spec_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while len(server.handler.received) < 10 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(server.handler.received)
    assert 10 <= before < n

    assert notify_command(spec_file, dry_run=False, out=None, status=False) in (0, 1)
    time.sleep(0.2)  # let the server finish recording

    per_rcpt = server.handler.per_recipient()
    rows = outbox_rows(engine)
    assert max(per_rcpt.values()) == 1, "a user got the same message twice"
    in_doubt = [r for r in rows if r.status == "sending"]
    assert len(in_doubt) <= 1
    assert all(r.status in ("sent", "sending") for r in rows)
    for row in rows:
        if row.status == "sent":
            assert per_rcpt[row.recipient] == 1
    assert len(per_rcpt) >= n - len(in_doubt)
    # The operator's explicit decision for an in-doubt message that never arrived:
    for row in in_doubt:
        if row.recipient not in per_rcpt:
            assert requeue(engine, spec, which="in_doubt") == 1
            assert send(engine, spec).sent == 1
    assert len(server.handler.per_recipient()) == n
    assert max(server.handler.per_recipient().values()) == 1


def test_kept_segment_gets_no_message_unless_the_spec_asks(tmp_path: Path) -> None:
    """Customers whose password simply keeps working have nothing to do: no mail by default."""
    text = spec_text(tmp_path / "target.db", 2525).replace(
        "[notify.segments.kept]\nenabled = true\n", ""
    )
    spec = load_spec_text(text)
    engine, _ = migrate(spec, {"kept": 3, "reset": 2})
    counts = status(engine, spec)
    assert "kept" not in counts
    assert counts["reset"]["queued"] == 2


# --------------------------------------------------------------------------- review: races


def _deliveries_are_exactly_once(server: SmtpServer, engine: sa.Engine, n: int) -> None:
    per_rcpt = server.handler.per_recipient()
    assert max(per_rcpt.values()) == 1, "a user got the same message twice"
    assert len(per_rcpt) == n
    assert {r.status for r in outbox_rows(engine)} == {"sent"}


def test_two_concurrent_senders_never_send_a_message_twice(
    tmp_path: Path, server: SmtpServer, target_url: str
) -> None:
    import threading

    n = 40
    spec = make_spec(tmp_path, server.port, url=target_url)
    engine, _ = migrate(spec, {"reset": n})
    reports: list[object] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def sender() -> None:
        own = sa.create_engine(spec.target.url)
        try:
            start.wait()
            reports.append(send(own, spec))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert sum(r.sent for r in reports) == n  # type: ignore[attr-defined]
    _deliveries_are_exactly_once(server, engine, n)
    assert {r.attempts for r in outbox_rows(engine)} == {1}
    engine.dispose()


def test_claim_is_atomic_and_only_takes_the_row_as_it_was_read(
    tmp_path: Path, server: SmtpServer, target_url: str
) -> None:
    from authmigrate.notify.outbox import outbox_table
    from authmigrate.notify.sender import _Outbox

    spec = make_spec(tmp_path, server.port, url=target_url)
    engine, _ = migrate(spec, {"reset": 2})
    outbox = _Outbox(engine, outbox_table(sa.MetaData()), spec.migration_name)
    first, second = (outbox.get(r.id) for r in outbox_rows(engine))

    assert outbox.claim(first) is True
    assert outbox.claim(first) is False  # a second sender holding the same read
    with engine.begin() as conn:  # a re-run refreshes the second message (new token)
        conn.execute(
            sa.text("UPDATE authmigrate_outbox SET token_ciphertext = 'v1:other' WHERE id = :i"),
            {"i": second.id},
        )
    assert outbox.claim(second) is False  # rendered with the old token: not sent
    assert outbox.claim(outbox.get(second.id)) is True
    engine.dispose()


def test_message_refreshed_between_render_and_claim_goes_out_with_the_new_token(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-run that refreshes a queued message while notify runs: the user must get the
    token whose hash the target now holds, not the one rendered a moment before."""
    from authmigrate.notify import sender as sender_module
    from authmigrate.pipeline.tokens import issue_token

    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 3})
    stage = OutboxStage.from_spec(spec)
    real_claim = sender_module._Outbox.claim
    refreshed: list[str] = []

    def claim(self: object, row: sa.Row[tuple[object, ...]], *rest: object) -> bool:
        if not refreshed:
            key = str(row.source_key)
            token, stored = issue_token("password_reset", 2 * 86400)  # the spec's expires_in
            values = {
                "user_id": key,
                "email": f"{key}@example.com",
                "first_name": "Ann",
                "auth_token": stored,
            }
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE new_users SET auth_token = :s WHERE user_id = :k"),
                    {"s": stored, "k": key},
                )
                stage.write(
                    conn,
                    Batch(2, None, None, 1, [Record(key, {}, values, "reset", token=token)]),
                    "run-2",
                )
            refreshed.append(key)
        return real_claim(self, row, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(sender_module._Outbox, "claim", claim)
    report = send(engine, spec)

    assert report.sent == 3 and report.ok  # not skipped: rendered again and sent this run
    _deliveries_are_exactly_once(server, engine, 3)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT email, auth_token FROM new_users")).all())
    for received in server.handler.received:
        (rcpt,) = received.rcpt
        (token,) = {unquote(t) for t in TOKEN_RE.findall(received.text())}
        assert verify_token(token, stored[rcpt], purpose="password_reset"), rcpt


class _Killed(BaseException):
    """Stands for a kill -9 at a precise point (nothing after it runs in the sender)."""


@pytest.mark.parametrize("point", ["before_claim", "after_claim", "after_250"])
def test_killed_at_each_point_of_a_message_then_resumed(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """No user gets the same message twice; none is skipped except the one in doubt, which
    is the documented operator decision (requeue after checking the mail log)."""
    from authmigrate.notify import sender as sender_module

    n = 5
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": n})
    target = {
        "before_claim": (sender_module._Outbox, "claim"),
        "after_claim": (sender_module._Mailer, "deliver"),
        "after_250": (sender_module._Outbox, "sent"),
    }[point]
    real = getattr(*target)
    calls = [0]

    def dying(*args: object, **kw: object) -> object:
        calls[0] += 1
        if calls[0] == 3:
            raise _Killed(point)
        return real(*args, **kw)

    monkeypatch.setattr(*target, dying)
    with pytest.raises(_Killed):
        send(engine, spec)
    monkeypatch.setattr(*target, real)

    send(engine, spec)  # the resume
    rows = outbox_rows(engine)
    in_doubt = [r for r in rows if r.status == "sending"]
    per_rcpt = server.handler.per_recipient()
    assert max(per_rcpt.values()) == 1
    assert len(in_doubt) == (0 if point == "before_claim" else 1)
    assert all(per_rcpt[r.recipient] == 1 for r in rows if r.status == "sent")
    assert len(per_rcpt) == n - (1 if point == "after_claim" else 0)
    # the documented rule: the operator requeues an in-doubt message that never arrived
    if point == "after_claim":
        assert requeue(engine, spec, which="in_doubt") == 1
        send(engine, spec)
        _deliveries_are_exactly_once(server, engine, n)


# --------------------------------------------------------------------------- rate, backoff


def test_rate_limit_is_honoured(tmp_path: Path, server: SmtpServer) -> None:
    n, rate = 12, 20
    text = spec_text(tmp_path / "target.db", server.port).replace(
        "rate_per_second = 500", f"rate_per_second = {rate}"
    )
    spec = load_spec_text(text)
    engine, _ = migrate(spec, {"reset": n})

    assert send(engine, spec).sent == n  # type: ignore[attr-defined]

    times = server.handler.times
    assert len(times) == n
    assert times[-1] - times[0] >= (n - 1) / rate * 0.95
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1 / rate * 0.5  # no burst, even at the start


def test_backoff_doubles_with_jitter_and_is_bounded() -> None:
    from authmigrate.notify.sender import backoff_delay

    for attempt in [1, 2, 3, 6, 7, 50, 1100, 10**6]:
        for _ in range(50):
            delay = backoff_delay(attempt, 1.0, 60.0)
            assert 0 < delay <= 60.0
    assert 0.8 <= backoff_delay(1, 1.0, 60.0) <= 1.2
    assert 3.2 <= backoff_delay(3, 1.0, 60.0) <= 4.8
    assert backoff_delay(10**6, 1.0, 60.0) == 60.0


# --------------------------------------------------------------------------- secrets


def test_failed_message_has_its_token_erased_and_a_requeue_sends_it_without(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, batch = migrate(spec, {"reset": 2})
    server.handler.script = ["550 5.7.1 Rejected by policy"]

    send(engine, spec)

    failed = [r for r in outbox_rows(engine) if r.status == "failed"]
    assert len(failed) == 1 and failed[0].token_ciphertext is None
    assert all(r.token_ciphertext is None for r in outbox_rows(engine))
    tokens = [r.token for r in batch.records]
    assert not any(t in v for t in tokens for v in all_text_values(engine))  # type: ignore[operator]

    assert requeue(engine, spec, which="failed") == 1
    assert send(engine, spec).sent == 1  # type: ignore[attr-defined]
    last = server.handler.received[-1]
    assert "Forgot your password?" in last.text() and "token=" not in last.text()
    assert max(server.handler.per_recipient().values()) == 1


def test_gave_up_message_has_its_token_erased(tmp_path: Path, server: SmtpServer) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 1})
    server.handler.script = ["451 4.3.0 Try again later"] * 10

    send(engine, spec)

    (row,) = outbox_rows(engine)
    assert (row.status, row.attempts, row.token_ciphertext) == ("failed", 4, None)


def test_outbox_key_never_appears_in_output_or_logs(
    tmp_path: Path,
    server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    spec_file = tmp_path / "migration.toml"
    spec_file.write_text(spec_text(tmp_path / "target.db", server.port))
    engine, _ = migrate(make_spec(tmp_path, server.port), {"reset": 1})

    bad = "not-a-key-but-a-secret-value-0123456789"
    monkeypatch.setenv(KEY_ENV, bad)
    assert notify_command(spec_file) == 2  # a malformed key: a bad spec, nothing sent
    wrong = generate_outbox_key()  # a valid key, but not the one the outbox was written with
    monkeypatch.setenv(KEY_ENV, wrong)
    assert notify_command(spec_file) == 1  # that row fails, naming the key id it needs
    (row,) = outbox_rows(engine)
    assert row.status == "failed" and "outbox key id" in row.last_error

    out = capsys.readouterr()
    everything = out.out + out.err + caplog.text
    assert "notify.outbox_key" in everything
    assert wrong not in everything and bad not in everything
    assert server.handler.received == []


def test_dry_run_needs_no_secret_and_skips_an_unbuildable_message(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, batch = migrate(spec, {"reset": 2})
    with engine.begin() as conn:
        OutboxStage.from_spec(spec).write(
            conn,
            Batch(
                2, None, None, 1, [Record("bad", {}, {"email": "a@x.example\r\nBcc: e@x"}, "kept")]
            ),
            "run-2",
        )
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.delenv(PASSWORD_ENV)

    assert dry_run(engine, spec, tmp_path / "out") == 2
    contents = b"".join(f.read_bytes() for f in (tmp_path / "out").glob("*.eml"))
    assert not any(r.token and r.token.encode() in contents for r in batch.records)
    assert b"Bcc" not in contents


# --------------------------------------------------------------------------- TLS


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_with_private_ca_and_auth_with_password_from_env(tmp_path: Path, mode: str) -> None:
    from tests.smtp_server import self_signed_cert

    cert = self_signed_cert(tmp_path)
    server_mode = "starttls" if mode == "starttls" else "implicit"
    with smtp_server(username="shop", password=SMTP_PASSWORD, tls=server_mode, cert=cert) as srv:
        extra = (
            f'security = "{mode}"\nca_file = "{cert[0]}"\n'
            f'username = "shop"\npassword = "env:{PASSWORD_ENV}"\n'
        )
        spec = make_spec(tmp_path, srv.port, extra)
        engine, _ = migrate(spec, {"reset": 2, "wrapped": 1})
        report = send(engine, spec)

    assert report.sent == 3 and report.ok  # type: ignore[attr-defined]
    assert srv.handler.tls == [True, True, True]
    assert max(srv.handler.per_recipient().values()) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_certificate_not_trusted_stops_with_nothing_claimed(tmp_path: Path, mode: str) -> None:
    from tests.smtp_server import self_signed_cert

    cert = self_signed_cert(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _ = self_signed_cert(tmp_path / "other")
    server_mode = "starttls" if mode == "starttls" else "implicit"
    with smtp_server(username="shop", password=SMTP_PASSWORD, tls=server_mode, cert=cert) as srv:
        extra = (
            f'security = "{mode}"\nca_file = "{other_ca}"\n'
            f'username = "shop"\npassword = "env:{PASSWORD_ENV}"\n'
        )
        spec = make_spec(tmp_path, srv.port, extra)
        engine, _ = migrate(spec, {"reset": 2})
        with pytest.raises(NotifyError, match="(?i)certificate|SSL") as err:
            send(engine, spec)

    assert SMTP_PASSWORD not in str(err.value)
    assert srv.handler.received == []
    assert [(r.status, r.attempts) for r in outbox_rows(engine)] == [("queued", 0)] * 2


@pytest.mark.serial
def test_password_is_never_sent_unencrypted_to_a_remote_host(tmp_path: Path) -> None:
    extra = f'username = "shop"\npassword = "env:{PASSWORD_ENV}"\n'
    spec = load_spec_text(
        spec_text(tmp_path / "target.db", 25, extra).replace(
            'host = "127.0.0.1"', 'host = "smtp.invalid"'
        )
    )
    engine, _ = migrate(spec, {"reset": 1})
    start = time.monotonic()
    with pytest.raises(NotifyError, match="unencrypted"):
        send(engine, spec)
    assert time.monotonic() - start < 2  # refused at once, not retried as a network error
    assert [(r.status, r.attempts) for r in outbox_rows(engine)] == [("queued", 0)]


def test_unreadable_ca_file_is_fatal_not_retried(tmp_path: Path, server: SmtpServer) -> None:
    spec = make_spec(tmp_path, server.port, f'security = "starttls"\nca_file = "{tmp_path}/no.pem"')
    engine, _ = migrate(spec, {"reset": 1})
    with pytest.raises(NotifyError, match="ca_file"):
        send(engine, spec)
    assert [(r.status, r.attempts) for r in outbox_rows(engine)] == [("queued", 0)]


# --------------------------------------------------------------------------- injection


def test_user_values_cannot_inject_template_code_or_headers(
    tmp_path: Path, server: SmtpServer
) -> None:
    (tmp_path / "hi.txt").write_text("Hi {{ user.first_name }}, {{ reset_link }}\n")
    (tmp_path / "hi.html").write_text("<p>Hi {{ user.first_name }}</p> {{ reset_link }}\n")
    extra = f"""
[notify.segments.reset]
subject = "Hello {{{{ user.first_name }}}}"
text_template = "{tmp_path / "hi.txt"}"
html_template = "{tmp_path / "hi.html"}"
"""
    spec = make_spec(tmp_path, server.port, extra)
    engine, _ = migrate(spec, {})
    tokens = TokenStage(spec.tokens)  # type: ignore[arg-type]
    evil_names = [
        "{{ token }}{% for x in range(3) %}loop{% endfor %}{{ ''.__class__ }}",
        "Ann\r\nBcc: evil@attacker.example\r\n\r\nbody",
        "<script>alert(1)</script>",
    ]
    records = [
        Record(
            f"u{i}",
            {},
            {"user_id": f"u{i}", "email": f"u{i}@example.com", "first_name": name},
            "reset",
        )
        for i, name in enumerate(evil_names)
    ]
    records += [
        Record(
            "r1", {}, {"email": "victim@example.com\r\nRCPT TO:<evil@attacker.example>"}, "reset"
        ),
        Record("r2", {}, {"email": "victim@example.com, evil@attacker.example"}, "reset"),
        Record("r3", {}, {"email": "Evil <evil@attacker.example>"}, "reset"),
    ]
    batch = Batch(2, None, None, len(records), records)
    tokens.process(batch)
    with engine.begin() as conn:
        OutboxStage.from_spec(spec).write(conn, batch, "run-2")

    report = send(engine, spec)

    assert (report.sent, report.failed) == (3, 3)  # type: ignore[attr-defined]
    assert sorted(server.handler.per_recipient()) == [f"u{i}@example.com" for i in range(3)]
    by_rcpt = {r.rcpt[0]: r for r in server.handler.received}
    for i, name in enumerate(evil_names):
        received = by_rcpt[f"u{i}@example.com"]
        msg = received.message
        assert msg["Bcc"] is None and "attacker" not in str(msg["To"])
        # one header line (the stdlib folds a long unbreakable subject onto a continuation
        # line, which its parser then returns with a leading space)
        assert msg["Subject"].strip() == "Hello " + " ".join(name.split())
        assert "\n" not in msg["Subject"]
        (token,) = {unquote(t) for t in TOKEN_RE.findall(received.text())}
        assert received.text().startswith(f"Hi {name},")  # rendered as data, literally
        assert records[i].token == token
    assert "&lt;script&gt;" in (by_rcpt["u2@example.com"].html() or "")
    assert "<script>" not in (by_rcpt["u2@example.com"].html() or "")
    failed = {r.source_key: r for r in outbox_rows(engine) if r.status == "failed"}
    assert set(failed) == {"r1", "r2", "r3"}
    assert all(r.last_error == "invalid email address" for r in failed.values())
    assert all(r.token_ciphertext is None for r in failed.values())


@pytest.mark.parametrize("smtputf8", [True, False])
def test_internationalized_addresses_are_sent_as_idna_and_smtputf8(
    tmp_path: Path, smtputf8: bool
) -> None:
    """bücher.example goes out as xn--bcher-kva.example; a non-ASCII local part needs a
    server that offers SMTPUTF8, and without one it fails with that reason (not a crash)."""
    with smtp_server(smtputf8=smtputf8) as srv:
        spec = make_spec(tmp_path, srv.port)
        engine, _ = migrate(spec, {"reset": 2})
        with engine.begin() as conn:
            ids = [
                r[0] for r in conn.execute(sa.text("SELECT id FROM authmigrate_outbox ORDER BY id"))
            ]
            conn.execute(
                sa.text(
                    "UPDATE authmigrate_outbox SET recipient = 'anna@bücher.example' WHERE id = :i"
                ),
                {"i": ids[0]},
            )
            conn.execute(
                sa.text(
                    "UPDATE authmigrate_outbox SET recipient = 'jürgen@example.com' WHERE id = :i"
                ),
                {"i": ids[1]},
            )
        report = send(engine, spec)
        rcpts = sorted(r for m in srv.handler.received for r in m.rcpt)
    if smtputf8:
        assert report.sent == 2
        assert rcpts == ["anna@xn--bcher-kva.example", "jürgen@example.com"]
    else:
        assert (report.sent, report.failed) == (1, 1)
        assert rcpts == ["anna@xn--bcher-kva.example"]
        reasons = [r.last_error for r in outbox_rows(engine) if r.status == "failed"]
        assert reasons == ["the server does not offer SMTPUTF8, which this address needs"]


# --------------------------------------------------------------------------- the outbox key


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:20] + "!" + k[20:],  # a character outside the alphabet (was dropped)
        lambda k: k[:20] + " " + k[20:],  # a space inside (was dropped)
        lambda k: k[:-8],  # 26 bytes
        lambda k: k + "AAAA",  # 35 bytes
        lambda k: k.replace("=", "").replace("-", "+").replace("_", "-")[:43] + "/",  # mixed
    ],
    ids=["bang", "space", "short", "long", "mixed-alphabets"],
)
def test_malformed_outbox_key_is_refused_naming_the_variable_never_the_value(
    tmp_path: Path,
    server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    outbox_key: str,
    mangle: object,
) -> None:
    spec_file = tmp_path / "migration.toml"
    spec_file.write_text(spec_text(tmp_path / "target.db", server.port))
    engine, _ = migrate(make_spec(tmp_path, server.port), {"reset": 2})
    bad = mangle(outbox_key)  # type: ignore[operator]
    monkeypatch.setenv(KEY_ENV, bad)

    with pytest.raises(SpecError) as err:
        OutboxStage.from_spec(make_spec(tmp_path, server.port))
    assert notify_command(spec_file) == 2

    said = capsys.readouterr().out + str(err.value)
    assert err.value.path == "notify.outbox_key" and KEY_ENV in str(err.value)
    assert bad.strip() not in said and outbox_key not in said
    assert server.handler.received == []
    assert {r.status for r in outbox_rows(engine)} == {"queued"}


def test_outbox_key_rotation_reads_queued_tokens_under_the_old_key(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch, outbox_key: str
) -> None:
    """Queued under key A; the operator rotates to B and names A as an old key."""
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 3})
    new_key = generate_outbox_key()
    monkeypatch.setenv(KEY_ENV, new_key)
    monkeypatch.setenv("AUTHMIGRATE_TEST_OUTBOX_OLD", outbox_key)
    rotated = make_spec(tmp_path, server.port).model_copy(
        update={
            "notify": spec.notify.model_copy(  # type: ignore[union-attr]
                update={"outbox_old_keys": ["env:AUTHMIGRATE_TEST_OUTBOX_OLD"]}
            )
        }
    )
    cipher = OutboxCipher.from_spec(rotated.notify)  # type: ignore[arg-type]
    old_id = OutboxCipher(outbox_key).key_id
    assert old_id != cipher.key_id
    assert {r.token_ciphertext.split(":")[1] for r in outbox_rows(engine)} == {old_id}
    assert cipher.encrypt("t", b"a").startswith(f"v2:{cipher.key_id}:")

    report = send(engine, rotated)

    assert report.sent == 3 and report.ok  # type: ignore[attr-defined]
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT email, auth_token FROM new_users")).all())
    for received in server.handler.received:
        (token,) = {unquote(t) for t in TOKEN_RE.findall(received.text())}
        assert verify_token(token, stored[received.rcpt[0]], purpose="password_reset")


def test_first_format_ciphertexts_without_a_key_id_are_still_read(outbox_key: str) -> None:
    import base64
    import secrets

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aad = row_aad("m", "1", "reset")
    nonce = secrets.token_bytes(12)
    raw = base64.urlsafe_b64decode(outbox_key)
    v1 = "v1:" + base64.urlsafe_b64encode(nonce + AESGCM(raw).encrypt(nonce, b"tok", aad)).decode()
    assert OutboxCipher(generate_outbox_key(), [outbox_key]).decrypt(v1, aad) == "tok"
    with pytest.raises(OutboxKeyError):
        OutboxCipher(generate_outbox_key()).decrypt(v1, aad)


def test_one_undecryptable_row_fails_alone_and_the_rest_are_sent(
    tmp_path: Path,
    server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    outbox_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec_file = tmp_path / "migration.toml"
    spec_file.write_text(spec_text(tmp_path / "target.db", server.port))
    engine, _ = migrate(make_spec(tmp_path, server.port), {"reset": 4})
    first, second, *_ = outbox_rows(engine)
    other = OutboxCipher(generate_outbox_key())  # sealed under a key nobody configured
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE authmigrate_outbox SET token_ciphertext = :c WHERE id = :i"),
            {"c": first.token_ciphertext[:-6] + "AAAAAA", "i": first.id},
        )  # altered
        conn.execute(
            sa.text("UPDATE authmigrate_outbox SET token_ciphertext = :c WHERE id = :i"),
            {"c": other.encrypt("x", b""), "i": second.id},
        )

    assert notify_command(spec_file) == 1

    rows = {r.id: r for r in outbox_rows(engine)}
    assert [r.status for r in rows.values()] == ["failed", "failed", "sent", "sent"]
    assert "altered" in rows[first.id].last_error and rows[first.id].token_ciphertext is None
    assert f"key id {other.key_id}" in rows[second.id].last_error
    assert rows[second.id].token_ciphertext is not None  # readable once that key is configured
    assert len(server.handler.received) == 2
    assert "2 failed" in capsys.readouterr().out


# --------------------------------------------------------------------------- owners, heartbeats


def _cli_env(outbox_key: str) -> dict[str, str]:
    import authmigrate

    env = {**os.environ, KEY_ENV: outbox_key}
    src = str(Path(authmigrate.__file__).resolve().parents[1])  # the code under test
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _authmigrate(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "authmigrate", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_for_a_claim(
    engine: sa.Engine,
    procs: list[subprocess.Popen[str]],
    older_than: float = 0.0,
    timeout: float = 30.0,
) -> None:
    """Until a message has been ``sending`` for ``older_than`` seconds (held in flight)."""
    deadline = time.monotonic() + timeout
    seen: dict[int, float] = {}
    while True:
        if procs and all(proc.poll() is not None for proc in procs):
            raise AssertionError(
                "the senders ended: " + "".join(proc.stdout.read() for proc in procs if proc.stdout)
            )
        try:
            with engine.connect() as conn:
                ids = (
                    conn.execute(
                        sa.text("SELECT id FROM authmigrate_outbox WHERE status = 'sending'")
                    )
                    .scalars()
                    .all()
                )
        except sa.exc.OperationalError:  # the table is being altered by a sender: ask again
            ids = []
        now = time.monotonic()
        for i in ids:
            seen.setdefault(i, now)
        if any(now - seen[i] >= older_than for i in ids):
            return
        assert now < deadline, "no message was claimed"
        time.sleep(0.02)


def test_requeue_in_doubt_never_takes_a_message_a_running_notify_holds(
    tmp_path: Path, server: SmtpServer, outbox_key: str
) -> None:
    """Two real notify processes and `notify --requeue in_doubt` beside them: the message one
    of them holds (its server is slow to answer) is left alone, so nobody gets it twice."""
    n = 12
    spec_file = tmp_path / "migration.toml"
    spec_file.write_text(
        spec_text(tmp_path / "target.db", server.port).replace("timeout = 5", "timeout = 30")
    )
    spec = load_spec_text(spec_file.read_text())
    engine, _ = migrate(spec, {"reset": n})
    server.handler.script = ["delay:8"]  # the first message stays in flight for 8 s
    env = _cli_env(outbox_key)
    senders = [_authmigrate("notify", str(spec_file), env=env) for _ in range(2)]

    _wait_for_a_claim(engine, senders, older_than=1.0)
    requeued = subprocess.run(
        [sys.executable, "-m", "authmigrate", "notify", str(spec_file), "--requeue", "in_doubt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert requeued.returncode == 0, requeued.stdout + requeued.stderr
    assert "requeued 0 message(s)" in requeued.stdout
    assert "a running notify is sending" in requeued.stdout
    for proc in senders:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
    assert notify_command(spec_file) == 0  # anything put back would go out a second time here
    time.sleep(0.2)
    _deliveries_are_exactly_once(server, engine, n)
    engine.dispose()


def test_heartbeat_keeps_a_slow_message_held_past_the_lease(
    tmp_path: Path, server: SmtpServer
) -> None:
    """A lease of 1 s renewed every 0.2 s: a message in flight for 3 s is still held."""
    import threading

    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 2})
    server.handler.script = ["delay:3"]
    reports: list[object] = []
    thread = threading.Thread(
        target=lambda: reports.append(send(engine, spec, heartbeat=0.2, lease=1.0))
    )
    thread.start()
    _wait_for_a_claim(engine, [], older_than=2.0)

    assert requeue(engine, spec, which="in_doubt") == 0
    from authmigrate.notify import sending_counts

    assert sending_counts(engine, spec) == {"in_doubt": 0, "held": 1}
    thread.join(30)
    assert reports and reports[0].sent == 2 and reports[0].ok  # type: ignore[attr-defined]
    _deliveries_are_exactly_once(server, engine, 2)


def test_a_sender_on_another_host_is_held_until_its_lease_runs_out(
    tmp_path: Path, server: SmtpServer, target_url: str
) -> None:
    import datetime as dt

    from authmigrate.notify import sending_counts
    from authmigrate.notify.senders import ensure_tables

    spec = make_spec(tmp_path, server.port, url=target_url)
    engine, _ = migrate(spec, {"reset": 3})
    ensure_tables(engine)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    first, second, _third = outbox_rows(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO authmigrate_notify_senders (id, migration, kind, host, pid, started_at,"
                " heartbeat_at, expires_at) VALUES ('elsewhere', 'shop', 'notify', 'other-host', 1,"
                " :t, :t, :e)"
            ),
            {"t": now, "e": now + dt.timedelta(seconds=60)},
        )
        conn.execute(
            sa.text(
                "UPDATE authmigrate_outbox SET status = 'sending', claimed_at = :t, claimed_by = :o"
                " WHERE id = :i"
            ),
            [
                {"t": now, "o": "elsewhere", "i": first.id},
                {"t": now, "o": "gone-long-ago", "i": second.id},
            ],
        )

    assert sending_counts(engine, spec) == {"in_doubt": 1, "held": 1}
    assert requeue(engine, spec, which="in_doubt") == 1  # the one whose sender is gone
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE authmigrate_notify_senders SET expires_at = :e"),
            {"e": now - dt.timedelta(seconds=1)},
        )
    assert requeue(engine, spec, which="in_doubt") == 1  # its lease ran out: gone too
    assert {r.status for r in outbox_rows(engine)} == {"queued"}
    engine.dispose()


def test_notify_counts_messages_left_in_doubt_by_a_killed_earlier_run_and_exits_1(
    tmp_path: Path, server: SmtpServer, outbox_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 6
    spec_file = tmp_path / "migration.toml"
    spec_file.write_text(spec_text(tmp_path / "target.db", server.port))
    spec = load_spec_text(spec_file.read_text())
    engine, _ = migrate(spec, {"reset": n})
    server.handler.script = ["delay:20"]
    killed = _authmigrate("notify", str(spec_file), env=_cli_env(outbox_key))
    _wait_for_a_claim(engine, [killed])
    deadline = time.monotonic() + 20
    while server.handler.data_commands < 1:  # its message is on the (slow) server
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()

    assert notify_command(spec_file) == 1
    said = " ".join(capsys.readouterr().out.split())
    assert "1 in doubt (1 left by earlier runs)" in said and "--requeue in_doubt" in said
    assert status(engine, spec)["reset"] == {"queued": 0, "sending": 1, "sent": n - 1, "failed": 0}
    assert notify_command(spec_file) == 1  # still in doubt: still exit 1
    assert notify_command(spec_file, status=True) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "sending: 1 in doubt (their sender is gone), 0 being sent by a running notify" in said
    # the killed sender is seen gone at once (its process on this host is gone)
    assert requeue(engine, spec, which="in_doubt") == 1
    assert notify_command(spec_file) == 0
    engine.dispose()


def test_rollback_and_notify_exclude_each_other(
    tmp_path: Path, server: SmtpServer, outbox_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 4
    spec_file = tmp_path / "migration.toml"
    spec_file.write_text(
        spec_text(tmp_path / "target.db", server.port).replace("timeout = 5", "timeout = 30")
    )
    spec = load_spec_text(spec_file.read_text())
    engine, _ = migrate(spec, {"reset": n})
    server.handler.script = ["delay:8"]
    env = _cli_env(outbox_key)
    sender = _authmigrate("notify", str(spec_file), env=env)
    _wait_for_a_claim(engine, [sender])

    refused = subprocess.run(
        [sys.executable, "-m", "authmigrate", "rollback", str(spec_file), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert refused.returncode == 2, refused.stdout + refused.stderr
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "notify of migration 'shop' is running" in said
    assert len(outbox_rows(engine)) == n
    out, _ = sender.communicate(timeout=60)
    assert sender.returncode == 0, out

    from authmigrate.notify.senders import hold_off_senders

    guard = hold_off_senders(engine, spec.migration_name)  # a rollback under way
    assert guard is not None
    try:
        assert notify_command(spec_file) == 2
    finally:
        guard.stop()
    assert "a rollback of migration 'shop' is running" in " ".join(capsys.readouterr().out.split())
    engine.dispose()


# --------------------------------------------------------------------------- token expiry


DAY = 86400


def _mailed_tokens(server: SmtpServer) -> dict[str, str]:
    out = {}
    for received in server.handler.received:
        found = {unquote(t) for t in TOKEN_RE.findall(received.text())}
        if found:  # a kept account's message carries no token
            (out[received.rcpt[0]],) = found
    return out


def _stored_tokens(engine: sa.Engine) -> dict[str, tuple[str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT email, auth_token, auth_token_prefix FROM new_users"))
        return {email: (tok, prefix) for email, tok, prefix in rows}


@pytest.mark.parametrize("alg", ["sha256", "hmac"])
def test_notify_days_after_the_run_reissues_expired_tokens_across_a_clock_jump(
    tmp_path: Path,
    server: SmtpServer,
    target_url: str,
    monkeypatch: pytest.MonkeyPatch,
    alg: str,
) -> None:
    """Tokens valid 2 days, notify run 3 days later (the clock injected into send_outbox)."""
    text = spec_text(target_url, server.port)
    if alg == "hmac":
        monkeypatch.setenv("AUTHMIGRATE_TEST_TOKEN_KEY", "k" * 32)
        text = text.replace(
            'expires_in = "2d"', 'expires_in = "2d"\nserver_key = "env:AUTHMIGRATE_TEST_TOKEN_KEY"'
        )
    spec = load_spec_text(text)
    engine, batch = migrate(spec, {"reset": 3, "kept": 1})
    before = _stored_tokens(engine)
    later = time.time() + 3 * DAY
    key = "k" * 32 if alg == "hmac" else None

    report = send(engine, spec, clock=lambda: later)

    assert report.sent == 4 and report.ok and report.reissued == 3  # type: ignore[attr-defined]
    after = _stored_tokens(engine)
    assert len(_mailed_tokens(server)) == 3
    for rcpt, token in _mailed_tokens(server).items():
        stored, prefix = after[rcpt]
        assert stored != before[rcpt][0] and prefix == token[:8]
        assert verify_token(token, stored, server_key=key, purpose="password_reset", now=later)
        assert not verify_token(token, stored, server_key=key, now=later + 2 * DAY + 1)
        old = next(r.token for r in batch.records if f"{r.key}@example.com" == rcpt)
        assert not verify_token(old, stored, server_key=key, now=0)  # the old one is gone
    expires = time.strftime("%Y-%m-%d", time.gmtime(later + 2 * DAY))
    assert all(
        expires in m.text()
        for m in server.handler.received
        if m.message["X-Authmigrate-Segment"] == "reset"
    )
    engine.dispose()


def test_a_token_issued_with_a_past_expiry_is_never_mailed_dead(
    tmp_path: Path, server: SmtpServer
) -> None:
    """The run happened 3 days ago (tokens of 2 days): notify now, with the real clock."""
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 2}, now=lambda: time.time() - 3 * DAY)

    assert notify_command(spec) == 0

    stored = _stored_tokens(engine)
    for rcpt, token in _mailed_tokens(server).items():
        assert verify_token(token, stored[rcpt][0], purpose="password_reset")


def test_a_token_with_more_than_half_its_life_left_is_sent_as_issued(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, batch = migrate(spec, {"reset": 2})
    before = _stored_tokens(engine)

    report = send(engine, spec, clock=lambda: time.time() + 0.9 * DAY)  # 1.1 of 2 days left

    assert report.sent == 2 and report.reissued == 0  # type: ignore[attr-defined]
    assert _stored_tokens(engine) == before
    assert set(_mailed_tokens(server).values()) == {r.token for r in batch.records}


def test_a_token_the_application_replaced_is_not_reissued_and_the_message_fails(
    tmp_path: Path, server: SmtpServer
) -> None:
    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 3})
    with engine.begin() as conn:  # the user already reset their password; the app cleared it
        conn.execute(sa.text("UPDATE new_users SET auth_token = NULL WHERE user_id = 'reset-001'"))

    report = send(engine, spec, clock=lambda: time.time() + 3 * DAY)

    assert (report.sent, report.failed, report.reissued) == (2, 1, 2)  # type: ignore[attr-defined]
    (failed,) = [r for r in outbox_rows(engine) if r.status == "failed"]
    assert failed.source_key == "reset-001" and "no longer in the target" in failed.last_error
    assert _stored_tokens(engine)["reset-001@example.com"][0] is None  # nothing written there


def test_a_reissued_token_is_stored_with_the_claim_so_a_crash_after_it_stays_consistent(
    tmp_path: Path, server: SmtpServer, monkeypatch: pytest.MonkeyPatch, outbox_key: str
) -> None:
    from authmigrate.notify import sender as sender_module

    spec = make_spec(tmp_path, server.port)
    engine, _ = migrate(spec, {"reset": 1})
    later = time.time() + 3 * DAY

    def killed(*args: object, **kw: object) -> None:
        raise _Killed("after the claim")

    monkeypatch.setattr(sender_module._Mailer, "deliver", killed)
    with pytest.raises(_Killed):
        send(engine, spec, clock=lambda: later)

    (row,) = outbox_rows(engine)
    assert row.status == "sending"
    token = OutboxCipher(outbox_key).decrypt(
        row.token_ciphertext, row_aad(row.migration, row.source_key, row.segment)
    )
    ((stored, _prefix),) = _stored_tokens(engine).values()
    assert verify_token(token, stored, purpose="password_reset", now=later)


def test_owners_and_reissue_work_on_mariadb(
    tmp_path: Path, server: SmtpServer, mariadb_url: str
) -> None:
    """The senders table, the claimed_by column and the re-issue update on MariaDB too."""
    import datetime as dt

    from tests.mariadb_server import fresh_database

    url = fresh_database(mariadb_url, "notify")
    spec = make_spec(tmp_path, server.port, url=url)
    engine, _ = migrate(spec, {"reset": 3})
    with engine.begin() as conn:  # an outbox of an earlier version: no claimed_by yet
        conn.exec_driver_sql("ALTER TABLE authmigrate_outbox DROP COLUMN claimed_by")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:  # one message left in doubt by an earlier version
        conn.execute(
            sa.text(
                "UPDATE authmigrate_outbox SET status = 'sending', claimed_at = :t"
                " WHERE source_key = 'reset-000'"
            ),
            {"t": now},
        )
    later = time.time() + 3 * DAY

    report = send(engine, spec, clock=lambda: later)

    assert (report.sent, report.reissued, report.in_doubt_total) == (2, 2, 1)  # type: ignore[attr-defined]
    stored = _stored_tokens(engine)
    for rcpt, token in _mailed_tokens(server).items():
        assert verify_token(token, stored[rcpt][0], purpose="password_reset", now=later)
    assert requeue(engine, spec, which="in_doubt") == 1
    assert send(engine, spec, clock=lambda: later).sent == 1  # type: ignore[attr-defined]
    _deliveries_are_exactly_once(server, engine, 3)
    engine.dispose()
