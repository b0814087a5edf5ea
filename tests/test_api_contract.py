"""The Python API names of DESIGN.md stay what they are, whatever else is imported."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import authmigrate


def test_api_functions_are_not_shadowed_by_submodules() -> None:
    """Importing every submodule (as the CLI does) must not replace authmigrate.verify & co."""
    for mod in pkgutil.walk_packages(authmigrate.__path__, "authmigrate."):
        if mod.name.endswith("__main__"):
            continue
        importlib.import_module(mod.name)
    for name in (
        "identify",
        "import_hash",
        "verify",
        "needs_update",
        "verify_and_update",
        "wrap",
        "verify_token",
    ):
        fn = getattr(authmigrate, name)
        assert inspect.isfunction(fn), f"authmigrate.{name} is {fn!r}"
    assert authmigrate.verify("x", "$1$saltsalt$hYtMp2GDmBnaa1BNedlXH1") is False
