"""``python -m authmigrate`` is the ``authmigrate`` command.

Ctrl-C is answered with exit code 130 from the first moment: the command's modules are
imported under the same guard that the command itself runs under (:func:`entry`).
"""

import sys


def _interrupted() -> None:
    sys.stderr.write("authmigrate: interrupted\n")
    sys.exit(130)


def entry() -> None:
    """Import the command and run it; Ctrl-C at any moment exits with 130."""
    try:
        from authmigrate.cli import main
    except KeyboardInterrupt:
        _interrupted()
    try:
        main()
    except KeyboardInterrupt:  # between the command's own handlers (click's, ours)
        _interrupted()


if __name__ == "__main__":
    entry()
