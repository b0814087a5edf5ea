"""``python -m authmigrate`` is the ``authmigrate`` command.

Ctrl-C is answered with exit code 130 from the first moment: the command's modules are
imported under the same guard that the command itself runs under (:func:`entry`).
"""

import sys


def _interrupted() -> None:
    sys.stderr.write("authmigrate: interrupted\n")
    sys.exit(130)


def _carries_interrupt(exc: BaseException) -> bool:
    """A Ctrl-C wrapped in another exception (``RuntimeError: Error calling __set_name__``
    when it lands while a class is being built during an import)."""
    cur: BaseException | None = exc
    for _ in range(32):
        if cur is None:
            return False
        if isinstance(cur, KeyboardInterrupt):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def entry() -> None:
    """Import the command and run it; Ctrl-C at any moment exits with 130."""
    try:
        from authmigrate.cli import main
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:
        if _carries_interrupt(exc):
            _interrupted()
        raise
    try:
        main()
    except KeyboardInterrupt:  # between the command's own handlers (click's, ours)
        _interrupted()


if __name__ == "__main__":
    entry()
