"""``authmigrate bridge`` as a real process: bad input, planted secrets, kill -9 mid-burst."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import argon2
import pytest

from authmigrate.bridge._auth import sign
from authmigrate.credentials import verify
from tests.bridge_helpers import SECRET, call, make_shop, stored, vector
from tests.pg_server import free_port


def bridge_cmd(spec: Path, listen: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "authmigrate",
        "-v",
        "bridge",
        str(spec),
        "--listen",
        listen,
        *extra,
    ]


@contextmanager
def bridge_process(
    spec: Path, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The bridge command running on a free port; stopped (SIGTERM) after the block."""
    port = free_port()
    environ = {**os.environ, "BRIDGE_SECRET": SECRET, **(env or {})}
    proc = subprocess.Popen(
        bridge_cmd(spec, f"127.0.0.1:{port}", *extra),
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"bridge exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "bridge did not start"
            time.sleep(0.05)
    try:
        yield f"{'https' if extra else 'http'}://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_cli(spec: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authmigrate", "bridge", str(spec), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def shop(tmp_path: Path):
    return make_shop(tmp_path, f"sqlite:///{tmp_path}/target.db")


def test_bad_input_exits_2_naming_the_culprit(shop) -> None:
    env = {"BRIDGE_SECRET": SECRET}
    cases = [
        (["--listen", "127.0.0.1"], env, "--listen: expected HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], env, "--listen: expected HOST:PORT"),
        (
            ["--listen", "127.0.0.1:8085"],
            {"BRIDGE_SECRET": ""},
            "bridge.secret: environment variable BRIDGE_SECRET is not set",
        ),
        (
            ["--listen", "127.0.0.1:8085"],
            {"BRIDGE_SECRET": "short"},
            "bridge.secret: the secret is shorter than 16",
        ),
        (["--listen", "127.0.0.1:8085", "--certfile", "c.pem"], env, "--certfile: give both"),
    ]
    for args, environ, message in cases:
        done = run_cli(shop.spec_path, *args, env=environ)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "short" not in done.stderr.replace("shorter", "")
    no_section = shop.spec_path.parent / "nobridge.toml"
    text = shop.spec_path.read_text()
    no_section.write_text(text[: text.index("[bridge]")])
    done = run_cli(no_section, "--listen", "127.0.0.1:8085", env=env)
    assert done.returncode == 2 and "bridge: add a [bridge] section" in done.stderr


def test_planted_passwords_hashes_and_secrets_never_reach_a_log_line_or_response(
    tmp_path: Path,
) -> None:
    """Every request a provider could send, with known values planted; then every byte the
    process wrote and every response body is searched for them."""
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/target.db", extra_users=2)
    planted_password = "Planted-Pa55word-7f3a9c"
    secrets_extra: list[str] = []
    emails = [
        "alice@example.com",
        "carol@example.com",
        "user0@example.com",
        "user1@example.com",
        "nobody@example.com",
    ]
    # carol's upgrade fails in the database (a trigger): the error path must not leak either
    conn = sqlite3.connect(shop.target_url.removeprefix("sqlite:///"))
    conn.execute(
        "CREATE TRIGGER refuse_carol BEFORE UPDATE ON accounts WHEN NEW.customer_id = 3 "
        "BEGIN SELECT RAISE(ABORT, 'updates refused'); END"
    )
    conn.commit()
    conn.close()
    legacy = stored(shop.target_url)
    # an account only in the legacy source: found there, carried on its right password
    from passlib.hash import phpass

    late_hash = phpass.using(rounds=8).hash(planted_password)
    conn = sqlite3.connect(shop.spec_path.parent / "legacy.db")
    conn.execute("INSERT INTO customers VALUES (900, 'late@example.com', ?, 'Late')", (late_hash,))
    conn.commit()
    conn.close()
    emails.append("late@example.com")
    basic = "Basic " + base64.b64encode(f"authmigrate:{SECRET}".encode()).decode()
    responses: list[str] = []
    with bridge_process(shop.spec_path) as (url, proc):
        # the other ways to present the secret: Basic, and a signed body
        for who in ("late@example.com", "nobody@example.com"):
            login = {"identifier": who, "password": planted_password}
            responses.append(
                repr(
                    call(
                        url, "POST", "/kratos", login, secret=None, headers={"Authorization": basic}
                    )
                )
            )
            raw = json.dumps({"username": who, "password": planted_password}).encode()
            ts = str(int(time.time()))
            signature = sign(SECRET, ts, "/auth0/login", raw)
            signed = {"X-Authmigrate-Timestamp": ts, "X-Authmigrate-Signature": signature}
            for _ in range(2):  # the second is a replay, refused
                req = urllib.request.Request(url + "/auth0/login", data=raw, method="POST")
                for k, v in {**signed, "Content-Type": "application/json"}.items():
                    req.add_header(k, v)
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        responses.append(f"{resp.status} {resp.read()!r} {dict(resp.headers)!r}")
                except urllib.error.HTTPError as err:
                    responses.append(f"{err.code} {err.read()!r} {dict(err.headers)!r}")
            secrets_extra.extend([basic.split(" ", 1)[1], signature.split("=", 1)[1]])
        for who in emails:
            for pw in (shop.passwords.get(who, planted_password), planted_password):
                for method, path, body in [
                    ("POST", "/kratos", {"identifier": who, "password": pw}),
                    (
                        "POST",
                        "/okta",
                        {"data": {"context": {"credential": {"username": who, "password": pw}}}},
                    ),
                    (
                        "POST",
                        "/cognito",
                        {
                            "triggerSource": "UserMigration_Authentication",
                            "userName": who,
                            "request": {"password": pw},
                            "response": {},
                        },
                    ),
                    ("POST", f"/keycloak/{who}", {"password": pw}),
                    ("GET", f"/keycloak/{who}", None),
                    ("POST", "/fusionauth", {"loginId": who, "password": pw}),
                    ("POST", "/auth0/login", {"username": who, "password": pw}),
                    ("POST", "/auth0/get_user", {"email": who}),
                ]:
                    status, answer, headers = call(url, method, path, body)
                    responses.append(f"{status} {answer!r} {headers!r}")
        # a token in the wrong place, a password in a malformed body
        for secret in (planted_password, SECRET + "-nope"):
            responses.append(repr(call(url, "POST", "/kratos", {"identifier": "x"}, secret=secret)))
        responses.append(
            repr(call(url, "POST", "/kratos", {"identifier": 7, "password": planted_password}))
        )
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    upgraded = stored(shop.target_url)
    assert upgraded[100].startswith("$argon2id$") and upgraded[3] == legacy[3]  # carol refused
    assert upgraded[900].startswith("$argon2id$")  # carried from the legacy source
    assert "503" in " ".join(responses)
    # the vectors' "password" is also a word of the protocols ("password_match"): the planted
    # and generated passwords stand for it
    secrets = [planted_password, SECRET, *(p for p in shop.passwords.values() if p != "password")]
    secrets += [h for h in [*legacy.values(), *upgraded.values()] if h]
    secrets += [late_hash, *secrets_extra]
    lines = out.splitlines()
    assert any("/kratos" in line for line in lines), out  # there are log lines to search
    assert any("IntegrityError" in line or "updates refused" in line for line in lines), out
    for value in secrets:
        assert value not in out, f"a secret value is in the log: {value[:4]}..."
        assert all(value not in r for r in responses), (
            f"a secret value is in a response: {value[:4]}..."
        )
    for email in emails:
        assert email not in out, "an identifier is in the log"


@pytest.mark.slow
def test_kill_9_during_a_burst_loses_no_answered_upgrade_and_half_writes_nothing(
    tmp_path: Path,
) -> None:
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/target.db", extra_users=80)
    users = [f"user{i}@example.com" for i in range(80)]
    legacy = stored(shop.target_url)
    answered: list[str] = []
    lock = threading.Lock()
    with bridge_process(shop.spec_path) as (url, proc):
        todo = list(users)

        def worker() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    who = todo.pop()
                try:
                    status, body, _ = call(
                        url, "POST", "/kratos", {"identifier": who, "password": shop.passwords[who]}
                    )
                except (OSError, http.client.HTTPException):
                    return  # the process is gone (maybe in the middle of an answer)
                if status == 200 and body == {"status": "password_match"}:
                    with lock:
                        answered.append(who)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(answered) < 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for t in threads:
            t.join(30)
    assert 20 <= len(answered) < len(users), len(answered)
    now = stored(shop.target_url)
    for who in users:
        key = shop.keys[who]
        value = now[key]
        if who in answered:
            assert value.startswith("$argon2id$"), who
        if value == legacy[key]:
            continue  # not upgraded: still the legacy hash, which still verifies
        assert value.startswith("$argon2id$")
        assert argon2.PasswordHasher().verify(value, shop.passwords[who])
    for who in users:
        assert verify(shop.passwords[who], now[shop.keys[who]])
    # the bridge starts again on the same target and answers the rest
    with bridge_process(shop.spec_path) as (url, _):
        for who in users:
            assert call(
                url, "POST", "/kratos", {"identifier": who, "password": shop.passwords[who]}
            )[:2] == (
                200,
                {"status": "password_match"},
            )
    assert all(v.startswith("$argon2id$") for k, v in stored(shop.target_url).items() if k >= 100)


def test_vectors_helper_reads_a_keyring() -> None:
    _, _, keyring = vector("php.json", "prestashop")
    assert keyring


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with cryptography."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
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
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp / "bridge.crt", tmp / "bridge.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def test_certfile_and_keyfile_serve_https(shop, tmp_path: Path) -> None:
    import json
    import ssl
    import urllib.request

    certfile, keyfile = self_signed(tmp_path)
    extra = ("--certfile", str(certfile), "--keyfile", str(keyfile))
    with bridge_process(shop.spec_path, extra=extra) as (url, _):
        assert url.startswith("https://")
        context = ssl.create_default_context(cafile=str(certfile))
        body = json.dumps(
            {"identifier": "bob@example.com", "password": shop.passwords["bob@example.com"]}
        ).encode()
        request = urllib.request.Request(
            url + "/kratos",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            assert answer.status == 200
            assert json.loads(answer.read()) == {"status": "password_match"}
        with pytest.raises((OSError, http.client.HTTPException)):  # no plain HTTP on TLS
            urllib.request.urlopen(url.replace("https", "http") + "/kratos", timeout=10)
