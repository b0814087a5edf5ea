"""Magento 1 (EAV customers) and Magento 2 (flat ``customer_entity``, per-website accounts).

Magento 1 keeps the password hash, first and last name as EAV attributes: rows of
``customer_entity_varchar`` whose ``attribute_id`` is found in ``eav_attribute`` by
``attribute_code`` for the ``customer`` entity type. Hashes are ``md5(salt.password):salt``
(Community), ``sha256(salt.password):salt`` (patched/Enterprise), and since 1.9.3 (OpenMage too)
``password_hash()`` bcrypt ``$2y$10$...`` or ``sha512(salt.password):salt`` where PHP lacks it:
scheme ``magento1``, then ``auto`` for bcrypt.

Magento 2 stores ``hash:salt:version`` in ``customer_entity.password_hash`` (version 1 =
SHA-256, 2/3_... = Argon2id13 via libsodium, chains such as ``0:1`` after upgrades): scheme
``magento2``. An email is unique per website (``account share scope`` = per website), so the
preset makes ``website_id`` and ``email`` unique together in the target.
"""

from __future__ import annotations

from authmigrate.presets._model import (
    Preset,
    SchemaView,
    datetime_field,
    email_field,
    flag_field,
    has_column,
    name_field,
    zero_date,
)


def _eav(code: str, alias: str) -> str:
    return (
        "(SELECT v.value FROM {p}customer_entity_varchar v "
        "JOIN {p}eav_attribute a ON a.attribute_id = v.attribute_id "
        f"WHERE v.entity_id = e.entity_id AND a.attribute_code = '{code}' "
        "AND a.entity_type_id = e.entity_type_id "
        f"ORDER BY v.value_id LIMIT 1) AS {alias}"
    )


MAGENTO1_QUERY = f"""
SELECT e.entity_id AS legacy_id,
       e.email,
       e.website_id,
       e.store_id,
       e.group_id,
       e.is_active,
       {zero_date("e.created_at")} AS created_at,
       {_eav("firstname", "firstname")},
       {_eav("lastname", "lastname")},
       {_eav("password_hash", "password_hash")},
       e.updated_at
FROM {{p}}customer_entity e
"""

MAGENTO2_QUERY = f"""
SELECT e.entity_id AS legacy_id,
       e.email,
       e.website_id,
       e.store_id,
       e.group_id,
       e.firstname,
       e.lastname,
       e.is_active,
       {zero_date("e.created_at")} AS created_at,
       e.lock_expires,
       e.password_hash,
       e.updated_at
FROM {{p}}customer_entity e
"""

_FIELDS = {
    "email": email_field("email"),
    "first_name": name_field("firstname"),
    "last_name": name_field("lastname"),
    "website_id": {"from": "website_id", "type": "integer"},
    "store_id": {"from": "store_id", "type": "integer"},
    "group_id": {"from": "group_id", "type": "integer"},
    "created_at": datetime_field("created_at"),
    "active": flag_field("is_active"),
}

# one account per (website, email), as Magento's "per website" account share scope
_PER_WEBSITE = (("website_id", "email"),)


def _is_magento1(schema: SchemaView, prefix: str) -> bool:
    """Magento 1 keeps the hash in EAV; a ``password_hash`` column means Magento 2."""
    return not has_column(schema, f"{prefix}customer_entity", "password_hash")


MAGENTO1 = Preset(
    name="magento1",
    title="Magento 1.x / OpenMage",
    summary="customer_entity + EAV customer_entity_varchar (password_hash, names); "
    "md5/sha256/sha512, bcrypt",
    default_prefix="",
    required={
        "customer_entity": ("entity_id", "entity_type_id", "email", "website_id"),
        "customer_entity_varchar": ("entity_id", "attribute_id", "value"),
        "eav_attribute": ("attribute_id", "attribute_code", "entity_type_id"),
    },
    refine=_is_magento1,
    bonus_tables=("core_config_data", "core_website"),
    query=MAGENTO1_QUERY,
    changed_column="updated_at",
    fields=_FIELDS,
    # md5/sha256/sha512 hash:salt, and password_hash() bcrypt from 1.9.3+ / OpenMage
    credentials={"column": "password_hash", "scheme": ["magento1", "auto"]},
    target_unique=_PER_WEBSITE,
    notes=(
        "Names and the password hash are EAV attributes, looked up by attribute_code.",
        "An email is unique per website: website_id and email are unique together; set",
        'target.unique = ["email"] for a global account scope.',
    ),
    sources=(
        "Magento 1.9 app/code/core/Mage/Customer/sql/customer_setup/install-1.6.0.0.php",
        "Magento 1.9 app/code/core/Mage/Eav/sql/eav_setup/install-1.6.0.0.php",
    ),
)

MAGENTO2 = Preset(
    name="magento2",
    title="Magento 2.x / Adobe Commerce / Mage-OS",
    summary="customer_entity (password_hash hash:salt:version, website_id scope)",
    default_prefix="",
    required={
        "customer_entity": ("entity_id", "email", "website_id", "password_hash", "rp_token"),
    },
    bonus_tables=("store_website", "customer_grid_flat", "setup_module"),
    query=MAGENTO2_QUERY,
    changed_column="updated_at",
    fields={
        **_FIELDS,
        "locked_until": datetime_field("lock_expires"),
    },
    credentials={"column": "password_hash", "scheme": "magento2"},
    target_unique=_PER_WEBSITE,
    notes=(
        "An email is unique per website (customer account share scope): website_id and",
        'email are unique together; set target.unique = ["email"] for a global scope.',
    ),
    sources=("magento2 app/code/Magento/Customer/etc/db_schema.xml (customer_entity)",),
)
