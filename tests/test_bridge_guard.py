"""The bridge's guard over real HTTP: authentication, body and header limits, timeouts,
rate limits, equal answers in equal time, and an event loop that never blocks."""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from authmigrate.bridge._limits import RateLimit
from tests.bridge_helpers import SECRET, call, make_shop, running_bridge


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("shop")
    return make_shop(tmp, f"sqlite:///{tmp}/target.db")


@pytest.fixture(scope="module")
def base(shop):
    with running_bridge(shop.spec, body_timeout=0.5) as url:
        yield url


def raw_request(base: str, head: bytes, body: bytes = b"", *, pause: float = 0) -> bytes:
    """Send bytes on a socket and read the whole answer (for what urllib will not send)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        if pause:
            time.sleep(pause)
        with contextlib.suppress(OSError):  # the server may close first
            sock.sendall(body)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


LOGIN = {"identifier": "alice@example.com", "password": "password"}


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1]])
def test_a_request_without_the_right_bearer_secret_is_401_with_no_detail(base, secret) -> None:
    status, body, headers = call(base, "POST", "/kratos", LOGIN, secret=secret)
    assert (status, body) == (401, {"error": "unauthorized"})
    assert headers.get("www-authenticate") == "Bearer"


def test_basic_auth_with_the_secret_is_not_accepted(base) -> None:
    status, _, _ = call(
        base, "POST", "/kratos", LOGIN, secret=None, headers={"Authorization": f"Basic {SECRET}"}
    )
    assert status == 401


@pytest.mark.serial
def test_a_declared_10_mb_body_is_refused_before_it_is_read(base) -> None:
    head = (
        "POST /kratos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {SECRET}\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = raw_request(base, head, b"{" * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:60]
    assert time.monotonic() - started < 2


def test_a_chunked_body_over_the_limit_is_refused(base) -> None:
    head = (
        "POST /kratos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"a" * 32768
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    assert raw_request(base, head, body).startswith(b"HTTP/1.1 413")


def test_a_body_that_does_not_arrive_in_time_is_408(base) -> None:
    head = (
        "POST /kratos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {SECRET}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    answer = raw_request(base, head, b'{"identifier"', pause=1.5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:60]


def test_a_head_over_16_kib_is_refused_and_the_server_lives_on(base) -> None:
    head = (
        "POST /kratos HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {SECRET}\r\nX-Filler: {'a' * 40000}\r\n\r\n"
    ).encode()
    answer = raw_request(base, head)
    assert answer == b"" or answer.split(b" ")[1].startswith(b"4"), answer[:60]
    assert call(base, "POST", "/kratos", {"identifier": "x@example.com", "password": "y"})[0] == 403


@pytest.mark.serial
def test_unknown_user_malformed_hash_no_password_and_wrong_password_look_the_same(
    tmp_path: Path,
) -> None:
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db", min_seconds=0.25)
    cases = {
        "wrong": ("alice@example.com", "not it"),
        "unknown": ("nobody@example.com", "password"),
        "malformed": ("erin@example.com", "password"),
        "no_password": ("dave@example.com", "password"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    answers: dict[str, set[str]] = {name: set() for name in cases}
    with running_bridge(shop.spec) as url:
        for _ in range(4):
            for name, (who, pw) in cases.items():
                started = time.perf_counter()
                status, body, headers = call(
                    url, "POST", "/kratos", {"identifier": who, "password": pw}
                )
                times[name].append(time.perf_counter() - started)
                headers.pop("date", None)
                answers[name].add(repr((status, body, sorted(headers.items()))))
    assert len(set().union(*answers.values())) == 1, answers
    medians = {name: statistics.median(t) for name, t in times.items()}
    assert min(medians.values()) >= 0.25, medians
    assert max(medians.values()) - min(medians.values()) < 0.05, medians


def test_rate_limits_per_identifier_and_per_address_answer_429(tmp_path: Path) -> None:
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db", per_identifier=3, per_address=8)
    with running_bridge(shop.spec) as url:
        login = {"identifier": "Alice@example.com", "password": "wrong"}
        statuses = [call(url, "POST", "/kratos", login)[0] for _ in range(3)]
        assert statuses == [403, 403, 403]
        # the same person in other letters is the same identifier
        status, body, headers = call(
            url, "POST", "/kratos", {"identifier": "ALICE@example.com ", "password": "x"}
        )
        assert (status, body) == (429, {"error": "rate_limited"})
        assert 1 <= int(headers["retry-after"]) <= 60
        assert (
            call(url, "POST", "/kratos", {"identifier": "bob@example.com", "password": "x"})[0]
            == 403
        )
        rest = [
            call(url, "POST", "/kratos", {"identifier": f"u{i}@x.io", "password": "x"})[0]
            for i in range(5)
        ]
        assert rest[:3] == [403, 403, 403] and rest[3:] == [429, 429]


def test_rate_limit_memory_is_bounded() -> None:
    limit = RateLimit(5, max_keys=1000)
    for i in range(50_000):
        limit.hit(f"key{i}")
    assert len(limit) == 1000


@pytest.mark.serial
def test_the_event_loop_answers_while_verifications_run(tmp_path: Path) -> None:
    """Magento 2's argon2id (64 MiB, 3 passes) takes a while to verify; while eight of them run
    in the thread pool, unauthenticated requests (answered on the loop) stay fast."""
    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db", min_seconds=0.0)
    import sqlalchemy as sa

    from tests.bridge_helpers import vector

    slow, _, _ = vector("php.json", "magento2", 3)  # ...:3_32_2_67108864 (argon2id chain)
    engine = sa.create_engine(shop.target_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE accounts SET password = :p WHERE customer_id = 2"), {"p": slow})
    engine.dispose()
    with running_bridge(shop.spec) as url:
        logins = []

        def login() -> None:
            started = time.perf_counter()
            call(url, "POST", "/kratos", {"identifier": "bob@example.com", "password": "nope"})
            logins.append(time.perf_counter() - started)

        workers = [threading.Thread(target=login) for _ in range(8)]
        for w in workers:
            w.start()
        pings = []
        while any(w.is_alive() for w in workers):
            started = time.perf_counter()
            call(url, "POST", "/kratos", LOGIN, secret=None)
            pings.append(time.perf_counter() - started)
            time.sleep(0.01)
        for w in workers:
            w.join()
    assert max(logins) > 0.2, logins  # the verifications really were slow
    # one verification is ~0.4 s here: a loop running them inline would hold every ping that long
    assert len(pings) >= 5 and statistics.median(pings) < 0.15, pings


@pytest.mark.serial
def test_over_the_queue_bound_logins_get_503_with_retry_after_at_once(tmp_path: Path) -> None:
    """One verification slot and a queue of two: of eight logins at once against a slow hash,
    three are verified and five are refused at once, not queued behind them."""
    import sqlalchemy as sa

    from authmigrate.spec import load_spec_text
    from tests.bridge_helpers import vector

    shop = make_shop(tmp_path, f"sqlite:///{tmp_path}/t.db", min_seconds=0.0)
    slow, _, _ = vector("php.json", "magento2", 3)  # argon2id 64 MiB, 3 passes
    engine = sa.create_engine(shop.target_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE accounts SET password = :p WHERE customer_id = 2"), {"p": slow})
    engine.dispose()
    text = shop.spec_path.read_text().replace(
        "min_seconds = 0.0", "min_seconds = 0.0\nworkers = 1\nmax_queue = 2"
    )
    results: list[tuple[int, float, str | None]] = []
    lock = threading.Lock()
    with running_bridge(load_spec_text(text)) as url:
        barrier = threading.Barrier(8)

        def login() -> None:
            barrier.wait()
            started = time.perf_counter()
            status, _, headers = call(
                url, "POST", "/kratos", {"identifier": "bob@example.com", "password": "nope"}
            )
            with lock:
                results.append((status, time.perf_counter() - started, headers.get("retry-after")))

        threads = [threading.Thread(target=login) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    verified = [r for r in results if r[0] == 403]
    refused = [r for r in results if r[0] == 503]
    assert len(verified) == 3 and len(refused) == 5, results
    assert all(r[2] == "1" for r in refused)
    slowest_refusal = max(r[1] for r in refused)
    assert slowest_refusal < min(r[1] for r in verified), results  # answered before any verify
