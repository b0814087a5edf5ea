"""A SQLite target with a notification outbox commits with ``synchronous = FULL``: a batch
whose messages may go out must survive a power loss, or it would be migrated again and its
users mailed a second time with new tokens. Without an outbox NORMAL stays the default
(atomic, not durable); ``target.synchronous`` chooses either."""

from __future__ import annotations

from pathlib import Path

import pytest

from authmigrate.pipeline import Migration
from authmigrate.rollback import _Target as RollbackTarget
from authmigrate.spec import load_spec
from tests.helpers_verify import OUTBOX_KEY, make_source, write_spec

FULL, NORMAL = 2, 1


def _synchronous(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())


@pytest.mark.parametrize(
    ("notify", "setting", "expected"),
    [
        (True, None, FULL),
        (False, None, NORMAL),
        (False, "full", FULL),
        (True, "normal", NORMAL),
    ],
)
def test_sqlite_target_synchronous_follows_the_outbox_and_the_setting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    notify: bool,
    setting: str | None,
    expected: int,
) -> None:
    monkeypatch.setenv("AUTHMIGRATE_OUTBOX_KEY", OUTBOX_KEY)
    src = tmp_path / "legacy.db"
    make_source(src, 20)
    path = write_spec(
        tmp_path / "m.toml", src, f"sqlite:///{tmp_path / 't.db'}", tokens=notify, notify=notify
    )
    if setting:
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace('table = "accounts"', f'table = "accounts"\nsynchronous = "{setting}"'),
            encoding="utf-8",
        )
    spec = load_spec(path)
    m = Migration(spec)
    try:
        assert _synchronous(m.target.engine) == expected  # the run's batches
        m.target.create()
    finally:
        m.close()
    rb = RollbackTarget(spec)
    try:
        assert _synchronous(rb.engine) == expected  # rollback's deletes
    finally:
        rb.engine.dispose()
