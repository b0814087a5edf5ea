"""How callers present the secret, over real HTTP: Bearer and Basic where the provider can send
them, an HMAC signature of the body where our own code calls (Auth0 scripts, the Cognito proxy
Lambda, run in Node from docs/bridge.md), replay and clock windows, one refusal for all."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from authmigrate.bridge._auth import Authenticator, sign
from authmigrate.spec import load_spec_text
from tests.bridge_helpers import SECRET, call, make_shop, running_bridge, stored

DOCS = Path(__file__).parent.parent / "docs" / "bridge.md"
REFUSED = (401, {"error": "unauthorized"})


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("shop")
    return make_shop(tmp, f"sqlite:///{tmp}/target.db")


@pytest.fixture(scope="module")
def base(shop):
    with running_bridge(shop.spec) as url:
        yield url


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def signed_post(
    base: str, path: str, body: Any, *, stamp: int | None = None, secret: str = SECRET
) -> tuple[int, Any]:
    """A POST signed as the shipped templates sign it; returns (status, JSON body)."""
    raw = json.dumps(body).encode()
    ts = str(int(time.time()) if stamp is None else stamp)
    return send_raw(
        base,
        path,
        raw,
        {"X-Authmigrate-Timestamp": ts, "X-Authmigrate-Signature": sign(secret, ts, path, raw)},
    )


def send_raw(base: str, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, data=raw, method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


ALICE = "alice@example.com"


def test_basic_auth_with_the_basic_user_and_the_secret_is_accepted_where_providers_send_it(
    shop, base
) -> None:
    pw = shop.passwords[ALICE]
    good = basic("authmigrate", SECRET)
    assert call(
        base, "POST", "/kratos", {"identifier": ALICE, "password": pw}, secret=None, headers=good
    )[:2] == (200, {"status": "password_match"})
    assert (
        call(base, "POST", f"/keycloak/{ALICE}", {"password": pw}, secret=None, headers=good)[0]
        == 200
    )
    assert (
        call(
            base,
            "POST",
            "/fusionauth",
            {"loginId": ALICE, "password": pw},
            secret=None,
            headers=good,
        )[0]
        == 200
    )
    okta = {"data": {"context": {"credential": {"username": ALICE, "password": "no"}}}}
    assert call(base, "POST", "/okta", okta, secret=None, headers=good)[0] == 200
    for wrong in (
        basic("someone", SECRET),
        basic("authmigrate", SECRET + "x"),
        basic("authmigrate", ""),
        {"Authorization": "Basic !!not-base64"},
        {"Authorization": f"Basic {SECRET}"},
    ):
        assert (
            call(
                base,
                "POST",
                "/kratos",
                {"identifier": ALICE, "password": pw},
                secret=None,
                headers=wrong,
            )[:2]
            == REFUSED
        )
    # Auth0 and Cognito callers are our own code: Bearer or a signature, never Basic
    assert (
        call(
            base,
            "POST",
            "/auth0/login",
            {"username": ALICE, "password": pw},
            secret=None,
            headers=good,
        )[:2]
        == REFUSED
    )


def test_bearer_scheme_name_is_case_insensitive(shop, base) -> None:
    status, _, _ = call(
        base,
        "POST",
        "/kratos",
        {"identifier": ALICE, "password": "x"},
        secret=None,
        headers={"Authorization": f"bearer {SECRET}"},
    )
    assert status == 403  # authenticated; the password is wrong


def test_a_signed_request_is_accepted_once_and_refused_when_tampered_old_or_replayed(
    shop, base
) -> None:
    pw = shop.passwords["bob@example.com"]
    body = {"username": "bob@example.com", "password": pw}
    status, profile = signed_post(base, "/auth0/login", body)
    assert status == 200 and profile["user_id"] == "2"
    assert signed_post(base, "/auth0/get_user", {"email": "carol@example.com"})[0] == 200
    # tampered: the signature of one body with another
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    headers = {
        "X-Authmigrate-Timestamp": ts,
        "X-Authmigrate-Signature": sign(SECRET, ts, "/auth0/login", raw),
    }
    assert send_raw(base, "/auth0/login", raw.replace(b"bob", b"eve"), headers) == REFUSED
    # the same signature on another path, another secret, a stale or future timestamp
    assert send_raw(base, "/cognito", raw, headers) == REFUSED
    assert signed_post(base, "/auth0/login", body, secret=SECRET + "x") == REFUSED
    assert signed_post(base, "/auth0/login", body, stamp=int(time.time()) - 301) == REFUSED
    assert signed_post(base, "/auth0/login", body, stamp=int(time.time()) + 301) == REFUSED
    # an exact replay (the first use is accepted, the second refused)
    fresh = {"username": "bob@example.com", "password": "typo"}
    raw = json.dumps(fresh).encode()
    ts = str(int(time.time()))
    headers = {
        "X-Authmigrate-Timestamp": ts,
        "X-Authmigrate-Signature": sign(SECRET, ts, "/auth0/login", raw),
    }
    assert send_raw(base, "/auth0/login", raw, headers)[0] == 401  # wrong password, checked
    assert send_raw(base, "/auth0/login", raw, headers) == REFUSED
    # providers that cannot sign do not get the scheme
    assert signed_post(base, "/kratos", {"identifier": ALICE, "password": "x"}) == REFUSED


def test_auth_setting_turns_schemes_off(tmp_path: Path) -> None:
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db")
    text = shop.spec_path.read_text().replace(
        'secret = "env:BRIDGE_SECRET"', 'secret = "env:BRIDGE_SECRET"\nauth = ["hmac", "basic"]'
    )
    with running_bridge(load_spec_text(text)) as url:
        login = {"username": ALICE, "password": shop.passwords[ALICE]}
        assert call(url, "POST", "/auth0/login", login)[:2] == REFUSED  # Bearer is off
        assert signed_post(url, "/auth0/login", login)[0] == 200
        kratos = {"identifier": ALICE, "password": "x"}
        assert call(url, "POST", "/kratos", kratos)[:2] == REFUSED
        assert (
            call(url, "POST", "/kratos", kratos, secret=None, headers=basic("authmigrate", SECRET))[
                0
            ]
            == 403
        )


def test_replay_memory_is_bounded() -> None:
    auth = Authenticator("s" * 16, max_seen=100)
    stamp = str(int(time.time()))
    for i in range(1000):
        body = str(i).encode()
        headers = {
            b"x-authmigrate-timestamp": stamp.encode(),
            b"x-authmigrate-signature": sign("s" * 16, stamp, "/cognito", body).encode(),
        }
        assert auth.body_ok("/cognito", headers, body)
    assert len(auth._seen) == 100  # noqa: SLF001 - the bound itself is what is tested


def doc_block(marker: str) -> str:
    """The code block that follows ``<!-- marker -->`` in docs/bridge.md."""
    text = DOCS.read_text()
    found = re.search(rf"<!-- {marker} -->\n```js\n(.*?)```", text, re.S)
    assert found, marker
    return found.group(1)


NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="node is not installed (scripts/ensure-servers installs nodejs)"
)

AUTH0_HARNESS = """
const configuration = { BRIDGE_URL: process.env.BRIDGE_URL, BRIDGE_SECRET: process.env.BRIDGE_SECRET };
class WrongUsernameOrPasswordError extends Error {
  constructor(user) { super("wrong"); this.name = "WrongUsernameOrPasswordError"; }
}
%s
%s
const report = (err, profile) => console.log(JSON.stringify({ error: err ? err.name : null, profile: profile || null }));
if (process.env.SCRIPT === "login") login(process.env.WHO, process.env.PW, report);
else getUser(process.env.WHO, report);
"""


def run_node(script: Path, env: dict[str, str]) -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(script)], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_node
def test_the_documented_auth0_scripts_log_in_through_the_bridge(shop, base, tmp_path) -> None:
    script = tmp_path / "auth0.js"
    script.write_text(AUTH0_HARNESS % (doc_block("auth0-login"), doc_block("auth0-get-user")))
    env = {"BRIDGE_URL": base, "BRIDGE_SECRET": SECRET}
    ok = run_node(
        script,
        {
            **env,
            "SCRIPT": "login",
            "WHO": "carol@example.com",
            "PW": shop.passwords["carol@example.com"],
        },
    )
    assert ok == {
        "error": None,
        "profile": {
            "user_id": "3",
            "email_verified": False,
            "email": "carol@example.com",
            "given_name": "Carol",
        },
    }
    assert stored(shop.target_url)[3].startswith("$argon2id$")
    wrong = run_node(script, {**env, "SCRIPT": "login", "WHO": "carol@example.com", "PW": "no"})
    assert wrong == {"error": "WrongUsernameOrPasswordError", "profile": None}
    found = run_node(script, {**env, "SCRIPT": "get_user", "WHO": "carol@example.com"})
    assert found["profile"]["user_id"] == "3"
    assert run_node(script, {**env, "SCRIPT": "get_user", "WHO": "nobody@example.com"}) == {
        "error": None,
        "profile": None,
    }
    other = run_node(
        script,
        {
            **env,
            "BRIDGE_SECRET": "another-secret-0123456789",
            "SCRIPT": "login",
            "WHO": "carol@example.com",
            "PW": "x",
        },
    )
    assert other == {"error": "Error", "profile": None}  # 401 of a bad signature, not "wrong pw"


COGNITO_HARNESS = """
import { handler } from "./proxy.mjs";
const event = JSON.parse(process.env.EVENT);
try { console.log(JSON.stringify({ answer: await handler(event) })); }
catch (e) { console.log(JSON.stringify({ thrown: e.message })); }
"""


@needs_node
def test_the_documented_cognito_proxy_lambda_signs_and_forwards_the_event(
    shop, base, tmp_path
) -> None:
    (tmp_path / "proxy.mjs").write_text(doc_block("cognito-proxy"))
    (tmp_path / "run.mjs").write_text(COGNITO_HARNESS)
    event = {
        "version": "1",
        "triggerSource": "UserMigration_Authentication",
        "region": "eu-west-1",
        "userPoolId": "eu-west-1_EXAMPLE",
        "userName": "bob@example.com",
        "callerContext": {
            "awsSdkVersion": "aws-sdk-unknown-unknown",
            "clientId": "1example23456789",
        },
        "request": {"password": shop.passwords["bob@example.com"]},
        "response": {},
    }
    env = {"BRIDGE_URL": base, "BRIDGE_SECRET": SECRET, "EVENT": json.dumps(event)}
    out = run_node(tmp_path / "run.mjs", env)
    assert out["answer"]["response"]["finalUserStatus"] == "CONFIRMED"
    assert "password" not in out["answer"]["request"]
    event["request"]["password"] = "wrong"
    assert run_node(tmp_path / "run.mjs", {**env, "EVENT": json.dumps(event)}) == {
        "thrown": "Bad password"
    }
    other = {**env, "BRIDGE_SECRET": "another-secret-0123456789", "EVENT": json.dumps(event)}
    assert run_node(tmp_path / "run.mjs", other) == {"thrown": "password bridge answered 401"}
