"""The bridge attacked as a hostile caller would, over real HTTP: slow heads, JSON bombs,
NUL bytes, respelled identifiers, retries, and equal time on every provider's endpoint."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from authmigrate.bridge import Bridge
from authmigrate.bridge import app as bridge_app
from authmigrate.spec import load_spec_text
from tests.bridge_helpers import SECRET, call, make_shop, running_bridge, stored


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the server closes ``sock`` (None if it is still open after
    ``seconds``), sending one byte of ``trickle`` every 0.2 s meanwhile."""
    started = time.monotonic()
    sock.settimeout(0.2)
    i = 0
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - started
        if i < len(trickle):
            with contextlib.suppress(OSError):
                sock.sendall(trickle[i : i + 1])
            i += 1
    return None


@pytest.mark.serial
def test_a_slow_or_silent_request_head_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bridge_app, "HEAD_TIMEOUT", 1.0)
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db")
    head = f"POST /kratos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\nX-Slow: "
    with running_bridge(shop.spec) as url:
        silent = connect(url)
        slow = connect(url)
        slow.sendall(head.encode())
        after_silent = closed_within(silent, 6)
        after_slow = closed_within(slow, 6, trickle=b"a" * 100)  # a byte every 0.2 s
        silent.close()
        slow.close()
        assert after_silent is not None and after_slow is not None, (after_silent, after_slow)
        # and a request that keeps its connection alive still gets its next answer
        assert (
            call(url, "POST", "/kratos", {"identifier": "x@example.com", "password": "y"})[0] == 403
        )


def test_a_deeply_nested_json_body_is_a_400_not_an_error(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with running_bridge(shop.spec) as url:
        for path in ("/kratos", "/okta", "/cognito", "/fusionauth", "/auth0/login"):
            req = urllib.request.Request(url + path, data=b"[" * 30000, method="POST")
            req.add_header("Authorization", f"Bearer {SECRET}")
            try:
                urllib.request.urlopen(req, timeout=30)
                status = 200
            except urllib.error.HTTPError as err:
                status = err.code
            assert status == 400, path


@pytest.mark.postgres
def test_nul_bytes_and_lone_surrogates_in_an_identifier_are_unknown_users(
    tmp_path: Path, pg_url: str
) -> None:
    shop = make_shop(tmp_path, pg_url)
    text = shop.spec_path.read_text().replace(
        'lookup = ["email", "customer_id"]', 'lookup = ["first_name", "email"]'
    )
    bridge = Bridge(load_spec_text(text))  # first_name: plain text, sent to PostgreSQL as is
    assert bridge.check("Alice", shop.passwords["alice@example.com"]).ok
    for identifier in ("Ali\x00ce", "\ud800lice", "Bob\x00"):
        verdict = bridge.check(identifier, "whatever")
        assert (verdict.ok, verdict.reason) == (False, "bridge.unknown_user"), identifier
        assert bridge.find(identifier) is None
    bridge.close()


def test_respelling_an_identifier_does_not_buy_more_attempts(tmp_path: Path) -> None:
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db", per_identifier=3)
    with running_bridge(shop.spec) as url:
        answers = [
            call(url, "POST", "/kratos", {"identifier": who, "password": "wrong"})[0]
            for who in ("2", "02", "002", "0002", " 00002")
        ]
    assert answers == [403, 403, 403, 429, 429], answers


# provider -> a login request for (identifier, password)
LOGINS: dict[str, Any] = {
    "kratos": lambda who, pw: ("/kratos", {"identifier": who, "password": pw}),
    "okta": lambda who, pw: (
        "/okta",
        {"data": {"context": {"credential": {"username": who, "password": pw}}}},
    ),
    "cognito": lambda who, pw: (
        "/cognito",
        {
            "triggerSource": "UserMigration_Authentication",
            "userName": who,
            "request": {"password": pw},
            "response": {},
        },
    ),
    "keycloak": lambda who, pw: (f"/keycloak/{who}", {"password": pw}),
    "fusionauth": lambda who, pw: ("/fusionauth", {"loginId": who, "password": pw}),
    "auth0": lambda who, pw: ("/auth0/login", {"username": who, "password": pw}),
}


def add_unmigrated(shop: Any, rows: list[tuple[int, str, str, str]]) -> None:
    """Legacy rows added to the source after the migration ran (not in the target)."""
    conn = sqlite3.connect(shop.spec_path.parent / "legacy.db")
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


@pytest.mark.slow
@pytest.mark.serial
def test_every_endpoint_answers_every_failure_alike_in_equal_time(tmp_path: Path) -> None:
    """Unknown user, malformed hash, no password, wrong password, and a wrong password for an
    account still only in the legacy source: one answer per provider, and the same time."""
    from passlib.hash import phpass

    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db", min_seconds=0.3)
    add_unmigrated(shop, [(70, "late@example.com", phpass.using(rounds=8).hash("late-pw"), "L")])
    cases = {
        "wrong": ("alice@example.com", "not it"),
        "unknown": ("nobody@example.com", "password"),
        "malformed": ("erin@example.com", "password"),
        "no_password": ("dave@example.com", "password"),
        "legacy_wrong": ("late@example.com", "not it"),
    }
    spread = {}
    with running_bridge(shop.spec) as url:
        for provider, request in LOGINS.items():
            times: dict[str, list[float]] = {name: [] for name in cases}
            answers: set[str] = set()
            for _ in range(3):
                for name, (who, pw) in cases.items():
                    path, body = request(who, pw)
                    started = time.perf_counter()
                    status, answer, headers = call(url, "POST", path, body)
                    times[name].append(time.perf_counter() - started)
                    headers.pop("date", None)
                    answers.add(repr((status, answer, sorted(headers.items()))))
            assert len(answers) == 1, (provider, answers)
            medians = [statistics.median(t) for t in times.values()]
            assert min(medians) >= 0.3, (provider, times)
            spread[provider] = max(medians) - min(medians)
    assert max(spread.values()) < 0.1, spread
    assert 70 not in stored(shop.target_url)  # a wrong password carried nothing


def test_cognito_retrying_an_unmigrated_login_three_times_carries_it_once(
    tmp_path: Path,
) -> None:
    from passlib.hash import phpass

    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db")
    add_unmigrated(shop, [(71, "retry@example.com", phpass.using(rounds=8).hash("retry-pw"), "R")])
    path, event = LOGINS["cognito"]("retry@example.com", "retry-pw")
    answers: list[Any] = []
    with running_bridge(shop.spec) as url:
        barrier = threading.Barrier(3)

        def attempt() -> None:
            barrier.wait()
            answers.append(call(url, "POST", path, event)[:2])

        threads = [threading.Thread(target=attempt) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(answers) == 3 and all(a == answers[0] for a in answers), answers
    assert answers[0][0] == 200 and answers[0][1]["response"]["finalUserStatus"] == "CONFIRMED"
    now = stored(shop.target_url)
    assert now[71].startswith("$argon2id$")
    engine_rows = sqlite3.connect(shop.target_url.removeprefix("sqlite:///"))
    carried = engine_rows.execute(
        "SELECT COUNT(*) FROM authmigrate_runs WHERE command = 'bridge'"
    ).fetchone()[0]
    engine_rows.close()
    assert carried == 1


def test_policy_wrap_lookup_spends_no_hash_and_the_carry_verifies_clean(tmp_path: Path) -> None:
    """With ``policy = "wrap"`` run wraps weak hashes in argon2id; the bridge's lookup must not
    (an argon2id hash before the password is checked would time apart an existing account)."""
    from passlib.hash import phpass

    from authmigrate.pipeline import run_migration
    from authmigrate.reconcile import verify_migration

    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db")
    text = shop.spec_path.read_text().replace('policy = "keep"', 'policy = "wrap"')
    text = text.replace(f"sqlite:///{tmp_path}/t.db", f"sqlite:///{tmp_path}/wrapped.db")
    spec = load_spec_text(text)
    run_migration(spec)
    add_unmigrated(shop, [(72, "wrap@example.com", phpass.using(rounds=8).hash("wrap-pw"), "W")])
    bridge = Bridge(spec)
    found = bridge.legacy.find(
        "wrap@example.com",
        [(n, norm) for n, (_, norm) in zip(spec.bridge.lookup, bridge.lookups, strict=True)],
    )
    assert found is not None
    assert not found.record.values["password"].startswith("$wrap$")  # imported, not wrapped
    verdict = bridge.check("wrap@example.com", "wrap-pw")
    assert verdict.ok and verdict.credential.startswith("$argon2id$")
    bridge.close()
    assert run_migration(spec).this_run["migrated"] == 0
    checked = verify_migration(spec)
    assert checked.ok, checked.as_dict()
