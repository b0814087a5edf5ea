"""Per-row CPU cost of the credential ``keep`` path and of tokens (issue 13).

    .venv/bin/python bench/bench_rowcost.py [--rows 100000] [--repeat 5]
    .venv/bin/python bench/bench_rowcost.py --baseline /tmp/base/src   # before and after

Runs the pipeline's own stages (``CredentialStage.process`` and ``TokenStage.process``) on
batches of 5,000 in-memory records, as ``authmigrate run`` hands them over, and prints the CPU
time (``time.process_time``) per row, best of ``--repeat``:

- ``keep digest``: the seed's mapping, bare 32-hex md5 digests under ``scheme = "digest"``,
  ``params.algorithm = "md5"``, ``policy = "keep"``;
- ``keep auto``: canonical values of common schemes (phpass, bcrypt, Django pbkdf2, md5-crypt,
  ``$digest$``) under ``scheme = "auto"``;
- ``tokens``: one token per record (SHA-256, no server key, with a prefix column).

With ``--baseline SRC`` the same measurements run first in a subprocess with ``SRC`` (a checkout
of the code before the change, e.g. ``git archive <commit> src | tar -x -C /tmp/base``) first on
the path, then here, alternating ``--repeat`` times, so that both are measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BATCH = 5000


def auto_samples() -> list[str]:
    """Canonical values of common schemes, made here by their libraries."""
    import base64

    import bcrypt

    pbkdf2 = hashlib.pbkdf2_hmac("sha256", b"password", b"salt1234", 1000)
    return [
        "$P$BXhx3s6Ld2yjMvRjQf0uaOU9MzC9CS/",
        bcrypt.hashpw(b"password", bcrypt.gensalt(4)).decode(),
        "pbkdf2_sha256$1000$salt1234$" + base64.b64encode(pbkdf2).decode(),
        "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
        "$digest$a=md5,e=hex$$5f4dcc3b5aa765d61d8327deb882cf99",
    ]


def _records(values: list[str]) -> list[object]:
    from authmigrate.pipeline.batch import Record

    return [Record(i, {"password_hash": v}, {}) for i, v in enumerate(values)]


def _per_row(process: Callable[[object], None], values: list[str]) -> float:
    """CPU seconds per row of ``process`` over ``values`` cut into batches of 5,000."""
    from authmigrate.pipeline.batch import Batch

    batches = []
    for start in range(0, len(values), BATCH):
        chunk = values[start : start + BATCH]
        batches.append(Batch(start // BATCH, 0, 0, len(chunk), _records(chunk)))  # type: ignore[arg-type]
    begin = time.process_time()
    for batch in batches:
        process(batch)
    spent = time.process_time() - begin
    for batch in batches:
        assert not batch.rejects, [r.reason for r in batch.rejects[:3]]
    return spent / len(values)


def measure(rows: int) -> dict[str, float]:
    """One measurement of each case, in microseconds per row."""
    from authmigrate.pipeline.stages import CredentialStage
    from authmigrate.pipeline.tokens import TokenStage
    from authmigrate.spec import CredentialsSpec, TokensSpec

    md5 = [hashlib.md5(f"password{i}".encode()).hexdigest() for i in range(rows)]
    samples = auto_samples()
    auto = [samples[i % len(samples)] for i in range(rows)]
    digest = CredentialStage(
        CredentialsSpec(column="password_hash", scheme="digest", params={"algorithm": "md5"})
    )
    detect = CredentialStage(CredentialsSpec(column="password_hash", scheme="auto"))
    tokens = TokenStage(TokensSpec(column="auth_token", prefix_column="token_prefix"))
    return {
        "keep digest": _per_row(digest.process, md5) * 1e6,  # type: ignore[arg-type]
        "keep auto": _per_row(detect.process, auto) * 1e6,  # type: ignore[arg-type]
        "tokens": _per_row(tokens.process, md5) * 1e6,  # type: ignore[arg-type]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="src folder of the code before the change")
    parser.add_argument("--json", action="store_true", help="one measurement, as JSON (internal)")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.rows)))
        return
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.repeat):
        sides = [("after", None)]
        if args.baseline is not None:
            sides.insert(0, ("before", str(args.baseline.resolve())))
        for name, src in sides:
            env = dict(os.environ)
            if src is not None:
                env["PYTHONPATH"] = src
            out = subprocess.run(
                [sys.executable, __file__, "--json", "--rows", str(args.rows)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append(json.loads(out.stdout))
    print(f"{args.rows:,} rows, batches of {BATCH:,}, CPU us/row, best of {args.repeat}")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    for case in runs["after"][0]:
        after = min(r[case] for r in runs["after"])
        if runs["before"]:
            before = min(r[case] for r in runs["before"])
            print(f"  {case:12} before {before:6.2f}  after {after:6.2f}  ({before / after:.1f}x)")
        else:
            print(f"  {case:12} {after:6.2f}")


if __name__ == "__main__":
    main()
