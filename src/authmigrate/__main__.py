"""``python -m authmigrate`` is the ``authmigrate`` command."""

from authmigrate.cli import main

main()
