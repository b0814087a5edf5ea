"""Is ``verify_and_update`` safe on a login path? One run, four measures.

1. A 1 MiB password against every registered scheme, wrapped and not: CPU beyond the dummy
   hash (budget: 50 ms), and wall time.
2. A crafted hash at each work bound (and one step over it), wrong password: CPU and wall per
   verification (budget: ``WORK_BUDGET_SECONDS`` of CPU, about one second; over the bound:
   the dummy hash only).
3. 32 concurrent logins against crafted hashes at the costliest bounds (threads, as a WSGI or
   ASGI server's pool runs them): CPU per login, wall for all, the memory held at once by the
   argon2/scrypt gate, and the process's peak RSS (budget: CPU per login within the work
   budget; memory in flight at most ``MAX_MEMORY_IN_FLIGHT``).
4. With ``--calibrate``: the cost model's slopes measured on this machine beside the figures
   ``_limits`` was built with (the reference core).

Run:  AUTHMIGRATE_ALLOW_TEST_PROFILE=1 .venv/bin/python bench/bench_login.py [--concurrent 32]
      [--calibrate]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import argon2
import bcrypt

import authmigrate.credentials as creds
from authmigrate.credentials import _limits, shops
from authmigrate.credentials._base import get
from authmigrate.credentials._examples import KNOWN_ANSWERS

MIB = 1024 * 1024
NOT_WRAPPABLE = {"argon2id", "argon2i", "django_argon2"}
B64_32 = base64.b64encode(bytes(32)).decode().rstrip("=")
BC53 = "abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG"


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def _examples() -> list[tuple[str, str, str, Any]]:
    out = []
    for info in creds.schemes():
        if info.id == "wrap":
            continue
        examples = list(getattr(get(info.id), "examples", ()))
        if examples:
            ex = examples[0]
            out.append((info.id, ex.password, ex.credential, ex.keyring))
            continue
        known = KNOWN_ANSWERS[info.id]
        imp = known["import"]
        canonical = creds.import_hash(
            info.id, known["stored"], salt=imp.get("salt"), **(imp.get("params") or {})
        )
        out.append((info.id, known["password"], canonical, known["keyring"]))
    return out


def long_passwords() -> None:
    print("## 1. A 1 MiB password (the right one followed by 1 MiB), every scheme")
    dummy = min(_timed(creds.dummy_verify)[0] for _ in range(5))
    print(f"dummy hash (argon2id OWASP_2025): {dummy * 1000:.1f} ms CPU")
    worst: tuple[float, float, str] = (0.0, 0.0, "")
    count = 0
    for scheme, password, credential, keyring in _examples():
        candidates = [(scheme, credential)]
        if scheme not in NOT_WRAPPABLE:
            candidates.append((f"wrap({scheme})", creds.wrap(credential, profile="TEST")))
        huge = password + "x" * MIB
        for name, candidate in candidates:

            def attempt(c: str = candidate, h: str = huge, k: Any = keyring) -> bool:
                return creds.verify(h, c, keyring=k)

            cpu, wall = _timed(attempt)
            assert not attempt()
            count += 1
            if cpu - dummy > worst[0]:
                worst = (cpu - dummy, wall, name)
    print(
        f"{count} credentials: all False; worst CPU beyond the dummy hash {worst[0] * 1000:.1f} ms "
        f"({worst[2]}, wall {worst[1] * 1000:.1f} ms); budget 50 ms"
    )


def crafted() -> list[tuple[str, str]]:
    """(name, credential) at each bound, with a checksum that never matches."""
    m_max = _limits.MAX_ARGON2_MEMORY_KIB
    t_max = _limits.MAX_ARGON2_WORK_KIB // m_max
    pb = base64.b64encode(bytes(32)).decode()
    scrypt_p = _limits.MAX_SCRYPT_WORK // ((1 << 14) * 8)
    return [
        ("pbkdf2-sha256 iterations", f"pbkdf2_sha256${_limits.MAX_PBKDF2_ITERATIONS}$salt${pb}"),
        (
            "sha512-crypt rounds (64-byte password)",
            f"$6$rounds={_limits.MAX_SHA_CRYPT_ROUNDS}$/fIEIeaiSZI.JQuM$" + "a" * 86,
        ),
        ("bcrypt cost", f"$2b${_limits.MAX_BCRYPT_COST}$" + BC53),
        (
            "argon2id memory x passes",
            f"$argon2id$v=19$m={m_max},t={t_max},p=1$c29tZXNhbHQ${B64_32}",
        ),
        ("scrypt N*r*p", f"scrypt:16384:8:{scrypt_p}$salt$" + "0" * 128),
        ("scrypt memory", "scrypt:131072:15:1$salt$" + "0" * 128),
        ("phpass log2 20", "$P$" + shops.ITOA64[_limits.MAX_PHPASS_LOG2] + "saltsalt" + "a" * 22),
        ("drupal7 log2 20", "$S$" + shops.ITOA64[_limits.MAX_PHPASS_LOG2] + "saltsalt" + "a" * 43),
        ("yescrypt 256 MiB", "$y$jDT$saltsaltsaltsalt$" + "a" * 43),
    ]


def over(name: str, credential: str) -> str:
    """The same credential one step over its bound."""
    bumps = {
        "pbkdf2-sha256 iterations": lambda c: c.replace(
            f"${_limits.MAX_PBKDF2_ITERATIONS}$", f"${_limits.MAX_PBKDF2_ITERATIONS + 1}$"
        ),
        "sha512-crypt rounds (64-byte password)": lambda c: c.replace(
            f"rounds={_limits.MAX_SHA_CRYPT_ROUNDS}", f"rounds={_limits.MAX_SHA_CRYPT_ROUNDS + 1}"
        ),
        "bcrypt cost": lambda c: c.replace(
            f"$2b${_limits.MAX_BCRYPT_COST}$", f"$2b${_limits.MAX_BCRYPT_COST + 1}$"
        ),
        "argon2id memory x passes": lambda c: c.replace(",t=4,", ",t=5,"),
        "scrypt N*r*p": lambda c: c.replace(":8:", ":9:", 1),
        "scrypt memory": lambda c: c.replace(":15:", ":16:"),
        "phpass log2 20": lambda c: c[:3] + shops.ITOA64[21] + c[4:],
        "drupal7 log2 20": lambda c: c[:3] + shops.ITOA64[21] + c[4:],
        "yescrypt 256 MiB": lambda c: c.replace("jDT", "jET"),
    }
    return str(bumps[name](credential))


def at_bounds() -> None:
    print("\n## 2. A crafted hash at each bound, wrong password (64 bytes)")
    password = "w" * 64
    print("| bound | at the bound: CPU / wall | one step over: CPU / wall |")
    print("| --- | --- | --- |")
    for name, credential in crafted():
        creds.import_hash("auto", credential)  # admitted at import
        cpu, wall = _timed(lambda c=credential: creds.verify(password, c))
        bumped = over(name, credential)
        ocpu, owall = _timed(lambda c=bumped: creds.verify(password, c))
        print(f"| {name} | {cpu:.2f} s / {wall:.2f} s | {ocpu:.3f} s / {owall:.3f} s |")


def concurrent(n: int) -> None:
    print(f"\n## 3. {n} concurrent logins against crafted hashes at the costliest bounds")
    pool = [c for name, c in crafted() if not name.startswith(("phpass", "drupal"))]
    per_login: list[float] = []
    lock = threading.Lock()
    gate = _limits.MEMORY_GATE
    gate.reset_peak()

    def login(credential: str) -> None:
        start = time.thread_time()
        ok = creds.verify_and_update("w" * 64, credential)
        spent = time.thread_time() - start
        assert ok == (False, None)
        with lock:
            per_login.append(spent)

    threads = [threading.Thread(target=login, args=(pool[i % len(pool)],)) for i in range(n)]
    cpu, wall = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"{n} logins ({len(pool)} kinds of crafted hash): wall {wall:.1f} s, CPU {cpu:.1f} s "
        f"({cpu / n:.2f} s a login); CPU per login max {max(per_login):.2f} s, median "
        f"{statistics.median(per_login):.2f} s (threads' own CPU; argon2's lanes run in the "
        f"calling thread at p=1)"
    )
    print(
        f"memory held at once by argon2/scrypt: {gate.peak / MIB:.0f} MiB "
        f"(gate {_limits.MAX_MEMORY_IN_FLIGHT / MIB:.0f} MiB); peak RSS of the process "
        f"{rss / MIB:.0f} MiB; {os.cpu_count()} cores"
    )


def calibrate() -> None:
    print("\n## 4. The cost model on this machine (slopes; reference figures in _limits)")

    def slope(fn: Callable[[], Any], units: float) -> float:
        return min(_timed(fn)[0] for _ in range(3)) / units

    def pbkdf2() -> None:
        hashlib.pbkdf2_hmac("sha256", b"p", b"s", 200_000)

    def bcrypt10() -> None:
        bcrypt.hashpw(b"p", bcrypt.gensalt(10))

    def scrypt() -> None:
        hashlib.scrypt(b"p", salt=b"s", n=1 << 15, r=8, p=1, maxmem=1 << 28)

    def argon() -> None:
        argon2.low_level.hash_secret_raw(b"p", b"saltsalt", 2, 65536, 1, 32, argon2.Type.ID)

    rows = [
        ("PBKDF2-SHA256 / iteration", slope(pbkdf2, 200_000), _limits.pbkdf2_seconds("sha256", 1)),
        ("bcrypt cost 10", slope(bcrypt10, 1), _limits.bcrypt_seconds(10)),
        ("scrypt / N*r*p", slope(scrypt, (1 << 15) * 8), _limits.scrypt_seconds(1, 1, 1)),
        ("argon2 / KiB-pass", slope(argon, 131072), _limits.argon2_seconds(1, 1)),
    ]
    print("| slope | this machine | model |")
    print("| --- | --- | --- |")
    for name, measured, model in rows:
        print(f"| {name} | {measured * 1e6:.3f} us | {model * 1e6:.3f} us |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=32)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    long_passwords()
    at_bounds()
    concurrent(args.concurrent)
    if args.calibrate:
        calibrate()


if __name__ == "__main__":
    main()
