"""Django (``auth_user``) and Saleor (``account_user``): Django's password hashers.

``password`` is Django's ``algorithm$...`` form (``pbkdf2_sha256$1000000$salt$hash``,
``argon2$argon2id$...``, ``bcrypt_sha256$...``, ``md5$salt$hash``...); an unusable password
starts with ``!`` and becomes a reset. Both usually live on PostgreSQL, so the queries use
portable SQL only.
"""

from __future__ import annotations

from authmigrate.presets._model import (
    Preset,
    datetime_field,
    email_field,
    flag_field,
    name_field,
)

DJANGO_QUERY = """
SELECT u.id AS legacy_id,
       u.username,
       u.email,
       u.first_name,
       u.last_name,
       u.password,
       u.is_active,
       u.is_staff,
       u.date_joined,
       u.last_login
FROM {p}auth_user u
"""

SALEOR_QUERY = """
SELECT u.id AS legacy_id,
       u.email,
       u.first_name,
       u.last_name,
       u.password,
       u.is_active,
       u.is_staff,
       u.is_confirmed,
       u.date_joined,
       u.last_login
FROM {p}account_user u
"""

_PERSON = {
    "email": email_field("email"),
    "first_name": name_field("first_name"),
    "last_name": name_field("last_name"),
    "created_at": datetime_field("date_joined"),
    "last_login": datetime_field("last_login"),
    "active": flag_field("is_active"),
    "staff": flag_field("is_staff"),
}

DJANGO = Preset(
    name="django",
    title="Django (django.contrib.auth)",
    summary="auth_user.password in Django's hasher format",
    default_prefix="",
    required={
        "auth_user": ("id", "username", "password", "email", "is_active", "date_joined"),
        "django_migrations": ("app", "name"),
    },
    bonus_tables=("auth_group", "django_session"),
    query=DJANGO_QUERY,
    fields={"username": name_field("username"), **_PERSON},
    credentials={"column": "password", "scheme": "auto"},
    sources=("Django django/contrib/auth/migrations/0001_initial.py (auth_user), sqlmigrate",),
)

SALEOR = Preset(
    name="saleor",
    title="Saleor",
    summary="account_user.password in Django's hasher format (argon2 / pbkdf2)",
    default_prefix="",
    required={
        "account_user": ("id", "email", "password", "is_active", "date_joined", "is_staff"),
        "django_migrations": ("app", "name"),
    },
    bonus_tables=("account_address", "checkout_checkout", "order_order"),
    query=SALEOR_QUERY,
    fields={**_PERSON, "email_confirmed": flag_field("is_confirmed")},
    credentials={"column": "password", "scheme": "auto"},
    sources=("saleor saleor/account/migrations (account_user), sqlmigrate account",),
)
