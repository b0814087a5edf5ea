"""Telling the users: the outbox written with each batch, and ``authmigrate notify``.

Public names:

- :class:`OutboxStage`: the pipeline stage that queues messages in ``authmigrate_outbox``.
- :func:`send_outbox`: sends the queued messages over SMTP, exactly once as far as SMTP allows.
- :func:`dry_run`: renders the queued messages to ``.eml`` files instead.
- :func:`status`: counts messages per segment and status.
- :func:`requeue`: puts failed or in-doubt messages back in the queue (an operator decision).
- :func:`sending_counts`: messages in doubt (their sender gone) and being sent right now.
- :func:`notify_command`: what ``authmigrate notify`` runs. It lives in :mod:`authmigrate.cli`
  (its output in :mod:`authmigrate.report.notify`: this package prints nothing) and is
  reached here too, imported when first asked for.

See docs/notify.md for the delivery guarantee.
"""

from typing import Any

from authmigrate.notify.outbox import (
    OUTBOX_TABLE,
    OutboxCipher,
    OutboxKeyError,
    OutboxStage,
    UnknownKeyIdError,
    decode_outbox_key,
    generate_outbox_key,
    outbox_table,
    rollback_outbox,
)
from authmigrate.notify.sender import (
    NotifyError,
    SendReport,
    dry_run,
    requeue,
    send_outbox,
    sending_counts,
    status,
)
from authmigrate.notify.templates import BUILTIN_SEGMENTS, Templates

__all__ = [
    "BUILTIN_SEGMENTS",
    "OUTBOX_TABLE",
    "NotifyError",
    "OutboxCipher",
    "OutboxKeyError",
    "OutboxStage",
    "SendReport",
    "Templates",
    "UnknownKeyIdError",
    "decode_outbox_key",
    "dry_run",
    "generate_outbox_key",
    "notify_command",
    "outbox_table",
    "requeue",
    "rollback_outbox",
    "send_outbox",
    "sending_counts",
    "status",
]


def __getattr__(name: str) -> Any:
    """``authmigrate.notify.notify_command``, the command, from :mod:`authmigrate.cli`: imported
    on first use, so that importing this package loads no command line and no console."""
    if name == "notify_command":
        from authmigrate.cli import notify_command

        return notify_command
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
