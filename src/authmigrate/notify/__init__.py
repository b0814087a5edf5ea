"""Telling the users: the outbox written with each batch, and ``authmigrate notify``.

Public names:

- :class:`OutboxStage`: the pipeline stage that queues messages in ``authmigrate_outbox``.
- :func:`send_outbox`: sends the queued messages over SMTP, exactly once as far as SMTP allows.
- :func:`dry_run`: renders the queued messages to ``.eml`` files instead.
- :func:`status`: counts messages per segment and status.
- :func:`requeue`: puts failed or in-doubt messages back in the queue (an operator decision).
- :func:`sending_counts`: messages in doubt (their sender gone) and being sent right now.
- :func:`notify_command`: what ``authmigrate notify`` runs.

See docs/notify.md for the delivery guarantee.
"""

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
    notify_command,
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
