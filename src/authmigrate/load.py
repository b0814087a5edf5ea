"""Loading a spec file: read, render its preset, validate.

The spec (:mod:`authmigrate.spec`) is the contract and depends on nothing above it; loading
sits above both the spec and the presets, which render a ``source.preset = "woocommerce"``
into the keys it stands for before the spec is validated::

    TOML text ─► dict ─► render_presets ─► spec_from_data ─► Spec

``load_spec`` and ``load_spec_text`` are also importable from :mod:`authmigrate.spec`, where
they used to live.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from authmigrate.errors import SpecError
from authmigrate.spec import Spec, spec_from_data


def render_presets(data: dict[str, Any]) -> dict[str, Any]:
    """The spec's data with its ``source.preset`` rendered (the spec's own keys win); data
    without a preset unchanged."""
    if "source" in data and isinstance(data["source"], dict) and data["source"].get("preset"):
        from authmigrate.presets import apply_preset

        return apply_preset(data)
    return data


def load_spec_text(text: str, *, base_dir: Path | None = None) -> Spec:
    """Parse and validate a spec from TOML text.

    Raises:
        SpecError: invalid TOML, an unknown key, a wrong type or an inconsistent value; the
            message names the key path.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("", f"not valid TOML: {exc}") from None
    return spec_from_data(render_presets(data), base_dir=base_dir)


def load_spec(path: str | Path) -> Spec:
    """Read and validate the spec file at ``path``; relative file URLs are taken from its folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("", f"cannot read spec file {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpecError(
            "", f"spec file {p} is not UTF-8 text (line {line}); save it as UTF-8"
        ) from None
    return load_spec_text(text, base_dir=p.resolve().parent)
