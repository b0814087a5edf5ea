"""Each provider's documented request, over real HTTP to a real uvicorn, gets the documented
answer: right password, wrong one, unknown user, malformed legacy hash, account without one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authmigrate import bridge as bridge_module
from authmigrate.bridge import cognito
from tests.bridge_helpers import MALFORMED, call, make_shop, running_bridge, stored


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("shop")
    return make_shop(tmp, f"sqlite:///{tmp}/target.db")


@pytest.fixture(scope="module")
def base(shop):
    with running_bridge(shop.spec) as url:
        yield url


def okta_event(username: str, password: str) -> dict[str, Any]:
    """Okta's documented password import request (developer.okta.com, inline hooks)."""
    return {
        "eventId": "3OWo4oo-QQ-rBWfRyTmQYw",
        "eventTime": "2020-01-17T21:23:56.000Z",
        "eventType": "com.okta.user.credential.password.import",
        "eventTypeVersion": "1.0",
        "contentType": "application/json",
        "cloudEventVersion": "0.1",
        "source": "https://example.okta.com/api/v1/inlineHooks/cal2xd5phv9fsPLcF0g7",
        "data": {
            "context": {
                "request": {
                    "id": "XiIl6wn7005Rr@fjYqeC7CCAAAc",
                    "method": "POST",
                    "url": {"value": "/api/v1/authn"},
                    "ipAddress": "98.124.153.138",
                },
                "credential": {"username": username, "password": password},
            },
            "action": {"credential": "UNVERIFIED"},
        },
    }


def cognito_event(user: str, password: str | None) -> dict[str, Any]:
    """Cognito's documented migrate-user event (common parameters + trigger parameters)."""
    trigger = (
        "UserMigration_Authentication" if password is not None else "UserMigration_ForgotPassword"
    )
    request: dict[str, Any] = {"validationData": None, "clientMetadata": None}
    if password is not None:
        request["password"] = password
    return {
        "version": "1",
        "triggerSource": trigger,
        "region": "eu-west-1",
        "userPoolId": "eu-west-1_EXAMPLE",
        "userName": user,
        "callerContext": {
            "awsSdkVersion": "aws-sdk-unknown-unknown",
            "clientId": "1example23456789",
        },
        "request": request,
        "response": {
            "userAttributes": None,
            "finalUserStatus": None,
            "messageAction": None,
            "desiredDeliveryMediums": None,
            "forceAliasCreation": None,
            "enableSMSMFA": None,
        },
    }


def kratos(base: str, who: str, pw: str) -> tuple[int, Any]:
    status, body, _ = call(base, "POST", "/kratos", {"identifier": who, "password": pw})
    return status, body


def okta(base: str, who: str, pw: str) -> tuple[int, Any]:
    status, body, _ = call(base, "POST", "/okta", okta_event(who, pw))
    return status, body


def cognito_http(base: str, who: str, pw: str) -> tuple[int, Any]:
    status, body, _ = call(base, "POST", "/cognito", cognito_event(who, pw))
    return status, body


def keycloak(base: str, who: str, pw: str) -> tuple[int, Any]:
    status, body, _ = call(base, "POST", f"/keycloak/{who}", {"password": pw})
    return status, body


def fusionauth(base: str, who: str, pw: str) -> tuple[int, Any]:
    request = {
        "applicationId": "85a03867-dccf-4882-adde-1a79aeec50df",
        "ipAddress": "192.168.1.42",
        "loginId": who,
        "password": pw,
    }
    status, body, _ = call(base, "POST", "/fusionauth", request)
    return status, body


def auth0(base: str, who: str, pw: str) -> tuple[int, Any]:
    status, body, _ = call(base, "POST", "/auth0/login", {"username": who, "password": pw})
    return status, body


OKTA_VERIFIED = {
    "commands": [{"type": "com.okta.action.update", "value": {"credential": "VERIFIED"}}]
}
OKTA_UNVERIFIED = {
    "commands": [{"type": "com.okta.action.update", "value": {"credential": "UNVERIFIED"}}]
}
COGNITO_CONFIRMED = {
    "userAttributes": {
        "email": "alice@example.com",
        "email_verified": "true",
        "given_name": "Alice",
    },
    "finalUserStatus": "CONFIRMED",
    "messageAction": "SUPPRESS",
    "desiredDeliveryMediums": None,
    "forceAliasCreation": None,
    "enableSMSMFA": None,
}


def fusionauth_ok(body: Any) -> bool:
    user = body["user"]
    uuid.UUID(user["id"])  # a UUID, as FusionAuth requires
    return (
        user["email"] == "alice@example.com"
        and user["firstName"] == "Alice"
        and user["active"] is True
        and user["data"] == {"authmigrate": {"legacy_key": "1"}}
    )


# provider -> (request, check of a right password's answer, the one answer of every failure)
PROVIDERS: dict[
    str,
    tuple[Callable[[str, str, str], tuple[int, Any]], Callable[[int, Any], bool], tuple[int, Any]],
] = {
    "kratos": (kratos, lambda s, b: (s, b) == (200, {"status": "password_match"}), (403, {})),
    "okta": (okta, lambda s, b: (s, b) == (200, OKTA_VERIFIED), (200, OKTA_UNVERIFIED)),
    "cognito": (
        cognito_http,
        lambda s, b: (
            s == 200 and b["response"] == COGNITO_CONFIRMED and b["userName"] == "alice@example.com"
        ),
        (401, {"errorMessage": "Bad password"}),
    ),
    "keycloak": (keycloak, lambda s, b: (s, b) == (200, {}), (401, {})),
    "fusionauth": (fusionauth, lambda s, b: s == 200 and fusionauth_ok(b), (404, {})),
    "auth0": (
        auth0,
        lambda s, b: (
            (s, b)
            == (
                200,
                {
                    "user_id": "1",
                    "email": "alice@example.com",
                    "email_verified": False,
                    "given_name": "Alice",
                },
            )
        ),
        (401, {"error": "invalid_credentials"}),
    ),
}

FAILURES = {
    "wrong_password": ("alice@example.com", "not her password"),
    "unknown_user": ("nobody@example.com", "password"),
    "malformed_hash": ("erin@example.com", "password"),
    "no_password": ("dave@example.com", "password"),
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_right_password_gets_the_documented_success_and_upgrades(shop, base, provider) -> None:
    send, is_success, _ = PROVIDERS[provider]
    status, body = send(base, "alice@example.com", shop.passwords["alice@example.com"])
    assert is_success(status, body), (status, body)
    assert stored(shop.target_url)[1].startswith("$argon2id$")
    status, body = send(base, "alice@example.com", shop.passwords["alice@example.com"])
    assert is_success(status, body), "a provider's retry gets the same answer"


@pytest.mark.parametrize("case", sorted(FAILURES))
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_failure_gets_the_one_documented_refusal_and_writes_nothing(
    shop, base, provider, case
) -> None:
    send, _, refusal = PROVIDERS[provider]
    before = stored(shop.target_url)
    who, pw = FAILURES[case]
    assert send(base, who, pw) == refusal
    assert stored(shop.target_url) == before
    assert before[5] == MALFORMED and before[4] is None


def test_keycloak_get_answers_the_plugins_user_json(shop, base) -> None:
    status, body, _ = call(base, "GET", "/keycloak/alice@example.com")
    assert status == 200
    assert body == {
        "id": "1",
        "username": "alice@example.com",
        "email": "alice@example.com",
        "firstName": "Alice",
        "lastName": None,
        "enabled": True,
        "emailVerified": False,
        "attributes": {"customer_id": ["1"]},
        "roles": [],
        "groups": [],
        "requiredActions": [],
    }
    status, body, _ = call(base, "GET", "/keycloak/dave@example.com")
    assert status == 200 and body["requiredActions"] == ["UPDATE_PASSWORD"]
    assert call(base, "GET", "/keycloak/nobody@example.com")[:2] == (404, {})
    # the plugin's "verify by legacy id" option posts to /keycloak/{id}
    status, _, _ = call(
        base, "POST", "/keycloak/2", {"password": shop.passwords["bob@example.com"]}
    )
    assert status == 200


def test_auth0_get_user_answers_a_profile_or_404(shop, base) -> None:
    status, body, _ = call(base, "POST", "/auth0/get_user", {"email": "carol@example.com"})
    assert (status, body) == (
        200,
        {
            "user_id": "3",
            "email": "carol@example.com",
            "email_verified": False,
            "given_name": "Carol",
        },
    )
    assert call(base, "POST", "/auth0/get_user", {"email": "nobody@example.com"})[:2] == (404, {})


def test_cognito_forgot_password_migrates_as_reset_required(shop, base) -> None:
    for who in ("alice@example.com", "dave@example.com"):
        status, body, _ = call(base, "POST", "/cognito", cognito_event(who, None))
        assert status == 200
        assert body["response"]["finalUserStatus"] == "RESET_REQUIRED"
        assert body["response"]["messageAction"] == "SUPPRESS"
        assert body["response"]["userAttributes"]["email"] == who
    status, body, _ = call(base, "POST", "/cognito", cognito_event("nobody@example.com", None))
    assert (status, body) == (401, {"errorMessage": "Bad password"})


def test_cognito_lambda_handler_answers_the_aws_event(shop, monkeypatch) -> None:
    monkeypatch.setenv("AUTHMIGRATE_SPEC", str(shop.spec_path))
    monkeypatch.setattr(bridge_module, "_default", None)
    event = cognito_event("bob@example.com", shop.passwords["bob@example.com"])
    answered = cognito.handler(event, None)
    assert answered["response"]["finalUserStatus"] == "CONFIRMED"
    assert answered["response"]["userAttributes"]["email"] == "bob@example.com"
    assert event["response"]["finalUserStatus"] is None  # the input is not changed
    assert "password" not in answered["request"]  # the password goes back nowhere
    with pytest.raises(cognito.Refused, match="^Bad password$"):
        cognito.handler(cognito_event("bob@example.com", "wrong"), None)
    with pytest.raises(cognito.Refused, match="^Bad password$"):
        cognito.handler(cognito_event("nobody@example.com", "wrong"), None)
    assert stored(shop.target_url)[2].startswith("$argon2id$")
    bridge_module.default_bridge().close()
    monkeypatch.setattr(bridge_module, "_default", None)


def test_fusionauth_user_id_is_stable_and_per_account(shop, base) -> None:
    ids = []
    for who in ("alice@example.com", "alice@example.com", "carol@example.com"):
        status, body = fusionauth(base, who, shop.passwords[who])
        assert status == 200
        ids.append(body["user"]["id"])
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(
    "body",
    [
        {"identifier": "alice@example.com"},
        {"identifier": 42, "password": "password"},
        {"identifier": "alice@example.com", "password": ["password"]},
        ["identifier", "password"],
    ],
)
def test_a_body_not_in_the_documented_shape_is_400(base, body) -> None:
    assert call(base, "POST", "/kratos", body)[:2] == (400, {"error": "bad_request"})


def test_not_json_is_400(base) -> None:
    status, body, _ = call(base, "POST", "/kratos", None, headers={"Content-Type": "text/plain"})
    assert (status, body) == (400, {"error": "bad_request"})


@pytest.mark.postgres
def test_kratos_over_postgresql_target(tmp_path: Path, pg_url: str) -> None:
    pg_shop = make_shop(tmp_path, pg_url)
    with running_bridge(pg_shop.spec) as url:
        assert kratos(url, "bob@example.com", pg_shop.passwords["bob@example.com"]) == (
            200,
            {"status": "password_match"},
        )
        assert kratos(url, "bob@example.com", "nope") == (403, {})
    assert stored(pg_url)[2].startswith("$argon2id$")
