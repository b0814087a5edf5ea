"""Spree / Solidus (spree_auth_devise / solidus_auth_devise): ``spree_users``.

``encrypted_password`` is Devise's bcrypt (``$2a$11$...``, with the Devise pepper appended to
the password when ``config.pepper`` is set); stores migrated from Spree < 1.2 keep Authlogic's
SHA-512 (20 rounds of ``sha512(digest.salt)``) with ``password_salt``. ``deleted_at`` marks a
soft-deleted user and ``locked_at`` a locked one. The query reads no ``login``: solidus_auth_devise
dropped that column (migration 20210601202000), and where it remains it holds the email.
"""

from __future__ import annotations

from authmigrate.presets._model import Preset, datetime_field, email_field

QUERY = """
SELECT u.id AS legacy_id,
       u.email,
       u.encrypted_password,
       u.password_salt,
       u.created_at,
       u.confirmed_at,
       u.locked_at,
       CASE WHEN u.deleted_at IS NULL AND u.locked_at IS NULL THEN 1 ELSE 0 END AS active
FROM {p}users u
WHERE u.deleted_at IS NULL
"""

SPREE = Preset(
    name="spree",
    aliases=("solidus",),
    title="Spree / Solidus (Devise)",
    summary="spree_users.encrypted_password (Devise bcrypt; Authlogic sha512 + password_salt)",
    default_prefix="spree_",
    required={
        "users": ("id", "email", "encrypted_password", "password_salt", "sign_in_count"),
        "roles": ("id", "name"),
    },
    bonus_tables=("orders", "addresses", "role_users"),
    query=QUERY,
    fields={
        "email": email_field("email"),
        "created_at": datetime_field("created_at"),
        "confirmed_at": datetime_field("confirmed_at"),
        "locked_at": datetime_field("locked_at"),
        "active": {"from": "active", "type": "boolean"},
    },
    credentials={"column": "encrypted_password", "scheme": "auto"},
    notes=(
        "With a Devise pepper (config.pepper), add it to the keyring as an env reference:",
        '  [credentials.keys] devise = "env:DEVISE_PEPPER" and params.key_id = "devise".',
        'Authlogic SHA-512 stores (Spree < 1.2): scheme = "authlogic_sha512".',
    ),
    sources=(
        "solidus core/db/migrate/20160101010000_solidus_one_four.rb (spree_users, spree_roles)",
        "solidus_auth_devise db/migrate/* (Devise columns; login removed 20210601202000)",
    ),
)
