"""Shopware 6: ``customer`` (binary UUID ids, ``password`` bcrypt plus migrated legacy hashes).

Native accounts have ``password`` = PHP ``password_hash()`` (bcrypt). Accounts brought over by
the migration assistant keep ``legacy_password`` with ``legacy_encoder`` (``Md5`` for
Shopware 5's md5 or ``md5(password.salt):salt``, ``Sha256`` for ``iterations:salt:hash``) until
their next login. The query reads whichever is set; ``legacy_encoder`` travels along and chooses
each legacy row's scheme (``credentials.scheme_column``).
The key is the hex of the binary id, as Shopware's API shows it.
"""

from __future__ import annotations

from authmigrate.presets._model import (
    Preset,
    datetime_field,
    email_field,
    flag_field,
    name_field,
)

QUERY = """
SELECT LOWER(HEX(c.id)) AS legacy_id,
       c.customer_number,
       c.email,
       c.first_name,
       c.last_name,
       LOWER(HEX(c.sales_channel_id)) AS sales_channel_id,
       c.active,
       c.guest,
       c.created_at,
       CASE WHEN c.password IS NOT NULL AND c.password <> '' THEN c.password
            ELSE c.legacy_password END AS password,
       CASE WHEN c.password IS NOT NULL AND c.password <> '' THEN NULL
            ELSE c.legacy_encoder END AS legacy_encoder
FROM {p}customer c
WHERE c.guest = 0
"""

SHOPWARE6 = Preset(
    name="shopware6",
    aliases=("shopware",),
    title="Shopware 6",
    summary="customer.password bcrypt, legacy_password/legacy_encoder (Md5, Sha256) from SW5",
    default_prefix="",
    required={
        "customer": (
            "id",
            "email",
            "password",
            "legacy_password",
            "legacy_encoder",
            "sales_channel_id",
        ),
        "sales_channel": ("id",),
    },
    bonus_tables=("customer_address", "migration"),
    query=QUERY,
    key_type="text",
    fields={
        "email": email_field("email"),
        "customer_number": name_field("customer_number"),
        "first_name": name_field("first_name"),
        "last_name": name_field("last_name"),
        "sales_channel_id": name_field("sales_channel_id"),
        "created_at": datetime_field("created_at"),
        "active": flag_field("active"),
    },
    credentials={
        "column": "password",
        "scheme": "auto",
        # legacy rows: the scheme follows legacy_encoder (Shopware's LegacyEncoder names)
        "scheme_column": "legacy_encoder",
        "scheme_map": {"Md5": "shopware5_md5", "Sha256": "shopware5_sha256"},
    },
    notes=(
        "Guest accounts (guest = 1) are not read. Shops that bind customers to sales",
        "channels may hold one email per channel: then set target.unique =",
        '["email", "sales_channel_id"].',
    ),
    sources=(
        "shopware/platform src/Core/Migration/V6_3/Migration1536232960Customer.php",
        "shopware/platform Migration1554712204AddLegacyPasswordToCustomer.php",
    ),
)
