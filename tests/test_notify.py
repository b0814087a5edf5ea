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

from authmigrate.batch import Batch, Record, Reject
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
from authmigrate.spec import Spec, load_spec_text
from authmigrate.tokens import TokenStage, verify_token
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


def migrate(spec: Spec, segments: dict[str, int], merged: int = 0) -> tuple[sa.Engine, Batch]:
    """What the pipeline does with one batch: token stage, outbox stage, one transaction."""
    engine = sa.create_engine(spec.target.url)
    assert spec.tokens is not None
    tokens = TokenStage(spec.tokens)
    outbox = OutboxStage.from_spec(spec)
    md = sa.MetaData()
    users = sa.Table(
        "new_users", md,
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("email", sa.Text), sa.Column("first_name", sa.Text),
        *tokens.columns(),
    )
    tokens.tables(md)
    outbox.tables(md)
    md.create_all(engine)
    records = []
    for segment, n in segments.items():
        for i in range(n):
            key = f"{segment}-{i:03d}"
            records.append(Record(key, {}, {"user_id": key, "email": f"{key}@example.com",
                                            "first_name": f"Ann {key}"}, segment=segment))
    rejects = [
        Reject(f"dup-{i:03d}", "duplicate.email", "email", "", {}, outcome="merged",
               merged_into=f"reset-{i:03d}", values={"email": f"dup-{i:03d}@example.com",
                                                     "first_name": "Dup"})
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
        assert expiry is not None and expiry.group(1) > time.strftime("%Y-%m-%d %H:%M", time.gmtime())
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
    again = Batch(1, None, None, 1, [Record("reset-000", {}, {"email": "new@example.com"},
                                            "reset", token="t" * 43)])
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
        outbox.write(conn, Batch(1, None, None, 1, [Record("n", {}, {"email": None}, "reset")]),
                     "r")

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
text_template = "{tmp_path / 'welcome.txt'}"
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
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(spec_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    text = spec_text(tmp_path / "target.db", 2525).replace("[notify.segments.kept]\nenabled = true\n", "")
    spec = load_spec_text(text)
    engine, _ = migrate(spec, {"kept": 3, "reset": 2})
    counts = status(engine, spec)
    assert "kept" not in counts
    assert counts["reset"]["queued"] == 2
