"""Shop and framework presets (filled in by the presets work)."""

from __future__ import annotations

from typing import Any

from authmigrate.errors import SpecError


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    """Fill a spec's source/fields/credentials from ``source.preset``."""
    raise SpecError("source.preset", f"unknown preset {data['source'].get('preset')!r}")
