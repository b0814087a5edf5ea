"""Shop and framework presets: a platform's customer table, mapping and hash format in one name.

``source.preset = "woocommerce"`` in a spec fills ``source.query``/``key``, ``fields`` and
``credentials`` from the platform's preset (the spec's own keys win), and ``authmigrate init``
detects the platform and its table prefix from the schema and writes a spec to edit::

    >>> from authmigrate.presets import get_preset
    >>> get_preset("wordpress").name
    'woocommerce'

Each platform is one module holding a declarative :class:`Preset`.
"""

from __future__ import annotations

import copy
from typing import Any

from authmigrate.errors import SourceError, SpecError
from authmigrate.presets._model import PREFIX_RULE, Preset, SchemaView
from authmigrate.presets.django import DJANGO, SALEOR
from authmigrate.presets.drupal import DRUPAL7
from authmigrate.presets.joomla import JOOMLA
from authmigrate.presets.magento import MAGENTO1, MAGENTO2
from authmigrate.presets.opencart import OPENCART, OPENCART4
from authmigrate.presets.prestashop import PRESTASHOP, PRESTASHOP16
from authmigrate.presets.shopware import SHOPWARE6
from authmigrate.presets.spree import SPREE
from authmigrate.presets.woocommerce import WOOCOMMERCE

__all__ = [
    "PRESETS",
    "Preset",
    "apply_preset",
    "detect",
    "detect_schema",
    "get_preset",
    "list_presets",
    "write_init_spec",
]

PRESETS: tuple[Preset, ...] = (
    WOOCOMMERCE,
    MAGENTO1,
    MAGENTO2,
    PRESTASHOP16,
    PRESTASHOP,
    OPENCART,
    OPENCART4,
    SHOPWARE6,
    DRUPAL7,
    JOOMLA,
    DJANGO,
    SALEOR,
    SPREE,
)
"""Every preset, in the order ``authmigrate presets`` lists them."""

_BY_NAME: dict[str, Preset] = {}
for _p in PRESETS:
    for _n in (_p.name, *_p.aliases):
        _BY_NAME[_n] = _p

_PREFIX = PREFIX_RULE


def list_presets() -> list[tuple[str, str]]:
    """``(name, description)`` of every preset, for ``authmigrate presets``.

    The description names the platform and versions, the tables read and the hash formats;
    aliases accepted for a preset are listed after it.
    """
    rows = []
    for p in PRESETS:
        also = f" (also: {', '.join(p.aliases)})" if p.aliases else ""
        rows.append((p.name, f"{p.title}: {p.summary}{also}"))
    return rows


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (or one of its aliases).

    Raises:
        SpecError: no such preset; the message lists the known names.
    """
    preset = _BY_NAME.get(name.strip().lower()) if isinstance(name, str) else None
    if preset is None:
        known = ", ".join(p.name for p in PRESETS)
        raise SpecError("source.preset", f"unknown preset {name!r} (known: {known})")
    return preset


def with_mysql_charset(url: str) -> str:
    """Add ``charset=utf8mb4`` to a MySQL/MariaDB URL that names no charset.

    Without it a driver may talk latin1 and hand back legacy text as mojibake; with it the
    server converts latin1/utf8mb3 columns to UTF-8 on the way out.
    """
    if not url.startswith(("mysql", "mariadb")) or "charset=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "charset=utf8mb4"


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    """Merge ``source.preset`` into a raw spec dict (before validation); the spec's keys win.

    Fills ``source.query`` (with the table prefix: ``source.table_prefix`` or the platform's
    default) and ``source.key`` unless the spec gives its own table/query/key, adds the preset's
    ``fields`` the spec does not define (``name = false`` drops one), merges ``credentials``
    key by key (``params`` and ``keys`` too) and sets ``target.unique`` when absent.

    Raises:
        SpecError: unknown preset, a bad ``table_prefix`` or a field value that is not
            a table, a column name or ``false``.
    """
    out = copy.deepcopy(data)
    source = out["source"]
    preset = get_preset(source.get("preset", ""))
    prefix = source.pop("table_prefix", None)
    if prefix is None:
        prefix = preset.default_prefix
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise SpecError("source.table_prefix", 'must be letters, digits, _ or $ (e.g. "wp_")')

    if not source.get("table") and not source.get("query"):
        source["query"] = preset.render_query(prefix)
        source.setdefault("key", preset.key)
        if preset.changed_column:  # the platform's "updated at", unless the spec says otherwise
            sync = out.setdefault("sync", {})
            if isinstance(sync, dict):
                sync.setdefault("changed_column", preset.changed_column)
    if isinstance(source.get("url"), str):
        source["url"] = with_mysql_charset(source["url"])

    out["fields"] = _merge_fields(preset, out.get("fields"))
    out["credentials"] = _merge_credentials(preset, out.get("credentials"))
    target = out.get("target")
    if isinstance(target, dict) and "unique" not in target:
        target["unique"] = list(preset.target_unique)
    return out


def _merge_fields(preset: Preset, user: Any) -> dict[str, Any]:
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise SpecError("fields", "must be a table")
    merged: dict[str, Any] = copy.deepcopy(preset.all_fields)
    for name, value in user.items():
        if value is False:
            merged.pop(name, None)
        elif isinstance(value, str | dict):
            merged[name] = value
        else:
            raise SpecError(
                f"fields.{name}", "expected a source column name, a table, or false to drop it"
            )
    return merged


def _merge_credentials(preset: Preset, user: Any) -> dict[str, Any]:
    merged: dict[str, Any] = copy.deepcopy(dict(preset.credentials))
    if user is None:
        return merged
    if not isinstance(user, dict):
        raise SpecError("credentials", "must be a table")
    for key, value in user.items():
        if key in ("params", "keys") and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


def detect_schema(schema: SchemaView) -> list[tuple[int, str, str]]:
    """Every preset that matches ``schema``: ``(score, preset name, prefix)``, best first."""
    found = []
    for preset in PRESETS:
        score, prefix = preset.detect(schema)
        if score > 0:
            found.append((score, preset.name, prefix))
    found.sort(key=lambda t: (-t[0], t[1]))
    return found


def detect(url: str) -> tuple[str, str]:
    """Connect to ``url``, inspect its tables and return ``(preset name, table prefix)``.

    Raises:
        SourceError: the URL is not a reachable database, or no known platform is found
            (the message lists the tables looked for).
    """
    from authmigrate.presets.init import inspect_source

    matches = detect_schema(inspect_source(url))
    if not matches:
        looked = ", ".join(sorted({next(iter(p.required)) for p in PRESETS}))
        raise SourceError(
            f"no known shop platform found in the source (looked for tables like {looked}, "
            "with any prefix); name one with --preset"
        )
    _, name, prefix = matches[0]
    return name, prefix


from authmigrate.presets.init import write_init_spec  # noqa: E402
