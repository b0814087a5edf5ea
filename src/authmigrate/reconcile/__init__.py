"""The proof: ``authmigrate verify`` as a library, read-only, printing nothing.

- :mod:`~authmigrate.reconcile.verify`: :func:`verify_migration`, the pass over the source in
  chunks running the modules below, and :func:`verify_report` (the JSON body).
- :mod:`~authmigrate.reconcile.result`: :class:`VerifyResult` and what it lists.
- :mod:`~authmigrate.reconcile.bookkeeping`: what the migration says it did with each key.
- :mod:`~authmigrate.reconcile.chunks`: the source side of the chunk checksums, and bisection.
- :mod:`~authmigrate.reconcile.checksum`: canonical values and the keyed row hash.
- :mod:`~authmigrate.reconcile.target`: the target side, with its checksums in the database.
- :mod:`~authmigrate.reconcile.secrets`: the credential and token checks.
- :mod:`~authmigrate.reconcile.outbox`: every message queued for the accounts that get one.
- :mod:`~authmigrate.reconcile.credentials`: is a wrapped credential made from its legacy hash.
- :mod:`~authmigrate.reconcile.ledger`: the written keys and rejects, read back per chunk of keys
  (verify's memory does not grow with the accounts).

Printing a result is :func:`authmigrate.report.verify.print_verify`'s job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

_WHERE = {
    "CredentialProblem": "verify",
    "Difference": "verify",
    "LEAF_ROWS": "verify",
    "VerifyResult": "verify",
    "verify_migration": "verify",
    "verify_report": "verify",
    "add_hashes": "checksum",
    "bytes_hash": "checksum",
    "canonical": "checksum",
    "column_kind": "checksum",
    "new_checksum_key": "checksum",
    "row_text": "checksum",
    "text_hash": "checksum",
    "IN_LIST": "target",
    "UNREADABLE": "target",
    "WrapCheck": "credentials",
    "check_wrapped": "credentials",
    "is_wrapped": "credentials",
}

__all__ = [
    "CredentialProblem",
    "Difference",
    "IN_LIST",
    "LEAF_ROWS",
    "UNREADABLE",
    "VerifyResult",
    "WrapCheck",
    "add_hashes",
    "bytes_hash",
    "canonical",
    "check_wrapped",
    "column_kind",
    "is_wrapped",
    "new_checksum_key",
    "row_text",
    "text_hash",
    "verify_migration",
    "verify_report",
]


def __getattr__(name: str) -> object:
    # loaded on first use, like authmigrate.pipeline
    if name not in _WHERE:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"authmigrate.reconcile.{_WHERE[name]}"), name)


if TYPE_CHECKING:
    from authmigrate.reconcile.checksum import (
        add_hashes,
        bytes_hash,
        canonical,
        column_kind,
        new_checksum_key,
        row_text,
        text_hash,
    )
    from authmigrate.reconcile.credentials import WrapCheck, check_wrapped, is_wrapped
    from authmigrate.reconcile.target import IN_LIST, UNREADABLE
    from authmigrate.reconcile.verify import (
        LEAF_ROWS,
        CredentialProblem,
        Difference,
        VerifyResult,
        verify_migration,
        verify_report,
    )
