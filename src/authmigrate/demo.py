"""``authmigrate demo``: a legacy shop in SQLite, migrated, checked and reported. No server.

The legacy shop has grown over the years: customers from its WordPress days (phpass), from an
old Linux-crypt based shop (md5-crypt, sha512-crypt), from a Django rewrite (pbkdf2), newer
bcrypt and argon2id accounts, an LDAP import ({SSHA}) and a MySQL one (``*HEX``). Emails come
in mixed case, with padding, in decomposed Unicode, some duplicated, some broken; a few
password hashes are empty, truncated or of no known scheme.

Hashes are made by libpass with lower work factors than production uses, so that the demo
builds in seconds; every format is the real one. Each customer's password is ``pw-<id>``, so
the demo can log every sampled customer in against the migrated credential. Each migrated
customer gets a password-reset token (stored hashed); customers with no usable password and
merged duplicates get a message in the outbox, which the demo renders to .eml files.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

DEMO_SPEC = """\
# The demo migration: legacy shop customers -> new accounts table.
name = "demo-shop"

[source]
url = "sqlite:///legacy_shop.db"
table = "customers"
key = "customer_id"

[target]
url = "sqlite:///new_accounts.db"
table = "accounts"
unique = ["email"]

[fields]
customer_id = "customer_id"
email = { from = "email", normalize = "email", required = true }
first_name = { from = "first_name", normalize = ["strip", "nfkc", "none_if_empty"] }
last_name = { from = "last_name", normalize = ["strip", "nfkc", "none_if_empty"] }
display_name = { template = "{first_name} {last_name}", normalize = ["collapse_spaces", "nfkc"] }
created_at = { from = "created", type = "datetime" }
active = { from = "status", type = "boolean" }
origin = { value = "legacy-shop" }

[credentials]
column = "password_hash"
scheme = "auto"
policy = "keep"
target_column = "password"

[tokens]
column = "auth_token"
purpose = "password_reset"
expires_in = "14d"

[notify]
from = "Demo Shop <no-reply@shop.example>"
shop_name = "Demo Shop"
reset_url = "https://shop.example/account/reset?token={token}"

[run]
batch_size = 5000
duplicates = "merge"
"""

FIRST = [
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Émilie",
    "Felix",
    "Greta",
    "Hugo",
    "Inès",
    "Jonas",
    "Katarzyna",
    "Luis",
    "Mei",
    "Noah",
    "Olga",
    "Pål",
    "Zoë",
    "Søren",
    "Ayşe",
    "Yusuf",
]
LAST = [
    "Müller",
    "Smith",
    "García",
    "Nowak",
    "Rossi",
    "Dubois",
    "Jansen",
    "Kowalski",
    "Öztürk",
    "Nielsen",
    "Svensson",
    "Ivanova",
    "Tanaka",
    "O'Brien",
    "Weiß",
    "Fernández",
]
DOMAINS = ["example.com", "Mail.Example.ORG", "shop.example.net", "bücher.example", "EXAMPLE.de"]


def _hashers() -> list[tuple[str, float, object]]:
    from passlib import hash as h

    return [
        ("phpass", 0.30, h.phpass.using(rounds=9)),
        ("md5_crypt", 0.15, h.md5_crypt),
        ("sha512_crypt", 0.08, h.sha512_crypt.using(rounds=5000)),
        ("bcrypt", 0.07, h.bcrypt.using(rounds=4, ident="2y")),
        ("django_pbkdf2_sha256", 0.10, h.django_pbkdf2_sha256.using(rounds=1000)),
        ("argon2id", 0.05, h.argon2.using(type="ID", memory_cost=1024, rounds=1, parallelism=1)),
        ("ldap_salted_sha1", 0.15, h.ldap_salted_sha1),
        ("mysql41", 0.10, h.mysql41),
    ]


def build_legacy_shop(path: Path, users: int, *, seed: int = 2026) -> dict[str, int]:
    """Create the legacy shop with ``users`` customers; returns counts of what it planted."""
    rng = random.Random(seed)
    hashers = _hashers()
    weights = [w for _, w, _ in hashers]
    planted = {"duplicates": 0, "bad_email": 0, "bad_hash": 0, "no_hash": 0}
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(
        """CREATE TABLE customers (
            customer_id INTEGER PRIMARY KEY,
            email TEXT,
            first_name TEXT,
            last_name TEXT,
            created TEXT,
            status INTEGER,
            password_hash TEXT
        )"""
    )
    emails: list[str] = []
    rows = []
    start = dt.datetime(2012, 1, 1)
    for cid in range(1, users + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}{cid}".replace("'", "").replace(" ", "")
        email = f"{local}@{rng.choice(DOMAINS)}"
        roll = rng.random()
        if emails and roll < 0.01:  # the same person again, differently typed
            email = rng.choice(emails).upper()
            planted["duplicates"] += 1
        elif roll < 0.02:
            email = f"  {email}  "
        elif roll < 0.03:
            email = email.replace("e", "e\u0301", 1)  # decomposed accent
        elif roll < 0.035:
            email = rng.choice(["not-an-email", "", "jane@", "@example.com", "a b@example.com"])
            planted["bad_email"] += 1
        emails.append(email.strip())
        name, _, hasher = rng.choices(hashers, weights)[0]
        password = f"pw-{cid}"
        cred: str | None = hasher.hash(password)  # type: ignore[attr-defined]
        if rng.random() < 0.004:
            cred = rng.choice(
                [
                    cred[: len(cred) // 2] if cred else None,
                    "5f4dcc3b5aa765d61d8327deb882cf99x",
                    "!locked",
                ]
            )
            planted["bad_hash"] += 1
        elif rng.random() < 0.004:
            cred = rng.choice([None, ""])
            planted["no_hash"] += 1
        created = (start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 365 * 12))).isoformat(
            " "
        )
        rows.append((cid, email, first, last, created, 1 if rng.random() > 0.05 else 0, cred))
        if len(rows) >= 5000:
            conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?)", rows)
            rows.clear()
    conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?)", rows)
    conn.commit()
    conn.close()
    return planted


DEFAULT_USERS = 5_000
"""Customers of the default demo shop: the whole demo in seconds (``--users N`` for more)."""
WRAP_SAMPLE = 20
"""Weak credentials the demo wraps in argon2id to show ``policy = "wrap"``: wrapping costs
milliseconds of a core per account, so the demo wraps a sample, not the shop."""

NEXT_COMMANDS = (
    "authmigrate init --from sqlite:///path/to/shop.db -o migration.toml"
    "   (or mysql+pymysql://, postgresql+psycopg://)",
    "authmigrate plan migration.toml",
    "authmigrate run migration.toml",
)
"""What a user runs next, on their own database."""


def run_demo(users: int = DEFAULT_USERS, directory: Path | None = None, *, sample: int = 50) -> int:
    """Build, migrate, verify and report; returns the exit code (0 when every check holds)."""
    from rich.text import Text

    from authmigrate.load import load_spec
    from authmigrate.pipeline.run import plan_migration, run_migration
    from authmigrate.report import (
        make_console,
        print_plan,
        print_run,
        progress_reporter,
        write_report,
    )

    console = make_console()
    work = directory or Path(tempfile.mkdtemp(prefix="authmigrate-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("new_accounts.db", "new_accounts.db-wal", "new_accounts.db-shm"):
        (work / name).unlink(missing_ok=True)
    spec_path = work / "migration.toml"
    spec_path.write_text(DEMO_SPEC, encoding="utf-8")

    t0 = time.monotonic()
    console.print(f"[bold]1. building a legacy shop with {users:,} customers[/] in {work}")
    planted = build_legacy_shop(work / "legacy_shop.db", users)
    console.print(f"   built in {time.monotonic() - t0:.1f} s; planted: {planted}")

    from authmigrate.notify import generate_outbox_key

    # tokens travel encrypted in the outbox; a real migration reads this key from the
    # environment, the demo makes a throwaway one (never shown)
    os.environ.setdefault("AUTHMIGRATE_OUTBOX_KEY", generate_outbox_key())
    spec = load_spec(spec_path)
    console.print("[bold]2. plan[/] (dry run, writes nothing)")
    with progress_reporter("plan") as progress:
        plan = plan_migration(spec, preview=8, progress=progress)
    print_plan(plan)

    console.print("[bold]3. run[/]")
    with progress_reporter("migrate") as progress:
        result = run_migration(spec, progress=progress)
    print_run(result)
    write_report(work / "migration.report.json", result.as_dict())

    console.print("[bold]4. verify[/] (source = migrated + rejected + merged, every row compared)")
    from authmigrate.reconcile import verify_migration
    from authmigrate.report.verify import print_verify

    verified = verify_migration(spec, sample=sample)
    print_verify(spec, verified)
    ok = verified.ok
    console.print("[bold]5. logins[/] (as the new system's login path would do them)")
    logins_ok, upgraded, checked = _login_sample(work / "new_accounts.db", sample)
    console.print(
        f"   login check: {logins_ok}/{checked} sampled customers log in with their old "
        f"password (wrong passwords refused); {upgraded} would be upgraded to argon2id on login"
    )
    again = run_migration(spec)
    console.print(f"   second run wrote {again.this_run['migrated']} new rows (expected 0)")

    wrapped_ok, wrapped = _wrap_sample(work / "new_accounts.db", WRAP_SAMPLE)
    console.print(
        f'   wrap (policy = "wrap", on a sample of {wrapped}): {wrapped_ok}/{wrapped} weak '
        "credentials wrapped in argon2id log in with the old password"
    )

    console.print("[bold]6. notifications[/] (rendered, not sent: notify --dry-run)")
    import sqlalchemy as sa

    from authmigrate.notify import dry_run, status

    engine = sa.create_engine(spec.target.url)
    try:
        queued = status(engine, spec)
        rendered = dry_run(engine, spec, work / "outbox", base_dir=work)
    finally:
        engine.dispose()
    for segment, counts in sorted(queued.items()):
        console.print(f"   {segment}: {counts.get('queued', 0):,} queued")
    console.print(f"   {rendered:,} messages rendered to {work / 'outbox'}")

    good = ok and logins_ok == checked and wrapped_ok == wrapped and again.this_run["migrated"] == 0
    console.print(f"   report: {work / 'migration.report.json'}")
    from authmigrate.continuity.status import record_verify
    from authmigrate.report.html import write_html_report

    # verify reads the target only; the demo records its verdict for the report
    record_verify(spec, ok=ok, source_rows=result.source_rows)
    html = work / "report.html"
    write_html_report(spec, html)
    console.print(
        f"[bold]{'demo ok' if good else 'demo FAILED'}[/] in {time.monotonic() - t0:.1f} s"
        + ("" if users > DEFAULT_USERS else " (authmigrate demo --users 50000 for a bigger shop)")
    )
    console.print("[bold]The report[/] (one HTML file, nothing loaded from the network):")
    console.print(str(html), soft_wrap=True)
    console.print("[bold]Next, on your own database:[/]")
    for command in NEXT_COMMANDS:
        console.print(Text(f"  {command}"))
    return 0 if good else 1


def _wrap_sample(db: Path, sample: int) -> tuple[int, int]:
    """Wrap ``sample`` migrated weak credentials in argon2id and log each in with its old
    password. Returns (logins that worked, credentials wrapped)."""
    from authmigrate.credentials import default_weak, identify, verify, wrap

    weak = default_weak()
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT customer_id, password FROM accounts WHERE password IS NOT NULL ORDER BY random()"
    )
    picked = []
    for cid, cred in rows:
        if identify(cred) in weak:
            picked.append((cid, cred))
            if len(picked) == sample:
                break
    conn.close()
    good = sum(
        verify(f"pw-{cid}", w) and not verify(f"pw-{cid}x", w)
        for cid, w in ((cid, wrap(cred)) for cid, cred in picked)
    )
    return good, len(picked)


def _login_sample(db: Path, sample: int) -> tuple[int, int, int]:
    """Log ``sample`` random migrated customers in with ``pw-<id>`` as the new system would
    (``verify_and_update``), and check that a wrong password is refused.

    Returns (logins that behaved, credentials that would be upgraded, customers checked).
    """
    from argon2 import PasswordHasher

    from authmigrate import verify, verify_and_update

    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT customer_id, password FROM accounts WHERE password IS NOT NULL "
        "ORDER BY random() LIMIT ?",
        (sample,),
    ).fetchall()
    conn.close()
    good = upgraded = 0
    for cid, cred in rows:
        ok, new = verify_and_update(f"pw-{cid}", cred)
        if new is not None:
            upgraded += 1
            ok = ok and PasswordHasher().verify(new, f"pw-{cid}")
        good += bool(ok and not verify(f"pw-{cid}x", cred))
    return good, upgraded, len(rows)
