"""``python -m authmigrate.notify SPEC [--dry-run --out DIR] [--status]``: the notify command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from authmigrate.cli import notify_command


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run :func:`notify_command`."""
    parser = argparse.ArgumentParser(prog="python -m authmigrate.notify")
    parser.add_argument("spec", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--status", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return notify_command(args.spec, dry_run=args.dry_run, out=args.out, status=args.status)


if __name__ == "__main__":
    sys.exit(main())
