"""WooCommerce / WordPress: ``wp_users`` with the names and billing data from ``wp_usermeta``.

``user_pass`` holds phpass portable hashes (``$P$B...``, WordPress < 6.8), the bcrypt form of
WordPress 6.8+ (``$wp$2y$10$...``: bcrypt over base64(HMAC-SHA384(password, "wp-sha384"))),
plain bcrypt from plugins, and plain MD5 from WordPress < 2.5: ``scheme = "auto"`` tells
the first three apart, and the bare MD5 hex that no scheme can claim by itself is read as a
plain ``digest`` (md5, hex), the fallback of the scheme list. WooCommerce keeps no password
of its own: a customer is a WordPress user.
"""

from __future__ import annotations

from authmigrate.presets._model import (
    Preset,
    datetime_field,
    email_field,
    flag_field,
    name_field,
    zero_date,
)


def _meta(key: str, alias: str) -> str:
    return (
        f"(SELECT m.meta_value FROM {{p}}usermeta m WHERE m.user_id = u.ID "
        f"AND m.meta_key = '{key}' ORDER BY m.umeta_id LIMIT 1) AS {alias}"
    )


QUERY = f"""
SELECT u.ID AS legacy_id,
       u.user_login,
       u.user_email,
       u.user_pass,
       u.display_name,
       {zero_date("u.user_registered")} AS user_registered,
       CASE WHEN u.user_status = 0 THEN 1 ELSE 0 END AS active,
       {_meta("first_name", "first_name")},
       {_meta("last_name", "last_name")},
       {_meta("billing_phone", "billing_phone")},
       {_meta("billing_country", "billing_country")}
FROM {{p}}users u
"""

WOOCOMMERCE = Preset(
    name="woocommerce",
    aliases=("wordpress",),
    title="WooCommerce / WordPress",
    summary="wp_users + wp_usermeta; phpass, $wp$ bcrypt (6.8+), bcrypt, old md5",
    default_prefix="wp_",
    required={
        "users": ("ID", "user_login", "user_pass", "user_email", "user_registered"),
        "usermeta": ("user_id", "meta_key", "meta_value"),
    },
    bonus_tables=("wc_customer_lookup", "woocommerce_sessions", "wc_orders"),
    query=QUERY,
    fields={
        "email": email_field("user_email"),
        "username": name_field("user_login"),
        "display_name": name_field("display_name"),
        "first_name": name_field("first_name"),
        "last_name": name_field("last_name"),
        "phone": name_field("billing_phone"),
        "country": name_field("billing_country"),
        "created_at": datetime_field("user_registered"),
        "active": flag_field("active"),
    },
    credentials={
        "column": "user_pass",
        "scheme": ["auto", "digest"],
        "params": {"algorithm": "md5", "encoding": "hex"},
        # wp_authenticate() trims the typed password (wp-includes/pluggable.php)
        "login_rules": ["trim"],
    },
    notes=(
        "Every WordPress user is read (administrators too): to keep only customers add",
        "  WHERE EXISTS (SELECT 1 FROM wp_usermeta c WHERE c.user_id = u.ID",
        "    AND c.meta_key = 'wp_capabilities' AND c.meta_value LIKE '%customer%')",
        "user_registered = 0000-00-00 00:00:00 (WordPress' default) is read as NULL.",
    ),
    sources=("WordPress wp-admin/includes/schema.php (wp_get_db_schema: users, usermeta)",),
)
