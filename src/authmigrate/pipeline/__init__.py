"""The batch machinery: a migration's rows, page by page, from the source to the target.

::

    spec ─► source ─► batch (keyset on key) ─► transform ─► stages ─► sink + checkpoint
                                                   │            │     (one transaction)
                                                   └─ rejects ◄─┘

- :mod:`~authmigrate.pipeline.run`: :class:`Migration`, :func:`run_migration` and
  :func:`plan_migration` (the dry run), with their results.
- :mod:`~authmigrate.pipeline.batch`: what flows through (``Batch``, ``Record``, ``Reject``)
  and the ``Stage`` protocol.
- :mod:`~authmigrate.pipeline.transform`: a spec's ``[fields]`` compiled into row functions.
- :mod:`~authmigrate.pipeline.stages`: duplicates and credentials; :mod:`~.tokens`: the
  tokens stage and the token format.
- :mod:`~authmigrate.pipeline.advice`: fixes and next steps a result suggests (text, not
  printing).

The names below are loaded on first use, so that ``from authmigrate.pipeline.batch import
Batch`` (from a source or a sink) does not pull in the whole run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "EXAMPLES",
    "Migration",
    "PlanResult",
    "RunResult",
    "build_late_stages",
    "build_stages",
    "check_source_columns",
    "plan_migration",
    "run_migration",
    "source_key_tag",
]


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(name)
    from authmigrate.pipeline import run

    return getattr(run, name)


if TYPE_CHECKING:
    from authmigrate.pipeline.run import (
        EXAMPLES,
        Migration,
        PlanResult,
        RunResult,
        build_late_stages,
        build_stages,
        check_source_columns,
        plan_migration,
        run_migration,
        source_key_tag,
    )
